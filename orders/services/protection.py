"""Protecting positions: what happens to exit legs when orders fill or end, and on each engine tick.

Whatever the strategy (see ``exits/strategy.py``):

* an entry's fill places (or grows) its legs to cover what has filled, before the fill is visible to
  anyone; a leg that cannot be placed is retried with backoff and, if it is still unplaced after
  ``exits.decide.RETRY_WINDOW``, raises ``POSITION_UNPROTECTED``;
* a leg's fill cancels its sibling (pending strategy), or the venue did (native OCO / bracket); if both
  filled anyway, ``OCO_DOUBLE_EXIT`` is raised;
* a position that goes flat cancels its legs and resolves its unprotected alerts; one that shrinks
  trims them; an entry that ends without a fill cancels its legs;
* ``protection_tick`` (engine loop) retries due legs and escalates (the exits the engine watches on the
  quote, trailing stops and take-profits, are ``services/watched.py``);
  ``protection_reconcile`` (engine start) catches up what happened while no engine ran.

The numbers (how much to cover, what to trim, where a stop trails) are decided in ``exits/``; the legs
are written through ``services/legs.py``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, RejectReason, Side
from orders.domain.errors import DeskError, OrderRejected, ProviderError, ProviderUnavailable
from orders.domain.lifecycle import LIVE_LEG, UNPLACED, LegStatus, OrderStep
from orders.domain.money import ZERO, format_decimal
from orders.exits.decide import (
    Cancel,
    protection_target,
    shrink_to,
    trim_to,
    unplaced_too_long,
)
from orders.models import Account, Alert, ExitLeg, Fill, Order
from orders.selectors import position_quantity
from orders.services import breakers, legs, protection_time
from orders.services.alerts import alert_raise, alerts_resolve
from orders.services.orders import order_cancel
from orders.services.transitions import leg_transition, order_transition
from orders.venue import order_to_ticket

log = logging.getLogger(__name__)


def _held(order: Order) -> Decimal:
    return position_quantity(account=order.account_id, symbol=order.symbol)


# -- reacting to fills and endings ---------------------------------------------------------------------

def on_fill(order: Order, fill: Fill, *, broker: Broker) -> None:
    """Called inside the fill's transaction, after order, position and cash were updated."""
    if order.exit_leg_id is not None:
        _on_leg_fill(order, broker=broker)
    elif order.leg_role is None and order.parent_id is None:
        if order.exit_legs.exists():
            protection_time.legs_needed(order, now=timezone.now())
            protect(entry=order, broker=broker)
    if order.oco_group_id and order.status == OrderStatus.FILLED:
        _on_user_oco_fill(order, broker=broker)
    position_changed(account_id=order.account_id, symbol=order.symbol, broker=broker)


def position_changed(*, account_id: int, symbol: str, broker: Broker) -> None:
    """The position in ``symbol`` changed (a fill, or the desk took the venue's quantity): legs end with a flat
    position and are fitted to any other."""
    held = position_quantity(account=account_id, symbol=symbol)
    if held == 0:
        _on_position_flat(account_id, symbol, broker=broker)
    else:
        _fit_legs_to_position(account_id, symbol, held, broker=broker)


def on_order_finished(order: Order, *, broker: Broker) -> None:
    """The venue ended an order without filling it completely (cancelled, refused, expired): a leg's
    order is replaced, an entry's legs end with it."""
    if order.exit_leg_id is not None:
        _reprotect_after_venue_cancel(order, broker=broker)
        return
    legs.legs_end_with_entry(order, broker=broker)


def protect(*, entry: Order, broker: Broker, now: datetime | None = None) -> None:
    """Make the entry's live legs cover what has filled. Failures are scheduled for retry."""
    now = now or timezone.now()
    live = list(ExitLeg.objects.filter(entry=entry, status__in=LIVE_LEG).order_by("role"))
    if not live:
        return
    if breakers.breaker_is_open(account_id=entry.account_id, name=breakers.EXIT_ORDER):
        for leg in live:
            if _shortfall(entry, leg, broker) > 0:
                legs.leg_placement_failed(leg, entry, "exit-order circuit breaker open", now=now, breaker_open=True)
        return
    reason = _uncoverable(entry, broker)
    if reason is not None:
        for leg in live:
            if leg.status != LegStatus.PLACED or not legs.live_orders(leg):
                legs.leg_placement_failed(leg, entry, reason, now=now, hopeless=True)
        return
    if live[0].strategy == ExitLeg.Strategy.NATIVE_OCO and len(live) == 2:
        _protect_together(entry, live, broker=broker, now=now)
        return
    for leg in live:
        _protect_one(entry, leg, broker=broker, now=now)


def _wanted(entry: Order) -> Decimal:
    """What the entry's legs should cover: what has filled of it and is still held."""
    return protection_target(entry_side=Side(entry.side), filled_quantity=entry.filled_quantity, held=_held(entry))


def leg_target(entry: Order, broker: Broker) -> Decimal:
    """What the legs can cover of it at the venue: rounded down to its quantity step (0 below its minimum)."""
    return legs.tradeable_quantity(broker, entry.symbol, _wanted(entry))


def _shortfall(entry: Order, leg: ExitLeg, broker: Broker) -> Decimal:
    return leg_target(entry, broker) - legs.covered(leg)


def _uncoverable(entry: Order, broker: Broker) -> str | None:
    """Why what is held cannot carry a leg at all (below the venue's minimum), or None."""
    wanted = _wanted(entry)
    if wanted <= 0 or leg_target(entry, broker) > 0:
        return None
    minimum = broker.instrument(entry.symbol).min_quantity
    return (f"the {format_decimal(wanted)} {entry.symbol} held is below the venue's minimum order "
            f"{format_decimal(minimum)}: no exit order can be placed for it")


def _hopeless(error: DeskError) -> bool:
    """A refusal no retry will fix soon: the venue says the balance cannot cover the leg."""
    return isinstance(error, OrderRejected) and error.reason in (RejectReason.INSUFFICIENT_BALANCE,
                                                                 RejectReason.INVALID_QUANTITY)


def _protect_one(entry: Order, leg: ExitLeg, *, broker: Broker, now: datetime) -> None:
    if leg.strategy == ExitLeg.Strategy.NATIVE_BRACKET:
        if not broker.answers_at_once:     # a remote broker releases its own held legs; sync reports what they do
            legs.leg_mark_placed(leg)
            return
        legs.leg_release_held(entry, leg, leg_target(entry, broker), broker=broker)
    if leg.role == Order.LegRole.STOP_LOSS and _take_profit_selling(entry):
        return                             # its balance is being sold: it comes back if the sale does not fill
    if legs.is_watched(leg):               # armed: the engine fires it on the quote (``services/watched.py``)
        if leg.status not in UNPLACED or leg.next_attempt_at is None or leg.next_attempt_at <= now:
            legs.leg_mark_placed(leg)
        return
    shortfall = _shortfall(entry, leg, broker)
    if shortfall <= 0:
        legs.leg_mark_placed(leg)
        return
    try:
        with transaction.atomic():
            working = [o for o in legs.live_orders(leg) if o.status in WORKING_STATUSES]
            if not working or not legs.leg_try_grow(working[-1], shortfall, broker=broker):
                legs.leg_place(entry, leg, shortfall, broker=broker)
    except DeskError as e:
        legs.leg_placement_failed(leg, entry, e.message, now=now, infrastructure=isinstance(
            e, ProviderUnavailable | ProviderError), hopeless=_hopeless(e))
        return
    legs.leg_mark_placed(leg)


def _take_profit_selling(entry: Order) -> bool:
    """An engine-watched take-profit of ``entry`` fired and its sale is working at the venue."""
    return Order.objects.filter(parent=entry, leg_role=Order.LegRole.TAKE_PROFIT, exit_leg__emulated=True,
                                status__in=WORKING_STATUSES).exists()


def _protect_together(entry: Order, pair: list[ExitLeg], *, broker: Broker, now: datetime) -> None:
    """Native OCO: both legs go to the broker as one linked pair (grown together on later fills)."""
    shortfalls = [_shortfall(entry, leg, broker) for leg in pair]
    if max(shortfalls) <= 0:
        for leg in pair:
            legs.leg_mark_placed(leg)
        return
    try:
        with transaction.atomic():
            working = [[o for o in legs.live_orders(leg) if o.status in WORKING_STATUSES] for leg in pair]
            grown = all(working) and all(
                legs.leg_try_grow(orders[-1], shortfall, broker=broker) if shortfall > 0 else True
                for orders, shortfall in zip(working, shortfalls, strict=True))
            if not grown:           # no pair yet, or the broker cannot resize one: add a pair for the rest
                legs.leg_place_pair(entry, pair, max(shortfalls), broker=broker)
    except DeskError as e:
        outage = isinstance(e, ProviderUnavailable | ProviderError)
        for i, leg in enumerate(pair):      # one pair, one attempt: counted once toward the breaker
            legs.leg_placement_failed(leg, entry, e.message, now=now, infrastructure=outage and i == 0,
                                      hopeless=_hopeless(e))
        return
    for leg in pair:
        legs.leg_mark_placed(leg)


def _on_leg_fill(order: Order, *, broker: Broker) -> None:
    leg = order.exit_leg
    sibling = ExitLeg.objects.filter(entry_id=leg.entry_id).exclude(pk=leg.pk).first()
    if order.status == OrderStatus.FILLED and not any(o.status in WORKING_STATUSES for o in legs.live_orders(leg)):
        leg_transition(leg, LegStatus.FILLED, end_reason="filled")
    if sibling is None:
        return
    if sibling.status == LegStatus.FILLED or Order.objects.filter(exit_leg=sibling, filled_quantity__gt=0).exists():
        _double_exit(order, sibling)
        return
    if order.status == OrderStatus.FILLED:
        legs.leg_end(sibling, LegStatus.CANCELLED, "sibling_filled", broker=broker)
    else:
        _shrink_to_position(sibling, order, broker=broker)


def _shrink_to_position(leg: ExitLeg, filled_order: Order, *, broker: Broker) -> None:
    """A partial exit fill leaves less to protect: the sibling leg shrinks with the position."""
    live = legs.live_orders(leg)
    by_id = {str(o.id): o for o in live}
    for resize in shrink_to(legs.as_leg_orders(live), abs(_held(filled_order))):
        legs.leg_order_resize(by_id[resize.order_id], resize.quantity, broker=broker)


def _double_exit(order: Order, sibling: ExitLeg) -> None:
    sibling_fills = Order.objects.filter(exit_leg=sibling, filled_quantity__gt=0).first()
    first = {"order_id": str(sibling_fills.id), "quantity": format_decimal(sibling_fills.filled_quantity),
             "side": sibling_fills.side.title()} if sibling_fills else {}
    second = {"order_id": str(order.id), "quantity": format_decimal(order.filled_quantity), "side": order.side.title()}
    total = order.filled_quantity + (sibling_fills.filled_quantity if sibling_fills else ZERO)
    alert_raise(account_id=order.account_id, kind=Alert.Kind.OCO_DOUBLE_EXIT, symbol=order.symbol,
                dedupe_key=f"double-exit:{order.parent_id}", entry_id=order.parent_id,
                message=f"OCO double-exit on {order.symbol}: both SL and TP filled "
                        f"(total exit qty: {format_decimal(total)})",
                details={"oco_group_id": f"exit:{order.parent_id}", "symbol": order.symbol, "first_fill": first,
                         "second_fill": second, "total_exit_quantity": format_decimal(total),
                         "position_quantity": format_decimal(_held(order))})


def _on_user_oco_fill(order: Order, *, broker: Broker) -> None:
    group = Order.objects.filter(account_id=order.account_id, oco_group_id=order.oco_group_id).exclude(pk=order.pk)
    filled_before = group.filter(filled_quantity__gt=0).first()
    if filled_before is not None:
        alert_raise(account_id=order.account_id, kind=Alert.Kind.OCO_DOUBLE_EXIT, symbol=order.symbol,
                    dedupe_key=f"double-exit:group:{order.account_id}:{order.oco_group_id}",
                    message=f"OCO double-exit on {order.symbol}: two orders of group {order.oco_group_id} filled",
                    details={"oco_group_id": order.oco_group_id, "symbol": order.symbol,
                             "first_fill": {"order_id": str(filled_before.id),
                                            "quantity": format_decimal(filled_before.filled_quantity),
                                            "side": filled_before.side.title()},
                             "second_fill": {"order_id": str(order.id),
                                             "quantity": format_decimal(order.filled_quantity),
                                             "side": order.side.title()}})
    for other in group.filter(status__in=WORKING_STATUSES):
        try:
            order_cancel(account=order.account, order_id=str(other.id), broker=broker,
                         reason=f"OCO group {order.oco_group_id}: order {order.id} filled", actor="engine")
        except DeskError as e:
            log.warning("OCO group %s: %s not cancelled: %s", order.oco_group_id, other.id, e.message)


def _on_position_flat(account_id: int, symbol: str, *, broker: Broker) -> None:
    for leg in ExitLeg.objects.filter(account_id=account_id, symbol=symbol, status__in=LIVE_LEG):
        waiting_for_entry = leg.status == LegStatus.PENDING and Order.objects.filter(
            pk=leg.entry_id, status__in=WORKING_STATUSES).exists()
        if not waiting_for_entry:
            legs.leg_end(leg, LegStatus.CANCELLED, "position_closed", broker=broker)
    alerts_resolve(account_id=account_id, symbol=symbol, kind=Alert.Kind.POSITION_UNPROTECTED,
                   resolution="position flat")


def _fit_legs_to_position(account_id: int, symbol: str, held: Decimal, *, broker: Broker) -> None:
    """Legs never trade more than is held, nor the wrong way: a fill that shrank the position trims the
    legs protecting it, and one that took it through zero retires the legs of the side it left."""
    adding = Side.BUY if held > 0 else Side.SELL          # a leg order on this side would grow the position
    for leg in ExitLeg.objects.filter(account_id=account_id, symbol=symbol, status__in=LIVE_LEG):
        if Order.objects.filter(pk=leg.entry_id, status__in=WORKING_STATUSES).exists() and not any(
                o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED) for o in legs.live_orders(leg)):
            continue           # its entry may still fill its way: protect() sizes it then
        if leg.side == adding:
            if legs.leg_end(leg, LegStatus.CANCELLED, "position_closed", broker=broker):
                alerts_resolve(account_id=leg.account_id, symbol=leg.symbol, entry_id=leg.entry_id,
                               kind=Alert.Kind.POSITION_UNPROTECTED, resolution="position closed")
        else:
            _trim_leg(leg, legs.tradeable_quantity(broker, symbol, abs(held), minimum=False), broker=broker)


def _trim_leg(leg: ExitLeg, held: Decimal, *, broker: Broker) -> None:
    working = [o for o in legs.live_orders(leg) if o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)]
    by_id = {str(o.id): o for o in working}
    for intent in trim_to(legs.as_leg_orders(working), held):
        order = by_id[intent.order_id]
        try:
            if isinstance(intent, Cancel):
                broker.cancel_order(order_to_ticket(order))
                order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED, message="position reduced")
            else:
                legs.leg_order_resize(order, intent.quantity, broker=broker)
        except DeskError as e:
            log.error("leg order %s not trimmed to the position: %s", order.id, e.message)
            return


def _reprotect_after_venue_cancel(order: Order, *, broker: Broker) -> None:
    leg = order.exit_leg
    if leg.status != LegStatus.PLACED:
        return
    if order.venue_oco_id and Order.objects.filter(venue_oco_id=order.venue_oco_id, filled_quantity__gt=0).exclude(
            exit_leg=leg).exists():
        # the venue's one-cancels-other did its job (the sibling traded, perhaps only in part): this leg is done
        legs.leg_end(leg, LegStatus.CANCELLED, "sibling_filled", broker=broker)
        return
    leg_transition(leg, LegStatus.RETRYING, only_from=(LegStatus.PLACED,), next_attempt_at=timezone.now(),
                   last_error=order.status_message[:255], updated_at=leg.updated_at)
    protect(entry=order.parent, broker=broker)


# -- each engine tick ----------------------------------------------------------------------------------

def _locked(entry: Order) -> Order:
    """``entry`` as it is now, its row locked until the transaction ends: the risk view's re-place
    (``risk.position_exits_replace``) takes the same lock, so the two never both find a leg short and both
    place it; the second waits and sees the first's order. (SQLite serialises every write transaction.)"""
    return Order.objects.select_for_update().get(pk=entry.pk)


def protection_tick(*, accounts: list[Account], broker: Broker, now: datetime | None = None) -> None:
    """Retry the legs that are due and report those unplaced too long (the exits the engine watches on the
    quote are ``services/watched.py``'s)."""
    now = now or timezone.now()
    due = ExitLeg.objects.filter(account__in=accounts, status__in=UNPLACED).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).select_related("entry")
    for entry in {leg.entry for leg in due}:
        with transaction.atomic():
            entry = _locked(entry)
            protect(entry=entry, broker=broker, now=now)
    for leg in ExitLeg.objects.filter(account__in=accounts, status=LegStatus.RETRYING,
                                      first_failure_at__lte=unplaced_too_long(now)).select_related("entry"):
        legs.leg_escalate(leg, leg.entry)


# -- start-up ------------------------------------------------------------------------------------------

def protection_reconcile(*, accounts: list[Account], broker: Broker) -> int:
    """At engine start: protect entries whose fills arrived while no engine ran, and re-place legs whose
    orders the broker ended while we were away. Returns how many entries were looked at."""
    entries = Order.objects.filter(
        exit_legs__account__in=accounts, exit_legs__status__in=LIVE_LEG, filled_quantity__gt=0).distinct()
    count = 0
    for entry in entries:
        with transaction.atomic():
            entry = _locked(entry)
            if _held(entry) == 0:
                _on_position_flat(entry.account_id, entry.symbol, broker=broker)
            else:
                protect(entry=entry, broker=broker)
        count += 1
    return count
