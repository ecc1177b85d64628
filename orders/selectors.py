"""Reads. Each returns model instances or plain values; the edges turn them into wire shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from orders.domain.enums import TERMINAL_STATUSES, OrderStatus
from orders.domain.errors import OrderNotFound, PositionNotFound
from orders.models import Account, Fill, Order, Position, position_wire_id


@dataclass(frozen=True)
class OrderFilter:
    symbol: str | None = None
    statuses: tuple[OrderStatus, ...] = ()
    side: str | None = None
    client_order_id: str | None = None
    oco_group_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


def _filtered(orders: QuerySet[Order], filters: OrderFilter, *, time_field: str) -> QuerySet[Order]:
    if filters.symbol:
        orders = orders.filter(symbol=filters.symbol)
    if filters.side:
        orders = orders.filter(side=filters.side)
    if filters.client_order_id is not None:
        orders = orders.filter(client_order_id=filters.client_order_id)
    if filters.oco_group_id is not None:
        orders = orders.filter(oco_group_id=filters.oco_group_id)
    if filters.since:
        orders = orders.filter(**{f"{time_field}__gte": filters.since})
    if filters.until:
        orders = orders.filter(**{f"{time_field}__lt": filters.until})
    orders = orders.order_by(f"-{time_field}", "-pk")
    return orders[: filters.limit] if filters.limit is not None else orders


def order_list(*, account: Account, filters: OrderFilter) -> QuerySet[Order]:
    """Every order of the account in any status, newest first (``since``/``until`` on creation)."""
    orders = Order.objects.filter(account=account)
    if filters.statuses:
        orders = orders.filter(status__in=filters.statuses)
    return _filtered(orders, filters, time_field="created_at")


def order_history(*, account: Account, filters: OrderFilter) -> QuerySet[Order]:
    """Finished orders, most recently finished first (``since``/``until`` on the last update)."""
    statuses = tuple(s for s in filters.statuses if s in TERMINAL_STATUSES) if filters.statuses else tuple(
        TERMINAL_STATUSES)
    return _filtered(Order.objects.filter(account=account, status__in=statuses), filters, time_field="updated_at")


def order_get(*, account: Account, order_id: str) -> Order:
    try:
        uuid.UUID(order_id)
    except ValueError:
        raise OrderNotFound(order_id) from None
    order = Order.objects.filter(account=account, pk=order_id).first()
    if order is None:
        raise OrderNotFound(order_id)
    return order


def position_list(*, account: Account, symbol: str | None = None) -> QuerySet[Position]:
    positions = Position.objects.filter(account=account).exclude(quantity=0).select_related("account")
    if symbol:
        positions = positions.filter(symbol=symbol)
    return positions.order_by("symbol")


def position_lookup(*, account: Account, position_id: str) -> Position:
    """An open position by its wire id (``paper-pos-AAPL``) or by its bare symbol."""
    prefix = position_wire_id(account.broker, "")
    symbol = position_id[len(prefix):] if position_id.startswith(prefix) else position_id
    position = Position.objects.filter(account=account, symbol=symbol).exclude(quantity=0).first()
    if position is None:
        raise PositionNotFound(position_id)
    return position


def trade_list(*, account: Account, symbol: str | None = None, order_id: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               limit: int | None = None) -> QuerySet[Fill]:
    fills = Fill.objects.filter(account=account)
    if symbol:
        fills = fills.filter(symbol=symbol)
    if order_id is not None:
        try:
            uuid.UUID(order_id)
        except ValueError:
            return fills.none()
        fills = fills.filter(order_id=order_id)
    if since:
        fills = fills.filter(timestamp__gte=since)
    if until:
        fills = fills.filter(timestamp__lt=until)
    fills = fills.order_by("-timestamp", "-pk")
    return fills[:limit] if limit is not None else fills
