"""Every Kraken endpoint follows the configuration: ``KRAKEN_BASE_URL`` names the REST host, the authenticated
WebSocket is derived from it (or named by ``KRAKEN_WS_AUTH_URL``), and neither a REST answer nor the WebSocket
handshake can redirect the key or the token to a host the configuration did not name."""

from __future__ import annotations

import asyncio
import json

import pytest
import responses
from django.core.exceptions import ImproperlyConfigured

from orders.brokers.kraken import KrakenBroker, KrakenConfig, build_kraken_broker, kraken_ws_auth_url
from orders.brokers.kraken.endpoints import EndpointError
from orders.brokers.kraken.stream import KrakenExecutions, _connect
from orders.domain.errors import DeskError
from tests.brokers.test_kraken import API_KEY, BASE, NOW, SECRET, KrakenVenue, make_kraken


@pytest.mark.parametrize(("base", "derived"), [
    ("https://api.kraken.com", "wss://ws-auth.kraken.com/v2"),
    ("https://api.kraken.com/", "wss://ws-auth.kraken.com/v2"),
    ("https://api.kraken.com:443", "wss://ws-auth.kraken.com/v2"),
    ("http://127.0.0.1:8123", "ws://127.0.0.1:8123/v2"),
    ("http://localhost", "ws://localhost/v2"),
    ("https://kraken-gateway.internal:8443/kraken", "wss://kraken-gateway.internal:8443/v2"),
    ("https://user:pw@proxy.example", "wss://proxy.example/v2"),
    ("http://[::1]:9000", "ws://[::1]:9000/v2"),
])
def test_the_websocket_address_is_derived_from_the_rest_base(base, derived):
    assert kraken_ws_auth_url(base) == derived


def test_an_override_names_the_websocket_address_whatever_the_base():
    assert kraken_ws_auth_url("http://127.0.0.1:8123", "ws://127.0.0.1:9000/v2") == "ws://127.0.0.1:9000/v2"
    assert kraken_ws_auth_url("https://api.kraken.com", "wss://ws-auth.kraken.com/v2") == \
        "wss://ws-auth.kraken.com/v2"


@pytest.mark.parametrize(("base", "override"), [
    ("api.kraken.com", None), ("ftp://api.kraken.com", None), ("https://", None),
    ("https://api.kraken.com", "https://ws-auth.kraken.com/v2"), ("https://api.kraken.com", "wss:///v2"),
])
def test_an_address_the_adapter_cannot_use_is_refused(base, override):
    with pytest.raises(EndpointError):
        kraken_ws_auth_url(base, override)


@pytest.fixture
def kraken_env(monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    for name in ("KRAKEN_BASE_URL", "KRAKEN_WS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_by_default_every_endpoint_is_krakens(kraken_env):
    broker = build_kraken_broker()
    assert broker.http.base_url == "https://api.kraken.com"
    assert broker.ws_auth_url == "wss://ws-auth.kraken.com/v2"
    assert broker.executions_stream().url == "wss://ws-auth.kraken.com/v2"


def test_a_local_base_moves_the_stream_with_it(kraken_env):
    kraken_env.setenv("KRAKEN_BASE_URL", "http://127.0.0.1:8123")
    broker = build_kraken_broker()
    assert broker.http.base_url == "http://127.0.0.1:8123"
    assert broker.executions_stream().url == "ws://127.0.0.1:8123/v2"


def test_the_override_moves_only_the_stream(kraken_env):
    kraken_env.setenv("KRAKEN_BASE_URL", "http://127.0.0.1:8123")
    kraken_env.setenv("KRAKEN_WS_AUTH_URL", "ws://127.0.0.1:8124/v2")
    broker = build_kraken_broker()
    assert (broker.http.base_url, broker.executions_stream().url) == ("http://127.0.0.1:8123",
                                                                      "ws://127.0.0.1:8124/v2")


@pytest.mark.parametrize(("name", "value"), [("KRAKEN_BASE_URL", "api.kraken.com"),
                                             ("KRAKEN_WS_AUTH_URL", "https://ws-auth.kraken.com/v2")])
def test_a_url_that_cannot_be_used_stops_the_start_naming_the_setting(kraken_env, name, value):
    kraken_env.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        build_kraken_broker()


def test_a_broker_built_in_code_derives_its_stream_the_same_way():
    broker = KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=SECRET, base_url="http://127.0.0.1:8123"))
    assert broker.ws_auth_url == "ws://127.0.0.1:8123/v2"


# -- nothing is redirected elsewhere ---------------------------------------------------------------------

@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock:
        requests_mock.add(responses.POST, "https://elsewhere.example/0/private/BalanceEx", json={})
        requests_mock.add(responses.GET, "https://elsewhere.example/0/public/Ticker", json={})
        yield requests_mock


def test_a_private_call_is_not_redirected_with_the_key(mock):
    venue = KrakenVenue(mock)
    venue.stage("BalanceEx", (302, "", {"Location": "https://elsewhere.example/0/private/BalanceEx"}))
    with pytest.raises(DeskError):
        make_kraken().account_state(now=NOW)
    assert {call.request.url.split("/0/")[0] for call in mock.calls} == {BASE}


def test_a_public_call_is_not_redirected_either(mock):
    venue = KrakenVenue(mock)
    venue.stage("Ticker", (301, "", {"Location": "https://elsewhere.example/0/public/Ticker"}))
    with pytest.raises(DeskError):
        make_kraken().quote("XBTUSD", now=NOW)
    assert {call.request.url.split("/0/")[0] for call in mock.calls} == {BASE}


async def _redirecting_server(location: str, seen: list[str]):
    from websockets.asyncio.server import serve
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def redirect(connection, request):
        seen.append(request.path)
        if request.path == "/v2":
            return Response(302, "Found", Headers({"Location": location, "Content-Length": "0"}), b"")
        return None

    async def echo(ws):
        async for message in ws:
            seen.append(message)

    return await serve(echo, "127.0.0.1", 0, process_request=redirect)


def test_the_stream_refuses_a_redirect_to_another_origin_and_sends_no_token():
    async def scenario():
        elsewhere_seen: list[str] = []
        elsewhere = await _redirecting_server("", elsewhere_seen)
        other_port = elsewhere.sockets[0].getsockname()[1]
        seen: list[str] = []
        server = await _redirecting_server(f"ws://127.0.0.1:{other_port}/v2/elsewhere", seen)
        port = server.sockets[0].getsockname()[1]
        try:
            from websockets.exceptions import SecurityError
            with pytest.raises(SecurityError):
                async with _connect(f"ws://127.0.0.1:{port}/v2") as ws:
                    await ws.send(json.dumps({"token": "secret"}))
        finally:
            server.close()
            elsewhere.close()
        return seen, elsewhere_seen

    seen, elsewhere_seen = asyncio.run(scenario())
    assert seen == ["/v2"] and elsewhere_seen == [], "the other origin is never dialled"


def test_the_stream_follows_a_redirect_on_the_same_host_and_port():
    async def scenario():
        seen: list[str] = []
        server = await _redirecting_server("/v2/moved", seen)
        port = server.sockets[0].getsockname()[1]
        try:
            async with _connect(f"ws://127.0.0.1:{port}/v2") as ws:
                await ws.send("hello")
                await asyncio.sleep(0.1)
        finally:
            server.close()
        return seen

    assert asyncio.run(scenario()) == ["/v2", "/v2/moved", "hello"]


def test_the_stream_dials_the_configured_address():
    opened: list[str] = []

    class Refused:
        def __init__(self, url):
            opened.append(url)

        async def __aenter__(self):
            raise OSError("refused")

        async def __aexit__(self, *exc):
            return False

    broker = KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=SECRET, base_url="http://127.0.0.1:8123"))

    async def no_wait(seconds):
        return None

    stream = broker.executions_stream(connect=Refused, sleep=no_wait)
    assert isinstance(stream, KrakenExecutions)
    stream.token = lambda: "token"
    asyncio.run(stream.run(print, max_connections=2))
    assert opened == ["ws://127.0.0.1:8123/v2"] * 2
