"""Exit management for entries with stop_loss / take_profit (the pending SL/TP strategy):

* an entry fill places (or grows) its SL leg (STOP) and TP leg (LIMIT), opposite side,
  reduce-only, sized to what has filled;
* a leg that fills completely cancels its sibling (OCO emulation);
* a position that goes flat cancels every working leg on that symbol;
* orders sharing a user ``oco_group_id`` cancel each other when one fills.

A leg that cannot be placed leaves the position unprotected: that raises a
``POSITION_UNPROTECTED`` error event at once.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, Side
from orders.domain.errors import DeskError
from orders.domain.orders import OrderRequest
from orders.exits.rules import leg_client_order_id, leg_shortfall
from orders.models import Fill, Order, Position

log = logging.getLogger(__name__)
_LEG_ROLES = (Order.LegRole.STOP_LOSS, Order.LegRole.TAKE_PROFIT)


def on_fill(order: Order, fill: Fill, *, broker: Broker) -> None:
    if order.leg_role in _LEG_ROLES and order.status == OrderStatus.FILLED:
        _cancel_siblings(order, broker=broker, reason="sibling leg filled")
    if order.oco_group_id and order.status == OrderStatus.FILLED:
        _cancel_oco_group(order, broker=broker)
    if order.parent_id is None and order.leg_role is None and (order.stop_loss or order.take_profit):
        _place_legs(order, broker=broker)
    if _position_is_flat(order):
        _cancel_symbol_legs(order, broker=broker, reason="position closed")


def on_order_finished(order: Order) -> None:
    """An order ended without (fully) filling; legs of an entry that never filled have nothing to protect."""
    if order.parent_id is None and order.filled_quantity == 0:
        for leg in Order.objects.filter(parent=order, status__in=WORKING_STATUSES):
            _cancel_leg(leg, broker=None, reason="entry ended without a fill")


def _position_is_flat(order: Order) -> bool:
    qty = Position.objects.filter(account_id=order.account_id, symbol=order.symbol).values_list(
        "quantity", flat=True).first()
    return not qty


def _place_legs(entry: Order, *, broker: Broker) -> None:
    failures = []
    for role, price in ((Order.LegRole.STOP_LOSS, entry.stop_loss), (Order.LegRole.TAKE_PROFIT, entry.take_profit)):
        if price is None:
            continue
        try:
            _ensure_leg(entry, role=role, price=price, broker=broker)
        except DeskError as e:
            log.error("entry %s: %s leg could not be placed: %s", entry.id, role, e.message)
            failures.append({"type": "StopLoss" if role == Order.LegRole.STOP_LOSS else "TakeProfit",
                             "leg_type": str(role), "error": e.message, "actual_order_ids": []})
    if failures:
        events.record_error(entry.account_id, "POSITION_UNPROTECTED",
                            f"Exit order placement failed for {entry.symbol} — position may be unprotected",
                            {"order_id": str(entry.id), "symbol": entry.symbol, "failed_exits": failures,
                             "circuit_breaker_open": False})


def _ensure_leg(entry: Order, *, role: str, price, broker: Broker) -> None:
    from orders.services.orders import OrderChanges, order_modify, order_submit

    legs = list(Order.objects.filter(parent=entry, leg_role=role).exclude(
        status__in=(OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED)))
    covered = sum((leg.quantity for leg in legs), start=entry.filled_quantity * 0)
    shortfall = leg_shortfall(entry_filled=entry.filled_quantity, covered=covered)
    if shortfall <= 0:
        return
    working = [leg for leg in legs if leg.status in WORKING_STATUSES]
    if working:
        leg = working[0]
        order_modify(account=entry.account, order_id=str(leg.id),
                     changes=OrderChanges(quantity=leg.quantity + shortfall), broker=broker)
        return
    seed = entry.client_order_id or str(entry.id)
    is_stop = role == Order.LegRole.STOP_LOSS
    request = OrderRequest(
        symbol=entry.symbol, side=Side(entry.side).opposite, quantity=shortfall,
        order_type=OrderType.STOP if is_stop else OrderType.LIMIT,
        stop_price=price if is_stop else None, limit_price=None if is_stop else price,
        client_order_id=leg_client_order_id(seed=seed, role=role, index=len(legs)),
        reduce_only=True, position_id=entry.position_ref)
    order_submit(account=entry.account, request=request, broker=broker, actor="engine", parent=entry,
                 leg_role=role)


def _cancel_siblings(leg: Order, *, broker: Broker, reason: str) -> None:
    siblings = Order.objects.filter(parent_id=leg.parent_id, status__in=WORKING_STATUSES).exclude(pk=leg.pk)
    for sibling in siblings:
        _cancel_leg(sibling, broker=broker, reason=reason)


def _cancel_oco_group(order: Order, *, broker: Broker) -> None:
    others = Order.objects.filter(account_id=order.account_id, oco_group_id=order.oco_group_id,
                                  status__in=WORKING_STATUSES).exclude(pk=order.pk)
    for other in others:
        _cancel_leg(other, broker=broker, reason=f"OCO group {order.oco_group_id}: order {order.id} filled")


def _cancel_symbol_legs(order: Order, *, broker: Broker, reason: str) -> None:
    legs = Order.objects.filter(account_id=order.account_id, symbol=order.symbol, leg_role__in=_LEG_ROLES,
                                status__in=WORKING_STATUSES)
    for leg in legs:
        _cancel_leg(leg, broker=broker, reason=reason)


def _cancel_leg(leg: Order, *, broker: Broker | None, reason: str) -> None:
    from orders.services.orders import ticket_for

    with transaction.atomic():
        claimed = Order.objects.filter(pk=leg.pk, status__in=WORKING_STATUSES).update(
            status=OrderStatus.CANCELLED, status_message=reason[:255], updated_at=timezone.now())
        if not claimed:
            return
        if broker is not None:
            try:
                broker.cancel_order(ticket_for(leg))
            except DeskError as e:
                log.error("leg %s could not be cancelled at the broker: %s", leg.id, e.message)
        leg.refresh_from_db()
        events.record_order(leg)
