"""Exit management: the stop-loss and take-profit legs that protect a filled entry.

What happens, whatever the strategy (see ``exits/strategy.py``):

* ``legs_register`` — at submission, one ``ExitLeg`` per requested leg is stored with the entry
  (native bracket: the legs are sent with the entry and held by the broker until it fills);
* ``on_fill`` of an entry — its legs are placed (or grown) to cover what has filled, before the
  fill is visible to anyone; a leg that cannot be placed is retried with backoff and, if it is
  still unplaced after ``RETRY_WINDOW``, raises ``POSITION_UNPROTECTED``;
* ``on_fill`` of a leg — the sibling is cancelled (pending strategy) or was cancelled by the venue
  (native OCO / bracket); if both filled anyway, ``OCO_DOUBLE_EXIT`` is raised;
* a position that goes flat cancels its legs and resolves its unprotected alerts;
* an entry that ends without a fill cancels its legs;
* ``exits_tick`` (engine loop) retries due legs, escalates, trails emulated stops and applies
  the auto-flatten policy; ``exits_reconcile`` (engine start) catches up what happened while
  no engine ran.

Every leg transition is a compare-and-set on ``ExitLeg.status``; leg orders get deterministic
client ids (``<seed>-sl``, ``<seed>-tp``), so no leg is placed twice.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, Side, TrailingType
from orders.domain.errors import DeskError, ProviderError, ProviderUnavailable, Unsupported
from orders.domain.money import ZERO, format_decimal
from orders.domain.orders import OrderRequest
from orders.exits.book import TrailingBook, TrailingLeg
from orders.exits.rules import leg_client_order_id
from orders.exits.strategy import choose_strategy, leg_plans
from orders.models import Account, Alert, ExitLeg, Fill, Order, Position
from orders.services import breakers
from orders.services.alerts import alert_raise, alerts_resolve
from orders.services.audit import audit_record

log = logging.getLogger(__name__)

RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0, 5.0)      # seconds between placement attempts, then every 5 s
RETRY_WINDOW = timedelta(seconds=10)          # unplaced this long after the first failure -> alert
TRAIL_MOVE_THRESHOLD = Decimal("0.001")       # move a resting trailing stop only when it changes >= 0.1 %
LIVE_LEG = (ExitLeg.Status.PENDING, ExitLeg.Status.PLACED, ExitLeg.Status.RETRYING, ExitLeg.Status.FAILED)
UNPLACED = (ExitLeg.Status.RETRYING, ExitLeg.Status.FAILED)
_DEAD_ORDER = (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)
_ROLES = (Order.LegRole.STOP_LOSS, Order.LegRole.TAKE_PROFIT)


# -- registration ---------------------------------------------------------------------------------------

def legs_register(*, entry: Order, request: OrderRequest, broker: Broker) -> list[ExitLeg]:
    """Store the entry's legs (inside the submission's transaction). Returns them."""
    strategy = choose_strategy(broker.capabilities, request, broker)
    now = timezone.now()
    legs = [ExitLeg.objects.create(
        account_id=entry.account_id, entry=entry, symbol=entry.symbol, role=plan.role, side=plan.side,
        trigger_price=plan.trigger_price, trailing_distance=plan.trailing_distance,
        trailing_type=plan.trailing_type, emulated=plan.emulated, strategy=strategy, created_at=now, updated_at=now,
    ) for plan in leg_plans(request, capabilities=broker.capabilities, strategy=strategy)]
    return legs


def held_leg_orders(*, entry: Order, legs: list[ExitLeg]) -> list[Order]:
    """Native bracket: the leg orders sent with the entry, held by the broker until it fills."""
    held = []
    for leg in legs:
        order = _leg_order(entry, leg, quantity=entry.quantity, index=0)
        order.status = OrderStatus.PENDING
        order.venue_oco_id = f"bracket-{entry.id}"
        order.save(force_insert=True)
        held.append(order)
    return held


def _leg_order(entry: Order, leg: ExitLeg, *, quantity: Decimal, index: int) -> Order:
    is_stop = leg.role == Order.LegRole.STOP_LOSS
    native_trailing = is_stop and leg.trailing_distance is not None and not leg.emulated
    seed = entry.client_order_id or str(entry.id)
    stop_price = _initial_stop(leg, entry) if is_stop and not native_trailing else None
    order_type = OrderType.TRAILING_STOP if native_trailing else OrderType.STOP if is_stop else OrderType.LIMIT
    now = timezone.now()
    return Order(
        # a deterministic id: the broker's client id for the leg is the same however often it is retried
        id=uuid.uuid5(entry.id, f"{leg.role}:{index}"),
        account_id=entry.account_id, symbol=entry.symbol, side=leg.side, order_type=order_type, quantity=quantity,
        stop_price=stop_price, limit_price=None if is_stop else leg.trigger_price,
        trailing_distance=leg.trailing_distance if native_trailing else None,
        trailing_type=leg.trailing_type if native_trailing else None,
        client_order_id=leg_client_order_id(seed=seed, role=leg.role, index=index), reduce_only=True,
        position_ref=entry.position_ref, parent=entry, leg_role=leg.role, exit_leg=leg, reserved_price=ZERO,
        submitted_by="engine", status=OrderStatus.PENDING, created_at=now, updated_at=now,
    )


def _initial_stop(leg: ExitLeg, entry: Order) -> Decimal:
    if leg.trailing_distance is None:
        return leg.trigger_price
    peak = leg.trail_peak or entry.average_fill_price or entry.reserved_price
    level = _trail_level(leg, peak)
    if leg.trigger_price is not None:
        level = max(level, leg.trigger_price) if leg.side == Side.SELL else min(level, leg.trigger_price)
    return level


def _trail_level(leg: ExitLeg, peak: Decimal) -> Decimal:
    offset = peak * leg.trailing_distance / 100 if leg.trailing_type == TrailingType.PERCENT else leg.trailing_distance
    return peak - offset if leg.side == Side.SELL else peak + offset


# -- reacting to fills and endings ---------------------------------------------------------------------

def on_fill(order: Order, fill: Fill, *, broker: Broker) -> None:
    """Called inside the fill's transaction, after order, position and cash were updated."""
    if order.exit_leg_id is not None:
        _on_leg_fill(order, broker=broker)
    elif order.leg_role is None and order.parent_id is None:
        if order.exit_legs.exists():
            protect(entry=order, broker=broker)
    if order.oco_group_id and order.status == OrderStatus.FILLED:
        _on_user_oco_fill(order, broker=broker)
    held = _position_quantity(order)
    if held == 0:
        _on_position_flat(order, broker=broker)
    else:
        _fit_legs_to_position(order, held, broker=broker)


def on_order_finished(order: Order, *, broker: Broker | None = None, by_venue: bool = False) -> None:
    """An order ended without filling completely (cancelled, rejected, expired)."""
    if order.exit_leg_id is not None:
        if by_venue:
            _reprotect_after_venue_cancel(order, broker=broker)
        return
    if order.leg_role is None and order.parent_id is None and order.filled_quantity == 0:
        reason = "primary_rejected" if order.status == OrderStatus.REJECTED else "primary_cancelled"
        for leg in ExitLeg.objects.filter(entry=order, status__in=LIVE_LEG):
            _end_leg(leg, ExitLeg.Status.CANCELLED, reason, broker=broker)


def leg_cancelled_by_user(order: Order, *, actor: str) -> None:
    """Someone cancelled a leg order on purpose: the leg ends there (no alarm for a deliberate act)."""
    leg = order.exit_leg
    if not Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES).exists():
        ExitLeg.objects.filter(pk=leg.pk, status__in=LIVE_LEG).update(
            status=ExitLeg.Status.CANCELLED, end_reason="user_requested", updated_at=timezone.now())
        audit_record(account_id=leg.account_id, actor=actor, action="leg.end", target=str(leg.pk),
                     status="CANCELLED", reason="user_requested")


def protect(*, entry: Order, broker: Broker, now: datetime | None = None) -> None:
    """Make the entry's live legs cover what has filled. Failures are scheduled for retry."""
    now = now or timezone.now()
    legs = list(ExitLeg.objects.filter(entry=entry, status__in=LIVE_LEG).order_by("role"))
    if not legs:
        return
    if breakers.breaker_is_open(account_id=entry.account_id, name=breakers.EXIT_ORDER):
        for leg in legs:
            if _shortfall(entry, leg) > 0:
                _placement_failed(leg, entry, "exit-order circuit breaker open", now=now, breaker_open=True)
        return
    if legs[0].strategy == ExitLeg.Strategy.NATIVE_OCO and len(legs) == 2:
        _protect_together(entry, legs, broker=broker, now=now)
        return
    for leg in legs:
        _protect_one(entry, leg, broker=broker, now=now)


def _live_orders(leg: ExitLeg) -> list[Order]:
    return list(Order.objects.filter(exit_leg=leg).exclude(status__in=_DEAD_ORDER).order_by("created_at"))


def _covered(leg: ExitLeg) -> Decimal:
    return sum((o.quantity for o in _live_orders(leg)), start=ZERO)


def _target(entry: Order) -> Decimal:
    held = _position_quantity(entry)
    if held == 0 or (held > 0) != (entry.side == Side.BUY):
        return ZERO            # flat, or what is held is not the entry's way: nothing of it to protect
    return min(entry.filled_quantity, abs(held))


def _shortfall(entry: Order, leg: ExitLeg) -> Decimal:
    return _target(entry) - _covered(leg)


def _release_held(entry: Order, leg: ExitLeg) -> None:
    """Native bracket: the broker releases the legs it held, sized to what has filled."""
    target = _target(entry)
    for held in Order.objects.filter(exit_leg=leg, status=OrderStatus.PENDING):
        if target <= 0:
            return
        held.quantity, held.status, held.updated_at = target, OrderStatus.OPEN, timezone.now()
        # live from the entry's fill on: the venue must not match the leg over the seconds it was held
        held.checked_until = entry.checked_until or timezone.now()
        held.save(update_fields=["quantity", "status", "updated_at", "checked_until"])
        events.record_order(held, "ORDER_CREATED")


def _protect_one(entry: Order, leg: ExitLeg, *, broker: Broker, now: datetime) -> None:
    if leg.strategy == ExitLeg.Strategy.NATIVE_BRACKET:
        if not broker.is_local:      # a remote broker releases its own held legs; sync reports what they do
            _mark_placed(leg)
            return
        _release_held(entry, leg)
    shortfall = _shortfall(entry, leg)
    if shortfall <= 0:
        _mark_placed(leg)
        return
    try:
        with transaction.atomic():
            working = [o for o in _live_orders(leg) if o.status in WORKING_STATUSES]
            if not working or not _try_grow(working[-1], shortfall, broker=broker):
                _place_new(entry, leg, shortfall, broker=broker)
    except DeskError as e:
        _placement_failed(leg, entry, e.message, now=now, infrastructure=isinstance(
            e, ProviderUnavailable | ProviderError))
        return
    _mark_placed(leg)


def _protect_together(entry: Order, legs: list[ExitLeg], *, broker: Broker, now: datetime) -> None:
    """Native OCO: both legs go to the broker as one linked pair (grown together on later fills)."""
    shortfalls = [_shortfall(entry, leg) for leg in legs]
    if max(shortfalls) <= 0:
        for leg in legs:
            _mark_placed(leg)
        return
    try:
        with transaction.atomic():
            working = [[o for o in _live_orders(leg) if o.status in WORKING_STATUSES] for leg in legs]
            grown = all(working) and all(
                _try_grow(orders[-1], shortfall, broker=broker) if shortfall > 0 else True
                for orders, shortfall in zip(working, shortfalls, strict=True))
            if not grown:           # no pair yet, or the broker cannot resize one: add a pair for the rest
                _place_oco_pair(entry, legs, max(shortfalls), broker=broker)
    except DeskError as e:
        outage = isinstance(e, ProviderUnavailable | ProviderError)
        for i, leg in enumerate(legs):      # one pair, one attempt: counted once toward the breaker
            _placement_failed(leg, entry, e.message, now=now, infrastructure=outage and i == 0)
        return
    for leg in legs:
        _mark_placed(leg)


def _place_new(entry: Order, leg: ExitLeg, quantity: Decimal, *, broker: Broker) -> Order:
    from orders.services.orders import ticket_for

    index = Order.objects.filter(exit_leg=leg).count()
    order = _leg_order(entry, leg, quantity=quantity, index=index)
    order.save(force_insert=True)
    ticket = ticket_for(order)
    ack = (None if broker.is_local else broker.lookup_order(ticket)) or broker.submit_order(ticket)
    order.broker_order_id, order.status = ack.broker_order_id, ack.status
    order.save(update_fields=["broker_order_id", "status"])
    events.record_order(order)
    audit_record(account_id=entry.account_id, actor="engine", action="leg.place", target=str(order.id),
                 role=leg.role, quantity=quantity, strategy=leg.strategy)
    return order


def _place_oco_pair(entry: Order, legs: list[ExitLeg], quantity: Decimal, *, broker: Broker) -> None:
    from orders.services.orders import ticket_for

    orders = []
    pair = Order.objects.filter(exit_leg=legs[0]).count()          # 0 for the first pair, then 1, 2 …
    for leg in legs:
        order = _leg_order(entry, leg, quantity=quantity, index=Order.objects.filter(exit_leg=leg).count())
        order.venue_oco_id = f"oco-{entry.id}" if pair == 0 else f"oco-{entry.id}-{pair + 1}"
        order.save(force_insert=True)
        orders.append(order)
    acks = broker.submit_oco([ticket_for(o) for o in orders])
    for order, ack in zip(orders, acks, strict=True):
        order.broker_order_id, order.status = ack.broker_order_id, ack.status
        order.save(update_fields=["broker_order_id", "status"])
        events.record_order(order)
    audit_record(account_id=entry.account_id, actor="engine", action="leg.place_oco", target=str(entry.id),
                 quantity=quantity)


def _try_grow(order: Order, extra: Decimal, *, broker: Broker) -> bool:
    """Grow a resting leg order; False when the broker cannot modify orders (the caller adds one)."""
    try:
        _grow(order, extra, broker=broker)
    except Unsupported:
        return False
    return True


def _grow(order: Order, extra: Decimal, *, broker: Broker) -> None:
    from orders.services.orders import ticket_for

    new_quantity = order.quantity + extra
    broker.modify_order(ticket_for(order), quantity=new_quantity)
    order.quantity, order.updated_at = new_quantity, timezone.now()
    if order.status == OrderStatus.FILLED:
        order.status = OrderStatus.PARTIALLY_FILLED
    order.save(update_fields=["quantity", "status", "updated_at"])
    events.record_order(order, "ORDER_MODIFIED")


def _mark_placed(leg: ExitLeg) -> None:
    was_unplaced = leg.status in UNPLACED
    claimed = ExitLeg.objects.filter(pk=leg.pk, status__in=(ExitLeg.Status.PENDING, *UNPLACED)).update(
        status=ExitLeg.Status.PLACED, next_attempt_at=None, first_failure_at=None, last_error="",
        updated_at=timezone.now())
    if claimed:
        leg.status = ExitLeg.Status.PLACED
        if was_unplaced and not ExitLeg.objects.filter(entry_id=leg.entry_id, status__in=UNPLACED).exists():
            alerts_resolve(account_id=leg.account_id, symbol=leg.symbol, kind=Alert.Kind.POSITION_UNPROTECTED,
                           resolution="protected again: every leg is placed", entry_id=leg.entry_id)


def _placement_failed(leg: ExitLeg, entry: Order, error: str, *, now: datetime, infrastructure: bool = False,
                      breaker_open: bool = False) -> None:
    log.error("entry %s: %s leg not placed: %s", entry.id, leg.role, error)
    attempts = leg.attempts + 1
    delay = RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
    first = leg.first_failure_at or now
    status = ExitLeg.Status.FAILED if leg.status == ExitLeg.Status.FAILED else ExitLeg.Status.RETRYING
    ExitLeg.objects.filter(pk=leg.pk, status__in=LIVE_LEG).update(
        status=status, attempts=attempts, next_attempt_at=now + timedelta(seconds=delay), first_failure_at=first,
        last_error=error[:255], updated_at=now)
    leg.status, leg.attempts, leg.first_failure_at, leg.last_error = status, attempts, first, error[:255]
    audit_record(account_id=leg.account_id, actor="engine", action="leg.place", target=str(leg.pk),
                 result="failed", error=error, attempt=attempts)
    if infrastructure:
        breakers.breaker_record_failure(account_id=leg.account_id, name=breakers.EXIT_ORDER, reason=error)
    if breaker_open or now - first >= RETRY_WINDOW:
        _escalate(leg, entry, breaker_open=breaker_open)


def _escalate(leg: ExitLeg, entry: Order, *, breaker_open: bool = False) -> None:
    ExitLeg.objects.filter(pk=leg.pk, status=ExitLeg.Status.RETRYING).update(status=ExitLeg.Status.FAILED)
    leg.status = ExitLeg.Status.FAILED
    unplaced = ExitLeg.objects.filter(entry=entry, status__in=UNPLACED)
    failed_exits = [{"type": "StopLoss" if lg.role == Order.LegRole.STOP_LOSS else "TakeProfit",
                     "leg_type": lg.role, "error": lg.last_error, "attempts": lg.attempts,
                     "actual_order_ids": [str(o.id) for o in _live_orders(lg)]} for lg in unplaced]
    alert_raise(
        account_id=entry.account_id, kind=Alert.Kind.POSITION_UNPROTECTED, symbol=entry.symbol,
        dedupe_key=f"unprotected:{entry.id}", entry_id=entry.id,
        message=f"Exit order placement failed for {entry.symbol} — position may be unprotected",
        details={"order_id": str(entry.id), "symbol": entry.symbol, "failed_exits": failed_exits,
                 "circuit_breaker_open": breaker_open,
                 "position_quantity": format_decimal(_position_quantity(entry))})


def _on_leg_fill(order: Order, *, broker: Broker) -> None:
    leg = order.exit_leg
    sibling = ExitLeg.objects.filter(entry_id=leg.entry_id).exclude(pk=leg.pk).first()
    if order.status == OrderStatus.FILLED and not any(o.status in WORKING_STATUSES for o in _live_orders(leg)):
        ExitLeg.objects.filter(pk=leg.pk).exclude(status=ExitLeg.Status.FILLED).update(
            status=ExitLeg.Status.FILLED, end_reason="filled", updated_at=timezone.now())
    if sibling is None:
        return
    if sibling.status == ExitLeg.Status.FILLED or Order.objects.filter(
            exit_leg=sibling, filled_quantity__gt=0).exists():
        _double_exit(order, sibling)
        return
    if order.status == OrderStatus.FILLED:
        _end_leg(sibling, ExitLeg.Status.CANCELLED, "sibling_filled", broker=broker)
    else:
        _shrink_to_position(sibling, order, broker=broker)


def _shrink_to_position(leg: ExitLeg, filled_order: Order, *, broker: Broker) -> None:
    """A partial exit fill leaves less to protect: the sibling leg shrinks with the position."""
    from orders.services.orders import ticket_for

    held = abs(_position_quantity(filled_order))
    for order in reversed(_live_orders(leg)):
        excess = _covered(leg) - held
        if excess <= 0:
            return
        new_quantity = max(order.filled_quantity, order.quantity - excess)
        if new_quantity == order.quantity or order.status not in WORKING_STATUSES:
            continue
        broker.modify_order(ticket_for(order), quantity=new_quantity)
        order.quantity, order.updated_at = new_quantity, timezone.now()
        order.save(update_fields=["quantity", "updated_at"])
        events.record_order(order, "ORDER_MODIFIED")


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
                         "position_quantity": format_decimal(_position_quantity(order))})


def _on_user_oco_fill(order: Order, *, broker: Broker) -> None:
    from orders.services.orders import order_cancel

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


def _on_position_flat(order: Order, *, broker: Broker) -> None:
    legs = ExitLeg.objects.filter(account_id=order.account_id, symbol=order.symbol, status__in=LIVE_LEG)
    for leg in legs:
        waiting_for_entry = leg.status == ExitLeg.Status.PENDING and Order.objects.filter(
            pk=leg.entry_id, status__in=WORKING_STATUSES).exists()
        if not waiting_for_entry:
            _end_leg(leg, ExitLeg.Status.CANCELLED, "position_closed", broker=broker)
    alerts_resolve(account_id=order.account_id, symbol=order.symbol, kind=Alert.Kind.POSITION_UNPROTECTED,
                   resolution="position flat")


def _fit_legs_to_position(order: Order, held: Decimal, *, broker: Broker) -> None:
    """Legs never trade more than is held, nor the wrong way: a fill that shrank the position trims the
    legs protecting it, and one that took it through zero retires the legs of the side it left."""
    adding = Side.BUY if held > 0 else Side.SELL          # a leg order on this side would grow the position
    for leg in ExitLeg.objects.filter(account_id=order.account_id, symbol=order.symbol, status__in=LIVE_LEG):
        if Order.objects.filter(pk=leg.entry_id, status__in=WORKING_STATUSES).exists() and not any(
                o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED) for o in _live_orders(leg)):
            continue           # its entry may still fill its way: protect() sizes it then
        if leg.side == adding:
            if _end_leg(leg, ExitLeg.Status.CANCELLED, "position_closed", broker=broker):
                alerts_resolve(account_id=leg.account_id, symbol=leg.symbol, entry_id=leg.entry_id,
                               kind=Alert.Kind.POSITION_UNPROTECTED, resolution="position closed")
        else:
            _trim_leg(leg, abs(held), broker=broker)


def _trim_leg(leg: ExitLeg, held: Decimal, *, broker: Broker) -> None:
    from orders.services.orders import ticket_for

    working = [o for o in _live_orders(leg) if o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)]
    excess = sum((o.remaining_quantity for o in working), start=ZERO) - held
    for order in reversed(working):
        if excess <= 0:
            return
        cut = min(excess, order.remaining_quantity)
        try:
            if cut == order.remaining_quantity:
                broker.cancel_order(ticket_for(order))
                order.status, order.status_message = OrderStatus.CANCELLED, "position reduced"
            else:
                broker.modify_order(ticket_for(order), quantity=order.quantity - cut)
                order.quantity -= cut
        except DeskError as e:
            log.error("leg order %s not trimmed to the position: %s", order.id, e.message)
            return
        order.updated_at = timezone.now()
        order.save(update_fields=["quantity", "status", "status_message", "updated_at"])
        events.record_order(order, None if order.status == OrderStatus.CANCELLED else "ORDER_MODIFIED")
        excess -= cut


def _end_leg(leg: ExitLeg, status: str, reason: str, *, broker: Broker | None) -> bool:
    """Claim the leg's end, then cancel whatever it still has working at the broker."""
    from orders.services.orders import is_at_broker, ticket_for

    claimed = ExitLeg.objects.filter(pk=leg.pk, status__in=LIVE_LEG).update(
        status=status, end_reason=reason, next_attempt_at=None, updated_at=timezone.now())
    if not claimed:
        return False
    for order in Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES):
        with transaction.atomic():
            done = Order.objects.filter(pk=order.pk, status__in=WORKING_STATUSES).update(
                status=OrderStatus.CANCELLED, status_message=reason, updated_at=timezone.now())
            if not done:
                continue
            if broker is not None and is_at_broker(order, broker):
                try:
                    broker.cancel_order(ticket_for(order))
                except DeskError as e:
                    log.error("leg order %s could not be cancelled at the broker: %s", order.id, e.message)
            order.refresh_from_db()
            events.record_order(order)
    audit_record(account_id=leg.account_id, actor="engine", action="leg.end", target=str(leg.pk),
                 status=status, reason=reason)
    return True


def _reprotect_after_venue_cancel(order: Order, *, broker: Broker | None) -> None:
    leg = order.exit_leg
    if leg.status != ExitLeg.Status.PLACED or broker is None:
        return
    if order.venue_oco_id and Order.objects.filter(venue_oco_id=order.venue_oco_id, filled_quantity__gt=0).exclude(
            exit_leg=leg).exists():
        # the venue's one-cancels-other did its job (the sibling traded, perhaps only in part): this leg is done
        _end_leg(leg, ExitLeg.Status.CANCELLED, "sibling_filled", broker=broker)
        return
    ExitLeg.objects.filter(pk=leg.pk, status=ExitLeg.Status.PLACED).update(
        status=ExitLeg.Status.RETRYING, next_attempt_at=timezone.now(), last_error=order.status_message[:255])
    protect(entry=order.parent, broker=broker)


def _position_quantity(order: Order) -> Decimal:
    from orders.services.orders import position_quantity

    return position_quantity(account=order.account_id, symbol=order.symbol)


# -- the engine loop -----------------------------------------------------------------------------------

def exits_tick(*, accounts: list[Account], broker: Broker, now: datetime | None = None,
               book: TrailingBook | None = None) -> None:
    now = now or timezone.now()
    due = ExitLeg.objects.filter(account__in=accounts, status__in=UNPLACED).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)).select_related("entry")
    for entry in {leg.entry for leg in due}:
        with transaction.atomic():
            entry.refresh_from_db()
            protect(entry=entry, broker=broker, now=now)
    for leg in ExitLeg.objects.filter(account__in=accounts, status=ExitLeg.Status.RETRYING,
                                      first_failure_at__lte=now - RETRY_WINDOW).select_related("entry"):
        _escalate(leg, leg.entry)
    _auto_flatten(accounts=accounts, broker=broker, now=now)
    if book is not None:
        trail_tick(accounts=accounts, broker=broker, book=book, now=now)


def _auto_flatten(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    from orders.services.positions import position_close

    for account in accounts:
        if account.auto_flatten_after_seconds is None:
            continue
        cutoff = now - timedelta(seconds=account.auto_flatten_after_seconds)
        for alert in Alert.objects.filter(account=account, kind=Alert.Kind.POSITION_UNPROTECTED,
                                          status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED),
                                          raised_at__lte=cutoff):
            if not Position.objects.filter(account=account, symbol=alert.symbol).exclude(quantity=0).exists():
                continue
            try:
                order = position_close(account=account, position_id=alert.symbol, broker=broker,
                                       actor="engine:auto-flatten")
                audit_record(account_id=account.pk, actor="engine:auto-flatten", action="position.flatten",
                             target=alert.symbol, alert=str(alert.pk), order=str(order.id))
            except DeskError as e:
                audit_record(account_id=account.pk, actor="engine:auto-flatten", action="position.flatten",
                             target=alert.symbol, result="failed", error=e.message)


# -- emulated trailing stops ---------------------------------------------------------------------------

def trail_book_load(*, accounts: list[Account]) -> TrailingBook:
    book = TrailingBook()
    for leg in ExitLeg.objects.filter(account__in=accounts, emulated=True, status=ExitLeg.Status.PLACED):
        _book_add(book, leg)
    return book


def _book_add(book: TrailingBook, leg: ExitLeg) -> None:
    order = Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES).first()
    if order is None or leg.trailing_distance is None:
        return
    peak = leg.trail_peak or leg.entry.average_fill_price or order.stop_price
    book.add(TrailingLeg(str(leg.pk), leg.symbol, Side(leg.side), leg.trailing_distance,
                         TrailingType(leg.trailing_type), peak))


def trail_tick(*, accounts: list[Account], broker: Broker, book: TrailingBook, now: datetime) -> None:
    """Follow the market with every emulated trailing stop; move the resting stop order when its level
    has moved by at least ``TRAIL_MOVE_THRESHOLD``."""
    known = book.leg_ids()
    for leg in ExitLeg.objects.filter(account__in=accounts, emulated=True, status=ExitLeg.Status.PLACED):
        if str(leg.pk) not in known:
            _book_add(book, leg)
    for symbol in book.symbols():
        try:
            quote = broker.quote(symbol, now=now)
        except DeskError:
            continue
        _, moved = book.on_quote(symbol, bid=quote.bid, ask=quote.ask)
        if moved:
            for trailing in book.legs_of(symbol):
                _move_trailing_stop(trailing, broker=broker)
    live = {str(pk) for pk in ExitLeg.objects.filter(pk__in=list(book.leg_ids()), status=ExitLeg.Status.PLACED)
            .values_list("pk", flat=True)}
    for leg_id in book.leg_ids() - live:
        book.remove(leg_id)


def _move_trailing_stop(trailing: TrailingLeg, *, broker: Broker) -> None:
    from orders.services.orders import OrderChanges, order_modify

    leg = ExitLeg.objects.filter(pk=trailing.leg_id, status=ExitLeg.Status.PLACED).select_related("account").first()
    if leg is None:
        return
    level = trailing.level()
    if leg.trigger_price is not None:
        level = max(level, leg.trigger_price) if leg.side == Side.SELL else min(level, leg.trigger_price)
    tick = broker.instrument(leg.symbol).tick_size
    level = (level / tick).to_integral_value(rounding="ROUND_FLOOR" if leg.side == Side.SELL else
                                             "ROUND_CEILING") * tick
    ExitLeg.objects.filter(pk=leg.pk).update(trail_peak=trailing.peak)
    for order in Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES):
        if order.stop_price and abs(level - order.stop_price) / order.stop_price < TRAIL_MOVE_THRESHOLD:
            continue
        better = level > order.stop_price if leg.side == Side.SELL else level < order.stop_price
        if not better:
            continue
        try:
            order_modify(account=leg.account, order_id=str(order.id), changes=OrderChanges(stop_price=level),
                         broker=broker, actor="engine:trailing")
        except DeskError as e:
            log.warning("trailing stop %s not moved: %s", order.id, e.message)


# -- start-up ------------------------------------------------------------------------------------------

def exits_reconcile(*, accounts: list[Account], broker: Broker) -> int:
    """At engine start: protect entries whose fills arrived while no engine ran, and re-place legs whose
    orders the broker ended while we were away. Returns how many entries were looked at."""
    entries = Order.objects.filter(
        exit_legs__account__in=accounts, exit_legs__status__in=LIVE_LEG, filled_quantity__gt=0).distinct()
    count = 0
    for entry in entries:
        with transaction.atomic():
            entry.refresh_from_db()
            if _position_quantity(entry) == 0:
                _on_position_flat(entry, broker=broker)
            else:
                protect(entry=entry, broker=broker)
        count += 1
    return count
