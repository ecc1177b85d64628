"""The hardened edges on the real server (``manage.py rundesk``: daphne + engine), served on 127.0.0.2 as
``GATEWAY_HOST=127.0.0.2 bin/run`` would: the host is served, a browser-shaped cross-site request is
refused before it can trade, oversized bodies get 413 whether their length is declared or chunked, the
status line carries the right reason phrase, and a foreign page cannot open the stream."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator

import pytest
import requests
import websockets

from tests.e2e.test_run_command import Desk, start_desk, stop_desk

pytestmark = pytest.mark.slow
HOST = "127.0.0.2"
ORDER = {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"}


def order_count(desk: Desk) -> int:
    return len(requests.get(f"{desk.url}/v1/orders", params={"limit": 1000}, timeout=5).json())


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    running = start_desk(tmp_path_factory.mktemp("edge"), host=HOST)
    try:
        yield running
    finally:
        stop_desk(running)


def raw_request(desk: Desk, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                chunked: bool = False) -> tuple[int, str, dict]:
    """One request through http.client, so the status line's reason phrase can be read."""
    connection = http.client.HTTPConnection(HOST, desk.port, timeout=30)
    try:
        if chunked:
            connection.putrequest(method, path)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 65536):
                piece = body[start:start + 65536]
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            connection.send(b"0\r\n\r\n")
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.reason, json.loads(response.read() or b"null")
    finally:
        connection.close()


def test_a_desk_started_on_127_0_0_2_serves_its_own_address(desk):
    response = requests.get(f"{desk.url}/v1/account", timeout=5)

    assert response.status_code == 200, response.text
    assert requests.get(f"{desk.url}/login/", timeout=5).status_code == 200


def test_a_browser_shaped_cross_site_post_places_no_order(desk):
    before = order_count(desk)
    page = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}

    as_text = requests.post(f"{desk.url}/v1/orders", data=json.dumps(ORDER),
                            headers={**page, "Content-Type": "text/plain;charset=UTF-8"}, timeout=5)
    halted = requests.post(f"{desk.url}/v1/kill-switch", data="{}", headers={**page, "Content-Type": "text/plain"},
                           timeout=5)

    assert (as_text.status_code, as_text.json()["details"]["code"]) == (403, "ORIGIN_NOT_ALLOWED")
    assert halted.status_code == 403
    assert order_count(desk) == before
    assert requests.get(f"{desk.url}/v1/trading-state", timeout=5).json()["trading_state"] == "ACTIVE"


def test_a_text_plain_post_without_origin_gets_415(desk):
    before = order_count(desk)

    status, reason, body = raw_request(desk, "POST", "/v1/orders", json.dumps(ORDER).encode(),
                                       {"Content-Type": "text/plain"})

    assert (status, reason, body["code"]) == (415, "Unsupported Media Type", "INVALID_REQUEST")
    assert order_count(desk) == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_10_mb_body_gets_413_in_the_envelope(desk, chunked):
    big = json.dumps({**ORDER, "padding": "x" * (10 * 1024 * 1024)}).encode()

    status, reason, body = raw_request(desk, "POST", "/v1/orders", big, {"Content-Type": "application/json"},
                                       chunked=chunked)

    assert (status, reason) == (413, "Request Entity Too Large")
    assert body["details"]["code"] == "BODY_TOO_LARGE"
    assert "Traceback" not in desk.log()


def test_a_refused_order_says_unprocessable_not_unknown_status(desk):
    status, reason, body = raw_request(desk, "POST", "/v1/orders",
                                       json.dumps({**ORDER, "quantity": "1000000000"}).encode(),
                                       {"Content-Type": "application/json"})

    assert status == 422, body
    assert reason != "Unknown Status"
    assert reason in ("Unprocessable Entity", "Unprocessable Content")


def test_a_foreign_page_cannot_open_the_stream_but_a_script_can(desk):
    async def attempt(origin: str | None) -> str:
        try:
            async with websockets.connect(f"ws://{HOST}:{desk.port}/v1/ws", origin=origin, open_timeout=10) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 10))["type"]
        except websockets.InvalidStatus as refused:
            return f"refused {refused.response.status_code}"

    assert asyncio.run(attempt("https://evil.example")) == "refused 403"
    assert asyncio.run(attempt(None)) in ("ping", "quote", "candle", "order", "connection")
