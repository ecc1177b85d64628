"""A symbol's trading rules from ``/api/v3/exchangeInfo`` and the checks they imply (filters.md).

The venue refuses an order breaking a filter with ``-1013 Filter failure: <NAME>``; checking the same
rules before sending turns that into a precise ``OrderRejected`` (with the limit that was broken) and
saves the request weight."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.brokers.binance.mapping import parse_binance_decimal
from orders.brokers.types import Instrument
from orders.domain.enums import AssetClass, RejectReason, Side
from orders.domain.errors import OrderRejected
from orders.domain.money import ZERO, format_decimal, is_on_grid, quantize_money


@dataclass(frozen=True)
class SymbolRules:
    symbol: str
    status: str
    base_asset: str
    quote_asset: str
    order_types: frozenset[str]
    oco_allowed: bool
    tick_size: Decimal = ZERO                 # PRICE_FILTER (0 = rule disabled)
    min_price: Decimal = ZERO
    max_price: Decimal = ZERO
    step_size: Decimal = ZERO                 # LOT_SIZE
    min_qty: Decimal = ZERO
    max_qty: Decimal = ZERO
    market_step_size: Decimal = ZERO          # MARKET_LOT_SIZE
    market_min_qty: Decimal = ZERO
    market_max_qty: Decimal = ZERO
    min_notional: Decimal = ZERO              # NOTIONAL / MIN_NOTIONAL
    max_notional: Decimal = ZERO
    min_notional_market: bool = True
    max_notional_market: bool = False
    # PERCENT_PRICE_BY_SIDE (PERCENT_PRICE sets both sides alike): (down, up) multipliers of the average price
    bid_band: tuple[Decimal, Decimal] | None = None
    ask_band: tuple[Decimal, Decimal] | None = None

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


def parse_binance_symbol_rules(info: dict) -> SymbolRules:
    """One ``symbols[]`` entry of ``exchangeInfo`` → its rules. Unknown filters are ignored."""
    values: dict = {}
    for f in info.get("filters", []):
        kind = f.get("filterType")
        if kind == "PRICE_FILTER":
            values.update(tick_size=_d(f, "tickSize"), min_price=_d(f, "minPrice"), max_price=_d(f, "maxPrice"))
        elif kind == "LOT_SIZE":
            values.update(step_size=_d(f, "stepSize"), min_qty=_d(f, "minQty"), max_qty=_d(f, "maxQty"))
        elif kind == "MARKET_LOT_SIZE":
            values.update(market_step_size=_d(f, "stepSize"), market_min_qty=_d(f, "minQty"),
                          market_max_qty=_d(f, "maxQty"))
        elif kind == "NOTIONAL":
            values.update(min_notional=_d(f, "minNotional"), max_notional=_d(f, "maxNotional"),
                          min_notional_market=bool(f.get("applyMinToMarket", True)),
                          max_notional_market=bool(f.get("applyMaxToMarket", False)))
        elif kind == "MIN_NOTIONAL":
            values.update(min_notional=_d(f, "minNotional"), min_notional_market=bool(f.get("applyToMarket", True)))
        elif kind == "PERCENT_PRICE_BY_SIDE":
            values.update(bid_band=(_d(f, "bidMultiplierDown"), _d(f, "bidMultiplierUp")),
                          ask_band=(_d(f, "askMultiplierDown"), _d(f, "askMultiplierUp")))
        elif kind == "PERCENT_PRICE" and "bid_band" not in values:
            band = (_d(f, "multiplierDown"), _d(f, "multiplierUp"))
            values.update(bid_band=band, ask_band=band)
    return SymbolRules(symbol=info["symbol"], status=info.get("status", "TRADING"),
                       base_asset=info.get("baseAsset", ""), quote_asset=info.get("quoteAsset", ""),
                       order_types=frozenset(info.get("orderTypes", [])), oco_allowed=bool(info.get("ocoAllowed")),
                       **values)


def _d(f: dict, key: str) -> Decimal:
    return parse_binance_decimal(f.get(key, "0"), name=key)


def parse_binance_weight_limit(body: dict) -> int | None:
    """The REQUEST_WEIGHT limit per minute from ``exchangeInfo.rateLimits``."""
    for limit in body.get("rateLimits", []):
        if (limit.get("rateLimitType"), limit.get("interval"), limit.get("intervalNum")) == (
                "REQUEST_WEIGHT", "MINUTE", 1):
            return int(limit["limit"])
    return None


def parse_binance_instrument(rules: SymbolRules) -> Instrument:
    band = rules.bid_band or rules.ask_band
    band_pct = (band[1] - 1) * 100 if band else Decimal("50")
    return Instrument(symbol=rules.symbol, asset_class=AssetClass.CRYPTO, tick_size=rules.tick_size,
                      quantity_step=rules.step_size, min_quantity=rules.min_qty, base_price=ZERO,
                      quote_currency=rules.quote_asset or "USDT", min_notional=rules.min_notional, can_short=False,
                      price_band_pct=band_pct, halted=not rules.trading, base=rules.base_asset)


# -- checks (each raises OrderRejected naming the filter and the limit) ----------------------------------

def check_quantity(rules: SymbolRules, quantity: Decimal, *, market: bool) -> None:
    checks = [("LOT_SIZE", rules.min_qty, rules.max_qty, rules.step_size)]
    if market:
        checks.append(("MARKET_LOT_SIZE", rules.market_min_qty, rules.market_max_qty, rules.market_step_size))
    q = format_decimal(quantity)
    for name, low, high, step in checks:
        if low > 0 and quantity < low:
            _reject(RejectReason.INVALID_QUANTITY, f"Quantity {q} is below the minimum {format_decimal(low)} "
                    f"for {rules.symbol}", name, quantity=q, min_quantity=format_decimal(low))
        if high > 0 and quantity > high:
            _reject(RejectReason.INVALID_QUANTITY, f"Quantity {q} is above the maximum {format_decimal(high)} "
                    f"for {rules.symbol}", name, quantity=q, max_quantity=format_decimal(high))
        if not is_on_grid(quantity, step):
            _reject(RejectReason.INVALID_QUANTITY, f"Quantity {q} is not a multiple of the step "
                    f"{format_decimal(step)} for {rules.symbol}", name, quantity=q,
                    quantity_step=format_decimal(step))


def check_price(rules: SymbolRules, field: str, price: Decimal) -> None:
    p = format_decimal(price)
    if rules.min_price > 0 and price < rules.min_price:
        _reject(RejectReason.INVALID_PRICE, f"{field} {p} is below the minimum price "
                f"{format_decimal(rules.min_price)} for {rules.symbol}", "PRICE_FILTER", field=field, price=p,
                min_price=format_decimal(rules.min_price))
    if rules.max_price > 0 and price > rules.max_price:
        _reject(RejectReason.INVALID_PRICE, f"{field} {p} is above the maximum price "
                f"{format_decimal(rules.max_price)} for {rules.symbol}", "PRICE_FILTER", field=field, price=p,
                max_price=format_decimal(rules.max_price))
    if not is_on_grid(price, rules.tick_size):
        _reject(RejectReason.INVALID_PRICE, f"{field} {p} is not a multiple of the tick size "
                f"{format_decimal(rules.tick_size)} for {rules.symbol}", "PRICE_FILTER", field=field, price=p,
                tick_size=format_decimal(rules.tick_size))


def check_percent_price(rules: SymbolRules, field: str, price: Decimal, *, side: Side, average: Decimal) -> None:
    """The band around the average price. The venue uses a weighted average over ``avgPriceMins``; the
    caller passes the book's mid, so a price at the very edge of the band may still be refused there."""
    band = rules.bid_band if side is Side.BUY else rules.ask_band
    if band is None or average <= 0:
        return
    low, high = average * band[0], average * band[1]
    if not low <= price <= high:
        p = format_decimal(price)
        _reject(RejectReason.INVALID_PRICE, f"{field} {p} is outside the {side} price band "
                f"{format_decimal(quantize_money(low, 8))} - {format_decimal(quantize_money(high, 8))} "
                f"around the average price {format_decimal(quantize_money(average, 8))}", "PERCENT_PRICE_BY_SIDE",
                field=field, price=p, min_price=format_decimal(quantize_money(low, 8)),
                max_price=format_decimal(quantize_money(high, 8)))


def check_notional(rules: SymbolRules, quantity: Decimal, price: Decimal, *, market: bool,
                   field: str = "quantity") -> None:
    notional = quantity * price
    shown = format_decimal(quantize_money(notional, 8))
    if rules.min_notional > 0 and notional < rules.min_notional and (rules.min_notional_market or not market):
        _reject(RejectReason.INVALID_QUANTITY, f"Order value {shown} is below the minimum notional "
                f"{format_decimal(rules.min_notional)} for {rules.symbol}", "NOTIONAL", field=field,
                notional=shown, min_notional=format_decimal(rules.min_notional))
    if rules.max_notional > 0 and notional > rules.max_notional and (rules.max_notional_market or not market):
        _reject(RejectReason.INVALID_QUANTITY, f"Order value {shown} is above the maximum notional "
                f"{format_decimal(rules.max_notional)} for {rules.symbol}", "NOTIONAL", field=field,
                notional=shown, max_notional=format_decimal(rules.max_notional))


def _reject(reason: str, message: str, filter_name: str, **details: str) -> None:
    raise OrderRejected(reason, message, filter=filter_name, **details)
