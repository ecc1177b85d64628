"""An account's pre-trade limits (``PreTradeLimits``, set in the admin) and the hard ones enforced on every
new entry, whichever way it comes: the desk's ticket, or a script on ``/v1``.

The ticket shows every breach before submit; a soft one needs a typed reason there. A script has no way to
give one, so for it soft levels are advice and only hard levels count. Orders that can only reduce exposure
(position closes, exit legs, reduce-only orders) are never held back by a limit: a cap on the day's orders
must not trap a position.

The limits are read at most once every 5 s per process (``orders/caches.py``): a change applies at once in the
process that made it and within that delay in the others. A change is one call (``limits_set``) whatever the
door: the row, its audit record and a desk-only outbox event in one transaction. A change of a level that a
limit raised for a while holds supersedes that raise (``approval.supersede``): the engine no longer puts the level
back when the raise's time is up, so it never undoes the later change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.caches import pretrade_limits
from orders.domain.approvals import ApprovalRequired, OrderNeedsApproval, actor_kept, level_text, loosened
from orders.domain.enums import OrderType
from orders.domain.errors import DeskError, InvalidValue, OrderRejected
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest
from orders.domain.pretrade import Limits, pretrade_breaches
from orders.models import ApprovalRequest, Order, PreTradeLimits
from orders.services.audit import audit_record

PRETRADE = ("max_quantity_soft", "max_quantity_hard", "max_notional_soft", "max_notional_hard", "price_band_pct_soft",
            "price_band_pct_hard", "daily_orders_soft", "daily_orders_hard", "duplicate_window_seconds")
# the automatic guards (issue #16): the day's loss and drawdown, the order rate, the quote's age, time to
# protection and the kill switch's wait for flatness; set, audited and pushed like the pre-trade levels
GUARDS = ("daily_loss_soft", "daily_loss_hard", "drawdown_soft", "drawdown_hard", "flatten_on_hard_halt",
          "orders_per_second", "orders_per_minute", "max_quote_age_seconds", "protection_slow_seconds",
          "flatten_unprotected_after_seconds", "flat_within_seconds")
# four-eyes approvals (issue #17): the notional above which a person's order waits for a second person, and how
# long a request for approval waits
APPROVALS = ("approval_notional_above", "approval_ttl_minutes")
LEVELS = PRETRADE + GUARDS + APPROVALS
LONGEST_WAIT_MINUTES = 24 * 60          # approval_ttl_minutes: a request approved a day later is approved on old facts


def limits_set(*, account_id: int, actor: str, approval: ApprovalRequest | None = None,
               **levels: Decimal | int | None) -> PreTradeLimits:
    """Set some of an account's limits (``LEVELS``; None = no limit), keeping the others: the row, an audit record
    of what changed from what, and a desk-only event, in one transaction.

    Lowering a limit (or setting one where there was none) is done at once; raising one or removing it needs a
    second person: only the ``approval`` that raises exactly those levels lets it through (``ApprovalRequired``
    otherwise; people ask through ``services/approvals.py``)."""
    limits_check(levels)
    with transaction.atomic():
        row, _ = PreTradeLimits.objects.select_for_update().get_or_create(account_id=account_id)
        before = {name: getattr(row, name) for name in levels}
        raised = loosened(before, levels)
        if raised and not _approves(approval, account_id=account_id, levels=raised):
            raise ApprovalRequired("Raising " + ", ".join(
                f"{name} from {level_text(before[name])} to {level_text(levels[name])}" for name in raised))
        for name, value in levels.items():
            setattr(row, name, value)
        row.save()
        changed = {name: {"from": _level(before[name]), "to": _level(value)} for name, value in levels.items()
                   if before[name] != value}
        audit_record(account_id=account_id, actor=actor, action="limits.set", target=str(account_id),
                     changed=changed, **({"approval": str(approval.pk), "requested_by": approval.requested_by}
                                         if approval is not None else {}))
        events.record_desk(account_id, "limits", changed=sorted(changed))
        _overrides_supersede(account_id=account_id, names=set(changed), actor=actor, approval=approval)
        transaction.on_commit(limits_forget)    # again once committed: a read meanwhile saw the old limits
    limits_forget()
    return row


def limits_check(levels: dict[str, Decimal | int | bool | None]) -> None:
    """Refuse an unknown limit, or a level its column cannot hold (``InvalidValue``), before anything is written."""
    unknown = set(levels) - set(LEVELS)
    if unknown:
        raise InvalidValue("limits", f"unknown limit {', '.join(sorted(unknown))}; one of {', '.join(LEVELS)}",
                           provided=sorted(unknown))
    for name, value in levels.items():
        _check_level(name, value)


def overrides_under(account_id: int, names: Iterable[str]) -> list[ApprovalRequest]:
    """The limits raised for a while, not yet put back, that still hold one of ``names``, locked."""
    running = ApprovalRequest.objects.select_for_update().filter(
        account_id=account_id, kind=ApprovalRequest.Kind.RAISE_LIMIT, status=ApprovalRequest.Status.APPROVED,
        reverted_at__isnull=True, override_until__isnull=False).order_by("decided_at")
    return [approval for approval in running if override_levels(approval) & set(names)]


def override_levels(approval: ApprovalRequest) -> set[str]:
    """The levels a raise for a while still holds: those it raised, less those changed since."""
    return set(approval.payload.get("levels", {})) - set((approval.result or {}).get("superseded", {}))


def _overrides_supersede(*, account_id: int, names: set[str], actor: str, approval: ApprovalRequest | None) -> None:
    """The raises for a while holding one of ``names`` no longer put it back: it was changed since. One that holds
    nothing more is done (``reverted_at``, with nothing put back). Audited and pushed."""
    now = timezone.now()
    by = {"by": actor_kept(actor), "at": now.isoformat(), **({"approval": str(approval.pk)} if approval else {})}
    for running in overrides_under(account_id, names):
        gone = sorted(override_levels(running) & names)
        running.result = {**running.result, "superseded": {**running.result.get("superseded", {}),
                                                           **dict.fromkeys(gone, by)}}
        running.reverted_at = None if override_levels(running) else now
        running.save(update_fields=["result", "reverted_at"])
        audit_record(account_id=account_id, actor=actor, action="approval.supersede", target=str(running.pk),
                     levels=gone, requested_by=running.requested_by, done=running.reverted_at is not None,
                     **({"approval": str(approval.pk)} if approval else {}))
        events.record_desk(account_id, "approvals", id=str(running.pk), status="SUPERSEDED")


def _approves(approval: ApprovalRequest | None, *, account_id: int, levels: list[str]) -> bool:
    return (approval is not None and approval.kind == ApprovalRequest.Kind.RAISE_LIMIT
            and approval.account_id == account_id and set(levels) <= set(approval.payload.get("levels", {})))


_LARGEST_INTEGER = 2**31 - 1       # what every database's integer column holds


def _check_level(name: str, value: Decimal | int | bool | None) -> None:
    """Refuse a level its column cannot hold, before it is written: a value past the column's digits saves on
    SQLite but then cannot be read back (every later read of the row, the engine's included, would fail)."""
    field = PreTradeLimits._meta.get_field(name)
    if value is None and not field.null:
        raise InvalidValue(name, "cannot be empty: give a level", provided=value)
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, Decimal) and not value.is_finite():
        raise InvalidValue(name, "must be a number", provided=str(value))
    if value < 0:
        raise InvalidValue(name, "must be zero or more, or empty for no limit", provided=str(value))
    if name == "approval_ttl_minutes" and not 1 <= value <= LONGEST_WAIT_MINUTES:
        raise InvalidValue(name, f"a request waits 1 to {LONGEST_WAIT_MINUTES} minutes (24 hours)",
                           provided=str(value))
    if isinstance(value, Decimal):
        whole_digits = field.max_digits - field.decimal_places
        if value >= Decimal(10) ** whole_digits:
            raise InvalidValue(name, f"must be less than 1{'0' * whole_digits}", provided=str(value))
    elif value > _LARGEST_INTEGER:
        raise InvalidValue(name, f"must be at most {_LARGEST_INTEGER}", provided=str(value))


def _level(value: Decimal | int | None) -> str | int | None:
    """A level as the audit trail shows it: 25, not the column's 25.0000000000."""
    return format_decimal(value) if isinstance(value, Decimal) else value


def limits_read(account_id: int) -> tuple[Limits, int | None]:
    """The account's limits and its duplicate-order window (seconds), from the database now."""
    row = PreTradeLimits.objects.filter(account_id=account_id).first()
    if row is None:
        return Limits(), None
    return Limits(max_quantity=(row.max_quantity_soft, row.max_quantity_hard),
                  max_notional=(row.max_notional_soft, row.max_notional_hard),
                  price_band_pct=(row.price_band_pct_soft, row.price_band_pct_hard),
                  daily_orders=(row.daily_orders_soft, row.daily_orders_hard),
                  approval_notional_above=row.approval_notional_above), row.duplicate_window_seconds


def orders_today(account_id: int, *, now: datetime) -> int:
    """Entries (not exit legs) the account has placed since midnight UTC."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Order.objects.filter(account_id=account_id, created_at__gte=start, parent__isnull=True).count()


def limits_enforce(*, account_id: int, request: OrderRequest, reference: Decimal, broker: Broker,
                   now: datetime, approved: bool = False) -> None:
    """Refuse an entry that breaks one of the account's hard limits (``ORDER_REJECTED``, ``PRETRADE_LIMIT``), or
    whose notional is above the account's approval notional when no second person has ``approved`` it
    (``APPROVAL_REQUIRED``: a script's order; a person's ticket sends it to be approved before it gets here)."""
    limits = _remembered(account_id)
    if request.reduce_only:
        return
    _hard_limits_enforce(account_id=account_id, limits=limits, request=request, reference=reference, broker=broker,
                         now=now)
    threshold = limits.approval_notional_above
    if threshold is not None and not approved and request.quantity * reference > threshold:
        raise OrderNeedsApproval(notional=request.quantity * reference, threshold=threshold)


def _hard_limits_enforce(*, account_id: int, limits: Limits, request: OrderRequest, reference: Decimal,
                         broker: Broker, now: datetime) -> None:
    quantity_cap, notional_cap, band_cap, daily_cap = (
        levels[1] for levels in (limits.max_quantity, limits.max_notional, limits.price_band_pct, limits.daily_orders))
    if (quantity_cap, notional_cap, band_cap, daily_cap) == (None, None, None, None):
        return
    price = request.limit_price if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else (
        request.stop_price)
    market = _market(broker, request.symbol, now) if price is not None and band_cap is not None else Decimal(0)
    today = orders_today(account_id, now=now) if daily_cap is not None else 0
    breaches = pretrade_breaches(limits=Limits(max_quantity=(None, quantity_cap), max_notional=(None, notional_cap),
                                               price_band_pct=(None, band_cap), daily_orders=(None, daily_cap)),
                                 quantity=request.quantity, notional=request.quantity * reference,
                                 order_price=price, market=market, orders_today=today, duplicate_of=None)
    if breaches:
        breach = breaches[0]
        raise OrderRejected("ORDER_REJECTED", f"Order rejected: {breach.message} (pre-trade limit of the account)",
                            reject_code="PRETRADE_LIMIT", check=breach.check, field=breach.field)


def limits_enforce_change(*, account_id: int, before: OrderRequest, after: OrderRequest, broker: Broker,
                          now: datetime) -> None:
    """A working entry made bigger or priced again is held to the limits a new order is: the hard limits (its day's
    count aside: it is no new order), and a second person for a notional above the account's approval notional
    that is larger than what it was (``OrderNeedsApproval``). Never a reducing order."""
    if after.reduce_only:
        return
    limits = _remembered(account_id)
    reference = _reference(after, broker, now)
    _hard_limits_enforce(account_id=account_id, limits=Limits(max_quantity=limits.max_quantity,
                                                              max_notional=limits.max_notional,
                                                              price_band_pct=limits.price_band_pct),
                         request=after, reference=reference, broker=broker, now=now)
    threshold = limits.approval_notional_above
    notional = after.quantity * reference
    if threshold is not None and notional > threshold and notional > before.quantity * _reference(before, broker,
                                                                                                  now):
        raise OrderNeedsApproval(notional=notional, threshold=threshold)


def _reference(request: OrderRequest, broker: Broker, now: datetime) -> Decimal:
    """The price an order's notional is measured at: its own limit (or stop) price, else the market's."""
    if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and request.limit_price is not None:
        return request.limit_price
    if request.stop_price is not None:
        return request.stop_price
    return _market(broker, request.symbol, now)


def approval_notional(account_id: int) -> Decimal | None:
    """The notional above which a person's order on the account waits for a second person (None: never)."""
    return _remembered(account_id).approval_notional_above


def limits_forget() -> None:
    """Read every account's limits afresh next time (after ``limits_set``; tests)."""
    pretrade_limits.clear()


def _remembered(account_id: int) -> Limits:
    return pretrade_limits.get(account_id) or pretrade_limits.put(account_id, limits_read(account_id)[0])


def _market(broker: Broker, symbol: str, now: datetime) -> Decimal:
    try:
        return broker.quote(symbol, now=now).mid
    except DeskError:
        return Decimal(0)   # no market to measure the band against: the band is not checked

