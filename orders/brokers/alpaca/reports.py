"""What happened to working orders, as ExecutionReports: from polled Alpaca orders (``sync``) and from
``trade_updates`` frames (the stream).

Fills. Alpaca keeps an order's cumulative ``filled_qty`` and ``filled_avg_price``. A FILL report is the growth
of that cumulative quantity beyond what the desk has recorded (``WorkingOrder.filled_quantity``), with the id
``f"{alpaca_order_id}:{filled_qty}"`` - the same id whether a poll or the stream saw it first, so the desk's
unique fill id keeps it once. A replaced order continues in a new Alpaca order (``replaced_by``) that starts
from zero, so the fills along a replace chain add up.

What a working order's chain (first Alpaca order ... the live one, following ``replaced_by``) reports, in
this order:

=====================================================  =========================================================
live end of the chain                                  reports
=====================================================  =========================================================
held (a bracket / OTO leg whose entry has not filled)  nothing: the desk keeps the leg PENDING
new, partially_filled, accepted, pending_new,          ACCEPTED with ``extra["broker_order_id"]`` = the chain's
accepted_for_bidding, pending_review, done_for_day,    first id, when the desk may hold the order PENDING (a
stopped, suspended, pending_replace, calculated        released leg; an order whose answer was lost; see
                                                       ``AlpacaBroker.sync``), then its fills
filled                                                 fills (PENDING -> FILLED is legal: a leg released and
                                                       filled between two polls needs no ACCEPTED)
canceled, expired, rejected                            fills, then CANCELLED / EXPIRED / REJECTED
replaced with the replacement nowhere to be found      fills, then CANCELLED (a dead end, never a dead leg)
pending_cancel                                         fills only; the cancel's outcome comes next
=====================================================  =========================================================

A replace (ours, or one made on Alpaca's site) leaves the desk's row on the chain's first id and the live
order at its end, so the desk never holds a leg that stopped working at Alpaca: the replacement's release,
fills and end are reported under the desk's order, and the ACCEPTED report names the live order too
(``extra["alpaca_order_id"]``).

Price of an increment: exact when the desk has recorded nothing of that Alpaca order yet (the average is the
price), or when this process saw the previous (quantity, average) pair:
``(avg * q - prev_avg * prev_q) / (q - prev_q)``. Otherwise (say, after a restart) the order's average is used
and the report carries ``extra["price_estimated"] = True``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from orders.brokers.alpaca.mapping import AlpacaOrder, parse_alpaca_decimal, parse_alpaca_order, parse_alpaca_time
from orders.brokers.types import ExecutionReport, ReportKind, WorkingOrder
from orders.domain.enums import OrderStatus, OrderType
from orders.domain.money import ZERO, format_decimal, quantize_money

log = logging.getLogger(__name__)
# an order Alpaca does not know is reported REJECTED only once it is older than this (its POST may be in flight)
MISSING_GRACE = timedelta(minutes=2)
FillsSeen = Mapping[str, tuple[Decimal, Decimal]]      # alpaca order id -> (filled_qty, filled_avg_price)


def fill_id_of(order: AlpacaOrder) -> str:
    return f"{order.id}:{format_decimal(order.filled_quantity)}"


def parse_alpaca_reports(working: WorkingOrder, chain: Sequence[AlpacaOrder], *, now: datetime,
                         seen: FillsSeen, may_be_pending: bool = False) -> list[ExecutionReport]:
    """Its release (when ``may_be_pending``), fills, trailing-stop state and final outcome of one working order,
    from its replace chain (first Alpaca order ... live one): the table in the module docstring."""
    live = chain[-1]
    accepted = parse_alpaca_accepted(working.order_id, chain, now=now) if may_be_pending else None
    reports = parse_alpaca_fills(working, chain, now=now, seen=seen)
    trail = parse_alpaca_trail(working, live, now=now)
    outcome = parse_alpaca_outcome(working.order_id, live, now=now)
    return [r for r in (accepted,) if r is not None] + reports + [r for r in (trail, outcome) if r is not None]


def is_alpaca_working(order: AlpacaOrder) -> bool:
    """Working at Alpaca: neither held back (``held``), nor finished, nor on its way out (``pending_cancel``)."""
    return order.status != "held" and order.desk_status in (OrderStatus.PENDING, OrderStatus.OPEN,
                                                            OrderStatus.PARTIALLY_FILLED)


def parse_alpaca_accepted(order_id: str, chain: Sequence[AlpacaOrder], *, now: datetime) -> ExecutionReport | None:
    """ACCEPTED when the live end of the chain works at Alpaca: a held leg released, a replacement working,
    an order whose submission answer was lost. The desk moves a PENDING order to OPEN and ignores the rest."""
    first, live = chain[0], chain[-1]
    if not is_alpaca_working(live):
        return None
    extra = {"broker_order_id": first.id, "alpaca_order_id": live.id, "alpaca_status": live.status}
    if live.id != first.id:
        extra["replaced"] = True
    return ExecutionReport(order_id, ReportKind.ACCEPTED, live.updated_at or now, reason="working at Alpaca",
                           extra=extra)


def parse_alpaca_fills(working: WorkingOrder, chain: Sequence[AlpacaOrder], *, now: datetime,
                       seen: FillsSeen) -> list[ExecutionReport]:
    reports, before = [], ZERO
    for order in chain:
        known = min(max(working.filled_quantity - before, ZERO), order.filled_quantity)
        before += order.filled_quantity
        increment = order.filled_quantity - known
        if increment <= 0:
            continue
        price, estimated = _increment_price(order, known, seen)
        if price is None:
            log.warning("alpaca: order %s filled %s without an average price; fill deferred", order.id,
                        format_decimal(order.filled_quantity))
            continue
        extra = {"alpaca_order_id": order.id, "cumulative_quantity": format_decimal(order.filled_quantity)}
        if estimated:
            extra["price_estimated"] = True
        reports.append(ExecutionReport(working.order_id, ReportKind.FILL, order.filled_at or order.updated_at or now,
                                       fill_id=fill_id_of(order), quantity=increment, price=price, extra=extra))
    return reports


def _increment_price(order: AlpacaOrder, known: Decimal, seen: FillsSeen) -> tuple[Decimal | None, bool]:
    average = order.filled_avg_price
    if average is None or average <= 0:
        return None, False
    if known == 0:
        return average, False
    previous = seen.get(order.id)
    if previous is not None and previous[0] == known:
        price = (average * order.filled_quantity - previous[1] * known) / (order.filled_quantity - known)
        if price > 0:
            return quantize_money(price, 10), False
    return average, True


def parse_alpaca_trail(working: WorkingOrder, live: AlpacaOrder, *, now: datetime) -> ExecutionReport | None:
    """A trailing stop's high-water mark (``hwm``) as the desk's trail reference, when it moved."""
    if live.order_type is not OrderType.TRAILING_STOP or live.hwm is None or live.hwm == working.trail_reference:
        return None
    return ExecutionReport(working.order_id, ReportKind.STATE, live.updated_at or now, trail_reference=live.hwm,
                           triggered=working.triggered, checked_until=working.checked_until)


_OUTCOMES = {OrderStatus.CANCELLED: ReportKind.CANCELLED, OrderStatus.EXPIRED: ReportKind.EXPIRED,
             OrderStatus.REJECTED: ReportKind.REJECTED}


def parse_alpaca_outcome(order_id: str, live: AlpacaOrder, *, now: datetime) -> ExecutionReport | None:
    """CANCELLED / EXPIRED / REJECTED when the live end of the chain is finished without a full fill."""
    kind = _OUTCOMES.get(live.desk_status)
    if kind is None:
        return None
    if live.status == "replaced":
        reason, at = "replaced at Alpaca and the replacement was not found", live.updated_at
    elif kind is ReportKind.CANCELLED:
        reason, at = "cancelled at Alpaca", live.canceled_at
    elif kind is ReportKind.EXPIRED:
        reason, at = f"expired at Alpaca ({live.time_in_force} order)", live.expired_at
    else:
        reason, at = "rejected by Alpaca", live.failed_at
    return ExecutionReport(order_id, kind, at or live.updated_at or now, reason=reason,
                           extra={"alpaca_order_id": live.id, "alpaca_status": live.status})


def parse_alpaca_missing(working: WorkingOrder, *, now: datetime) -> list[ExecutionReport]:
    """An order Alpaca has no trace of: its submission never arrived. Exit legs are only ever found through
    their parent, so not finding one proves nothing and reports nothing."""
    if working.venue_oco_id or now - working.created_at < MISSING_GRACE:
        return []
    return [ExecutionReport(working.order_id, ReportKind.REJECTED, now,
                            reason=f"Alpaca has no order with client_order_id {working.order_id}")]


# -- trade_updates ------------------------------------------------------------------------------------
_TRADE_EVENTS = {"fill": ReportKind.FILL, "partial_fill": ReportKind.FILL, "canceled": ReportKind.CANCELLED,
                 "expired": ReportKind.EXPIRED, "rejected": ReportKind.REJECTED}


def parse_alpaca_trade_update(message: dict[str, Any], *,
                              order_id_for: Callable[[AlpacaOrder], str | None] | None = None,
                              ) -> ExecutionReport | None:
    """One ``trade_updates`` frame -> a report, or None for events the desk does not act on (``new``,
    ``accepted``, ``replaced``, ``pending_*``, ``order_*_rejected`` ...). ``order_id_for`` maps an Alpaca order to
    our order id (needed for exit legs and replacements, whose ``client_order_id`` Alpaca generated); by default
    the ``client_order_id`` is our id."""
    if message.get("stream") != "trade_updates":
        return None
    data = message.get("data") or {}
    kind = _TRADE_EVENTS.get(data.get("event"))
    if kind is None or not isinstance(data.get("order"), dict):
        return None
    order = parse_alpaca_order(data["order"])
    order_id = order_id_for(order) if order_id_for is not None else order.client_order_id
    if not order_id:
        return None
    at = parse_alpaca_time(data.get("timestamp")) or order.updated_at or datetime.now(tz=UTC)
    extra = {"alpaca_order_id": order.id, "event": data["event"]}
    if kind is not ReportKind.FILL:
        return ExecutionReport(order_id, kind, at, reason=f"{data['event']} at Alpaca", extra=extra)
    quantity, price = parse_alpaca_decimal(data.get("qty")), parse_alpaca_decimal(data.get("price"))
    if not quantity or not price:
        log.warning("alpaca: %s event for %s without qty/price ignored", data["event"], order.id)
        return None
    extra.update(cumulative_quantity=format_decimal(order.filled_quantity), execution_id=data.get("execution_id"),
                 position_qty=data.get("position_qty"))
    return ExecutionReport(order_id, ReportKind.FILL, at, fill_id=fill_id_of(order), quantity=quantity,
                           price=price, extra=extra)
