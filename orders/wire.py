"""The protocol's JSON shapes: one pydantic model per resource, the only definition of what a client receives.

The ``/v1`` views return these models and django-ninja serialises them (``response=`` names the same classes,
so the OpenAPI document describes exactly what is sent); the stream's outbox frames hold the same models
dumped by ``WireModel.to_wire``. ``orders.api.schemas`` re-exports them for the API.

Wire rules, all applied by the ``of`` constructors: decimals leave as plain strings (``format_decimal``: no
exponent, no trailing zeros), timestamps as RFC 3339 UTC with ``Z`` and microseconds (``ts``), and absent
optional fields are ``None`` in the model and omitted from the body (every dump excludes ``None``).

The models hold values already in wire form (enum fields hold the enum: a value outside it raises as the
model is built), so they are built without validation (``WireModel.build``, ``WireModel.from_fields``):
about 1 µs an order, where validating costs 9 and ``model_construct`` 15, which a page of 1,000 orders
would feel. The ``*_out`` functions return a model's body as a dict for callers that want one (the desk's
templates, the stream's market frames, the fill service's position event).

The risk extensions beyond the protocol (trading state, kill switch, alerts) have their shapes here too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, Field, WithJsonSchema

from orders.brokers.types import Bar, Capabilities, ConnectionStatus, Quote
from orders.domain.enums import (
    AssetClass,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    RejectReason,
    Side,
    Timeframe,
    TimeInForce,
    TrailingType,
)
from orders.domain.money import ZERO, format_decimal
from orders.models import TradingState

# A decimal as the protocol sends it: a string in plain notation.
DecimalOut = Annotated[str, WithJsonSchema({"type": "string", "examples": ["150.25"]})]
# A timestamp as the protocol sends it: RFC 3339, UTC, ``Z``, microseconds.
TimeOut = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def dec(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


E = TypeVar("E", bound=StrEnum)


def _members(kind: type[E]) -> dict[Any, E | None]:
    """``kind``'s members by value (a member is its own value), and ``None`` for ``None``: a dict lookup
    costs a tenth of ``kind(value)``, and a value outside the enum is a KeyError."""
    return {None: None, **{member.value: member for member in kind}}


SIDE, ORDER_TYPE, ORDER_STATUS = _members(Side), _members(OrderType), _members(OrderStatus)
TIME_IN_FORCE, TRAILING_TYPE, REJECT_REASON = _members(TimeInForce), _members(TrailingType), _members(RejectReason)
TIMEFRAME = _members(Timeframe)


_set = object.__setattr__


class WireModel(BaseModel):
    """A wire shape. Build it with ``build`` (from its ``of`` constructor), send it from a view, or dump it
    with ``to_wire`` for the stream: both paths give the same JSON."""

    _template: ClassVar[dict[str, Any]] = {}      # every field in declared order, with its default
    _required: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._template = {name: None if field.is_required() else field.default
                         for name, field in cls.model_fields.items()}
        cls._required = frozenset(name for name, field in cls.model_fields.items() if field.is_required())

    @classmethod
    def build(cls, **values: Any) -> Self:
        """The model holding ``values`` (already in wire form) without validating them: what
        ``model_construct`` does, minus its per-field alias handling. Every required field must be given,
        and only known fields; the body keeps the declared field order whatever order they come in."""
        fields = cls._template.copy()
        fields.update(values)
        if len(fields) != len(cls._template) or not cls._required <= values.keys():
            missing = sorted(cls._required - values.keys())
            unknown = sorted(values.keys() - cls._template.keys())
            raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
        return cls.from_fields(fields)

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Self:
        """``build`` for the hot constructors (a page of orders or fills): ``fields`` holds every field, in
        the declared order, which is the body's key order."""
        model = cls.__new__(cls)
        _set(model, "__dict__", fields)
        _set(model, "__pydantic_fields_set__", set(fields))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model

    def to_wire(self) -> dict[str, Any]:
        """The JSON body as a dict, as django-ninja serialises it for a view (absent fields left out, and
        ``serialize_as_any`` as ninja dumps a list)."""
        return self.model_dump(mode="json", exclude_none=True, serialize_as_any=True)


class ErrorOut(WireModel):
    # every failure: the /v1 error envelope (orders.api.errors)
    code: str = Field(description="INVALID_REQUEST, VALIDATION_ERROR, ORDER_NOT_FOUND, INSUFFICIENT_BALANCE, "
                                  "STALE_QUOTE (422: the quote an order is priced from is too old), RATE_LIMITED (429: "
                                  "the key's or the account's order rate; Retry-After says when), …")
    message: str
    details: Any | None = None


# -- orders ------------------------------------------------------------------------------------------------

class OrderOut(WireModel):
    id: str
    client_order_id: str | None = None
    symbol: str
    side: Side
    order_type: OrderType
    quantity: DecimalOut
    filled_quantity: DecimalOut
    remaining_quantity: DecimalOut
    limit_price: DecimalOut | None = None
    stop_price: DecimalOut | None = None
    stop_loss: DecimalOut | None = None
    take_profit: DecimalOut | None = None
    trailing_distance: DecimalOut | None = None
    trailing_type: TrailingType | None = None
    average_fill_price: DecimalOut | None = None
    status: OrderStatus
    reject_reason: RejectReason | None = None
    position_id: str | None = None
    parent_order_id: str | None = None
    reduce_only: bool | None = None
    post_only: bool | None = None
    hidden: bool | None = None
    display_quantity: DecimalOut | None = None
    oco_group_id: str | None = None
    time_in_force: TimeInForce
    correlation_id: str | None = None
    created_at: TimeOut
    updated_at: TimeOut

    @classmethod
    def of(cls, order) -> OrderOut:
        return cls.from_fields({
            "id": str(order.id),
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": SIDE[order.side],
            "order_type": ORDER_TYPE[order.order_type],
            "quantity": format_decimal(order.quantity),
            "filled_quantity": format_decimal(order.filled_quantity),
            "remaining_quantity": format_decimal(order.quantity - order.filled_quantity),
            "limit_price": dec(order.limit_price),
            "stop_price": dec(order.stop_price),
            "stop_loss": dec(order.stop_loss),
            "take_profit": dec(order.take_profit),
            "trailing_distance": dec(order.trailing_distance),
            "trailing_type": TRAILING_TYPE[order.trailing_type],
            "average_fill_price": dec(order.average_fill_price),
            "status": ORDER_STATUS[order.status],
            "reject_reason": REJECT_REASON[order.reject_reason],
            "position_id": order.position_ref,
            "parent_order_id": str(order.parent_id) if order.parent_id else None,
            "reduce_only": order.reduce_only,
            "post_only": order.post_only,
            "hidden": order.hidden,
            "display_quantity": dec(order.display_quantity),
            "oco_group_id": order.oco_group_id,
            "time_in_force": TIME_IN_FORCE[order.time_in_force],
            "correlation_id": str(order.correlation_id) if order.correlation_id else None,
            "created_at": ts(order.created_at),
            "updated_at": ts(order.updated_at),
        })


class OrderHandleOut(WireModel):
    id: str
    client_order_id: str | None = None
    correlation_id: str | None = None
    status: OrderStatus

    @classmethod
    def of(cls, order) -> OrderHandleOut:
        return cls.build(id=str(order.id), client_order_id=order.client_order_id,
                         correlation_id=str(order.correlation_id) if order.correlation_id else None,
                         status=ORDER_STATUS[order.status])


class ModifyOrderOut(WireModel):
    order: OrderOut
    previous_order_id: str | None = None

    @classmethod
    def of(cls, order) -> ModifyOrderOut:
        return cls.build(order=OrderOut.of(order))


class CancelOrderOut(WireModel):
    success: bool
    order: OrderOut

    @classmethod
    def of(cls, order) -> CancelOrderOut:
        return cls.build(success=True, order=OrderOut.of(order))


class CancelAllOut(WireModel):
    cancelled_count: int
    failed_count: int
    failed_order_ids: list[str] | None = None

    @classmethod
    def of(cls, *, cancelled: list, failed: list[str]) -> CancelAllOut:
        """``failed_order_ids`` only when something could not be cancelled."""
        return cls.build(cancelled_count=len(cancelled), failed_count=len(failed), failed_order_ids=failed or None)


# -- positions and trades ----------------------------------------------------------------------------------

class PositionOut(WireModel):
    id: str
    symbol: str
    side: PositionSide
    quantity: DecimalOut
    average_entry_price: DecimalOut
    current_price: DecimalOut
    unrealized_pnl: DecimalOut
    realized_pnl: DecimalOut
    opened_at: TimeOut
    updated_at: TimeOut

    @classmethod
    def of(cls, position, *, mark: Decimal | None, position_id: str) -> PositionOut:
        """The netted position marked at ``mark`` (its average price when there is none); the quantity is
        unsigned, the side says which way."""
        price = mark if mark is not None else position.average_price
        qty = position.quantity
        return cls.from_fields({
            "id": position_id,
            "symbol": position.symbol,
            "side": PositionSide.LONG if qty >= ZERO else PositionSide.SHORT,
            "quantity": format_decimal(abs(qty)),
            "average_entry_price": format_decimal(position.average_price),
            "current_price": format_decimal(price),
            "unrealized_pnl": format_decimal((price - position.average_price) * qty),
            "realized_pnl": format_decimal(position.realized_pnl),
            "opened_at": ts(position.opened_at),
            "updated_at": ts(position.updated_at),
        })


class ExitLegPlacementOut(WireModel):
    order_ids: list[str]
    trigger_price: DecimalOut


class ModifyPositionExitsOut(WireModel):
    position_id: str
    stop_loss: ExitLegPlacementOut | None = None
    take_profit: ExitLegPlacementOut | None = None

    @classmethod
    def of(cls, position_id: str, moved: dict[str, tuple[list[str], Decimal]]) -> ModifyPositionExitsOut:
        """``moved`` maps ``stop_loss`` / ``take_profit`` to the leg orders moved and their new trigger."""
        return cls.build(position_id=position_id, **{
            role: ExitLegPlacementOut.build(order_ids=order_ids, trigger_price=format_decimal(price))
            for role, (order_ids, price) in moved.items()})


class TradeOut(WireModel):
    id: str
    order_id: str
    symbol: str
    side: Side
    quantity: DecimalOut
    price: DecimalOut
    commission: DecimalOut
    commission_currency: str
    is_maker: bool | None = None
    timestamp: TimeOut

    @classmethod
    def of(cls, fill) -> TradeOut:
        return cls.from_fields({
            "id": str(fill.id),
            "order_id": str(fill.order_id),
            "symbol": fill.symbol,
            "side": SIDE[fill.side],
            "quantity": format_decimal(fill.quantity),
            "price": format_decimal(fill.price),
            "commission": format_decimal(fill.commission),
            "commission_currency": fill.commission_currency,
            "is_maker": fill.is_maker,
            "timestamp": ts(fill.timestamp),
        })


# -- account and market data -------------------------------------------------------------------------------

class AccountOut(WireModel):
    balance: DecimalOut
    equity: DecimalOut
    margin_used: DecimalOut
    margin_available: DecimalOut
    unrealized_pnl: DecimalOut
    currency: str

    @classmethod
    def of(cls, figures) -> AccountOut:
        return cls.from_fields({
            "balance": format_decimal(figures.balance),
            "equity": format_decimal(figures.equity),
            "margin_used": format_decimal(figures.margin_used),
            "margin_available": format_decimal(figures.margin_available),
            "unrealized_pnl": format_decimal(figures.unrealized_pnl),
            "currency": figures.currency,
        })


class QuoteOut(WireModel):
    symbol: str
    provider: str
    bid: DecimalOut
    ask: DecimalOut
    last: DecimalOut
    bid_size: DecimalOut | None = None
    ask_size: DecimalOut | None = None
    volume: DecimalOut | None = None
    timestamp: TimeOut

    @classmethod
    def of(cls, quote: Quote) -> QuoteOut:
        return cls.from_fields({
            "symbol": quote.symbol,
            "provider": quote.provider,
            "bid": format_decimal(quote.bid),
            "ask": format_decimal(quote.ask),
            "last": format_decimal(quote.last),
            "bid_size": dec(quote.bid_size),
            "ask_size": dec(quote.ask_size),
            "volume": dec(quote.volume),
            "timestamp": ts(quote.timestamp),
        })


class BarOut(WireModel):
    symbol: str
    provider: str
    timeframe: Timeframe
    timestamp: TimeOut
    open: DecimalOut
    high: DecimalOut
    low: DecimalOut
    close: DecimalOut
    volume: DecimalOut

    @classmethod
    def of(cls, bar: Bar) -> BarOut:
        return cls.from_fields({
            "symbol": bar.symbol,
            "provider": bar.provider,
            "timeframe": TIMEFRAME[bar.timeframe],
            "timestamp": ts(bar.timestamp),
            "open": format_decimal(bar.open),
            "high": format_decimal(bar.high),
            "low": format_decimal(bar.low),
            "close": format_decimal(bar.close),
            "volume": format_decimal(bar.volume),
        })


# -- the venue and the desk --------------------------------------------------------------------------------

class RateLimitsOut(WireModel):
    requests_per_minute: int | None = None
    orders_per_second: int | None = None
    orders_per_day: int | None = None


class CapabilitiesOut(WireModel):
    supported_asset_classes: list[AssetClass]
    supported_order_types: list[OrderType]
    position_mode: PositionMode
    features: list[str]
    max_leverage: DecimalOut | None = None
    rate_limits: RateLimitsOut | None = None

    @classmethod
    def of(cls, caps: Capabilities) -> CapabilitiesOut:
        limits = caps.rate_limits
        return cls.build(
            supported_asset_classes=[AssetClass(a) for a in caps.supported_asset_classes],
            supported_order_types=[OrderType(t) for t in caps.supported_order_types],
            position_mode=PositionMode(caps.position_mode),
            features=list(caps.features),
            max_leverage=dec(caps.max_leverage),
            rate_limits=RateLimitsOut.build(**{k: v for k, v in limits.items() if k in RateLimitsOut.model_fields})
            if limits else None,
        )


class ConnectionStatusOut(WireModel):
    connected: bool
    latency_ms: int
    last_heartbeat: TimeOut

    @classmethod
    def of(cls, status: ConnectionStatus) -> ConnectionStatusOut:
        return cls.build(connected=status.connected, latency_ms=status.latency_ms,
                         last_heartbeat=ts(status.last_heartbeat))


class BreakerOut(WireModel):
    state: str
    failure_count: int


class CircuitBreakersOut(WireModel):
    adapter: BreakerOut
    exit_order: BreakerOut

    @classmethod
    def of(cls, snapshot: dict[str, dict[str, Any]]) -> CircuitBreakersOut:
        """From ``services.breakers``' snapshot: ``{name: {state, failure_count}}`` for both breakers."""
        return cls.build(**{name: BreakerOut.build(**snapshot[name]) for name in ("adapter", "exit_order")})


# -- the probes (plain Django views outside /v1: orders.api.health) ------------------------------------------

class HealthStatusOut(WireModel):
    status: str


class ReadyStatusOut(WireModel):
    ready: bool
    providers: list[str]
    provider_count: int
    message: str | None = None


class ProviderHealthOut(WireModel):
    platform: str
    connected: bool


class DetailedHealthStatusOut(WireModel):
    status: str
    version: str
    git_sha: str
    providers: list[ProviderHealthOut]


# -- bodies as dicts, for callers outside the API ----------------------------------------------------------

def order_out(order) -> dict[str, Any]:
    return OrderOut.of(order).to_wire()


def order_handle_out(order) -> dict[str, Any]:
    return OrderHandleOut.of(order).to_wire()


def position_out(position, *, mark: Decimal | None, position_id: str) -> dict[str, Any]:
    return PositionOut.of(position, mark=mark, position_id=position_id).to_wire()


def trade_out(fill) -> dict[str, Any]:
    return TradeOut.of(fill).to_wire()


def account_out(figures) -> dict[str, Any]:
    return AccountOut.of(figures).to_wire()


def quote_out(quote: Quote) -> dict[str, Any]:
    return QuoteOut.of(quote).to_wire()


def bar_out(bar: Bar) -> dict[str, Any]:
    return BarOut.of(bar).to_wire()


# -- the risk extensions (beyond the gateway protocol) -------------------------------------------------------

class TradingStateOut(WireModel):
    account: str
    trading_state: TradingState

    @classmethod
    def of(cls, account) -> TradingStateOut:
        return cls.build(account=account.name, trading_state=TradingState(account.trading_state))


class ApprovalOut(WireModel):
    """A change that waits for a second person's approval (``services/approvals.py``): what ``PUT
    /v1/trading-state`` answers (202) when it would leave HALTED."""
    id: str
    account: str
    kind: str
    status: str
    requested_by: str
    requested_at: TimeOut
    expires_at: TimeOut
    reason: str
    payload: dict
    message: str

    @classmethod
    def of(cls, approval, *, account_name: str) -> ApprovalOut:
        return cls.build(id=str(approval.pk), account=account_name, kind=str(approval.kind),
                         status=str(approval.status), requested_by=approval.requested_by,
                         requested_at=ts(approval.requested_at), expires_at=ts(approval.expires_at),
                         reason=approval.reason, payload=approval.payload,
                         message="waiting for a second person with the risk role to approve it on the risk view")


class KillSwitchOut(WireModel):
    account: str
    trading_state: TradingState
    cancelled_order_ids: list[str]          # the body's order (the document listed cancelled_count first)
    cancelled_count: int
    kept_order_ids: list[str]
    closing_order_ids: list[str]
    failures: list[dict]

    @classmethod
    def of(cls, receipt) -> KillSwitchOut:
        return cls.build(account=receipt.account, trading_state=TradingState(receipt.trading_state),
                         cancelled_order_ids=receipt.cancelled_order_ids,
                         cancelled_count=len(receipt.cancelled_order_ids), kept_order_ids=receipt.kept_order_ids,
                         closing_order_ids=receipt.closing_order_ids, failures=receipt.failures)


class AlertOut(WireModel):
    id: str
    kind: str
    status: str
    symbol: str
    message: str
    details: dict
    raised_at: TimeOut
    escalated_at: TimeOut | None = None
    acknowledged_by: str | None = None
    acknowledged_at: TimeOut | None = None
    comment: str | None = None
    resolved_at: TimeOut | None = None
    resolution: str | None = None

    @classmethod
    def of(cls, alert) -> AlertOut:
        acknowledged, resolved = alert.acknowledged_at is not None, alert.resolved_at is not None
        return cls.build(
            id=str(alert.id), kind=str(alert.kind), status=str(alert.status), symbol=alert.symbol,
            message=alert.message, details=alert.details, raised_at=ts(alert.raised_at),
            escalated_at=ts(alert.escalated_at) if alert.escalated_at else None,
            acknowledged_by=alert.acknowledged_by if acknowledged else None,
            acknowledged_at=ts(alert.acknowledged_at) if acknowledged else None,
            comment=alert.ack_comment if acknowledged else None,
            resolved_at=ts(alert.resolved_at) if resolved else None,
            resolution=alert.resolution if resolved else None)
