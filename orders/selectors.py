"""Reads. Each returns model instances or plain values; the edges turn them into wire shapes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from django.db.models import Model, Q, QuerySet

from orders.domain.enums import TERMINAL_STATUSES, WORKING_STATUSES, OrderStatus
from orders.domain.errors import InvalidValue, OrderNotFound, PositionNotFound
from orders.domain.lifecycle import UNPLACED
from orders.domain.paging import DEFAULT_PAGE, decode_cursor, encode_cursor, page_size
from orders.models import Account, Alert, Event, ExitLeg, Fill, Order, Position, VenueState, position_wire_id


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
    cursor: str | None = None


RowT = TypeVar("RowT", bound=Model)


@dataclass(frozen=True)
class Page(Generic[RowT]):
    """One page of a list, newest first; ``next_cursor`` is set when more rows follow."""
    rows: list[RowT]
    next_cursor: str | None


def _page(rows: QuerySet[RowT], *, time_field: str, limit: int | None, cursor: str | None) -> Page[RowT]:
    """Rows ordered newest first by ``time_field`` then id, starting after ``cursor``; at most one page.
    One row more than the page is read, to know whether another page follows."""
    if cursor:
        at, key = decode_cursor(cursor)
        try:
            key = uuid.UUID(key)
        except ValueError:
            raise InvalidValue("cursor", "not a cursor this server gave out", provided=cursor[:100]) from None
        rows = rows.filter(Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "pk__lt": key}))
    size = page_size(limit)
    if size == 0:
        return Page([], None)
    found = list(rows.order_by(f"-{time_field}", "-pk")[: size + 1])
    if len(found) <= size:
        return Page(found, None)
    last = found[size - 1]
    return Page(found[:size], encode_cursor(getattr(last, time_field), str(last.pk)))


def _filtered(orders: QuerySet[Order], filters: OrderFilter, *, time_field: str) -> Page[Order]:
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
    return _page(orders, time_field=time_field, limit=filters.limit, cursor=filters.cursor)


def order_list(*, account: Account, filters: OrderFilter) -> Page[Order]:
    """The account's orders in any status, newest first (``since``/``until`` on creation), one page."""
    orders = Order.objects.filter(account=account)
    if filters.statuses:
        orders = orders.filter(status__in=filters.statuses)
    return _filtered(orders, filters, time_field="created_at")


def order_history(*, account: Account, filters: OrderFilter) -> Page[Order]:
    """Finished orders, most recently finished first (``since``/``until`` on the last update), one page."""
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
               limit: int | None = None, cursor: str | None = None) -> Page[Fill]:
    """The account's fills, newest first, one page."""
    fills = Fill.objects.filter(account=account)
    if symbol:
        fills = fills.filter(symbol=symbol)
    if order_id is not None:
        try:
            uuid.UUID(order_id)
        except ValueError:
            return Page([], None)
        fills = fills.filter(order_id=order_id)
    if since:
        fills = fills.filter(timestamp__gte=since)
    if until:
        fills = fills.filter(timestamp__lt=until)
    return _page(fills, time_field="timestamp", limit=limit, cursor=cursor)


def live_alerts(*, account_id: int, kinds: frozenset[str] | None = None) -> list[Alert]:
    """The account's open and acknowledged alerts (of ``kinds`` when given), newest first: at most a page of
    them, open ones before any acknowledged, for the desk, the risk view and the stream's replay on connect
    alike (an alert storm must not stall a page or a socket)."""
    live = Alert.objects.filter(account_id=account_id, status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED))
    if kinds is not None:
        live = live.filter(kind__in=kinds)
    # unacknowledged first ("ACKNOWLEDGED" < "OPEN", hence descending): an old alert nobody answered is never
    # pushed out of the page by newer ones somebody already has
    chosen = list(live.order_by("-status", "-raised_at")[:DEFAULT_PAGE])
    return sorted(chosen, key=lambda alert: alert.raised_at, reverse=True)


def position_quantity(*, account: Account | int, symbol: str) -> Decimal:
    """The signed quantity held of ``symbol`` (0 when flat). ``account`` may be the account or its id."""
    account_id = account if isinstance(account, int) else account.pk
    qty = Position.objects.filter(account_id=account_id, symbol=symbol).values_list("quantity", flat=True).first()
    return qty or Decimal("0")


# -- what the desk and the risk view show (first paint and every push read the same) --------------------

WORKING_ROWS = 500
FINISHED_ROWS = 50
FILL_WINDOWS = (200, 2000)       # the desk's newest fills searched for an account's newest


def desk_orders(account: Account) -> tuple[list[Order], list[Order]]:
    """The account's working orders (up to ``WORKING_ROWS``), newest first, and the ``FINISHED_ROWS`` that
    finished last, most recently finished first (their last update is when they ended)."""
    # the working orders by the (account, status) index, then sorted: ordered in SQL, SQLite walks the
    # account's whole history along (account, created_at) looking for them
    working_ids = Order.objects.filter(account=account, status__in=WORKING_STATUSES).values("pk")
    working = Order.objects.filter(pk__in=working_ids).order_by("-created_at")[:WORKING_ROWS]
    # along the (account, -updated_at) index, skipping the few working orders on the way
    finished = (Order.objects.filter(account=account).exclude(status__in=WORKING_STATUSES)
                .order_by("-updated_at")[:FINISHED_ROWS])
    return list(working), list(finished)


def latest_fills(account: Account, count: int, *, symbol: str | None = None) -> list[Fill]:
    """The account's newest fills, without sorting its whole history (there is no (account, timestamp)
    index): the desk's newest fills, read along the timestamp index, hold them unless other accounts (or
    symbols) traded far more lately — only then are all the account's fills sorted."""
    for size in FILL_WINDOWS:
        window = list(Fill.objects.order_by("-timestamp").values_list("pk", "account_id", "symbol")[:size])
        ids = [pk for pk, owner, sym in window if owner == account.pk and symbol in (None, sym)][:count]
        if len(ids) == count or len(window) < size:
            return list(Fill.objects.filter(pk__in=ids).order_by("-timestamp"))
    mine = Fill.objects.filter(account=account, **({"symbol": symbol} if symbol else {}))
    return list(mine.order_by("-timestamp")[:count])


def open_positions(account: Account) -> list[Position]:
    return list(Position.objects.filter(account=account).exclude(quantity=0).order_by("symbol"))


def traded_symbols(account: Account) -> list[str]:
    """The symbols the account holds or has an order working in."""
    held = Position.objects.filter(account=account).exclude(quantity=0).values_list("symbol", flat=True)
    # the working orders by the (account, status) index, as in desk_orders: asked for directly, SQLite walks the
    # account's whole history along (account, created_at) (175 ms for 100,000 orders, on every desk page)
    working_ids = Order.objects.filter(account=account, status__in=WORKING_STATUSES).values("pk")
    working = Order.objects.filter(pk__in=working_ids).order_by().values_list("symbol", flat=True)
    return sorted(set(held) | set(working))


def venue_state(account: Account) -> VenueState | None:
    """What a real venue last said of the account (figures, reconciliation, dead man's switch), if anything."""
    return VenueState.objects.filter(account=account).first()


def alert_history(account: Account, count: int = 100) -> list[Alert]:
    return list(Alert.objects.filter(account=account).order_by("-raised_at")[:count])


def account_fresh(account: Account) -> Account:
    """The account row as the database has it now (fresh cash, whoever holds the object)."""
    return Account.objects.get(pk=account.pk)


def alerts_listed(*, account: Account, status: str | None = None, count: int = 500) -> list[Alert]:
    """``GET /v1/alerts``: the account's alerts, live ones first (OPEN, then ACKNOWLEDGED …), newest first."""
    alerts = Alert.objects.filter(account=account)
    if status:
        alerts = alerts.filter(status=status.upper())
    return list(alerts.order_by("status", "-raised_at")[:count])


def alert_exists(*, account: Account, alert_id: str) -> bool:
    try:
        return Alert.objects.filter(pk=uuid.UUID(alert_id), account=account).exists()
    except ValueError:
        return False


def outbox_after(*, account_id: int, after_id: int, up_to_id: int, limit: int,
                 skip_kind: str) -> list[tuple[int, dict]]:
    """The account's outbox events after ``after_id`` up to ``up_to_id``, oldest first, at most ``limit``,
    without those of ``skip_kind``: (id, frame) pairs (index event_account_id)."""
    return list(Event.objects.filter(account_id=account_id, id__gt=after_id, id__lte=up_to_id)
                .exclude(kind=skip_kind).order_by("id").values_list("id", "payload")[:limit])


def outbox_reaches_back_to(*, account_id: int, event_id: int) -> bool:
    """Whether the account's outbox still holds an event at or before ``event_id``: the engine prunes an
    account's oldest events first (``events.outbox_prune``), so then nothing after ``event_id`` is gone."""
    return Event.objects.filter(account_id=account_id, id__lte=event_id).exists()


def unplaced_legs(*, entry_ids: list) -> list[ExitLeg]:
    """The exit legs of these entries that are not placed (retrying, or given up on and reported)."""
    return list(ExitLeg.objects.filter(entry_id__in=entry_ids, status__in=UNPLACED).order_by("role"))
