"""The /v1 wire shapes as ninja schemas: ``In`` schemas parse requests, ``Out`` schemas document
responses (the bodies themselves are built by ``orders.wire``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from orders.domain.enums import (
    AssetClass,
    MarginMode,
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
from orders.domain.money import to_decimal
from orders.domain.paging import DEFAULT_PAGE, MAX_PAGE

# No price or quantity comes near 10^15, and the database cannot hold much more (max_digits=28 with
# 10 places; SQLite keeps 15 significant digits): larger input is refused here rather than
# overflowing Decimal arithmetic or the column further in.
MAX_DECIMAL_IN = Decimal("1e15")


def _decimal(value: Any) -> Decimal:
    if value is None:
        raise ValueError("a decimal is required")
    result = to_decimal(value)
    if abs(result) >= MAX_DECIMAL_IN:
        raise ValueError(f"{value!r} is too large")
    return result


def _upper_or_lower(value: Any) -> Any:
    """Enums accept the canonical UPPER form and an all-lowercase alias; mixed case is refused."""
    if isinstance(value, str) and value == value.lower():
        return value.upper()
    return value


def _utc(value: datetime) -> datetime:
    """Query datetimes: any RFC 3339 offset in, aware UTC out (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("datetime out of range") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
MAX_LIMIT = 100_000
QueryLimit = Annotated[int, Field(ge=0, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")]
# Lists of orders and trades come a page at a time. `limit` is the gateway's u32 (a larger value is a 400).
PageLimit = Annotated[int, Field(ge=0, le=2**32 - 1,
                                 description=f"Rows per page: {DEFAULT_PAGE} when left out, at most {MAX_PAGE} "
                                             f"(a larger value is served as {MAX_PAGE})")]
PageCursor = Annotated[str | None, Field(max_length=200, description=(
    "Where the page starts: the `X-Next-Cursor` header of the previous page (its `Link: <…>; rel=\"next\"` "
    "holds the whole URL). Leave out for the newest page."))]
DecimalIn = Annotated[Decimal, BeforeValidator(_decimal),
                      WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["100"]})]
DecimalOut = Annotated[str, WithJsonSchema({"type": "string", "examples": ["150.25"]})]
SideIn = Annotated[Side, BeforeValidator(_upper_or_lower)]
OrderTypeIn = Annotated[OrderType, BeforeValidator(_upper_or_lower)]
TimeInForceIn = Annotated[TimeInForce, BeforeValidator(_upper_or_lower)]
TrailingTypeIn = Annotated[TrailingType, BeforeValidator(_upper_or_lower)]
MarginModeIn = Annotated[MarginMode, BeforeValidator(_upper_or_lower)]


class StrictIn(Schema):
    model_config = ConfigDict(extra="ignore")


class OrderIn(StrictIn):
    symbol: str = Field(description="Symbol in the venue's native form, e.g. AAPL, BTCUSDT, F:EURUSD")
    side: SideIn
    quantity: DecimalIn
    order_type: OrderTypeIn
    limit_price: DecimalIn | None = None
    stop_price: DecimalIn | None = None
    trailing_distance: DecimalIn | None = None
    trailing_type: TrailingTypeIn | None = None
    stop_loss: DecimalIn | None = None
    take_profit: DecimalIn | None = None
    position_id: str | None = None
    reduce_only: bool = False
    post_only: bool = False
    hidden: bool = False
    display_quantity: DecimalIn | None = None
    margin_mode: MarginModeIn | None = None
    leverage: DecimalIn | None = None
    client_order_id: str | None = Field(None, description="Up to 64 characters; at most one order per value")
    oco_group_id: str | None = None
    time_in_force: TimeInForceIn = TimeInForce.GTC
    stop_loss_trailing_distance: DecimalIn | None = Field(
        None, description="Extension: trail the stop-loss leg this far behind the best price since the fill")
    stop_loss_trailing_type: TrailingTypeIn | None = Field(None, description="Extension: ABSOLUTE or PERCENT")


class ModifyOrderIn(StrictIn):
    limit_price: DecimalIn | None = None
    stop_price: DecimalIn | None = None
    quantity: DecimalIn | None = None
    stop_loss: DecimalIn | None = None
    take_profit: DecimalIn | None = None
    trailing_distance: DecimalIn | None = None


class ClosePositionIn(StrictIn):
    order_type: OrderTypeIn | None = None
    limit_price: DecimalIn | None = None
    quantity: DecimalIn | None = None


class ModifyPositionExitsIn(StrictIn):
    stop_loss: DecimalIn | None = None
    take_profit: DecimalIn | None = None


class ExitLegPlacementOut(Schema):
    order_ids: list[str]
    trigger_price: DecimalOut


class ModifyPositionExitsOut(Schema):
    position_id: str
    stop_loss: ExitLegPlacementOut | None = None
    take_profit: ExitLegPlacementOut | None = None


class ErrorOut(Schema):
    code: str = Field(description="INVALID_REQUEST, VALIDATION_ERROR, ORDER_NOT_FOUND, INSUFFICIENT_BALANCE, …")
    message: str
    details: Any | None = None


class OrderHandleOut(Schema):
    id: str
    client_order_id: str | None = None
    correlation_id: str | None = None
    status: OrderStatus


class OrderOut(Schema):
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
    created_at: datetime
    updated_at: datetime


class ModifyOrderOut(Schema):
    order: OrderOut
    previous_order_id: str | None = None


class CancelOrderOut(Schema):
    success: bool
    order: OrderOut


class CancelAllOut(Schema):
    cancelled_count: int
    failed_count: int
    failed_order_ids: list[str] | None = None


class PositionOut(Schema):
    id: str
    symbol: str
    side: PositionSide
    quantity: DecimalOut
    average_entry_price: DecimalOut
    current_price: DecimalOut
    unrealized_pnl: DecimalOut
    realized_pnl: DecimalOut
    opened_at: datetime
    updated_at: datetime


class TradeOut(Schema):
    id: str
    order_id: str
    symbol: str
    side: Side
    quantity: DecimalOut
    price: DecimalOut
    commission: DecimalOut
    commission_currency: str
    is_maker: bool | None = None
    timestamp: datetime


class AccountOut(Schema):
    balance: DecimalOut
    equity: DecimalOut
    margin_used: DecimalOut
    margin_available: DecimalOut
    unrealized_pnl: DecimalOut
    currency: str


class QuoteOut(Schema):
    symbol: str
    provider: str
    bid: DecimalOut
    ask: DecimalOut
    last: DecimalOut
    bid_size: DecimalOut | None = None
    ask_size: DecimalOut | None = None
    volume: DecimalOut | None = None
    timestamp: datetime


class BarOut(Schema):
    symbol: str
    provider: str
    timeframe: Timeframe
    timestamp: datetime
    open: DecimalOut
    high: DecimalOut
    low: DecimalOut
    close: DecimalOut
    volume: DecimalOut


class RateLimitsOut(Schema):
    requests_per_minute: int | None = None
    orders_per_second: int | None = None
    orders_per_day: int | None = None


class CapabilitiesOut(Schema):
    supported_asset_classes: list[AssetClass]
    supported_order_types: list[OrderType]
    position_mode: PositionMode
    features: list[str]
    max_leverage: DecimalOut | None = None
    rate_limits: RateLimitsOut | None = None


class ConnectionStatusOut(Schema):
    connected: bool
    latency_ms: int
    last_heartbeat: datetime


class BreakerOut(Schema):
    state: str
    failure_count: int


class CircuitBreakersOut(Schema):
    adapter: BreakerOut
    exit_order: BreakerOut
