"""Resuming /v1/ws (``orders/realtime/resume.py``, an extension protocol clients may ignore): outbox frames
carry the protocol's top-level ``event_id``, increasing; a client that reconnects with ``?last_event_id=N``
gets its account's frames after N (never the desk's own, never another account's), bounded, then the live
stream with nothing missed or repeated at the seam; one that cannot be resumed is told so in one frame."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from orders import events
from orders.realtime import consumers, resume
from orders.realtime.relay import get_relay
from orders.services.keys import api_key_create
from tests.builders import make_account
from tests.realtime.support import connected_stream, frames_until, frames_within, next_frame, place, tick

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def told(account_id: int, *texts: str) -> list[int]:
    """Outbox error frames for the account, one per text (committed); returns their ids."""
    ids = []
    for text in texts:
        with transaction.atomic():
            ids.append(events.record_error(account_id, "LIQUIDATION", text).pk)
    return ids


@database_sync_to_async
def desk_event(account_id: int) -> int:
    with transaction.atomic():
        return events.record_desk(account_id, "trading_state", state="HALTED").pk


def messages(frames: list[dict]) -> list[str]:
    return [f["message"] for f in frames if f["type"] == "error"]


async def resumed_stream(after: int | str, **kwargs):
    return await connected_stream(path=f"/v1/ws?last_event_id={after}", **kwargs)


async def test_every_outbox_frame_carries_an_increasing_event_id(account, broker, client):
    communicator = await connected_stream()
    for _ in range(2):
        await place(client, quantity="1")
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "account", timeout=5)
    ids = [int(f["event_id"]) for f in frames]
    assert all(isinstance(f["event_id"], str) for f in frames)
    assert ids == sorted(set(ids)) and len(ids) >= 5, ids       # strictly increasing
    await communicator.disconnect()


async def test_a_client_resuming_after_its_last_id_gets_what_it_missed_then_the_live_stream(account, broker,
                                                                                              client):
    first = await connected_stream()
    handle = await place(client, quantity="1")
    last = (await next_frame(first, "order", "ORDER_CREATED"))["event_id"]
    await first.disconnect()

    await tick(account, broker)                                 # the fill happens while it is away
    missed = await told(account.pk, "missed 1", "missed 2")
    again = await resumed_stream(last)
    replay = await frames_until(again, lambda f: f.get("message") == "missed 2")
    assert [f["event_id"] for f in replay][-2:] == [str(i) for i in missed]
    assert ("order", "ORDER_FILLED", handle["id"]) in [(f["type"], f.get("event"), f.get("order", {}).get("id"))
                                                       for f in replay]
    assert all(int(f["event_id"]) > int(last) for f in replay)
    live = await told(account.pk, "live")
    frame = await next_frame(again, "error")
    assert (frame["message"], frame["event_id"]) == ("live", str(live[0]))
    await again.disconnect()


async def test_the_replay_leaves_out_desk_only_events_and_other_accounts(account):
    first = await connected_stream()
    [last] = await told(account.pk, "seen")
    await next_frame(first, "error")
    await first.disconnect()
    bob = await database_sync_to_async(make_account)(name="bob")
    await desk_event(account.pk)
    await told(bob.pk, "bob's")
    await told(account.pk, "mine")

    again = await resumed_stream(last)
    frames = await frames_within(again, 0.3)
    assert messages(frames) == ["mine"]
    assert {f["type"] for f in frames} == {"error"}
    await again.disconnect()


async def test_nothing_is_missed_or_repeated_at_the_seam_between_replay_and_live(account, monkeypatch):
    first = await connected_stream()
    [last] = await told(account.pk, "seen")
    await next_frame(first, "error")
    await first.disconnect()
    await told(account.pk, "before")
    real = resume.outbox_after

    def committed_during_the_replay_read(**kwargs):
        with transaction.atomic():                              # lands after the seam: the relay's to deliver
            events.record_error(account.pk, "LIQUIDATION", "during")
        return real(**kwargs)

    monkeypatch.setattr(resume, "outbox_after", committed_during_the_replay_read)
    again = await resumed_stream(last)
    await told(account.pk, "after")
    frames = await frames_until(again, lambda f: f.get("message") == "after")
    assert messages(frames) == ["before", "during", "after"]
    ids = [int(f["event_id"]) for f in frames]
    assert ids == sorted(set(ids))
    await again.disconnect()


async def test_a_relay_behind_the_clients_last_id_repeats_nothing(account):
    """The client got id N from another process whose relay read further than this one's."""
    [last] = await told(account.pk, "seen elsewhere")
    relay = get_relay()
    relay.last_id = last - 1                                     # as if it had not read N yet
    again = await resumed_stream(last)
    await told(account.pk, "next")
    frames = await frames_until(again, lambda f: f.get("message") == "next")
    assert messages(frames) == ["next"]
    await again.disconnect()


async def test_an_absence_longer_than_the_replay_bound_is_told_as_a_gap(account, monkeypatch):
    monkeypatch.setattr(resume, "MAX_REPLAY", 3)
    [last] = await told(account.pk, "seen")
    await told(account.pk, *[f"missed {n}" for n in range(4)])
    again = await resumed_stream(last)
    gap = await next_frame(again, "error")
    assert gap["details"] == {"reason": "resume_gap", "cause": "too_many", "last_event_id": str(last), "max_replay": 3}
    assert "event_id" not in gap
    assert "GET /v1/orders?status=OPEN" in gap["message"]
    live = await told(account.pk, "live")
    frame = await next_frame(again, "error")
    assert (frame["message"], frame["event_id"]) == ("live", str(live[0]))     # nothing replayed: live from here
    await again.disconnect()


async def test_exactly_the_replay_bound_is_still_replayed(account, monkeypatch):
    monkeypatch.setattr(resume, "MAX_REPLAY", 3)
    [last] = await told(account.pk, "seen")
    await told(account.pk, "a", "b", "c")
    again = await resumed_stream(last)
    assert messages(await frames_until(again, lambda f: f.get("message") == "c")) == ["a", "b", "c"]
    await again.disconnect()


async def test_an_id_the_outbox_no_longer_holds_is_told_as_a_gap(account):
    [last] = await told(account.pk, "old")
    await told(account.pk, "newer")
    await database_sync_to_async(lambda: events.Event.objects.filter(pk__lte=last + 1).delete())()   # pruned
    again = await resumed_stream(last)
    gap = await next_frame(again, "error")
    assert gap["details"]["cause"] == "unknown"
    await again.disconnect()


@pytest.mark.parametrize("given", ["abc", "-1", "1e3", "9" * 30])
async def test_a_last_event_id_that_is_not_an_id_is_told_as_a_gap(account, given):
    again = await resumed_stream(given)
    gap = await next_frame(again, "error")
    assert (gap["details"]["reason"], gap["details"]["cause"]) == ("resume_gap", "invalid")
    await again.disconnect()


async def test_an_id_beyond_the_outbox_is_told_as_a_gap(account, monkeypatch):
    monkeypatch.setattr(resume, "REACH_SECONDS", 0.1)
    again = await resumed_stream(10**12)
    gap = await next_frame(again, "error")
    assert gap["details"]["cause"] == "unknown"
    await again.disconnect()


async def test_an_empty_last_event_id_is_a_fresh_connection(account):
    again = await resumed_stream("")
    [fresh] = await told(account.pk, "live")
    frame = await next_frame(again, "error")
    assert frame["event_id"] == str(fresh)
    await again.disconnect()


async def test_a_resume_honours_the_accounts_key(account):
    """The replay is the account's whose key the client shows, whatever id it names."""
    bob = await database_sync_to_async(make_account)(name="bob")
    key = await database_sync_to_async(api_key_create)(account=bob, name="bob's script")
    [alices] = await told(account.pk, "alice's")
    await told(account.pk, "alice's too")
    await told(bob.pk, "bob's")
    again = await resumed_stream(alices, headers=[(b"x-api-key", key.encode())])
    frames = await frames_within(again, 0.3)
    assert messages(frames) == ["bob's"]          # bob's outbox reaches back past that id: nothing of his is lost
    await again.disconnect()


async def test_open_alerts_are_repeated_on_a_fresh_start_but_not_on_a_resume(account, monkeypatch):
    """A resumed client has every alert since its id in the replay; a fresh or gapped one reads the open ones."""
    [last] = await told(account.pk, "raised before")
    rebroadcast = {"type": "error", "code": "POSITION_UNPROTECTED", "message": "open alert",
                   "details": {"rebroadcast": True}, "timestamp": "2026-03-02T15:00:00Z"}

    async def open_alerts(account_id: int) -> list[dict]:
        return [dict(rebroadcast)]

    monkeypatch.setattr(consumers, "_live_alert_frames", open_alerts)
    for path, expected in ((f"/v1/ws?last_event_id={last}", []), ("/v1/ws", ["open alert"]),
                           ("/v1/ws?last_event_id=x", ["Cannot resume", "open alert"])):
        communicator = await connected_stream(path=path)
        frames = await frames_within(communicator, 0.2)
        assert [m.split(" after")[0] for m in messages(frames)] == expected, path
        await communicator.disconnect()
