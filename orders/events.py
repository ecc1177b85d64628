"""Everything clients are told, in one place: frame builders and the outbox writer.

Each ``record_*`` call writes one ``Event`` row inside the caller's transaction, so an
event exists exactly when the change it reports was committed. The stream relays read
the outbox in id order (``realtime``)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from orders import wire
from orders.metrics import CRITICAL_DROPPED, ORDER_EVENTS, SOCKET_LISTENERS, live_total
from orders.models import Account, Event, Order
from orders.rows import insert_row

ORDER_EVENT_BY_STATUS = {
    "OPEN": "ORDER_CREATED",
    "PENDING": "ORDER_CREATED",
    "PARTIALLY_FILLED": "ORDER_PARTIALLY_FILLED",
    "FILLED": "ORDER_FILLED",
    "CANCELLED": "ORDER_CANCELLED",
    "REJECTED": "ORDER_REJECTED",
    "EXPIRED": "ORDER_EXPIRED",
}


def lock_outbox() -> None:
    """Serialise outbox writers until this transaction ends, so event ids commit in id order: relays
    never skip a late commit, and an account's newest event id is a version of its orders and positions
    (``services/exposure.py``). On PostgreSQL an advisory lock; SQLite has one writer at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(727274)")


def _record(account_id: int, kind: str, frame: dict[str, Any]) -> Event:
    lock_outbox()
    now = timezone.now()
    frame = {"type": kind, **frame, "timestamp": wire.ts(now)}
    return insert_row(Event(account_id=account_id, kind=kind, payload=frame, created_at=now))


# Changes the protocol has no frame for, which only the desk's own socket shows (/v1/ws leaves them out):
# an alert acknowledged or resolved, the trading state set. ``what`` says which part of the page to redraw.
DESK_KIND = "desk"


def record_desk(account_id: int, what: str, **fields: Any) -> Event:
    return _record(account_id, DESK_KIND, {"what": what, **fields})


# the protocol's event_type of gateway_order_events_total for each order event (PROTOCOL.md §12.2)
ORDER_EVENT_TYPES = {"ORDER_CREATED": "created", "ORDER_MODIFIED": "modified", "ORDER_CANCELLED": "cancelled",
                     "ORDER_REJECTED": "rejected", "ORDER_FILLED": "filled",
                     "ORDER_PARTIALLY_FILLED": "partially_filled", "ORDER_EXPIRED": "expired",
                     "BRACKET_ORDER_CREATED": "bracket_created", "BRACKET_ORDER_MODIFIED": "bracket_modified"}
# the alerts the protocol calls critical: one committed with no socket of its account open is counted as dropped
CRITICAL_CODES = frozenset({"POSITION_UNPROTECTED", "OCO_DOUBLE_EXIT"})


def platform_of(account_id: int) -> str:
    """The account's broker, as the protocol's metrics label it (``platform``)."""
    return Account.objects.values_list("broker", flat=True).get(pk=account_id)


def after_commit(count, account_id: int, *, platform: str | None = None) -> None:
    """``count(platform)`` once the caller's transaction commits (never for a change rolled back); a count that
    fails is logged, never the committed change's failure."""
    transaction.on_commit(lambda: count(platform or platform_of(account_id)), robust=True)


def record_order(order, event: str | None = None) -> Event:
    event = event or ORDER_EVENT_BY_STATUS[order.status]
    after_commit(partial(_count_order_event, ORDER_EVENT_TYPES.get(event, event.lower())), order.account_id,
                 platform=order.account.broker if Order.account.is_cached(order) else None)
    body = wire.OrderOut.of(order)       # the same model GET /v1/orders/{id} answers with
    frame = {"event": event, "order": body.to_wire()}
    if body.parent_order_id is not None:
        frame["parent_order_id"] = body.parent_order_id
    return _record(order.account_id, "order", frame)


def record_trade(fill) -> Event:
    return _record(fill.account_id, "trade", {"event": "TRADE_FILLED", "trade": wire.TradeOut.of(fill).to_wire()})


def record_position(account_id: int, event: str, position_body: wire.PositionOut | dict[str, Any]) -> Event:
    if isinstance(position_body, wire.PositionOut):
        position_body = position_body.to_wire()
    return _record(account_id, "position", {"event": event, "position": position_body})


def record_account(account_id: int, figures) -> Event:
    return _record(account_id, "account", {"event": "BALANCE_UPDATED",
                                            "account": wire.AccountOut.of(figures).to_wire()})


def _count_order_event(event_type: str, platform: str) -> None:
    ORDER_EVENTS.inc(platform=platform, event_type=event_type)


def _count_if_unheard(account_id: int, platform: str) -> None:
    if not live_total(SOCKET_LISTENERS, account_id=str(account_id)):
        CRITICAL_DROPPED.inc(platform=platform)


def record_error(account_id: int, code: str, message: str, details: dict[str, Any] | None = None) -> Event:
    if code in CRITICAL_CODES:
        after_commit(partial(_count_if_unheard, account_id), account_id)
    frame: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        frame["details"] = details
    return _record(account_id, "error", frame)


def record_connection(account_id: int, event: str, *, broker: str, error: str | None = None,
                      gap_duration_ms: int | None = None) -> Event:
    frame: dict[str, Any] = {"event": event, "broker": broker}
    if error:
        frame["error"] = error
    if gap_duration_ms is not None:
        frame["gap_duration_ms"] = gap_duration_ms
    return _record(account_id, "connection", frame)


def record_staleness(account_id: int, event: str, *, symbols: list[str], broker: str, stale_since=None) -> Event:
    frame: dict[str, Any] = {"event": event, "symbols": symbols, "broker": broker}
    if stale_since is not None:
        frame["stale_since"] = wire.ts(stale_since)
    return _record(account_id, "data_staleness", frame)


def stream_frame(event_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    """What a stream client receives for an outbox event: its frame, plus the outbox id as the protocol's
    top-level ``event_id`` (PROTOCOL §7.1: a string, which the SDK echoes in ``event_ack``). Ids increase in
    commit order (``lock_outbox``), so a client's last one says where to resume (``realtime/resume.py``)."""
    return {**payload, "event_id": str(event_id)}


def outbox_prune(*, account_ids: list[int], older_than, batch: int = 2000) -> int:
    """Delete the accounts' outbox events written before ``older_than``, oldest first, a batch per
    transaction. Events are only read live (relays) and as the accounts' exposure version, which just
    moves on; the audit trail and the orders themselves are kept. Returns how many were deleted."""
    deleted = 0
    for account_id in account_ids:
        while True:
            rows = list(Event.objects.filter(account_id=account_id).order_by("id")
                        .values_list("id", "created_at")[:batch])
            old = [event_id for event_id, created_at in rows if created_at < older_than]
            if old:
                deleted += Event.objects.filter(account_id=account_id, id__lte=old[-1]).delete()[0]
            if len(old) < batch:
                break
    return deleted
