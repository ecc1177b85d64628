"""The day's loss and drawdown guards (issue #16, ``domain/guards.py`` holds the rules), run by the engine once per
tick for the accounts that have a level set.

Each account's trading day (midnight to midnight in ``Account.timezone``) has an ``AccountDay``: the equity at
the day's first tick (``start_equity``), the day's highest equity (``peak_equity``) and the highest level
tripped. Equity is ``accounts.account_snapshot``'s: the desk's ledger marked to the market on the paper venue, the
venue's own figures on a real one.

* soft level (loss or drawdown): the account goes REDUCING (only orders that shrink a position) and a LOSS_LIMIT
  alert is raised;
* hard level: the kill switch (``risk.kill_switch``) as ``guard:loss``: HALTED, every working entry cancelled, the
  stops and targets of open positions kept, positions flattened only when ``flatten_on_hard_halt`` says so; its
  receipt is kept in the audit trail and in the LOSS_LIMIT alert the risk view shows.

A level fires once a day. Only a supervisor lets the account trade again, with a typed reason
(``risk.trading_state_set``). After a soft level the day's baseline stays and only the hard level is left
armed: the hard level stays the day's cap on the loss. After a hard level the supervisor who lets the account
trade again gives it a new baseline: the next tick starts the day afresh from the equity then (audited as
``guard.rebaseline``), so both levels apply again from that point."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import InterfaceError, OperationalError, transaction

from orders import events
from orders.brokers.base import Broker
from orders.domain.errors import DeskError, InvalidValue
from orders.domain.guards import (
    Breach,
    GuardLevels,
    Level,
    day_loss,
    drawdown,
    guard_breach,
    soft_not_below_hard,
    trading_day,
)
from orders.domain.money import format_decimal
from orders.models import Account, AccountDay, Alert, PreTradeLimits, TradingState
from orders.services.accounts import account_snapshot
from orders.services.alerts import alert_raise
from orders.services.approvals import LimitsAsked, limits_ask
from orders.services.audit import audit_record
from orders.services.risk import GUARD_ACTOR, kill_switch, trading_state_set

log = logging.getLogger(__name__)
ACTOR = GUARD_ACTOR


def guard_levels(row: PreTradeLimits | None) -> GuardLevels:
    if row is None:
        return GuardLevels()
    return GuardLevels(daily_loss_soft=row.daily_loss_soft, daily_loss_hard=row.daily_loss_hard,
                       drawdown_soft=row.drawdown_soft, drawdown_hard=row.drawdown_hard)


def guards_tick(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    """Measure the day's loss and drawdown of every account with a level set, and act on a level newly reached."""
    rows = {row.account_id: row for row in PreTradeLimits.objects.filter(account__in=accounts)}
    for account in accounts:
        row = rows.get(account.pk)
        levels = guard_levels(row)
        if not levels.any:
            continue
        try:
            try:
                equity = account_snapshot(account=account, broker=broker, now=now, strict=True).equity
            except DeskError as e:    # the figures (or a position's quote) cannot be read: measured next tick
                log.warning("guards: %s's equity cannot be read: %s", account.name, e.message)
                continue
            guard_check(account=account, broker=broker, equity=equity, levels=levels,
                        flatten=row.flatten_on_hard_halt, now=now)
        except (OperationalError, InterfaceError):
            raise                   # the database went away: the engine's loop waits for it
        except Exception:           # one account's guard must not stop the others', nor fills and exits
            log.exception("guards: %s's loss guard failed this tick", account.name)


def guard_check(*, account: Account, broker: Broker, equity: Decimal, levels: GuardLevels, flatten: bool,
                now: datetime) -> Breach | None:
    """Record ``equity`` on the account's day and act on a level it newly breaches. Returns that breach."""
    day = trading_day(now, account.timezone)
    with transaction.atomic():
        record, created = AccountDay.objects.select_for_update().get_or_create(
            account=account, day=day, defaults={"start_equity": equity, "peak_equity": equity, "updated_at": now})
        changed = pushed = created
        state = Account.objects.values_list("trading_state", flat=True).get(pk=account.pk)
        if record.level == Level.HARD and state != TradingState.HALTED:
            _rebaseline(record, equity=equity, state=state)
            changed = pushed = True
        if equity > record.peak_equity:
            record.peak_equity, changed = equity, True
        breach = guard_breach(levels=levels, start_equity=record.start_equity, peak_equity=record.peak_equity,
                              equity=equity, tripped=Level(record.level))
        if breach is not None:
            record.level, changed = breach.level, True
            if breach.level == Level.HARD and state != TradingState.HALTED:
                # halted with the level, in one transaction: a tick that dies before the kill switch below has
                # run leaves the account HALTED, never a HARD level on a trading account (read as a resume)
                trading_state_set(account=account, state=TradingState.HALTED, actor=ACTOR,
                                  reason=f"hard loss guard: {_words(breach)}")
        if changed:
            record.updated_at = now
            record.save()
        if pushed or breach is not None:
            events.record_desk(account.pk, "guards", day=day.isoformat(), level=record.level)
    if breach is not None:
        _act(account=account, broker=broker, breach=breach, record=record, equity=equity, flatten=flatten)
    return breach


def _rebaseline(record: AccountDay, *, equity: Decimal, state: str) -> None:
    """A supervisor let the account trade after a hard level: the day starts afresh from the equity now."""
    audit_record(account_id=record.account_id, actor=ACTOR, action="guard.rebaseline", target=str(record.day),
                 state=state, start_equity={"from": format_decimal(record.start_equity),
                                            "to": format_decimal(equity)},
                 peak_equity={"from": format_decimal(record.peak_equity), "to": format_decimal(equity)})
    record.start_equity = record.peak_equity = equity
    record.level = Level.NONE


def _act(*, account: Account, broker: Broker, breach: Breach, record: AccountDay, equity: Decimal,
         flatten: bool) -> None:
    figures = {"day": record.day.isoformat(), "level": breach.level.value, "measure": breach.measure,
               "amount": format_decimal(breach.amount), "limit": format_decimal(breach.limit),
               "equity": format_decimal(equity), "start_equity": format_decimal(record.start_equity),
               "peak_equity": format_decimal(record.peak_equity)}
    reason = f"{breach.level.lower()} loss guard: {_words(breach)}"
    audit_record(account_id=account.pk, actor=ACTOR, action="guard.breach", target=account.name, **figures)
    if breach.level == Level.SOFT:
        account.refresh_from_db(fields=["trading_state"])
        if account.trading_state == TradingState.ACTIVE:        # a halted account is never loosened by a guard
            trading_state_set(account=account, state=TradingState.REDUCING, actor=ACTOR, reason=reason)
        details = figures
        message = f"{_words(breach)}: {account.name} is {account.trading_state}" + (
            " (only orders that reduce a position)" if account.trading_state == TradingState.REDUCING else "")
    else:
        receipt = kill_switch(account=account, broker=broker, actor=ACTOR, flatten=flatten).as_dict()
        audit_record(account_id=account.pk, actor=ACTOR, action="guard.halt", target=account.name,
                     result="ok" if not receipt["failures"] else "partial", reason=reason, flatten=flatten,
                     receipt=receipt)
        details = {**figures, "flatten": flatten, "receipt": receipt}
        message = f"{_words(breach)}: {account.name} is HALTED, working entries cancelled" + (
            ", positions flattened" if flatten else ", stops kept")
    alert_raise(account_id=account.pk, kind=Alert.Kind.LOSS_LIMIT, symbol="",
                dedupe_key=_dedupe_key(account, record.day, breach.level), message=message, details=details)


def _words(breach: Breach) -> str:
    """In a person's words, amounts to the cent as the risk view shows them: "the day's loss of 148.00 reached the
    soft level of 100.00"."""
    return (f"the day's {breach.measure} of {_cents(breach.amount)} reached the {breach.level.lower()} "
            f"level of {_cents(breach.limit)}")


def _cents(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN) + 0:,.2f}"


def _dedupe_key(account: Account, day: date, level: Level) -> str:
    return f"loss-limit:{account.pk}:{day.isoformat()}:{level.value}:{_nth(account, day, level)}"


def _nth(account: Account, day: date, level: Level) -> int:
    """How many LOSS_LIMIT alerts of this level the day has had: a level that fires again after a supervisor's
    new baseline raises a new alert, not one folded into the first."""
    return Alert.objects.filter(account=account, kind=Alert.Kind.LOSS_LIMIT,
                                dedupe_key__startswith=f"loss-limit:{account.pk}:{day.isoformat()}:{level.value}:"
                                ).count()


LEVEL_NAMES = ("daily_loss_soft", "daily_loss_hard", "drawdown_soft", "drawdown_hard")


def guard_levels_set(*, account_id: int, actor: str, flatten_on_hard_halt: bool,
                     **levels: Decimal | None) -> LimitsAsked:
    """The risk view's levels form: the four levels (None = no level) and whether a hard halt flattens, set as
    ``approvals.limits_ask`` does (audited, pushed): a lowered level at once, a raised or removed one (or a hard
    halt that no longer flattens) once a second person approves it. A soft level must sit below its hard level."""
    measure = soft_not_below_hard(levels)
    if measure is not None:
        soft, hard = levels[f"{measure}_soft"], levels[f"{measure}_hard"]
        raise InvalidValue(f"{measure}_soft", f"the soft {measure.replace('_', ' ')} level must be below the "
                                              f"hard one ({format_decimal(hard)})", provided=soft)
    return limits_ask(account_id=account_id, actor=actor, flatten_on_hard_halt=flatten_on_hard_halt, **levels)


# -- what the risk view shows ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GuardView:
    """Today's figures of the guards: the levels, the day's start and peak equity, the loss and the drawdown now,
    the level tripped, and the last hard halt's receipt."""
    levels: GuardLevels
    flatten: bool
    day: date
    start_equity: Decimal | None
    peak_equity: Decimal | None
    equity: Decimal | None
    loss: Decimal | None
    drawdown: Decimal | None
    level: str
    halt: Alert | None


def guard_view(*, account: Account, broker: Broker, now: datetime) -> GuardView:
    row = PreTradeLimits.objects.filter(account=account).first()
    day = trading_day(now, account.timezone)
    record = AccountDay.objects.filter(account=account, day=day).first()
    try:
        equity = account_snapshot(account=account, broker=broker, now=now).equity
    except DeskError:
        equity = None
    start = record.start_equity if record else None
    peak = max(record.peak_equity, equity) if record and equity is not None else (record.peak_equity if record
                                                                                    else None)
    halt = (Alert.objects.filter(account=account, kind=Alert.Kind.LOSS_LIMIT,
                                 dedupe_key__startswith=f"loss-limit:{account.pk}:{day.isoformat()}:HARD:")
            .order_by("-raised_at").first())
    return GuardView(
        levels=guard_levels(row), flatten=bool(row and row.flatten_on_hard_halt), day=day, start_equity=start,
        peak_equity=peak, equity=equity,
        loss=day_loss(start_equity=start, equity=equity) if start is not None and equity is not None else None,
        drawdown=drawdown(peak_equity=peak, equity=equity) if peak is not None and equity is not None else None,
        level=record.level if record else "", halt=halt)
