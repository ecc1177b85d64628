"""The day's loss and drawdown guards, run by the engine's tick against a moving paper price: a soft level makes the
account REDUCING with a LOSS_LIMIT alert; a hard one HALTS it, cancels its working entries, keeps the stops of its
open positions and leaves the kill switch's receipt; only a supervisor with a reason lets it trade again."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers.paper_market import seconds_since_epoch
from orders.domain.approvals import ApprovalRequired
from orders.domain.enums import OrderType
from orders.domain.errors import Forbidden, InvalidValue
from orders.models import Account, AccountDay, Alert, AuditEvent, KillSwitchRun, Order, Position
from orders.services.accounts import account_snapshot
from orders.services.limits import limits_set
from orders.services.orders import order_submit
from orders.services.risk import trading_state_set
from tests.builders import make_order_request, resume_approved, run_engine

pytestmark = pytest.mark.django_db

D = Decimal


def shock(broker, pct: str) -> None:
    """Move AAPL by ``pct`` percent from the next second on (what ``paper_faults --shock AAPL pct`` writes)."""
    broker.faults.shock("AAPL", pct, from_second=seconds_since_epoch(timezone.now()) + 1)


def long_with_far_stop(account, broker, clock, *, quantity=100) -> Order:
    """A long AAPL position whose stop and target sit 10 % away (no shock here reaches them), filled by the
    engine, plus a resting buy limit far below the market: a working entry."""
    ask = broker.quote("AAPL", now=timezone.now()).ask
    entry = order_submit(account=account, broker=broker, request=make_order_request(
        quantity=D(quantity), stop_loss=(ask * D("0.9")).quantize(D("0.01")),
        take_profit=(ask * D("1.1")).quantize(D("0.01")))).order
    run_engine(account, broker, seconds=1, clock=clock)
    order_submit(account=account, broker=broker, request=make_order_request(
        quantity=D(5), order_type=OrderType.LIMIT, limit_price=(ask * D("0.8")).quantize(D("0.01"))))
    return entry


def equity(account, broker):
    return account_snapshot(account=account, broker=broker, now=timezone.now()).equity


def guarded(account, *, flatten=False):
    limits_set(account_id=account.pk, actor="rita", daily_loss_soft=D("100"), daily_loss_hard=D("400"),
               flatten_on_hard_halt=flatten)


def loss_alerts(account):
    return list(Alert.objects.filter(account=account, kind=Alert.Kind.LOSS_LIMIT).order_by("raised_at"))


def state(account) -> str:
    return Account.objects.values_list("trading_state", flat=True).get(pk=account.pk)


def test_the_day_starts_from_the_equity_at_its_first_tick_and_follows_its_peak(account, broker, clock):
    guarded(account)
    run_engine(account, broker, clock=clock)
    day = AccountDay.objects.get(account=account)
    assert (day.day.isoformat(), day.start_equity, day.peak_equity, day.level) == ("2026-03-02", D("100000"),
                                                                                  D("100000"), "")
    long_with_far_stop(account, broker, clock)
    shock(broker, "2")
    run_engine(account, broker, seconds=2, clock=clock)
    day.refresh_from_db()
    assert day.start_equity == D("100000")
    assert day.peak_equity == equity(account, broker) > D("100000")


def test_a_quote_outage_is_never_measured_as_a_drawdown(account, broker, clock):
    limits_set(account_id=account.pk, actor="rita", drawdown_soft=D("50"), drawdown_hard=D("100"))
    long_with_far_stop(account, broker, clock)
    shock(broker, "2")                                  # the long position gains about 2 %: the day's peak
    run_engine(account, broker, seconds=2, clock=clock)
    peak = AccountDay.objects.get(account=account).peak_equity

    broker.faults.set_unavailable(True)                 # no quote: marked at its average price it would read as
    run_engine(account, broker, seconds=2, clock=clock)  # a fall of the whole gain from the peak
    broker.faults.set_unavailable(False)

    day = AccountDay.objects.get(account=account)
    assert (day.level, day.peak_equity, state(account)) == ("", peak, "ACTIVE")
    assert loss_alerts(account) == []


def test_an_account_without_loss_levels_is_not_measured(account, broker, clock):
    long_with_far_stop(account, broker, clock)
    shock(broker, "-10")
    run_engine(account, broker, seconds=2, clock=clock)
    assert not AccountDay.objects.filter(account=account).exists()
    assert state(account) == "ACTIVE"


def test_a_shock_past_the_soft_level_makes_the_account_reducing_with_an_alert(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")                                   # 100 AAPL: about 150 lost
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "REDUCING"
    [alert] = loss_alerts(account)
    assert alert.status == "OPEN"
    assert "the day's loss of 148.00 reached the soft level of 100.00" in alert.message
    assert alert.details["level"] == "SOFT" and alert.details["limit"] == "100"
    assert Order.objects.filter(account=account, status="OPEN", parent__isnull=True).count() == 1   # entries stay
    change = AuditEvent.objects.get(action="account.trading_state")
    assert (change.actor, change.details["state"]) == ("guard:loss", "REDUCING")
    assert "soft loss guard" in change.details["reason"]
    run_engine(account, broker, seconds=1, clock=clock)   # still past the level: nothing fires twice
    assert len(loss_alerts(account)) == 1
    assert AuditEvent.objects.filter(action="guard.breach").count() == 1


def test_a_shock_past_the_hard_level_halts_cancels_the_entries_keeps_the_stops_and_leaves_a_receipt(
        account, broker, clock):
    guarded(account)
    entry = long_with_far_stop(account, broker, clock)
    shock(broker, "-3")                                   # about 450 lost: past the hard level at once
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "HALTED"
    resting = Order.objects.get(account=account, order_type="LIMIT", parent__isnull=True)
    assert resting.status == "CANCELLED"
    stop = Order.objects.get(parent=entry, leg_role="stop_loss")
    assert stop.status == "OPEN"                          # the position keeps its stop
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 100
    [alert] = loss_alerts(account)
    assert alert.details["level"] == "HARD"
    receipt = alert.details["receipt"]
    assert receipt["trading_state"] == "HALTED"
    assert receipt["cancelled_order_ids"] == [str(resting.id)]
    assert str(stop.id) in receipt["kept_order_ids"]
    assert receipt["closing_order_ids"] == []
    halt = AuditEvent.objects.get(action="guard.halt")
    assert (halt.actor, halt.details["receipt"]["cancelled_order_ids"]) == ("guard:loss", [str(resting.id)])
    run = KillSwitchRun.objects.get(account=account)       # followed to flatness like a person's kill switch
    assert (run.status, run.actor) == ("FLAT", "guard:loss")


def test_a_hard_halt_flattens_the_positions_when_the_account_says_so(account, broker, clock):
    guarded(account, flatten=True)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "HALTED"
    assert Position.objects.get(account=account, symbol="AAPL").quantity == 0
    receipt = loss_alerts(account)[0].details["receipt"]
    assert len(receipt["closing_order_ids"]) == 1 and receipt["kept_order_ids"] == []


def test_a_soft_then_a_hard_level_fire_one_after_the_other(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "HALTED"
    assert [a.details["level"] for a in loss_alerts(account)] == ["SOFT", "HARD"]


def test_only_a_supervisor_with_a_reason_lets_a_guarded_account_trade_again(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    with pytest.raises(Forbidden) as refused:
        trading_state_set(account=account, state="ACTIVE", actor="key:abc", reason="my script says so")
    assert refused.value.details == {"code": "SUPERVISOR_REQUIRED"}
    assert "only a supervisor" in refused.value.message
    with pytest.raises(InvalidValue) as blank:
        trading_state_set(account=account, state="ACTIVE", actor="rita", reason="  ", supervisor=True)
    assert blank.value.details["field"] == "reason"
    assert state(account) == "REDUCING"
    trading_state_set(account=account, state="ACTIVE", actor="rita", reason="loss understood", supervisor=True)
    assert state(account) == "ACTIVE"
    audit = AuditEvent.objects.filter(action="account.trading_state").latest("at", "pk")
    assert (audit.actor, audit.details["reason"], audit.details["after_guard"]) == ("rita", "loss understood", "SOFT")


def test_a_trader_may_still_tighten_a_guarded_account(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    trading_state_set(account=account, state="HALTED", actor="key:abc")
    assert state(account) == "HALTED"


def test_after_a_supervisor_resumes_a_soft_level_only_the_hard_level_is_armed(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    trading_state_set(account=account, state="ACTIVE", actor="rita", reason="loss understood", supervisor=True)
    run_engine(account, broker, seconds=1, clock=clock)
    assert state(account) == "ACTIVE"                     # the soft level is not tripped again
    assert len(loss_alerts(account)) == 1
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "HALTED"                     # measured from the same start: the hard cap stands


def test_a_supervisor_resuming_after_a_hard_halt_gives_the_day_a_new_baseline(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    resume_approved(account, reason="new budget")          # a halt is left with a second person's approval
    run_engine(account, broker, seconds=1, clock=clock)
    assert state(account) == "ACTIVE"
    day = AccountDay.objects.get(account=account)
    assert (day.level, day.start_equity) == ("", equity(account, broker))
    assert AuditEvent.objects.filter(action="guard.rebaseline").count() == 1
    shock(broker, "-4")                                   # another 100 lost from the new start: soft again
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "REDUCING"
    assert [a.details["level"] for a in loss_alerts(account)] == ["HARD", "SOFT"]


def test_a_new_trading_day_starts_again_from_its_own_first_equity(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    clock.shift(9 * 3600 + 60)                            # 00:01 UTC the next day
    run_engine(account, broker, clock=clock)
    days = list(AccountDay.objects.filter(account=account).order_by("day"))
    assert [(d.day.isoformat(), d.level) for d in days] == [("2026-03-02", "SOFT"), ("2026-03-03", "")]
    assert days[1].start_equity == equity(account, broker)


def test_a_guard_halt_still_needs_the_supervisor_after_the_accounts_midnight(account, broker, clock):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    clock.shift(9 * 3600 + 60)                            # 00:01 UTC the next day: a new trading day, no level yet
    run_engine(account, broker, clock=clock)
    with pytest.raises(ApprovalRequired) as refused:      # a HALTED account, guarded or not: four eyes
        trading_state_set(account=account, state="ACTIVE", actor="key:abc")
    assert refused.value.details == {"code": "APPROVAL_REQUIRED"}
    assert state(account) == "HALTED"
    resume_approved(account, reason="new day", asked_by="key:abc")
    trading_state_set(account=account, state="REDUCING", actor="key:abc")    # a person's own state is theirs
    trading_state_set(account=account, state="ACTIVE", actor="key:abc")
    assert state(account) == "ACTIVE"


def test_a_hard_level_is_written_with_the_halt_even_when_the_kill_switch_fails(account, broker, clock, monkeypatch):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-3")

    def kill_switch_dies(**_):
        raise RuntimeError("process died mid-tick")
    monkeypatch.setattr("orders.services.guards.kill_switch", kill_switch_dies)
    run_engine(account, broker, seconds=2, clock=clock)
    monkeypatch.undo()
    assert (AccountDay.objects.get(account=account).level, state(account)) == ("HARD", "HALTED")
    run_engine(account, broker, seconds=1, clock=clock)   # never read as a supervisor's resume
    assert AuditEvent.objects.filter(action="guard.rebaseline").count() == 0
    assert state(account) == "HALTED"


def test_exit_management_failing_for_a_tick_does_not_keep_the_loss_guard_from_halting(account, broker, clock,
                                                                                      monkeypatch, caplog):
    guarded(account)
    long_with_far_stop(account, broker, clock)
    shock(broker, "-3")

    def exits_fail(**_):
        raise ValueError("a venue answer that cannot be read")
    monkeypatch.setattr("orders.engine.protection_tick", exits_fail)
    run_engine(account, broker, seconds=2, clock=clock)
    assert state(account) == "HALTED"
    assert "engine: exit legs failed this tick" in caplog.text


def test_the_trading_day_follows_the_accounts_timezone(account, broker, clock):
    Account.objects.filter(pk=account.pk).update(timezone="Asia/Tokyo")   # 15:00 UTC is past midnight there
    account.refresh_from_db()
    guarded(account)
    run_engine(account, broker, clock=clock)
    assert AccountDay.objects.get(account=account).day.isoformat() == "2026-03-03"
