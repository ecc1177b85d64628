"""The kill switch proves the account flat at the venue: the engine asks the venue after it, cancels again what
the venue refused to cancel, and records the time to flat, or escalates NOT_FLAT with what was left over."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from orders.domain.errors import ProviderUnavailable
from orders.models import Account, Alert, AuditEvent, KillSwitchRun, Order, Position
from orders.services.flatness import flatness_tick, kill_run_line
from orders.services.limits import limits_set
from orders.services.risk import kill_switch
from orders.wire import KillSwitchOut
from tests.builders import run_engine
from tests.web.support import open_position, quote, resting_limit

pytestmark = pytest.mark.django_db


def tick(account, broker, clock, seconds: float):
    clock.shift(timedelta(seconds=seconds))
    run_engine(account, broker)


def test_a_cancel_the_venue_refuses_is_retried_and_the_receipt_shows_the_time_to_flat(account, broker, clock):
    entry = resting_limit(account, broker)
    broker.faults.refuse_cancels(1)

    receipt = kill_switch(account=account, broker=broker, actor="user:rita")

    assert [f["action"] for f in receipt.failures] == ["cancel"]          # the venue refused the first cancel
    run = KillSwitchRun.objects.get(pk=receipt.run_id)
    assert (run.status, run.actor, run.flatten) == ("CHECKING", "user:rita", False)
    assert kill_run_line(run)["line"] == "Checking the venue…"
    assert Order.objects.get(pk=entry.pk).status == "OPEN"

    tick(account, broker, clock, 1.3)

    run.refresh_from_db()
    entry.refresh_from_db()
    assert entry.status == "CANCELLED"
    assert (run.status, run.cancel_retries, run.flat_at) == ("FLAT", 1, timezone.now())
    assert run.receipt["flat_after_seconds"] == "1.3"
    assert run.receipt["failures"][0]["order_id"] == str(entry.pk)       # the first refusal stays on record
    assert kill_run_line(run)["line"] == "Flat after 1.3 s (1 cancel retried)"
    retry = AuditEvent.objects.get(action="kill_switch.cancel_retry")
    assert (retry.actor, retry.result, retry.target) == ("engine:kill-switch", "ok", str(entry.pk))
    assert AuditEvent.objects.get(action="account.flatness").result == "ok"


def test_the_paper_faults_command_makes_the_venue_refuse_the_next_cancels(account, broker, clock):
    entry = resting_limit(account, broker)
    call_command("paper_faults", "--refuse-cancels", "2", stdout=open("/dev/null", "w"))

    kill_switch(account=account, broker=broker, actor="user:rita")
    tick(account, broker, clock, 0.5)          # refused a second time
    tick(account, broker, clock, 1)            # a second later: cancelled

    run = KillSwitchRun.objects.get()
    assert Order.objects.get(pk=entry.pk).status == "CANCELLED"
    assert (run.status, run.cancel_retries) == ("FLAT", 2)
    assert kill_run_line(run)["line"] == "Flat after 1.5 s (2 cancels retried)"
    assert [e.result for e in AuditEvent.objects.filter(action="kill_switch.cancel_retry").order_by("at")] == [
        "failed", "ok"]


def test_not_flat_within_the_limit_raises_not_flat_with_the_leftovers_and_keeps_retrying(account, broker, clock,
                                                                                           caplog):
    limits_set(account_id=account.pk, actor="user:rita", flat_within_seconds=5)
    entry = resting_limit(account, broker, quantity="7")
    broker.faults.refuse_cancels(100)
    kill_switch(account=account, broker=broker, actor="guard:loss")

    tick(account, broker, clock, 3)
    run = KillSwitchRun.objects.get()
    assert run.status == "CHECKING" and not Alert.objects.filter(kind="NOT_FLAT").exists()

    with caplog.at_level(logging.CRITICAL, logger="orders.services.flatness"):
        tick(account, broker, clock, 2)

    run.refresh_from_db()
    left = f"order {str(entry.pk)[:8]} (entry BUY 7 AAPL) working"
    assert (run.status, run.escalated_at) == ("NOT_FLAT", timezone.now())
    assert run.leftovers["orders"] == [{"order_id": str(entry.pk), "symbol": "AAPL", "side": "BUY", "quantity": "7",
                                        "role": "entry"}]
    alert = Alert.objects.get(kind="NOT_FLAT")
    assert (alert.status, alert.symbol, alert.message) == ("OPEN", "AAPL", f"NOT FLAT after 5 s: {left}")
    assert any(r.levelno == logging.CRITICAL and left in r.getMessage() for r in caplog.records)
    assert kill_run_line(run)["line"] == f"NOT FLAT after 5 s: {left} (2 cancels retried; still retrying)"

    broker.faults.clear()                      # the venue cancels again: the engine's next retry goes through
    tick(account, broker, clock, 1)

    run.refresh_from_db()
    alert.refresh_from_db()
    assert (run.status, run.receipt["flat_after_seconds"], run.cancel_retries) == ("FLAT", "6", 3)
    assert (alert.status, alert.resolution) == ("RESOLVED", "flat after 6 s")
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"


def test_without_flatten_the_kept_stop_of_an_open_position_is_flat_by_design(account, broker, clock):
    open_position(account, broker, clock, stop_loss=quote(broker).ask - 3)
    run_engine(account, broker, seconds=1, clock=clock)                 # the stop is placed

    receipt = kill_switch(account=account, broker=broker, actor="user:rita")
    tick(account, broker, clock, 0.2)

    run = KillSwitchRun.objects.get(pk=receipt.run_id)
    assert len(receipt.kept) == 1 and Order.objects.get(pk=receipt.kept[0].order_id).status == "OPEN"
    assert (run.status, run.cancel_retries) == ("FLAT", 0)


def test_a_positions_read_that_fails_never_passes_for_no_position_and_the_kept_stop_stays(account, broker, clock,
                                                                                        monkeypatch):
    open_position(account, broker, clock, stop_loss=quote(broker).ask - 3)
    run_engine(account, broker, seconds=1, clock=clock)                 # the stop is placed
    receipt = kill_switch(account=account, broker=broker, actor="user:rita")
    stop = Order.objects.get(pk=receipt.kept[0].order_id)

    def positions_unreadable(**_):
        raise ProviderUnavailable("positions read timed out")
    monkeypatch.setattr(broker, "positions", positions_unreadable)     # the venue answers orders, not positions
    tick(account, broker, clock, 2)

    run = KillSwitchRun.objects.get(pk=receipt.run_id)
    assert Order.objects.get(pk=stop.pk).status == "OPEN"              # the position keeps its stop
    assert (run.status, run.cancel_retries) == ("CHECKING", 0)
    assert "could not be asked" in kill_run_line(run)["line"] or run.receipt["leftovers"].startswith(
        "the venue could not be asked")

    monkeypatch.undo()
    tick(account, broker, clock, 1)
    run.refresh_from_db()
    assert (run.status, Order.objects.get(pk=stop.pk).status) == ("FLAT", "OPEN")


def test_a_flattening_kill_switch_is_flat_when_the_venue_holds_no_position(account, broker, clock):
    open_position(account, broker, clock, stop_loss=quote(broker).ask - 3)
    run_engine(account, broker, seconds=1, clock=clock)

    receipt = kill_switch(account=account, broker=broker, actor="user:rita", flatten=True)
    tick(account, broker, clock, 0.4)

    run = KillSwitchRun.objects.get(pk=receipt.run_id)
    assert (run.status, run.flatten, run.receipt["flat_after_seconds"]) == ("FLAT", True, "0.4")
    assert broker.positions(now=timezone.now(), account_id=account.pk) == []


def test_a_flattening_kill_switch_whose_closes_are_refused_is_not_flat_with_the_position_left(account, broker,
                                                                                             clock):
    open_position(account, broker, clock, quantity="5")
    broker.faults.reject_next(100)              # every closing order is refused

    kill_switch(account=account, broker=broker, actor="user:rita", flatten=True)
    tick(account, broker, clock, 10)

    run = KillSwitchRun.objects.get()
    assert run.status == "NOT_FLAT"
    assert run.leftovers["text"] == "AAPL 5 long"
    assert Alert.objects.get(kind="NOT_FLAT").message == "NOT FLAT after 10 s: AAPL 5 long"
    assert run.receipt["close_retries"] == 1
    assert AuditEvent.objects.get(action="kill_switch.close_retry").result == "failed"


def test_a_refused_close_is_sent_again_and_the_account_ends_flat(account, broker, clock):
    open_position(account, broker, clock, quantity="5")
    broker.faults.reject_next(1)                # the first closing order is refused

    receipt = kill_switch(account=account, broker=broker, actor="user:rita", flatten=True)
    assert [f["action"] for f in receipt.failures] == ["close"]
    tick(account, broker, clock, 1)             # sent again: filled, and the venue holds nothing

    run = KillSwitchRun.objects.get()
    assert (run.status, run.receipt["close_retries"]) == ("FLAT", 1)
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0
    retry = AuditEvent.objects.get(action="kill_switch.close_retry")
    assert (retry.actor, retry.result, retry.target) == ("engine:kill-switch", "ok", "AAPL")
    assert kill_run_line(run)["line"] == "Flat after 1 s (0 cancels retried, 1 close sent again)"


def test_the_api_s_kill_switch_answer_is_unchanged(account, broker):
    resting_limit(account, broker)

    answer = KillSwitchOut.of(kill_switch(account=account, broker=broker, actor="test")).to_wire()

    assert set(answer) == {"account", "trading_state", "cancelled_order_ids", "cancelled_count", "kept_order_ids",
                           "closing_order_ids", "failures"}


def test_a_kill_switch_pulled_after_the_tick_read_its_clock_is_timed_from_its_own_start(account, broker, clock):
    """The loss guard pulls the kill switch inside the engine's tick, after the tick read its clock."""
    tick_began = timezone.now()
    clock.shift(0.1)
    kill_switch(account=account, broker=broker, actor="guard:loss")

    flatness_tick(accounts=[account], broker=broker, now=tick_began)

    run = KillSwitchRun.objects.get(account=account)
    assert run.status == "FLAT" and run.receipt["flat_after_seconds"] == "0"
    assert run.flat_at >= run.started_at
