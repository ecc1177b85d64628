"""What the ticket shows of a quote besides bid and ask: the last price, its change since the day's open and
the spread, also in basis points of the mid. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

BPS = Decimal(10000)


@dataclass(frozen=True)
class QuoteFigures:
    last: Decimal
    change: Decimal | None             # last − the day's open (None when the venue gives no daily bar)
    change_pct: Decimal | None
    spread: Decimal
    spread_bps: Decimal

    @property
    def direction(self) -> str:
        if not self.change:
            return "flat"
        return "up" if self.change > 0 else "down"


def quote_figures(*, bid: Decimal, ask: Decimal, last: Decimal, day_open: Decimal | None) -> QuoteFigures:
    spread = ask - bid
    mid = (ask + bid) / 2
    change = change_pct = None
    if day_open:
        change = last - day_open
        change_pct = (change / day_open * 100).quantize(Decimal("0.01"))
    return QuoteFigures(last=last, change=change, change_pct=change_pct, spread=spread,
                        spread_bps=(spread / mid * BPS).quantize(Decimal("0.1")) if mid else Decimal(0))
