"""A bracket's exits the way a trader sets them, resolved to the prices the venue is sent. Pure.

Each leg is given in one of four modes (``LegMode``):

==========  ======================================  =========================================
mode        stop-loss of a BUY (a SELL mirrors it)  take-profit of a BUY
==========  ======================================  =========================================
PRICE       the price typed                         the price typed
OFFSET      entry − offset                          entry + offset
PERCENT     entry × (1 − pct / 100)                 entry × (1 + pct / 100)
R           (not a stop's mode)                     entry + R × (entry − stop): needs the stop
==========  ======================================  =========================================

Every computed price is put on the instrument's tick by the side of the entry: a BUY's exits are rounded down,
a SELL's up. The stop is therefore never tighter than asked and the take-profit never further away. A price
typed as PRICE is sent as typed (the venue's own check says if it is off the tick). A tick of 0 means the venue
sets no price grid (Binance with its PRICE_FILTER off), so the price is kept as computed.

Sizing by risk: quantity = the risk a trade may take ÷ the stop's distance from the entry, rounded down to the
instrument's quantity step, so a stop-out never loses more than the amount set. A step of 0 (no LOT_SIZE grid)
rounds down to the finest quantity the desk counts (``money.DUST``) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum

from orders.domain.enums import Side
from orders.domain.errors import InvalidValue
from orders.domain.money import DUST

HUNDRED = Decimal(100)


class LegMode(StrEnum):
    PRICE = "PRICE"
    OFFSET = "OFFSET"
    PERCENT = "PERCENT"
    R = "R"


@dataclass(frozen=True)
class BracketPrices:
    stop_loss: Decimal | None
    take_profit: Decimal | None


def on_tick(price: Decimal, tick: Decimal, *, side: Side) -> Decimal:
    """``price`` on the ``tick`` grid: down for a BUY's exits, up for a SELL's; as it is without a grid (tick <= 0)."""
    if tick <= 0:
        return price
    rounding = ROUND_FLOOR if side is Side.BUY else ROUND_CEILING
    return (price / tick).to_integral_value(rounding=rounding) * tick


def _away(entry: Decimal, distance: Decimal, *, side: Side, loss: bool) -> Decimal:
    """The level ``distance`` from ``entry`` on the losing (``loss``) or winning side of a ``side`` entry."""
    direction = side.sign * (-1 if loss else 1)
    return entry + direction * distance


def resolve_stop_loss(mode: LegMode, value: Decimal, *, side: Side, entry: Decimal, tick: Decimal) -> Decimal:
    if value <= 0:
        raise InvalidValue("stop_loss", "must be greater than 0", provided=str(value))
    if mode is LegMode.PRICE:
        return value
    if mode is LegMode.R:
        raise InvalidValue("stop_loss", "a stop-loss is set as a price, an offset or a percent, not in R",
                           provided=str(value))
    distance = value if mode is LegMode.OFFSET else entry * value / HUNDRED
    price = on_tick(_away(entry, distance, side=side, loss=True), tick, side=side)
    if price <= 0:
        raise InvalidValue("stop_loss", "would be at or below zero", provided=str(value))
    return price


def resolve_take_profit(mode: LegMode, value: Decimal, *, side: Side, entry: Decimal, tick: Decimal,
                        stop_loss: Decimal | None) -> Decimal:
    if value <= 0:
        raise InvalidValue("take_profit", "must be greater than 0", provided=str(value))
    if mode is LegMode.PRICE:
        return value
    if mode is LegMode.R:
        if stop_loss is None:
            raise InvalidValue("take_profit", "a take-profit in R needs a stop-loss (R is the distance to it)",
                               provided=str(value))
        distance = abs(entry - stop_loss) * value
    elif mode is LegMode.OFFSET:
        distance = value
    else:
        distance = entry * value / HUNDRED
    price = on_tick(_away(entry, distance, side=side, loss=False), tick, side=side)
    if price <= 0:
        raise InvalidValue("take_profit", "would be at or below zero", provided=str(value))
    return price


def resolve_bracket(*, side: Side, entry: Decimal, tick: Decimal,
                    stop_loss: tuple[LegMode, Decimal] | None,
                    take_profit: tuple[LegMode, Decimal] | None) -> BracketPrices:
    """Both legs' prices for an entry at ``entry`` (either leg may be absent)."""
    stop = resolve_stop_loss(*stop_loss, side=side, entry=entry, tick=tick) if stop_loss else None
    target = resolve_take_profit(*take_profit, side=side, entry=entry, tick=tick, stop_loss=stop) if (
        take_profit) else None
    return BracketPrices(stop, target)


def size_by_risk(*, risk: Decimal, entry: Decimal, stop_loss: Decimal, step: Decimal) -> Decimal:
    """The largest quantity on the ``step`` grid (``DUST`` when the venue has none) that loses at most ``risk`` if
    the stop is hit."""
    step = step if step > 0 else DUST
    distance = abs(entry - stop_loss)
    if distance == 0:
        raise InvalidValue("stop_loss", "sizing by risk needs a stop away from the entry", provided=str(stop_loss))
    return (risk / distance / step).to_integral_value(rounding=ROUND_FLOOR) * step


def r_multiple(*, risk: Decimal | None, reward: Decimal | None) -> Decimal | None:
    """Reward in units of risk (2 means the target earns twice what the stop loses), to 2 decimals."""
    if risk is None or reward is None or risk == 0:
        return None
    return (reward / risk).quantize(Decimal("0.01"))
