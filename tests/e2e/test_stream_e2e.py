"""/v1/ws on the real server: ``manage.py rundesk`` (daphne + the engine) on a private SQLite file and port,
a script connected with the ``websockets`` client library or with the ``tektii`` SDK's stream, an order
placed over REST with ``requests``; the stream tells ORDER_CREATED, then ORDER_FILLED once the engine
matched it. Every wait is bounded; the processes are stopped in teardown whatever happens."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
import requests
import websockets.exceptions
from tektii import AsyncTradingGateway
from tektii.models import OrderEvent
from websockets.sync.client import connect

from tests.e2e.desk_process import Desk, running_desk
from tests.realtime.support import assert_wire_frame

pytestmark = pytest.mark.slow
WAIT = 15                                   # seconds any one frame may take on a loaded machine


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with running_desk(tmp_path_factory.mktemp("stream")) as desk:
        desk.start("rundesk", log_name="rundesk")
        desk.wait_ready(timeout=45)
        yield desk


@pytest.fixture(scope="module")
def api_key(desk) -> str:
    return desk.manage("create_api_key", "demo", "--name", "stream e2e").stdout.strip().splitlines()[-1]


def ws_url(desk: Desk) -> str:
    return desk.url.replace("http://", "ws://") + "/v1/ws"


def place_market_order(desk: Desk, api_key: str, *, quantity: str = "3") -> str:
    response = requests.post(f"{desk.url}/v1/orders", timeout=10, headers={"Authorization": f"Bearer {api_key}"},
                             json={"symbol": "AAPL", "side": "BUY", "quantity": quantity, "order_type": "MARKET"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def order_frames(websocket, order_id: str, *, until: str) -> list[dict]:
    """The order frames of ``order_id`` up to the ``until`` event, each checked against the protocol."""
    deadline = time.monotonic() + WAIT
    frames: list[dict] = []
    while not frames or frames[-1]["event"] != until:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {until} for {order_id} in {WAIT}s; saw {[f['event'] for f in frames]}"
        frame = assert_wire_frame(json.loads(websocket.recv(timeout=remaining)))
        if frame["type"] == "order" and frame["order"]["id"] == order_id:
            frames.append(frame)
    return frames


def test_a_websockets_client_sees_order_created_then_order_filled_for_an_order_placed_over_rest(desk, api_key):
    with connect(ws_url(desk), additional_headers={"Authorization": f"Bearer {api_key}"}, open_timeout=10,
                 close_timeout=5) as websocket:
        order_id = place_market_order(desk, api_key)
        frames = order_frames(websocket, order_id, until="ORDER_FILLED")
    assert [f["event"] for f in frames] == ["ORDER_CREATED", "ORDER_FILLED"]
    created, filled = frames
    assert (created["order"]["status"], created["order"]["filled_quantity"]) == ("OPEN", "0")
    assert (filled["order"]["status"], filled["order"]["filled_quantity"]) == ("FILLED", "3")
    assert filled["order"]["average_fill_price"]


def test_a_keyless_loopback_client_is_let_in_like_the_guides_examples(desk, api_key):
    with connect(ws_url(desk), open_timeout=10, close_timeout=5) as websocket:
        order_id = place_market_order(desk, api_key, quantity="1")
        assert order_frames(websocket, order_id, until="ORDER_CREATED")


def test_a_wrong_key_is_refused_at_the_handshake(desk):
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        connect(ws_url(desk), additional_headers={"Authorization": "Bearer tdk_nope_nope"}, open_timeout=10)
    assert refused.value.response.status_code == 403


@pytest.mark.asyncio
async def test_the_tektii_sdk_stream_sees_the_same_events(desk, api_key):
    async with AsyncTradingGateway(base_url=desk.url, api_key=api_key) as gateway:
        async with gateway.stream() as stream:                 # connected once entered
            order_id = await asyncio.to_thread(place_market_order, desk, api_key, quantity="2")
            events = aiter(stream)
            seen: list[OrderEvent] = []
            async with asyncio.timeout(WAIT):
                while not seen or seen[-1].event != "ORDER_FILLED":
                    event = await anext(events)
                    if isinstance(event, OrderEvent) and event.order.id == order_id:
                        seen.append(event)
            await events.aclose()
    assert [str(e.event) for e in seen] == ["ORDER_CREATED", "ORDER_FILLED"]
    assert seen[-1].order.filled_quantity == "2"
    assert str(seen[-1].order.status) == "FILLED"


@pytest.mark.asyncio
async def test_the_tektii_sdk_stops_at_a_refused_handshake_instead_of_retrying(desk):
    async with AsyncTradingGateway(base_url=desk.url, api_key="tdk_nope_nope") as gateway:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            async with asyncio.timeout(WAIT):
                async for _ in gateway.stream():
                    pass
