"""Account figures from cash, positions and marks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from orders.domain.money import ZERO


@dataclass(frozen=True, slots=True)
class Holding:
    quantity: Decimal       # signed
    average_price: Decimal
    mark: Decimal           # current price
    margin_rate: Decimal    # fraction of notional held as margin (1 = fully funded)


@dataclass(frozen=True, slots=True)
class AccountFigures:
    balance: Decimal
    equity: Decimal
    margin_used: Decimal
    margin_available: Decimal
    unrealized_pnl: Decimal
    reserved: Decimal        # held for working orders that add exposure
    currency: str
    venue_buying_power: Decimal | None = None    # what a real venue says may be spent (its own rules)

    @property
    def buying_power(self) -> Decimal:
        if self.venue_buying_power is not None:
            return max(ZERO, self.venue_buying_power)
        return max(ZERO, self.margin_available)


def account_figures(*, cash: Decimal, holdings: Iterable[Holding], reserved: Decimal = ZERO,
                    currency: str = "USD") -> AccountFigures:
    equity = cash
    margin_used = ZERO
    unrealized = ZERO
    for h in holdings:
        equity += h.quantity * h.mark
        margin_used += abs(h.quantity) * h.mark * h.margin_rate
        unrealized += (h.mark - h.average_price) * h.quantity
    available = equity - margin_used - reserved
    return AccountFigures(balance=cash, equity=equity, margin_used=margin_used, margin_available=available,
                          unrealized_pnl=unrealized, reserved=reserved, currency=currency)
