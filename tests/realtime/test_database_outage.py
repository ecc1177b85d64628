"""A socket that connects while the database cannot be reached is told to try again later (close 1013) — never a
500 on the handshake — and leaves nothing behind with the relay, whose backlog would otherwise grow with every
event of its account."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from orders.realtime import consumers
from orders.realtime.opening import CLOSE_TRY_AGAIN
from orders.realtime.relay import get_relay
from tests.realtime.support import CONNECT_TIMEOUT, connected_stream, place, stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def _database_gone(*args, **kwargs):
    raise OperationalError("connection to server at \"127.0.0.1\", port 5432 failed: Connection refused")


async def test_a_stream_opened_while_the_database_is_down_is_told_to_come_back(account, monkeypatch):
    monkeypatch.setattr(consumers, "resolve_client", _database_gone)
    before = len(get_relay().clients)

    communicator = stream()
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)

    assert not connected and code == CLOSE_TRY_AGAIN
    assert len(get_relay().clients) == before


async def test_a_stream_whose_first_read_fails_is_not_left_with_the_relay(account, client, monkeypatch):
    async def replay_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(consumers, "stream_resume", replay_gone)
    before = len(get_relay().clients)

    communicator = stream(path="/v1/ws?last_event_id=1")
    connected, code = await communicator.connect(timeout=CONNECT_TIMEOUT)
    assert not connected and code == CLOSE_TRY_AGAIN
    monkeypatch.undo()

    await place(client, quantity="1")                     # events for the account keep coming
    healthy = await connected_stream()                    # and a socket opened afterwards works
    assert len(get_relay().clients) == before + 1
    await healthy.disconnect()
