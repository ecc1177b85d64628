"""Apply what the venue reports: fills (idempotent), cancels, expiries and venue-side state.

A fill is recorded at most once (unique broker fill id), never beyond the order's
quantity, and moves order, position, cash and the outbox together in one transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders import events, wire
from orders.brokers.base import Broker
from orders.brokers.types import ExecutionReport, ReportKind
from orders.domain.enums import TERMINAL_STATUSES, OrderStatus, Side
from orders.domain.errors import DeskError
from orders.domain.lifecycle import OrderStep
from orders.domain.money import quantize_money
from orders.domain.positions import Netting, apply_fill, fee_in_kind
from orders.models import Account, Fill, Order, Position, position_wire_id
from orders.rows import update_rows
from orders.services import protection
from orders.services.accounts import account_snapshot
from orders.services.transitions import order_transition

log = logging.getLogger(__name__)

_TERMINAL_BY_KIND = {ReportKind.CANCELLED: OrderStatus.CANCELLED, ReportKind.EXPIRED: OrderStatus.EXPIRED,
                     ReportKind.REJECTED: OrderStatus.REJECTED}


# what a venue-state report was computed from: an order's prices when the engine read it
Basis = tuple[Decimal | None, Decimal | None, Decimal | None]   # stop_price, limit_price, trailing_distance
BASIS_FIELDS = ("stop_price", "limit_price", "trailing_distance")


def reports_apply(*, reports: Iterable[ExecutionReport], broker: Broker, basis: dict[str, Basis] | None = None) -> int:
    """Apply reports in order; returns how many changed anything. Venue-side state (how far the matcher has
    looked, a trailing stop's reference) comes last in each order's run, tells no one anything and can be
    written together: all of a batch's STATE reports go in one transaction, after the rest, rather than one
    write transaction per working order per tick. ``basis`` (order id → its prices when the engine read it)
    keeps a state computed from old prices off an order modified meanwhile (a moved stop is untriggered)."""
    changed, states = 0, []
    for report in reports:
        if report.kind is ReportKind.STATE:
            states.append(report)
            continue
        try:
            changed += report_apply(report=report, broker=broker)
        except Exception:
            log.exception("could not apply %s report for order %s", report.kind, report.order_id)
    if states:
        try:
            changed += _apply_states(states, basis=basis or {})
        except Exception:
            log.exception("could not apply %d state reports", len(states))
    return changed


def _apply_states(reports: list[ExecutionReport], *, basis: dict[str, Basis]) -> int:
    latest: dict[uuid.UUID, ExecutionReport] = {}
    for report in reports:
        try:
            latest[uuid.UUID(str(report.order_id))] = report
        except ValueError:
            log.warning("state report for unknown order %s ignored", report.order_id)
    guarded, free = [], []
    for order_id, r in latest.items():
        row = (order_id, r.trail_reference, bool(r.triggered), r.checked_until)
        known = basis.get(str(order_id))
        if known is None:
            free.append(row)
        else:
            guarded.append((*row, *known))
    names, unless = ("trail_reference", "triggered", "checked_until"), ("status", tuple(TERMINAL_STATUSES))
    with transaction.atomic():
        return (update_rows(Order, names, guarded, unless=unless, still=BASIS_FIELDS)
                + update_rows(Order, names, free, unless=unless))


def report_apply(*, report: ExecutionReport, broker: Broker) -> bool:
    if report.kind is ReportKind.STATE:
        return bool(_apply_states([report], basis={}))
    with transaction.atomic():
        order = Order.objects.select_for_update().select_related("account").filter(pk=report.order_id).first()
        if order is None:
            log.warning("report for unknown order %s ignored", report.order_id)
            return False
        if report.kind is ReportKind.FILL:
            return _apply_fill(order, report, broker)
        if report.kind is ReportKind.ACCEPTED:
            return _apply_accepted(order, report)
        return _apply_terminal(order, report, broker)


def _apply_accepted(order: Order, report: ExecutionReport) -> bool:
    """A submission whose answer was lost turned out to be working at the venue."""
    if order.status != OrderStatus.PENDING:
        return False
    broker_order_id = report.extra.get("broker_order_id", order.broker_order_id) or order.broker_order_id
    return order_transition(order, OrderStatus.OPEN, step=OrderStep.ACCEPTED, broker_order_id=broker_order_id)


def _apply_terminal(order: Order, report: ExecutionReport, broker: Broker) -> bool:
    if order.is_terminal:
        return False
    status = _TERMINAL_BY_KIND[report.kind]
    if status is OrderStatus.REJECTED and order.filled_quantity > 0:
        status = OrderStatus.CANCELLED       # what traded stands: the rest of a part-filled order was cancelled
    refused = {"reject_reason": "UNKNOWN"} if status is OrderStatus.REJECTED else {}
    if not order_transition(order, status, step=OrderStep.ENDED, message=report.reason or "", **refused):
        return False
    protection.on_order_finished(order, broker=broker)
    return True


def _apply_fill(order: Order, report: ExecutionReport, broker: Broker) -> bool:
    if order.status in (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.FILLED) or (
            order.status == OrderStatus.CANCELLED and report.timestamp > order.updated_at):
        # a fill the venue made before our cancel reached it is real and is recorded below
        log.info("fill %s for finished order %s ignored", report.fill_id, order.id)
        return False
    if Fill.objects.filter(account_id=order.account_id, broker_fill_id=report.fill_id).exists():
        return False
    if order.filled_quantity + report.quantity > order.quantity:
        log.warning("fill %s would overfill order %s; ignored", report.fill_id, order.id)
        return False
    fill = Fill.objects.create(
        account_id=order.account_id, order=order, broker_fill_id=report.fill_id, symbol=order.symbol,
        side=order.side, quantity=report.quantity, price=report.price, commission=report.commission,
        commission_currency=report.commission_currency, is_maker=report.is_maker, timestamp=report.timestamp)
    _update_cash(order, report)
    position_event = _update_position(order, report, broker)
    _update_order(order, report)
    events.record_trade(fill)
    if position_event:
        events.record_position(order.account_id, *position_event)
    if not broker.venue_ledger:          # a real venue's figures are pushed as the engine reads them from it
        account = Account.objects.get(pk=order.account_id)
        events.record_account(account.pk, account_snapshot(account=account, broker=broker, now=report.timestamp))
    protection.on_fill(order, fill, broker=broker)
    return True


def _update_order(order: Order, report: ExecutionReport) -> None:
    filled = order.filled_quantity + report.quantity
    previous = (order.average_fill_price or 0) * order.filled_quantity
    order.average_fill_price = quantize_money((previous + report.price * report.quantity) / filled, 10)
    order.filled_quantity = filled
    if filled == order.quantity:
        status = OrderStatus.FILLED
    elif order.status == OrderStatus.CANCELLED:     # a late fill of a cancelled order: it stays cancelled
        status = OrderStatus.CANCELLED
    else:
        status = OrderStatus.PARTIALLY_FILLED
    if report.checked_until is not None:
        order.checked_until = report.checked_until
    if report.trail_reference is not None:
        order.trail_reference = report.trail_reference
    order.triggered = bool(report.triggered) or order.triggered
    order_transition(order, status, step=OrderStep.FILLED, changed=(
        "filled_quantity", "average_fill_price", "checked_until", "trail_reference", "triggered"))


_CASH_LIKE = frozenset({"USD", "USDT", "USDC"})


def _update_cash(order: Order, report: ExecutionReport) -> None:
    """Cash moves by the fill's value, and by its fee when the fee is paid in cash; a fee taken in another
    asset (BNB, BTC) is on the fill record but does not touch the cash balance."""
    fee = report.commission if report.commission_currency.upper() in _CASH_LIKE else 0
    flow = report.quantity * report.price * Side(order.side).sign + fee
    Account.objects.filter(pk=order.account_id).update(cash=F("cash") - flow)


def _fee_in_traded_asset(symbol: str, report: ExecutionReport, broker: Broker) -> Decimal:
    """The part of the fill's commission the venue took in the traded asset itself (so less of it is held)."""
    if not report.commission or report.commission_currency.upper() in _CASH_LIKE:
        return Decimal(0)
    try:
        base = broker.instrument(symbol).base_asset
    except DeskError:
        return Decimal(0)
    return report.commission if report.commission_currency.upper() == base.upper() else Decimal(0)


def _update_position(order: Order, report: ExecutionReport, broker: Broker) -> tuple[str, dict] | None:
    now = timezone.now()
    position, _ = Position.objects.select_for_update().get_or_create(
        account_id=order.account_id, symbol=order.symbol, defaults={"opened_at": now, "updated_at": now})
    before = Netting(position.quantity, position.average_price, position.realized_pnl)
    after = apply_fill(before, side=Side(order.side), quantity=report.quantity, price=report.price)
    after = fee_in_kind(after, fee=_fee_in_traded_asset(order.symbol, report, broker))
    if before.quantity == 0 or (before.quantity > 0) != (after.quantity > 0) and after.quantity != 0:
        position.opened_at = now
    position.quantity, position.average_price = after.quantity, quantize_money(after.average_price, 10)
    position.realized_pnl, position.updated_at = after.realized_pnl, now
    position.save()
    event = ("POSITION_OPENED" if before.quantity == 0 else
             "POSITION_CLOSED" if after.quantity == 0 else "POSITION_MODIFIED")
    body = wire.position_out(position, mark=report.price,
                             position_id=position_wire_id(broker.name, order.symbol))
    return event, body
