"""Pre-trade checks for a ticket: each limit has a soft level (warn; a typed reason overrides it)
and a hard level (block). Pure: the caller supplies the figures."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.domain.money import format_decimal


@dataclass(frozen=True)
class Limits:
    max_quantity: tuple[Decimal | None, Decimal | None] = (None, None)       # (soft, hard)
    max_notional: tuple[Decimal | None, Decimal | None] = (None, None)
    price_band_pct: tuple[Decimal | None, Decimal | None] = (None, None)
    daily_orders: tuple[int | None, int | None] = (None, None)
    approval_notional_above: Decimal | None = None       # an order above it waits for a second person


@dataclass(frozen=True)
class Breach:
    check: str
    hard: bool
    field: str
    message: str
    code: str = ""                      # a venue's refusal keeps the API's code (INSUFFICIENT_BALANCE, ...)
    details: dict | None = None

    @property
    def text(self) -> str:
        """As the ticket shows it: a venue's refusal in the API's words (code: message)."""
        return f"{self.code}: {self.message}" if self.code else self.message


def pretrade_breaches(*, limits: Limits, quantity: Decimal, notional: Decimal, order_price: Decimal | None,
                      market: Decimal, orders_today: int, duplicate_of: str | None) -> list[Breach]:
    breaches: list[Breach] = []

    def over(check: str, field: str, value, levels, describe) -> None:
        soft, hard = levels
        if hard is not None and value > hard:
            breaches.append(Breach(check, True, field, describe(hard, "hard")))
        elif soft is not None and value > soft:
            breaches.append(Breach(check, False, field, describe(soft, "soft")))

    over("max_quantity", "quantity", quantity, limits.max_quantity,
         lambda lim, kind: f"Quantity {format_decimal(quantity)} is above the {kind} limit {format_decimal(lim)}")
    over("max_notional", "quantity", notional, limits.max_notional,
         lambda lim, kind: f"Notional {format_decimal(notional)} is above the {kind} limit {format_decimal(lim)}")
    if order_price is not None and market > 0:
        distance = abs(order_price - market) / market * 100
        shown = format_decimal(distance.quantize(Decimal("0.01")))
        over("price_band", "limit_price", distance, limits.price_band_pct,
             lambda lim, kind: f"Price {format_decimal(order_price)} is {shown} % from the market "
                               f"{format_decimal(market)}, beyond the {kind} band {format_decimal(lim)} %")
    over("daily_orders", "quantity", orders_today + 1, limits.daily_orders,
         lambda lim, kind: f"This would be order {orders_today + 1} today, above the {kind} limit {lim}")
    if duplicate_of:
        breaches.append(Breach("duplicate", False, "quantity",
                               f"The same order was sent moments ago ({duplicate_of}); send it again?"))
    return breaches
