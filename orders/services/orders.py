"""Order use cases: submit, cancel, cancel all, modify. Keyword-only, one transaction each."""

from __future__ import annotations

import copy
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, Side
from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    InvalidValue,
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from orders.domain.lifecycle import OrderStep
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest, check_exit_prices, validate_order_request
from orders.domain.positions import exposure_increase
from orders.exits.strategy import choose_strategy
from orders.models import Account, ApprovalRequest, Order, TradingState
from orders.rows import read_row
from orders.services import breakers, legs
from orders.services.accounts import account_context
from orders.services.audit import audit_record
from orders.services.exposure import Exposure, exposure_current, exposure_remember_order
from orders.services.limits import limits_enforce, limits_enforce_change
from orders.services.staleness import stale_quote_enforce
from orders.services.throttle import throttle_enforce
from orders.services.transitions import order_announce, order_insert, order_transition
from orders.venue import order_to_ticket, replaced_at_venue
from orders.writelock import serialised_writes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    created: bool


def order_submit(*, account: Account, request: OrderRequest, broker: Broker, actor: str = "",
                 now: datetime | None = None, parent: Order | None = None, leg_role: str | None = None,
                 override_reason: str = "", approval: ApprovalRequest | None = None) -> SubmitResult:
    """Check, record and send one order. An identical retry of a ``client_order_id`` returns the
    order already recorded; a different order under the same ``client_order_id`` is refused.
    ``override_reason``: a person's typed reason to send an entry past a stale quote (audited).
    ``approval``: the second person's approval of an entry above the account's approval notional."""
    validate_order_request(request)
    if request.client_order_id:
        existing = Order.objects.filter(account=account, client_order_id=request.client_order_id).first()
        if existing is not None:
            return SubmitResult(_replay(existing, request), created=False)
    now = now or timezone.now()
    is_entry = parent is None and leg_role is None
    if is_entry:
        breakers.breaker_guard_entry(account=account)
    nested = transaction.get_connection().in_atomic_block
    try:
        with serialised_writes(), transaction.atomic():
            order, book = _checked_order(account=account, request=request, broker=broker, actor=actor, now=now,
                                         parent=parent, leg_role=leg_role, override_reason=override_reason,
                                         approved=approval is not None)
            sends_alone = broker.answers_at_once and not (is_entry and request.has_exits and choose_strategy(
                broker.capabilities, request, broker) == "native_bracket")
            # a venue that answers at once is sent the order here: it is recorded as acknowledged
            ack = broker.submit_order(order_to_ticket(order)) if sends_alone else None
            with transaction.atomic(savepoint=nested):
                order_insert(order, ack=ack)
            entry_legs = legs.legs_register(entry=order, request=request, broker=broker) if is_entry else []
            if sends_alone:
                event = order_announce(order)
                if not entry_legs:        # the order's event is the only one since the book's version
                    exposure_remember_order(book, order, event_id=event.id)
            elif broker.answers_at_once:
                _send_bracket_locally(order, broker, entry_legs=entry_legs)
            audit_record(account_id=account.pk, actor=actor, action="order.submit", target=str(order.id),
                         symbol=order.symbol, side=order.side, order_type=order.order_type,
                         quantity=order.quantity, client_order_id=order.client_order_id)
    except IntegrityError:
        existing = Order.objects.filter(account=account, client_order_id=request.client_order_id).first()
        if existing is None:
            raise
        return SubmitResult(_replay(existing, request), created=False)
    except (ProviderUnavailable, ProviderError) as e:
        breakers.breaker_record_failure(account_id=account.pk, name=breakers.ADAPTER, reason=e.message)
        raise
    if not broker.answers_at_once:
        _send_remote(order, broker, entry_legs=entry_legs)
    return SubmitResult(order, created=True)


def _replay(existing: Order, request: OrderRequest) -> Order:
    if existing.request_fingerprint != request.fingerprint():
        raise OrderRejected("ORDER_REJECTED",
                            f"Order rejected: client_order_id {request.client_order_id!r} is already used by "
                            f"order {existing.id} with different parameters",
                            reject_code="DUPLICATE_CLIENT_ORDER_ID", client_order_id=request.client_order_id,
                            existing_order_id=str(existing.id))
    if existing.status == OrderStatus.REJECTED:
        raise OrderRejected(existing.reject_reason or "UNKNOWN", existing.status_message or "Order rejected",
                            order_id=str(existing.id), replayed=True)
    return existing


def _check_trading_state(account: Account, request: OrderRequest, position_quantity: Decimal) -> None:
    if account.trading_state == TradingState.HALTED:
        raise OrderRejected("ORDER_REJECTED", f"Order rejected: trading on account {account.name} is halted",
                            reject_code="TRADING_HALTED", trading_state=account.trading_state)
    if account.trading_state == TradingState.REDUCING and exposure_increase(
            position_quantity, side=request.side, quantity=request.quantity) > 0:
        raise OrderRejected("ORDER_REJECTED",
                            f"Order rejected: account {account.name} may only reduce its positions",
                            reject_code="TRADING_REDUCING", trading_state=account.trading_state)


def _checked_order(*, account: Account, request: OrderRequest, broker: Broker, actor: str, now: datetime,
                   parent: Order | None, leg_role: str | None, override_reason: str = "",
                   approved: bool = False) -> tuple[Order, Exposure]:
    """The order, checked against the account and the venue's rules, not yet saved, and the account's
    exposure it was checked against."""
    account = _locked(account)
    book = exposure_current(account.pk)
    context = account_context(account=account, symbol=request.symbol, broker=broker, now=now, book=book,
                              side=request.side, quantity=request.quantity)
    if parent is None and leg_role != Order.LegRole.CLOSE:
        _check_trading_state(account, request, context.position_quantity)
    stale = None
    if parent is None and leg_role is None and not _only_reduces(request, context.position_quantity):
        throttle_enforce(account_id=account.pk, now=now)        # under the account's row lock: counted in turn
        stale = stale_quote_enforce(account_id=account.pk, request=request, broker=broker, now=now,
                                    override_reason=override_reason)
    reference = broker.check_order(request, context=context, now=now)
    if parent is None and leg_role is None:
        limits_enforce(account_id=account.pk, request=request, reference=reference, broker=broker, now=now,
                       approved=approved)
    if parent is None and request.order_type in (OrderType.MARKET, OrderType.TRAILING_STOP):
        check_exit_prices(request, reference_price=reference)
    order = Order(
        account=account, symbol=request.symbol, side=request.side, order_type=request.order_type,
        quantity=request.quantity, limit_price=request.limit_price, stop_price=request.stop_price,
        trailing_distance=request.trailing_distance, trailing_type=request.trailing_type,
        stop_loss=request.stop_loss, take_profit=request.take_profit, time_in_force=request.time_in_force,
        client_order_id=request.client_order_id, request_fingerprint=request.fingerprint(),
        correlation_id=uuid.uuid4() if parent is None else None, oco_group_id=request.oco_group_id,
        position_ref=request.position_id, reduce_only=request.reduce_only, post_only=request.post_only,
        hidden=request.hidden, display_quantity=request.display_quantity, reserved_price=reference,
        parent=parent, leg_role=leg_role, submitted_by=actor[:Order._meta.get_field("submitted_by").max_length],
        created_at=now, updated_at=now,
    )
    if stale is not None:                     # written with the order: rolled back with it if it is not placed
        audit_record(account_id=account.pk, actor=actor, action="order.override", target=str(order.id),
                     reason=stale.reason, check="STALE_QUOTE", quote_age_seconds=format_decimal(stale.age),
                     max_quote_age_seconds=format_decimal(stale.limit), symbol=request.symbol)
    return order, book


def _only_reduces(request: OrderRequest, position_quantity: Decimal) -> bool:
    """A reduce-only order, or one that only brings the position towards flat: never throttled, never held
    back by a stale quote (a guard must not trap a position)."""
    return request.reduce_only or exposure_increase(position_quantity, side=request.side,
                                                    quantity=request.quantity) <= 0


def _locked(account: Account) -> Account:
    """``account`` with its cash and trading state read afresh under its row lock, held until the
    transaction ends (the caller's copy, from the API key cache, is left as it was)."""
    row = read_row(Account, account.pk, ("cash", "trading_state"), for_update=True)
    if row is None:
        raise Account.DoesNotExist(f"account {account.pk} no longer exists")
    locked = copy.copy(account)
    locked.cash, locked.trading_state = row
    return locked


def _send_bracket_locally(order: Order, broker: Broker, *, entry_legs: list) -> None:
    """A native bracket on a local venue, sent inside the recording transaction: the entry and its held
    legs go as one unit, and a refusal rolls all of them back."""
    held = legs.held_leg_orders(entry=order, legs=entry_legs, broker=broker)
    _record_acks(order, held, broker.submit_bracket(order_to_ticket(order), [order_to_ticket(o) for o in held]))


def _record_acks(order: Order, held: list[Order], acks: list) -> None:
    """What the venue answered, onto the order and its held legs, each with its event."""
    for record, ack in zip([order, *held], acks, strict=False):   # a leg left unanswered stays PENDING
        if not order_transition(record, ack.status, step=OrderStep.CREATED if record is order else OrderStep.HELD,
                                broker_order_id=ack.broker_order_id):
            _caught_up(record, broker_order_id=ack.broker_order_id)


def _caught_up(order: Order, *, broker_order_id: str) -> None:
    """A remote venue's report (applied by the engine) moved the order on before its submission's answer was
    recorded: keep the venue's id if nothing recorded one, and answer with the order as it now stands."""
    Order.objects.filter(pk=order.pk, broker_order_id="").update(broker_order_id=broker_order_id or "")
    order.refresh_from_db()


def _send_remote(order: Order, broker: Broker, *, entry_legs: list) -> None:
    """Send after the order is recorded (remote venues), then record what the venue said. A native
    bracket goes with its legs, recorded first as held orders so nothing the broker creates is unknown."""
    held = []
    try:
        if entry_legs and entry_legs[0].strategy == "native_bracket":
            with transaction.atomic():
                held = legs.held_leg_orders(entry=order, legs=entry_legs, broker=broker)
            acks = broker.submit_bracket(order_to_ticket(order), [order_to_ticket(o) for o in held])
        else:
            acks = [broker.submit_order(order_to_ticket(order))]
    except (OrderRejected, RateLimited) as e:
        # a rate limit is a definite "not accepted": the order must not wait for reconciliation
        rejection = e if isinstance(e, OrderRejected) else OrderRejected("RATE_LIMITED", e.message)
        for record in (order, *held):
            _mark_rejected(record, rejection)
        raise
    except DeskError:
        # unknown outcome: the engine reconciles PENDING orders with the broker by their client id
        log.warning("order %s: broker did not confirm the submission; left PENDING for reconciliation", order.id)
        raise
    with transaction.atomic():
        _record_acks(order, held, acks)


def _mark_rejected(order: Order, error: OrderRejected) -> None:
    with transaction.atomic():
        if not order_transition(order, OrderStatus.REJECTED, step=OrderStep.ENDED, message=error.message,
                                reject_reason=_reject_reason(error.reason)):
            order.refresh_from_db()


def _reject_reason(reason: str) -> str:
    known = {"INSUFFICIENT_MARGIN", "INSUFFICIENT_BALANCE", "INVALID_QUANTITY", "INVALID_PRICE",
             "SYMBOL_NOT_TRADEABLE", "MARKET_CLOSED", "REDUCE_ONLY_VIOLATED", "POST_ONLY_VIOLATED", "RATE_LIMITED"}
    return reason if reason in known else "UNKNOWN"


def order_get_for_update(*, account: Account, order_id: str) -> Order:
    try:
        uuid.UUID(order_id)
    except ValueError:
        raise OrderNotFound(order_id) from None
    order = Order.objects.select_for_update().filter(account=account, pk=order_id).first()
    if order is None:
        raise OrderNotFound(order_id)
    return order


def order_cancel(*, account: Account, order_id: str, broker: Broker, reason: str = "cancelled by request",
                 actor: str = "") -> Order:
    with serialised_writes(), transaction.atomic():
        order = order_get_for_update(account=account, order_id=order_id)
        if order.status == OrderStatus.CANCELLED:
            return order
        if order.is_terminal:
            raise OrderNotModifiable(str(order.id), f"order is {order.status} and cannot be cancelled")
        if legs.is_at_broker(order, broker):
            broker.cancel_order(order_to_ticket(order))
        _finish(order, OrderStatus.CANCELLED, reason, broker=broker)
        if order.exit_leg_id is not None:
            legs.leg_cancelled_by_user(order, actor=actor)
        audit_record(account_id=account.pk, actor=actor, action="order.cancel", target=str(order.id), reason=reason)
    return order


def _finish(order: Order, status: OrderStatus, message: str, *, broker: Broker, changed: tuple[str, ...] = (),
            step: OrderStep = OrderStep.ENDED) -> None:
    """The order ends here (on request): an entry that never filled takes its legs with it."""
    order_transition(order, status, step=step, changed=changed, message=message)
    legs.legs_end_with_entry(order, broker=broker)


@dataclass(frozen=True)
class CancelAllResult:
    cancelled: list[str]
    failed: list[str]


def orders_cancel_all(*, account: Account, broker: Broker, symbol: str | None = None,
                      actor: str = "") -> CancelAllResult:
    # newest first, ties (the legs of one entry, written in one instant) by client id, so that every run
    # cancels, and pushes, in the same order
    working = (Order.objects.filter(account=account, status__in=WORKING_STATUSES)
               .order_by("-created_at", "client_order_id", "id"))
    if symbol:
        working = working.filter(symbol=symbol)
    cancelled, failed = [], []
    for order_id in working.values_list("id", flat=True):
        try:
            order_cancel(account=account, order_id=str(order_id), broker=broker, actor=actor)
            cancelled.append(str(order_id))
        except DeskError as e:
            log.warning("cancel-all: order %s not cancelled: %s", order_id, e.message)
            failed.append(str(order_id))
    return CancelAllResult(cancelled, failed)


@dataclass(frozen=True)
class OrderChanges:
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None

    def is_empty(self) -> bool:
        return all(v is None for v in (self.quantity, self.limit_price, self.stop_price, self.stop_loss,
                                       self.take_profit, self.trailing_distance))


_CHANGEABLE = {
    "limit_price": {OrderType.LIMIT, OrderType.STOP_LIMIT},
    "stop_price": {OrderType.STOP, OrderType.STOP_LIMIT},
    "trailing_distance": {OrderType.TRAILING_STOP},
}


def order_modify(*, account: Account, order_id: str, changes: OrderChanges, broker: Broker,
                 actor: str = "") -> Order:
    if changes.is_empty():
        raise InvalidRequest("at least one of quantity, limit_price, stop_price, stop_loss, take_profit or "
                             "trailing_distance is required")
    with serialised_writes(), transaction.atomic():
        order = order_get_for_update(account=account, order_id=order_id)
        if order.is_terminal:
            raise OrderNotModifiable(str(order.id), f"order is {order.status}")
        _check_changes(order, changes)
        _check_limits_of_change(order, changes, broker=broker)
        _check_funding_of_increase(order, changes, broker=broker)
        ack = broker.modify_order(order_to_ticket(order), quantity=changes.quantity,
                                  limit_price=changes.limit_price, stop_price=changes.stop_price,
                                  trailing_distance=changes.trailing_distance)
        fields = []
        if replaced_at_venue(order, ack):
            order.broker_order_id = ack.broker_order_id       # a venue that replaces on modify (Alpaca): its new id
            fields.append("broker_order_id")
        for name in ("quantity", "limit_price", "stop_price", "stop_loss", "take_profit", "trailing_distance"):
            value = getattr(changes, name)
            if value is not None:
                setattr(order, name, value)
                fields.append(name)
        if changes.stop_price is not None:
            order.triggered = False
            fields.append("triggered")
        audit_record(account_id=account.pk, actor=actor, action="order.modify", target=str(order.id),
                     **{name: getattr(changes, name) for name in fields if name not in ("triggered",
                                                                                         "broker_order_id")})
        if order.quantity == order.filled_quantity:
            _finish(order, OrderStatus.FILLED, "quantity reduced to the filled quantity", broker=broker,
                    changed=tuple(fields), step=OrderStep.MODIFIED)
            return order
        order_transition(order, order.status, step=OrderStep.MODIFIED, changed=fields)
    return order


def _check_limits_of_change(order: Order, changes: OrderChanges, *, broker: Broker) -> None:
    """An entry made bigger or priced again meets the account's hard limits and approval notional again: a modify
    must not carry an order past what a new one could be (exit legs and reducing orders never are held back)."""
    if order.parent_id is not None or order.exit_leg_id is not None or order.reduce_only:
        return
    if changes.quantity is None and changes.limit_price is None and changes.stop_price is None:
        return
    before = _as_request(order)
    after = replace(before, quantity=changes.quantity or order.quantity,
                    limit_price=changes.limit_price or order.limit_price,
                    stop_price=changes.stop_price or order.stop_price)
    limits_enforce_change(account_id=order.account_id, before=before, after=after, broker=broker,
                          now=timezone.now())


def _as_request(order: Order) -> OrderRequest:
    return OrderRequest(symbol=order.symbol, side=Side(order.side), quantity=order.quantity,
                        order_type=OrderType(order.order_type), limit_price=order.limit_price,
                        stop_price=order.stop_price, trailing_distance=order.trailing_distance,
                        trailing_type=order.trailing_type)


def _check_funding_of_increase(order: Order, changes: OrderChanges, *, broker: Broker) -> None:
    """A bigger order needs the buying power for the extra quantity, checked as a new order would be."""
    if changes.quantity is None or changes.quantity <= order.quantity or order.reduce_only:
        return
    extra = OrderRequest(symbol=order.symbol, side=Side(order.side), quantity=changes.quantity - order.quantity,
                         order_type=OrderType(order.order_type),
                         limit_price=changes.limit_price or order.limit_price,
                         stop_price=changes.stop_price or order.stop_price,
                         trailing_distance=changes.trailing_distance or order.trailing_distance,
                         trailing_type=order.trailing_type)
    now = timezone.now()
    broker.check_order(extra, context=account_context(account=order.account, symbol=order.symbol, broker=broker,
                                                      now=now), now=now)


def _check_changes(order: Order, changes: OrderChanges) -> None:
    kind = OrderType(order.order_type)
    for name, kinds in _CHANGEABLE.items():
        value = getattr(changes, name)
        if value is None:
            continue
        if kind not in kinds:
            raise InvalidValue(name, f"{kind} orders have no {name}", provided=value)
        if value <= 0:
            raise InvalidValue(name, "must be positive", provided=value)
    if changes.quantity is not None:
        if changes.quantity <= 0:
            raise InvalidValue("quantity", "must be positive", provided=changes.quantity)
        if changes.quantity < order.filled_quantity:
            raise InvalidValue("quantity", f"must be at least the filled quantity "
                               f"{format_decimal(order.filled_quantity)}", provided=changes.quantity)
    for name in ("stop_loss", "take_profit"):
        value = getattr(changes, name)
        if value is not None and value <= 0:
            raise InvalidValue(name, "must be positive", provided=value)
