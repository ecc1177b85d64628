"""The stream's metrics as /metrics shows them: open sockets (right after a consumer crashes too), frames sent by
type, resumes by outcome."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from orders.realtime.consumers import StrategyStreamConsumer
from orders.realtime.relay import get_relay
from tests.realtime.support import connected_stream, next_frame, place
from tests.test_metrics import scrape, value

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
OPEN = "gateway_ws_connections_active"


async def scraped(client) -> dict:
    return await database_sync_to_async(scrape)(client)


async def test_a_socket_counts_while_it_is_open(account, client):
    before = value(await scraped(client), OPEN)
    communicator = await connected_stream()
    assert value(await scraped(client), OPEN) == before + 1
    await communicator.disconnect()
    assert value(await scraped(client), OPEN) == before


async def test_a_consumer_that_crashes_no_longer_counts_its_socket(account, client, monkeypatch):
    crashed = []

    async def crash(self, text_data=None, bytes_data=None):
        crashed.append(self)
        raise RuntimeError("the consumer crashed")

    monkeypatch.setattr(StrategyStreamConsumer, "receive", crash)
    before = value(await scraped(client), OPEN)
    communicator = await connected_stream()
    assert value(await scraped(client), OPEN) == before + 1

    await communicator.send_to(text_data='{"type": "subscribe"}')
    with pytest.raises(RuntimeError, match="crashed"):
        await communicator.wait(timeout=5)

    assert value(await scraped(client), OPEN) == before
    for task in crashed[0].tasks:               # what a crashed consumer leaves running, stopped for the next test
        task.cancel()
    get_relay().unregister(crashed[0])


async def test_frames_sent_are_counted_by_type(account, client):
    before = await scraped(client)
    communicator = await connected_stream()
    await place(client, quantity="1")
    await next_frame(communicator, "order")
    after = await scraped(client)
    assert value(after, "desk_ws_frames_sent_total", type="order") >= value(
        before, "desk_ws_frames_sent_total", type="order") + 1
    await communicator.disconnect()


async def test_resumes_are_counted_by_outcome(account, client):
    communicator = await connected_stream()
    await place(client, quantity="1")
    last = (await next_frame(communicator, "order"))["event_id"]
    await communicator.disconnect()
    before = await scraped(client)
    communicator = await connected_stream(path=f"/v1/ws?last_event_id={last}")
    await communicator.disconnect()
    communicator = await connected_stream(path="/v1/ws?last_event_id=not-an-id")
    await communicator.disconnect()
    communicator = await connected_stream()
    await communicator.disconnect()
    after = await scraped(client)
    resumes = "desk_ws_resumes_total"
    assert value(after, resumes, outcome="resumed") == value(before, resumes, outcome="resumed") + 1
    assert value(after, resumes, outcome="invalid") == value(before, resumes, outcome="invalid") + 1
