"""The /v1/ws stream, through the routed ASGI application, as scripts see it."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from orders.services.keys import api_key_create
from tradingdesk.asgi import application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _connect(headers=(), client=("127.0.0.1", 50000), path="/v1/ws"):
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    communicator.scope["client"] = client
    return communicator


async def _next_of(communicator, kind, timeout=3):
    while True:
        frame = json.loads(await communicator.receive_from(timeout=timeout))
        if frame["type"] == kind:
            return frame


@pytest.fixture
def quiet_market(settings):
    settings.STREAM_DEFAULT_SYMBOLS = ""
    settings.STREAM_POLL_SECONDS = 0.02


async def test_an_order_placed_over_rest_reaches_the_stream(account, quiet_market, client):
    communicator = _connect()
    connected, _ = await communicator.connect()
    assert connected
    response = await database_sync_to_async(client.post)(
        "/v1/orders", {"symbol": "AAPL", "side": "buy", "quantity": "1", "order_type": "market"},
        content_type="application/json")
    assert response.status_code == 201
    frame = await _next_of(communicator, "order")
    assert frame["event"] == "ORDER_CREATED"
    assert frame["order"]["id"] == response.json()["id"]
    assert frame["timestamp"].endswith("Z")
    await communicator.disconnect()


async def test_a_wrong_key_is_refused_at_the_handshake(account, quiet_market):
    communicator = _connect(headers=[(b"authorization", b"Bearer tdk_nope_nope")])
    connected, code = await communicator.connect()
    assert not connected


async def test_a_remote_client_without_a_key_is_refused(account, quiet_market):
    communicator = _connect(client=("10.0.0.9", 50000))
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_key_on_a_remote_client_is_accepted(account, quiet_market):
    key = await database_sync_to_async(api_key_create)(account=account, name="remote")
    communicator = _connect(headers=[(b"x-api-key", key.encode())], client=("10.0.0.9", 50000))
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="garbage")
    await communicator.send_to(text_data=json.dumps({"type": "pong"}))
    await communicator.send_to(text_data=json.dumps({"type": "event_ack", "correlation_id": "x",
                                                     "events_processed": [], "timestamp": 0}))
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
