"""Netting arithmetic: one signed quantity per symbol, its average entry price and realised P&L."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.domain.enums import PositionSide, Side
from orders.domain.money import ZERO, quantize_money


@dataclass(frozen=True, slots=True)
class Netting:
    quantity: Decimal          # signed: > 0 long, < 0 short
    average_price: Decimal     # 0 when flat
    realized_pnl: Decimal      # cumulative, before commissions

    @property
    def side(self) -> PositionSide | None:
        if self.quantity > 0:
            return PositionSide.LONG
        if self.quantity < 0:
            return PositionSide.SHORT
        return None

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.average_price) * self.quantity


FLAT = Netting(ZERO, ZERO, ZERO)


def apply_fill(position: Netting, *, side: Side, quantity: Decimal, price: Decimal) -> Netting:
    """The position after one fill. Same-direction fills re-average; opposite fills
    realise P&L on the closed part and, past flat, open the remainder at the fill price."""
    if quantity <= 0:
        raise ValueError("fill quantity must be positive")
    signed = quantity * side.sign
    q, avg, realized = position.quantity, position.average_price, position.realized_pnl
    if q == 0 or (q > 0) == (signed > 0):
        new_q = q + signed
        new_avg = (avg * abs(q) + price * quantity) / abs(new_q)
        return Netting(new_q, new_avg, realized)
    closing = min(abs(q), quantity)
    # the average may be a repeating decimal (15200 / 0.3): round the money it realises, not 399.99…9
    realized = quantize_money(realized + (price - avg) * closing * (1 if q > 0 else -1))
    new_q = q + signed
    if new_q == 0:
        return Netting(ZERO, ZERO, realized)
    if (new_q > 0) == (q > 0):
        return Netting(new_q, avg, realized)
    return Netting(new_q, price, realized)


def fee_in_kind(position: Netting, *, fee: Decimal) -> Netting:
    """The position after the venue took ``fee`` units of the traded asset itself as commission (a Binance buy
    without BNB pays its fee in the coin bought): less is held, and what was paid for it is spread over what is
    left, so the average price rises and the cost stays."""
    if fee <= 0:
        return position
    q = position.quantity - fee
    if q == 0:
        return Netting(ZERO, ZERO, position.realized_pnl)
    average = position.average_price * position.quantity / q if position.quantity > 0 else position.average_price
    return Netting(q, average, position.realized_pnl)


def exposure_increase(position_quantity: Decimal, *, side: Side, quantity: Decimal) -> Decimal:
    """How much of an order opens or grows a position (the part that needs buying power, and that a
    reduce-only order may not have). An order that goes past flat opens everything beyond flat: selling 15
    out of a long 10 opens a short 5, although the absolute size shrinks."""
    after = position_quantity + quantity * side.sign
    if after * position_quantity < 0:
        return abs(after)
    return max(ZERO, abs(after) - abs(position_quantity))
