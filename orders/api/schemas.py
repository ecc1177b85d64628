"""The /v1 wire shapes: ``In`` schemas parse requests; the ``Out`` schemas are ``orders.wire``'s models,
re-exported here, which the views return and django-ninja serialises (the stream sends the same models)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from orders.domain.enums import (
    MarginMode,
    OrderType,
    Side,
    TimeInForce,
    TrailingType,
)
from orders.domain.money import to_decimal
from orders.domain.paging import DEFAULT_PAGE, MAX_PAGE
from orders.wire import (
    AccountOut,
    BarOut,
    BreakerOut,
    CancelAllOut,
    CancelOrderOut,
    CapabilitiesOut,
    CircuitBreakersOut,
    ConnectionStatusOut,
    DecimalOut,
    ErrorOut,
    ExitLegPlacementOut,
    ModifyOrderOut,
    ModifyPositionExitsOut,
    OrderHandleOut,
    OrderOut,
    PositionOut,
    QuoteOut,
    RateLimitsOut,
    TimeOut,
    TradeOut,
)

__all__ = [  # the Out schemas, defined once in orders.wire for the API and the stream alike
    "AccountOut", "BarOut", "BreakerOut", "CancelAllOut", "CancelOrderOut", "CapabilitiesOut", "CircuitBreakersOut",
    "ConnectionStatusOut", "DecimalOut", "ErrorOut", "ExitLegPlacementOut", "ModifyOrderOut",
    "ModifyPositionExitsOut", "OrderHandleOut", "OrderOut", "PositionOut", "QuoteOut", "RateLimitsOut", "TimeOut",
    "TradeOut",
]

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
