"""What an order request is and the business rules it must satisfy before any broker sees it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from decimal import Decimal

from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import InvalidRequest, InvalidValue, ValidationFailed, field_error
from orders.domain.money import ZERO, format_decimal

MAX_CLIENT_ORDER_ID = 64
MAX_SYMBOL = 20

_TYPE_NAMES = {OrderType.MARKET: "Market", OrderType.LIMIT: "Limit", OrderType.STOP: "Stop",
               OrderType.STOP_LIMIT: "StopLimit", OrderType.TRAILING_STOP: "TrailingStop"}
_NEEDS = {
    OrderType.MARKET: frozenset(),
    OrderType.LIMIT: frozenset({"limit_price"}),
    OrderType.STOP: frozenset({"stop_price"}),
    OrderType.STOP_LIMIT: frozenset({"limit_price", "stop_price"}),
    OrderType.TRAILING_STOP: frozenset({"trailing_distance", "trailing_type"}),
}
_PRICE_FIELDS = ("limit_price", "stop_price", "trailing_distance")


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    client_order_id: str | None = None
    oco_group_id: str | None = None
    position_id: str | None = None
    reduce_only: bool = False
    post_only: bool = False
    hidden: bool = False
    display_quantity: Decimal | None = None
    # beyond the protocol: a trailing stop-loss leg (emulated by the engine where the broker cannot trail it)
    stop_loss_trailing_distance: Decimal | None = None
    stop_loss_trailing_type: TrailingType | None = None

    @property
    def has_exits(self) -> bool:
        return (self.stop_loss is not None or self.take_profit is not None
                or self.stop_loss_trailing_distance is not None)

    @property
    def entry_price(self) -> Decimal | None:
        """The price the entry is expected to fill at, when the request itself says."""
        if self.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            return self.limit_price
        if self.order_type is OrderType.STOP:
            return self.stop_price
        return None

    def fingerprint(self) -> str:
        """A digest of the order's economic content, used to tell an identical retry
        from a reuse of the same client_order_id for a different order."""
        payload = {k: (format_decimal(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def with_changes(self, **changes: object) -> OrderRequest:
        return replace(self, **changes)


def is_plain_id(value: str) -> bool:
    """An identifier a person can read back and a log line cannot be broken by: printable characters only
    (no NUL, line break or tab), and no space at either end."""
    return value.isprintable() and value == value.strip()


def validate_order_request(request: OrderRequest) -> None:
    """Raise the first rule the request breaks, in the gateway's order:
    field validators (VALIDATION_ERROR), then per-type semantics (INVALID_REQUEST / INVALID_VALUE)."""
    _check_fields(request)
    _check_type_semantics(request)
    _check_exit_prices(request, reference_price=request.entry_price)


def _check_fields(request: OrderRequest) -> None:
    errors: dict[str, list[dict]] = {}
    if not 1 <= len(request.symbol) <= MAX_SYMBOL or request.symbol != request.symbol.strip():
        errors["symbol"] = [field_error("length", f"symbol must be 1-{MAX_SYMBOL} characters without spaces",
                                        min=1, max=MAX_SYMBOL)]
    if request.quantity <= ZERO:
        errors["quantity"] = [field_error("must be positive")]
    if request.position_id is not None and not 1 <= len(request.position_id) <= MAX_CLIENT_ORDER_ID:
        errors["position_id"] = [field_error("length", f"position_id must be 1-{MAX_CLIENT_ORDER_ID} characters",
                                             min=1, max=MAX_CLIENT_ORDER_ID, value=len(request.position_id))]
    for name in ("client_order_id", "oco_group_id"):
        value = getattr(request, name)
        if value is not None and not 1 <= len(value) <= MAX_CLIENT_ORDER_ID:
            errors[name] = [field_error("length", f"{name} must be 1-{MAX_CLIENT_ORDER_ID} characters",
                                        min=1, max=MAX_CLIENT_ORDER_ID, value=len(value))]
        elif value is not None and not is_plain_id(value):
            errors[name] = [field_error("characters", f"{name} must be printable characters with no space "
                                                      "at either end")]
    if errors:
        raise ValidationFailed(errors)


def _check_type_semantics(request: OrderRequest) -> None:
    needed = _NEEDS[request.order_type]
    type_name = _TYPE_NAMES[request.order_type]
    for name in sorted(needed):
        if getattr(request, name) is None:
            raise InvalidRequest(f"{type_name} orders require {name}", field=name)
    for name in (*_PRICE_FIELDS, "trailing_type"):
        value = getattr(request, name)
        if name not in needed and value is not None:
            raise InvalidValue(name, f"{type_name} orders should not have {name}", provided=value)
    for name in (*_PRICE_FIELDS, "stop_loss", "take_profit", "display_quantity"):
        value = getattr(request, name)
        if value is not None and value <= ZERO:
            raise InvalidValue(name, "must be positive", provided=value)
    if (request.trailing_type is TrailingType.PERCENT and request.trailing_distance is not None
            and request.trailing_distance >= 100):
        raise InvalidValue("trailing_distance", "percent distance must be less than 100",
                           provided=request.trailing_distance)
    _check_trailing_stop_loss(request)
    if request.display_quantity is not None and request.display_quantity >= request.quantity:
        raise InvalidValue("display_quantity", "must be less than quantity", provided=request.display_quantity)
    if request.time_in_force in (TimeInForce.IOC, TimeInForce.FOK) and request.order_type not in (
            OrderType.MARKET, OrderType.LIMIT):
        raise InvalidValue("time_in_force", f"{request.time_in_force} applies to MARKET and LIMIT orders only",
                           provided=request.time_in_force)
    if request.post_only and request.order_type is not OrderType.LIMIT:
        raise InvalidValue("post_only", "only LIMIT orders can be post-only", provided="true")
    if request.reduce_only and request.has_exits:
        raise InvalidValue("reduce_only", "a reduce-only order cannot carry stop_loss or take_profit",
                           provided="true")


def _check_trailing_stop_loss(request: OrderRequest) -> None:
    distance, kind = request.stop_loss_trailing_distance, request.stop_loss_trailing_type
    if distance is None and kind is None:
        return
    if distance is None:
        raise InvalidRequest("a trailing stop-loss requires stop_loss_trailing_distance",
                             field="stop_loss_trailing_distance")
    if kind is None:
        raise InvalidRequest("a trailing stop-loss requires stop_loss_trailing_type", field="stop_loss_trailing_type")
    if distance <= ZERO:
        raise InvalidValue("stop_loss_trailing_distance", "must be positive", provided=distance)
    if kind is TrailingType.PERCENT and distance >= 100:
        raise InvalidValue("stop_loss_trailing_distance", "percent distance must be less than 100", provided=distance)


def check_exit_prices(request: OrderRequest, *, reference_price: Decimal | None) -> None:
    """A stop-loss sits on the losing side of the entry and a take-profit on the winning side."""
    _check_exit_prices(request, reference_price=reference_price)


def _check_exit_prices(request: OrderRequest, *, reference_price: Decimal | None) -> None:
    sl, tp = request.stop_loss, request.take_profit
    buy = request.side is Side.BUY
    if sl is not None and tp is not None and ((sl >= tp) if buy else (sl <= tp)):
        relation = "below" if buy else "above"
        raise InvalidValue("stop_loss", f"a {request.side} bracket needs stop_loss {relation} take_profit",
                           provided=sl, take_profit=format_decimal(tp))
    if reference_price is None:
        return
    ref = format_decimal(reference_price)
    if sl is not None and ((sl >= reference_price) if buy else (sl <= reference_price)):
        relation = "below" if buy else "above"
        raise InvalidValue("stop_loss", f"stop_loss must be {relation} the entry price {ref} for a {request.side}",
                           provided=sl, entry_price=ref)
    if tp is not None and ((tp <= reference_price) if buy else (tp >= reference_price)):
        relation = "above" if buy else "below"
        raise InvalidValue("take_profit",
                           f"take_profit must be {relation} the entry price {ref} for a {request.side}",
                           provided=tp, entry_price=ref)
