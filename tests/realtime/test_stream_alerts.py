"""Risk alerts on /v1/ws: ``error`` frames for POSITION_UNPROTECTED and OCO_DOUBLE_EXIT in the shape of
PROTOCOL §8.6, and the desk's promise beyond the reference gateway: a client that (re)connects first
receives every alert still open, marked ``rebroadcast``, before anything else."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from orders.brokers.paper_market import seconds_since_epoch
from orders.exits import decide as exits_decide
from orders.models import Alert
from orders.services.alerts import alert_acknowledge
from tests.realtime.support import (
    connected_stream,
    describe,
    frames_until,
    frames_within,
    is_order_event,
    next_frame,
    place,
    receive_frame,
    rest_get,
    tick,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]
UNPROTECTED_KEYS = {"order_id", "symbol", "failed_exits", "circuit_breaker_open"}


@pytest.fixture
def short_retry_window(monkeypatch):
    """A leg still unplaced two seconds after its first refusal raises the alert."""
    monkeypatch.setattr(exits_decide, "RETRY_WINDOW", timedelta(seconds=2))


def is_error(code: str):
    return lambda f: f["type"] == "error" and f["code"] == code


async def place_protected(client, symbol: str = "AAPL", *, quantity: str = "10") -> dict:
    """A MARKET buy with a stop-loss 3 % under and a take-profit 3 % over the ask."""
    ask = Decimal((await rest_get(client, f"/v1/quotes/{symbol}"))["ask"])
    cent = Decimal("0.01")
    return await place(client, symbol=symbol, quantity=quantity, stop_loss=(ask * Decimal("0.97")).quantize(cent),
                       take_profit=(ask * Decimal("1.03")).quantize(cent))


async def leave_unprotected(client, account, broker, clock, *symbols: str) -> list[dict]:
    """Entries whose stop-loss the venue keeps refusing, ticked past the retry window."""
    broker.faults.reject_next(1000, kind="STOP", message="stop refused by injected fault")
    entries = [await place_protected(client, symbol) for symbol in symbols]
    for _ in range(3):
        await tick(account, broker)
        clock.shift(1)
    await tick(account, broker)
    return entries


async def test_a_stop_leg_the_venue_keeps_refusing_streams_position_unprotected_after_the_retry_window(
        account, broker, client, clock, short_retry_window):
    communicator = await connected_stream()
    broker.faults.reject_next(1000, kind="STOP", message="stop refused by injected fault")
    entry = await place_protected(client)
    await tick(account, broker)
    await frames_until(communicator, lambda f: f["type"] == "order" and f["order"]["order_type"] == "LIMIT")
    clock.shift(1)
    await tick(account, broker)
    assert await communicator.receive_nothing(timeout=0.2), "no alert inside the retry window"

    clock.shift(1)
    await tick(account, broker)
    alert = await next_frame(communicator, "error")
    assert set(alert) == {"type", "code", "message", "details", "timestamp", "event_id"}
    assert alert["code"] == "POSITION_UNPROTECTED"
    assert alert["message"] == "Exit order placement failed for AAPL — position may be unprotected"
    details = alert["details"]
    assert UNPROTECTED_KEYS <= set(details)
    assert (details["order_id"], details["symbol"], details["circuit_breaker_open"]) == (entry["id"], "AAPL", False)
    [failed] = details["failed_exits"]
    assert failed["type"] == "StopLoss" and "refused" in failed["error"]
    assert failed["actual_order_ids"] == []
    assert "rebroadcast" not in details

    for _ in range(3):
        clock.shift(1)
        await tick(account, broker)
    assert await communicator.receive_nothing(timeout=0.2), "one alert per entry, however many ticks"
    await communicator.disconnect()


async def test_both_exit_legs_filling_streams_oco_double_exit(account, broker, client, clock):
    quote = await rest_get(client, "/v1/quotes/AAPL")
    communicator = await connected_stream()
    # the stop sits at the bid the entry buys against (it triggers at once), the take-profit a +5 % jump
    # ten seconds later reaches; the engine looks again only half a minute later and sees both fill
    entry = await place(client, stop_loss=quote["bid"], take_profit=Decimal(quote["ask"]) + 1)
    await tick(account, broker)
    broker.faults.shock("AAPL", "5", from_second=seconds_since_epoch(timezone.now()) + 10)
    clock.shift(30)
    await tick(account, broker)

    frames = await frames_until(communicator, is_error("OCO_DOUBLE_EXIT"))
    alert = frames[-1]
    legs_filled = [f["order"]["id"] for f in frames if f["type"] == "order" and f["event"] == "ORDER_FILLED"
                   and f.get("parent_order_id") == entry["id"]]
    assert len(legs_filled) == 2, [describe(f) for f in frames]
    assert set(alert) == {"type", "code", "message", "details", "timestamp", "event_id"}
    assert alert["message"] == "OCO double-exit on AAPL: both SL and TP filled (total exit qty: 20)"
    details = alert["details"]
    assert {"oco_group_id", "symbol", "first_fill", "second_fill", "total_exit_quantity"} <= set(details)
    assert details["symbol"] == "AAPL" and details["total_exit_quantity"] == "20"
    assert {details["first_fill"]["order_id"], details["second_fill"]["order_id"]} == set(legs_filled)
    for fill in (details["first_fill"], details["second_fill"]):
        assert (fill["quantity"], fill["side"]) == ("10", "Sell")
    await communicator.disconnect()


async def test_a_client_that_reconnects_first_receives_every_open_alert_marked_rebroadcast(
        account, broker, client, clock, settings, short_retry_window):
    first = await connected_stream()
    await leave_unprotected(client, account, broker, clock, "AAPL", "MSFT", "GOOGL")
    originals: dict[str, dict] = {}

    def all_three_raised(frame: dict) -> bool:
        if frame["type"] == "error":
            originals[frame["details"]["symbol"]] = frame
        return len(originals) == 3

    await frames_until(first, all_three_raised)
    assert sorted(originals) == ["AAPL", "GOOGL", "MSFT"]
    await first.disconnect()

    [googl] = [p for p in await rest_get(client, "/v1/positions") if p["symbol"] == "GOOGL"]
    response = await database_sync_to_async(client.delete)(f"/v1/positions/{googl['id']}")
    assert response.status_code == 200, response.content
    assert await Alert.objects.filter(symbol="GOOGL", status="RESOLVED").aexists(), "flat: no longer open"
    msft_alert = await Alert.objects.aget(symbol="MSFT", kind="POSITION_UNPROTECTED")
    await database_sync_to_async(alert_acknowledge)(alert_id=str(msft_alert.pk), actor="user:bob",
                                                    comment="hedged by hand")
    observer = await connected_stream()                   # another client, to know the relay has moved on
    away = await place(client, symbol="AAPL", quantity="1")   # happens while the first client is away
    await frames_until(observer, is_order_event("ORDER_CREATED", away["id"]))
    await observer.disconnect()

    settings.STREAM_DEFAULT_SYMBOLS = "AAPL"
    settings.STREAM_MARKET_SECONDS = 0.001                 # market data and pings race the alerts
    settings.STREAM_PING_SECONDS = 0.001
    again = await connected_stream()
    replayed = sorted([await receive_frame(again), await receive_frame(again)],
                      key=lambda f: f.get("details", {}).get("symbol", ""))
    assert [(f["type"], f["code"], f["details"]["symbol"]) for f in replayed] == [
        ("error", "POSITION_UNPROTECTED", "AAPL"), ("error", "POSITION_UNPROTECTED", "MSFT")]
    assert [f["details"]["alert_status"] for f in replayed] == ["OPEN", "ACKNOWLEDGED"]
    for frame in replayed:
        original = originals[frame["details"]["symbol"]]
        assert frame["details"]["rebroadcast"] is True
        assert frame["message"] == original["message"]
        assert frame["timestamp"] == original["timestamp"], "stamped when it was raised"
        assert {k: v for k, v in frame["details"].items() if k not in ("rebroadcast", "alert_status")} == \
            original["details"]
    later = await frames_within(again, 0.2)
    assert later and {f["type"] for f in later} <= {"ping", "quote", "candle"}, \
        "only alerts are replayed: what happened while away is read over REST"
    await again.disconnect()


async def test_an_alert_raised_while_connected_is_not_repeated_to_that_client(
        account, broker, client, clock, short_retry_window):
    communicator = await connected_stream()
    await leave_unprotected(client, account, broker, clock, "AAPL")
    await next_frame(communicator, "error")
    await place(client, quantity="1")
    created = await frames_until(communicator, lambda f: f["type"] == "order" and f["event"] == "ORDER_CREATED"
                                 and f["order"]["quantity"] == "1")
    assert not [f for f in created if f["type"] == "error"]
    await communicator.disconnect()


async def test_an_entry_order_fill_arrives_before_the_alert_about_its_legs(
        account, broker, client, clock, monkeypatch):
    monkeypatch.setattr(exits_decide, "RETRY_WINDOW", timedelta(0))
    communicator = await connected_stream()
    broker.faults.reject_next(1000, kind="STOP")
    entry = await place_protected(client)
    await tick(account, broker)
    frames = await frames_until(communicator, is_error("POSITION_UNPROTECTED"))
    filled = next(i for i, f in enumerate(frames) if is_order_event("ORDER_FILLED", entry["id"])(f))
    assert filled < len(frames) - 1
    await communicator.disconnect()


async def test_an_alert_storm_replays_only_the_newest_page_oldest_first(account):
    """A flood of open alerts must not hold a (re)connecting client back: the newest page of them is
    replayed, in the order they were raised, and then the stream goes on."""
    from orders.domain.paging import DEFAULT_PAGE

    @database_sync_to_async
    def storm(count: int) -> list[str]:
        start = timezone.now() - timedelta(hours=1)
        Alert.objects.bulk_create([
            Alert(account=account, kind="POSITION_UNPROTECTED", symbol=f"S{n}", dedupe_key=f"storm-{n}",
                  message=f"S{n} position has no stop-loss", details={"symbol": f"S{n}"},
                  raised_at=start + timedelta(seconds=n)) for n in range(count)])
        return [f"S{n}" for n in range(count)]

    symbols = await storm(DEFAULT_PAGE + 50)
    communicator = await connected_stream()

    replayed = await frames_until(communicator, lambda f: f["type"] == "error"
                                  and f["details"]["symbol"] == symbols[-1])

    errors = [f["details"]["symbol"] for f in replayed if f["type"] == "error"]
    assert errors == symbols[-DEFAULT_PAGE:]
    await communicator.disconnect()
