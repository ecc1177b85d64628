"""Exit legs carried out: stored with their entry, placed, grown, failed, escalated and ended.

A leg (``ExitLeg``) is the intent to protect a filled entry; the orders that carry it at the broker
point at it. Each leg's status moves only through ``services/transitions.leg_transition`` (a
compare-and-set), and leg orders get deterministic ids and client ids (``<seed>-sl``, ``<seed>-tp``),
so no leg is placed twice. What to place or cut is decided in ``exits/``; when to react to a fill,
in ``services/protection.py``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, Side
from orders.domain.errors import DeskError, Unsupported
from orders.domain.lifecycle import LIVE_LEG, UNPLACED, LegStatus, OrderStep
from orders.domain.money import ZERO, format_decimal
from orders.domain.orders import OrderRequest
from orders.exits.decide import HOPELESS_RETRY, LegOrder, gives_up, initial_stop, leg_quantity, retry_delay
from orders.exits.rules import leg_client_order_id
from orders.exits.strategy import choose_strategy, leg_plans
from orders.models import Alert, ExitLeg, Order, position_wire_id
from orders.selectors import position_quantity
from orders.services import breakers, protection_time
from orders.services.alerts import alert_raise, alerts_resolve
from orders.services.audit import audit_record
from orders.services.transitions import leg_transition, order_insert, order_transition
from orders.venue import order_to_ticket, replaced_at_venue

log = logging.getLogger(__name__)

_DEAD_ORDER = (OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


# -- stored with the entry -----------------------------------------------------------------------------

def legs_register(*, entry: Order, request: OrderRequest, broker: Broker) -> list[ExitLeg]:
    """Store the entry's legs (inside the submission's transaction). Returns them."""
    strategy = choose_strategy(broker.capabilities, request, broker)
    now = timezone.now()
    return [ExitLeg.objects.create(
        account_id=entry.account_id, entry=entry, symbol=entry.symbol, role=plan.role, side=plan.side,
        trigger_price=plan.trigger_price, trailing_distance=plan.trailing_distance,
        trailing_type=plan.trailing_type, emulated=plan.emulated, strategy=strategy, created_at=now, updated_at=now,
    ) for plan in leg_plans(request, capabilities=broker.capabilities, strategy=strategy,
                            one_resting_exit=broker.one_resting_exit)]


def held_leg_orders(*, entry: Order, legs: list[ExitLeg], broker: Broker) -> list[Order]:
    """Native bracket: the leg orders sent with the entry, held by the broker until it fills."""
    held = []
    for leg in legs:
        order = _leg_order(entry, leg, quantity=entry.quantity, index=0, broker_name=broker.name)
        order.venue_oco_id = f"bracket-{entry.id}"
        held.append(order_insert(order))
    return held


def _leg_order(entry: Order, leg: ExitLeg, *, quantity: Decimal, index: int, broker_name: str) -> Order:
    is_stop = leg.role == Order.LegRole.STOP_LOSS
    native_trailing = is_stop and leg.trailing_distance is not None and not leg.emulated
    seed = entry.client_order_id or str(entry.id)
    stop_price = None
    if is_stop and not native_trailing:
        stop_price = initial_stop(side=Side(leg.side), trigger_price=leg.trigger_price,
                                  trailing_distance=leg.trailing_distance, trailing_type=leg.trailing_type,
                                  peak=leg.trail_peak or entry.average_fill_price or entry.reserved_price)
    # an engine-watched take-profit is placed only once the quote has reached it: it sells at the market
    watched = not is_stop and leg.emulated
    order_type = (OrderType.TRAILING_STOP if native_trailing else OrderType.STOP if is_stop
                  else OrderType.MARKET if watched else OrderType.LIMIT)
    now = timezone.now()
    return Order(
        # a deterministic id: the broker's client id for the leg is the same however often it is retried
        id=uuid.uuid5(entry.id, f"{leg.role}:{index}"),
        account_id=entry.account_id, symbol=entry.symbol, side=leg.side, order_type=order_type, quantity=quantity,
        stop_price=stop_price, limit_price=None if is_stop or watched else leg.trigger_price,
        trailing_distance=leg.trailing_distance if native_trailing else None,
        trailing_type=leg.trailing_type if native_trailing else None,
        client_order_id=leg_client_order_id(seed=seed, role=leg.role, index=index), reduce_only=True,
        # the position it protects (placing-orders §8.3)
        position_ref=entry.position_ref or position_wire_id(broker_name, entry.symbol),
        parent=entry, leg_role=leg.role, exit_leg=leg, reserved_price=ZERO,
        submitted_by="engine", created_at=now, updated_at=now,
    )


# -- reading a leg's orders ------------------------------------------------------------------------------

def live_orders(leg: ExitLeg) -> list[Order]:
    return list(Order.objects.filter(exit_leg=leg).exclude(status__in=_DEAD_ORDER).order_by("created_at"))


def covered(leg: ExitLeg) -> Decimal:
    return sum((o.quantity for o in live_orders(leg)), start=ZERO)


def as_leg_orders(orders: list[Order]) -> list[LegOrder]:
    return [LegOrder(str(o.id), o.quantity, o.filled_quantity, o.status in WORKING_STATUSES) for o in orders]


def tradeable_quantity(broker: Broker, symbol: str, quantity: Decimal, *, minimum: bool = True) -> Decimal:
    """What of ``quantity`` the venue will trade: rounded down to its quantity step, and (``minimum``) nothing when
    that is below its minimum order. A fee taken in the coin leaves holdings off the step (0.00999 ETH on a 0.0001
    step). An instrument the venue cannot describe now leaves the quantity as it is."""
    try:
        instrument = broker.instrument(symbol)
    except DeskError:
        return quantity
    return leg_quantity(quantity, step=instrument.quantity_step,
                        minimum=instrument.min_quantity if minimum else ZERO)


def is_watched(leg: ExitLeg) -> bool:
    """A take-profit the engine watches on the quote rather than one resting at the venue (``services/watched``)."""
    return leg.emulated and leg.role == Order.LegRole.TAKE_PROFIT


def is_at_broker(order: Order, broker: Broker) -> bool:
    """Whether cancelling must reach the broker: everything but a bracket leg the desk itself still holds
    back for a venue that answers at once (a remote broker's held leg has its own id there)."""
    if broker.answers_at_once:
        return not (order.status == OrderStatus.PENDING and order.exit_leg_id is not None)
    return bool(order.broker_order_id) or order.status != OrderStatus.PENDING


# -- placing ---------------------------------------------------------------------------------------------

def leg_place(entry: Order, leg: ExitLeg, quantity: Decimal, *, broker: Broker) -> Order:
    """A new order for (part of) a leg. A venue that may have taken it before an engine died is asked
    first, so a retry never places it twice."""
    order = order_insert(_leg_order(entry, leg, quantity=quantity, index=Order.objects.filter(exit_leg=leg).count(),
                                    broker_name=broker.name))
    ticket = order_to_ticket(order)
    ack = broker.lookup_order(ticket) or broker.submit_order(ticket)
    order_transition(order, ack.status, step=OrderStep.CREATED, broker_order_id=ack.broker_order_id)
    audit_record(account_id=entry.account_id, actor="engine", action="leg.place", target=str(order.id),
                 role=leg.role, quantity=quantity, strategy=leg.strategy)
    return order


def leg_place_pair(entry: Order, legs: list[ExitLeg], quantity: Decimal, *, broker: Broker) -> None:
    """Native OCO: both legs as one linked pair at the broker."""
    orders = []
    pair = Order.objects.filter(exit_leg=legs[0]).count()          # 0 for the first pair, then 1, 2 …
    for leg in legs:
        order = _leg_order(entry, leg, quantity=quantity, index=Order.objects.filter(exit_leg=leg).count(),
                           broker_name=broker.name)
        order.venue_oco_id = f"oco-{entry.id}" if pair == 0 else f"oco-{entry.id}-{pair + 1}"
        orders.append(order_insert(order))
    acks = broker.submit_oco([order_to_ticket(o) for o in orders])
    for order, ack in zip(orders, acks, strict=True):
        order_transition(order, ack.status, step=OrderStep.CREATED, broker_order_id=ack.broker_order_id)
    audit_record(account_id=entry.account_id, actor="engine", action="leg.place_oco", target=str(entry.id),
                 quantity=quantity)


def leg_try_grow(order: Order, extra: Decimal, *, broker: Broker) -> bool:
    """Grow a resting leg order; False when the broker cannot modify orders (the caller adds one)."""
    try:
        leg_order_resize(order, order.quantity + extra, broker=broker)
    except Unsupported:
        return False
    return True


def leg_order_resize(order: Order, quantity: Decimal, *, broker: Broker) -> None:
    """A leg order grown or shrunk at the broker, then here (a filled one grown works again)."""
    ack = broker.modify_order(order_to_ticket(order), quantity=quantity)
    order.quantity = quantity
    changed = ["quantity"]
    if replaced_at_venue(order, ack):
        order.broker_order_id = ack.broker_order_id        # a venue that replaces on modify (Alpaca): its new id
        changed.append("broker_order_id")
    to = OrderStatus.PARTIALLY_FILLED if order.status == OrderStatus.FILLED else order.status
    order_transition(order, to, step=OrderStep.MODIFIED, changed=changed)


def leg_release_held(entry: Order, leg: ExitLeg, target: Decimal, *, broker: Broker) -> None:
    """Native bracket on a venue that answers at once: the desk releases the legs it held, sized to
    ``target`` (what has filled)."""
    for held in Order.objects.filter(exit_leg=leg, status=OrderStatus.PENDING):
        if target <= 0:
            return
        held.quantity = target
        # live from the entry's fill on: the venue must not match the leg over the seconds it was held
        held.checked_until = entry.checked_until or timezone.now()
        order_transition(held, OrderStatus.OPEN, step=OrderStep.ACCEPTED, changed=("quantity", "checked_until"))


# -- outcomes --------------------------------------------------------------------------------------------

def leg_mark_placed(leg: ExitLeg) -> None:
    """The leg covers what it must: placed (or grown) and acknowledged by the venue, released, or armed. Its
    acknowledgement (``services/protection_time``) is written with the move, or alone when it was PLACED."""
    was_unplaced = leg.status in UNPLACED
    acked = protection_time.ack_fields(leg, now=timezone.now())
    if leg_transition(leg, LegStatus.PLACED, next_attempt_at=None, first_failure_at=None, last_error="", **acked):
        if was_unplaced and not ExitLeg.objects.filter(entry_id=leg.entry_id, status__in=UNPLACED).exists():
            alerts_resolve(account_id=leg.account_id, symbol=leg.symbol, kind=Alert.Kind.POSITION_UNPROTECTED,
                           resolution="protected again: every leg is placed", entry_id=leg.entry_id)
    elif acked and ExitLeg.objects.filter(pk=leg.pk, status=LegStatus.PLACED, acked_at__isnull=True).update(**acked):
        leg.acked_at = acked["acked_at"]          # grown for a later fill: it was PLACED already
    else:
        return
    if acked:
        protection_time.leg_acked(leg)


def leg_placement_failed(leg: ExitLeg, entry: Order, error: str, *, now: datetime, infrastructure: bool = False,
                         breaker_open: bool = False, hopeless: bool = False) -> None:
    """A placement that failed: retried with backoff, reported once it has failed for the retry window. A
    ``hopeless`` one (what is held cannot cover the leg: below the venue's minimum, or refused for balance) is
    reported at once with its reason and looked at again only every ``HOPELESS_RETRY``, not in a loop."""
    log.error("entry %s: %s leg not placed: %s", entry.id, leg.role, error)
    attempts = leg.attempts + 1
    first = leg.first_failure_at or now
    status = LegStatus.FAILED if leg.status == LegStatus.FAILED else LegStatus.RETRYING
    delay = HOPELESS_RETRY if hopeless else retry_delay(attempts)
    leg_transition(leg, status, attempts=attempts, next_attempt_at=now + delay,
                   first_failure_at=first, last_error=error[:255], updated_at=now)
    audit_record(account_id=leg.account_id, actor="engine", action="leg.place", target=str(leg.pk),
                 result="failed", error=error, attempt=attempts)
    if infrastructure:
        breakers.breaker_record_failure(account_id=leg.account_id, name=breakers.EXIT_ORDER, reason=error)
    if hopeless or gives_up(first_failure=first, now=now, breaker_open=breaker_open):
        leg_escalate(leg, entry, breaker_open=breaker_open)


def leg_escalate(leg: ExitLeg, entry: Order, *, breaker_open: bool = False) -> None:
    """The leg is given up on for now (still retried): the position is reported unprotected."""
    leg_transition(leg, LegStatus.FAILED, only_from=(LegStatus.RETRYING,), updated_at=leg.updated_at)
    unplaced = ExitLeg.objects.filter(entry=entry, status__in=UNPLACED)
    failed_exits = [{"type": "StopLoss" if lg.role == Order.LegRole.STOP_LOSS else "TakeProfit",
                     "leg_type": lg.role, "error": lg.last_error, "attempts": lg.attempts,
                     "actual_order_ids": [str(o.id) for o in live_orders(lg)]} for lg in unplaced]
    alert_raise(
        account_id=entry.account_id, kind=Alert.Kind.POSITION_UNPROTECTED, symbol=entry.symbol,
        dedupe_key=f"unprotected:{entry.id}", entry_id=entry.id,
        message=f"Exit order placement failed for {entry.symbol} — position may be unprotected",
        details={"order_id": str(entry.id), "symbol": entry.symbol, "failed_exits": failed_exits,
                 "circuit_breaker_open": breaker_open,
                 "position_quantity": format_decimal(position_quantity(account=entry.account_id,
                                                                       symbol=entry.symbol))})
    # the early warning has become this alarm: one alert on screen for one unprotected position, not two
    alerts_resolve(account_id=entry.account_id, symbol=entry.symbol, kind=Alert.Kind.PROTECTION_SLOW,
                   resolution="superseded by POSITION_UNPROTECTED: its retries are spent", entry_id=entry.id)


def leg_end(leg: ExitLeg, status: LegStatus, reason: str, *, broker: Broker | None) -> bool:
    """Claim the leg's end, then cancel whatever it still has working at the broker."""
    if not leg_transition(leg, status, end_reason=reason, next_attempt_at=None):
        return False
    for order in Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES):
        with transaction.atomic():
            at_broker = broker is not None and is_at_broker(order, broker)
            if not order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED, message=reason):
                continue
            if at_broker:
                try:
                    broker.cancel_order(order_to_ticket(order))
                except DeskError as e:
                    log.error("leg order %s could not be cancelled at the broker: %s", order.id, e.message)
    audit_record(account_id=leg.account_id, actor="engine", action="leg.end", target=str(leg.pk),
                 status=status, reason=reason)
    return True


def legs_end_with_entry(entry: Order, *, broker: Broker | None) -> None:
    """An entry that ended without a fill takes its legs with it."""
    if entry.leg_role is not None or entry.parent_id is not None or entry.filled_quantity != 0:
        return
    reason = "primary_rejected" if entry.status == OrderStatus.REJECTED else "primary_cancelled"
    for leg in ExitLeg.objects.filter(entry=entry, status__in=LIVE_LEG):
        leg_end(leg, LegStatus.CANCELLED, reason, broker=broker)


def leg_cancelled_by_user(order: Order, *, actor: str) -> None:
    """Someone cancelled a leg order on purpose: the leg ends there (no alarm for a deliberate act)."""
    leg = order.exit_leg
    if Order.objects.filter(exit_leg=leg, status__in=WORKING_STATUSES).exists():
        return
    if leg_transition(leg, LegStatus.CANCELLED, end_reason="user_requested"):
        audit_record(account_id=leg.account_id, actor=actor, action="leg.end", target=str(leg.pk),
                     status="CANCELLED", reason="user_requested")
