"""Every Binance endpoint follows the configuration: ``BINANCE_BASE_URL`` names the venue, the WebSocket API (whose
subscription carries the API key) is derived from it, and ``BINANCE_WS_API_URL`` overrides that. A base URL that is
not one of Binance's own hosts never sends the key to Binance."""

from __future__ import annotations

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured

from orders.brokers.binance import BinanceConfig, build_binance_broker
from orders.brokers.binance.endpoints import rest_base_url, ws_api_url
from orders.brokers.binance.stream import BinanceUserStream


@pytest.mark.parametrize("base, expected", [
    ("https://api.binance.com", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("https://api3.binance.com/", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("https://api-gcp.binance.com/api", "wss://ws-api.binance.com:443/ws-api/v3"),
    ("https://testnet.binance.vision", "wss://ws-api.testnet.binance.vision/ws-api/v3"),
    ("https://testnet.binance.vision/api", "wss://ws-api.testnet.binance.vision/ws-api/v3"),
    ("https://demo-api.binance.com/api", "wss://demo-ws-api.binance.com/ws-api/v3"),
])
def test_binance_own_hosts_use_the_websocket_api_of_the_same_environment(base, expected):
    assert ws_api_url(base) == expected


@pytest.mark.parametrize("base, expected", [
    ("http://127.0.0.1:8123", "ws://127.0.0.1:8123/ws-api/v3"),
    ("https://binance-proxy.internal", "wss://binance-proxy.internal/ws-api/v3"),
    ("https://binance-proxy.internal:8443/api/", "wss://binance-proxy.internal:8443/ws-api/v3"),
    ("http://api.binance.com", "ws://api.binance.com/ws-api/v3"),            # not how Binance serves itself
    ("https://api.binance.com:8443", "wss://api.binance.com:8443/ws-api/v3"),
])
def test_any_other_host_is_asked_on_the_same_host_and_port(base, expected):
    assert ws_api_url(base) == expected


def test_an_override_wins_over_the_derived_url():
    assert ws_api_url("http://127.0.0.1:8123", override="ws://127.0.0.1:9000/ws-api/v3") == \
        "ws://127.0.0.1:9000/ws-api/v3"


@pytest.mark.parametrize("base", ["", "ftp://api.binance.com", "api.binance.com", "https://"])
def test_a_base_url_that_names_no_http_host_is_refused(base):
    with pytest.raises(ValueError):
        rest_base_url(base)


def test_an_override_that_is_not_a_websocket_url_is_refused():
    with pytest.raises(ValueError):
        ws_api_url("https://api.binance.com", override="https://ws-api.binance.com")


def test_the_rest_base_loses_a_trailing_api_so_paths_are_not_doubled():
    assert rest_base_url("https://testnet.binance.vision/api/") == "https://testnet.binance.vision"


# -- from the environment ------------------------------------------------------------------------------

@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    for name in ("BINANCE_BASE_URL", "BINANCE_WS_API_URL", "BINANCE_QUOTE_ASSET"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_by_default_both_endpoints_are_the_testnet_and_the_currency_usdt(keys):
    config = build_binance_broker().config
    assert (config.base_url, config.ws_api_url, config.quote_asset) == (
        "https://testnet.binance.vision", "wss://ws-api.testnet.binance.vision/ws-api/v3", "USDT")


def test_a_local_base_url_keeps_the_stream_on_that_host(keys):
    keys.setenv("BINANCE_BASE_URL", "http://127.0.0.1:8123")
    broker = build_binance_broker()
    assert broker.config.base_url == "http://127.0.0.1:8123"
    assert broker.client.http.base_url == "http://127.0.0.1:8123"
    assert BinanceUserStream(broker.config, timestamp=lambda: 0).url == "ws://127.0.0.1:8123/ws-api/v3"


def test_the_stream_url_can_be_named_on_its_own(keys):
    keys.setenv("BINANCE_BASE_URL", "http://127.0.0.1:8123")
    keys.setenv("BINANCE_WS_API_URL", "ws://127.0.0.1:8124/ws-api/v3")
    assert build_binance_broker().config.ws_api_url == "ws://127.0.0.1:8124/ws-api/v3"


@pytest.mark.parametrize("name, value", [("BINANCE_BASE_URL", "testnet.binance.vision"),
                                         ("BINANCE_WS_API_URL", "https://ws-api.binance.com")])
def test_a_malformed_endpoint_stops_the_start(keys, name, value):
    keys.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        build_binance_broker()


def test_the_quote_asset_is_configurable_and_checked(keys):
    keys.setenv("BINANCE_QUOTE_ASSET", "usdc")
    assert build_binance_broker().config.quote_asset == "USDC"
    keys.setenv("BINANCE_QUOTE_ASSET", "US-DC")
    with pytest.raises(ImproperlyConfigured, match="BINANCE_QUOTE_ASSET"):
        build_binance_broker()


def test_the_stream_dials_the_configured_host_and_nowhere_else():
    dialled = []

    def connect(url):
        dialled.append(url)
        raise OSError("refused")

    async def no_wait(seconds):
        return None

    config = BinanceConfig(api_key="k", api_secret="s", base_url="http://127.0.0.1:8123")
    stream = BinanceUserStream(config, timestamp=lambda: 0, connect=connect, sleep=no_wait)
    asyncio.run(stream.run(lambda reports: None, max_connections=2))
    assert dialled == ["ws://127.0.0.1:8123/ws-api/v3"] * 2
