"""Position use cases: close one (all or part), close all."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, RejectReason, Side
from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    InvalidValue,
    OrderNotModifiable,
    OrderRejected,
    PositionNotFound,
    ValidationFailed,
    field_error,
)
from orders.domain.lifecycle import LegStatus, OrderStep
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest
from orders.models import Account, ExitLeg, Order, Position
from orders.selectors import position_lookup
from orders.services.audit import audit_record
from orders.services.fills import reports_apply
from orders.services.legs import tradeable_quantity
from orders.services.orders import OrderChanges, order_modify, order_submit
from orders.services.protection import protect
from orders.services.transitions import leg_transition, order_transition
from orders.venue import order_to_ticket, order_to_working

CLOSE_GRACE = timedelta(seconds=30)      # how long a close has to fill before freed exits are placed again


def position_close(*, account: Account, position_id: str, broker: Broker, quantity: Decimal | None = None,
                   order_type: OrderType = OrderType.MARKET, limit_price: Decimal | None = None,
                   actor: str = "", now: datetime | None = None) -> Order:
    """Send a reduce-only order against the position; a venue that answers at once matches it at once."""
    position = position_lookup(account=account, position_id=position_id)
    held = abs(position.quantity)
    if quantity is not None and quantity <= 0:
        raise InvalidValue("quantity", "must be positive", provided=quantity)
    if order_type not in (OrderType.MARKET, OrderType.LIMIT):
        raise InvalidValue("order_type", "a position is closed with a MARKET or LIMIT order", provided=order_type)
    if order_type is OrderType.LIMIT and limit_price is None:
        raise InvalidRequest("Limit orders require limit_price", field="limit_price")
    if order_type is OrderType.MARKET and limit_price is not None:
        raise InvalidValue("limit_price", "Market orders should not have limit_price", provided=limit_price)
    side = Side.SELL if position.quantity > 0 else Side.BUY
    closing = list(Order.objects.filter(account=account, symbol=position.symbol, leg_role=Order.LegRole.CLOSE,
                                        status__in=WORKING_STATUSES).order_by("-created_at"))
    in_flight = sum((o.quantity - o.filled_quantity for o in closing), start=Decimal("0"))
    available = held - in_flight
    if available <= 0:
        # a retried close (the SDK retries DELETE) must not close the position twice and flip it
        return closing[0]
    if quantity is None:
        available = _sellable(broker, position.symbol, available)
    request = OrderRequest(symbol=position.symbol, side=side, quantity=min(quantity or available, available),
                           order_type=order_type, limit_price=limit_price, reduce_only=True,
                           position_id=position_id)
    freed = _free_balance(account, position.symbol, side, broker=broker) if broker.one_resting_exit else []
    try:
        order = order_submit(account=account, request=request, broker=broker, actor=actor, now=now,
                             leg_role=Order.LegRole.CLOSE).order
    except DeskError:
        for entry in {leg.entry for leg in freed}:
            protect(entry=entry, broker=broker)          # the close was refused: the exits go back at once
        raise
    for leg in freed:
        # placed again for what is still held once the close has had time to fill (a flat position ends them)
        leg_transition(leg, LegStatus.RETRYING, only_from=(LegStatus.PLACED,), next_attempt_at=timezone.now()
                       + CLOSE_GRACE, last_error="cancelled to free the balance for a close")
    if broker.answers_at_once:
        match_now(order=order, broker=broker, now=now)
        order.refresh_from_db()
    return order


def _free_balance(account: Account, symbol: str, side: Side, *, broker: Broker) -> list[ExitLeg]:
    """On a venue where a resting exit holds the balance (spot: a stop, or an OCO pair), the exits resting on
    the close's side are cancelled first, or the venue would refuse the close for insufficient funds. Returns
    the legs whose orders were cancelled."""
    freed: dict[str, ExitLeg] = {}
    for order in Order.objects.filter(account=account, symbol=symbol, side=side, exit_leg__isnull=False,
                                      status__in=(OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
                                      ).select_related("exit_leg__entry"):
        try:
            broker.cancel_order(order_to_ticket(order))
        except DeskError:
            for leg in freed.values():
                protect(entry=leg.entry, broker=broker)     # the close is not sent: what was freed goes back
            raise
        order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED,
                         message="cancelled to free the balance for a close")
        freed[str(order.exit_leg_id)] = order.exit_leg
    return list(freed.values())


def _sellable(broker: Broker, symbol: str, held: Decimal) -> Decimal:
    """What of ``held`` the venue will trade: rounded down to its quantity step. A fee taken in the coin can leave
    a holding off the step (0.014985 BTC on a 0.00001 step): the close sells 0.01498 and the dust stays."""
    sellable = tradeable_quantity(broker, symbol, held)
    if sellable <= 0:
        instrument = broker.instrument(symbol)
        raise OrderRejected(RejectReason.INVALID_QUANTITY,
                            f"The {format_decimal(held)} {symbol} held is below the venue's minimum order "
                            f"{format_decimal(instrument.min_quantity)}: it cannot be sold",
                            quantity=format_decimal(held), min_quantity=format_decimal(instrument.min_quantity))
    return sellable


def positions_close_all(*, account: Account, broker: Broker, symbol: str | None = None,
                        actor: str = "") -> list[Order]:
    positions = Position.objects.filter(account=account).exclude(quantity=0)
    if symbol:
        positions = positions.filter(symbol=symbol)
    closed = []
    for position in positions:
        try:
            _sellable(broker, position.symbol, abs(position.quantity))
        except OrderRejected:
            continue            # dust below the venue's minimum cannot be sold: closing everything else goes on
        try:
            closed.append(position_close(account=account, position_id=position.symbol, broker=broker, actor=actor))
        except PositionNotFound:
            continue
    return closed


def match_now(*, order: Order, broker: Broker, now: datetime | None = None) -> None:
    """Let a venue that answers at once match one order immediately instead of at the engine's next tick."""
    reports = broker.sync([order_to_working(order)], now=now or timezone.now())
    reports_apply(reports=reports, broker=broker)


def position_move_exits(*, account: Account, position_id: str, broker: Broker, stop_loss: Decimal | None,
                        take_profit: Decimal | None, actor: str = "") -> dict[str, tuple[list[str], Decimal]]:
    """Move the resting stop-loss and/or take-profit legs protecting a position, SL first.
    Returns, per moved leg, the order ids now holding it and the new trigger price."""
    if stop_loss is None and take_profit is None:
        raise ValidationFailed({"__all__": [field_error("at least one of stop_loss or take_profit is required")]})
    position = position_lookup(account=account, position_id=position_id)
    moved: dict[str, tuple[list[str], Decimal]] = {}
    for role, price in ((Order.LegRole.STOP_LOSS, stop_loss), (Order.LegRole.TAKE_PROFIT, take_profit)):
        if price is None:
            continue
        # only legs protecting the position: not those an unfilled entry's bracket still holds
        legs = list(Order.objects.filter(account=account, symbol=position.symbol, leg_role=role,
                                         status__in=WORKING_STATUSES).exclude(exit_leg__status=LegStatus.PENDING))
        if not legs:
            raise OrderNotModifiable(position_id, f"position {position_id} has no resting {role} leg")
        field = "stop_price" if role == Order.LegRole.STOP_LOSS else "limit_price"
        for leg in legs:
            order_modify(account=account, order_id=str(leg.id), changes=OrderChanges(**{field: price}),
                         broker=broker, actor=actor)
            if leg.exit_leg_id:
                ExitLeg.objects.filter(pk=leg.exit_leg_id).update(trigger_price=price)
        audit_record(account_id=account.pk, actor=actor, action="position.move_exit", target=position.symbol,
                     role=role, price=price)
        moved[str(role)] = ([str(leg.id) for leg in legs], price)
    return moved
