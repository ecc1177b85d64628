"""What exit management decides, as pure functions of numbers: how much a leg must cover, where a
(trailing) stop sits, when a failed placement is tried again or given up, and which leg orders to
shrink or cancel when the position shrinks. They return intents (``Resize``, ``Cancel``); the services
(``services/protection.py``, ``services/legs.py``) carry them out at the broker and in the rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from orders.domain.enums import Side, TrailingType
from orders.domain.money import ZERO

RETRY_DELAYS = (0.1, 0.3, 1.0, 2.0, 5.0)      # seconds between placement attempts, then every 5 s
RETRY_WINDOW = timedelta(seconds=10)          # unplaced this long after the first failure -> alert
HOPELESS_RETRY = timedelta(seconds=60)        # a leg what is held cannot cover: alerted at once, looked at again
TRAIL_MOVE_THRESHOLD = Decimal("0.001")       # move a resting trailing stop only when it changes >= 0.1 %


@dataclass(frozen=True)
class Resize:
    """Change a resting leg order's quantity."""
    order_id: str
    quantity: Decimal


@dataclass(frozen=True)
class Cancel:
    """Cancel a resting leg order."""
    order_id: str


@dataclass(frozen=True)
class LegOrder:
    """What the decisions need to know of one order carrying a leg."""
    order_id: str
    quantity: Decimal
    filled_quantity: Decimal
    working: bool

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


def protection_target(*, entry_side: Side, filled_quantity: Decimal, held: Decimal) -> Decimal:
    """How much of an entry its legs must cover: what has filled, but never more than is held, and
    nothing when flat or when what is held is not the entry's way."""
    if held == 0 or (held > 0) != (entry_side == Side.BUY):
        return ZERO
    return min(filled_quantity, abs(held))


def leg_quantity(target: Decimal, *, step: Decimal, minimum: Decimal) -> Decimal:
    """What a leg can actually sell of ``target``: rounded down to the venue's quantity step (a fee taken in the
    coin leaves 0.00999 of a 0.01 buy), and nothing when that is below the venue's minimum."""
    if target <= 0:
        return ZERO
    sized = (target / step).to_integral_value(rounding=ROUND_FLOOR) * step if step > 0 else target
    return sized if sized >= minimum and sized > 0 else ZERO


def take_profit_touched(*, side: Side, trigger: Decimal, bid: Decimal, ask: Decimal) -> bool:
    """An engine-watched take-profit fires when the price it would sell at (the bid) reaches its level, or the
    price it would buy back at (the ask) for a short."""
    return bid >= trigger if side == Side.SELL else ask <= trigger


def trail_level(*, side: Side, trailing_distance: Decimal, trailing_type: str | None, peak: Decimal) -> Decimal:
    """A trailing stop's level ``trailing_distance`` (points, or percent) behind the best price seen."""
    offset = peak * trailing_distance / 100 if trailing_type == TrailingType.PERCENT else trailing_distance
    return peak - offset if side == Side.SELL else peak + offset


def bounded_stop(level: Decimal, *, side: Side, floor: Decimal | None) -> Decimal:
    """A trailing stop never looser than a fixed stop-loss asked for with it."""
    if floor is None:
        return level
    return max(level, floor) if side == Side.SELL else min(level, floor)


def initial_stop(*, side: Side, trigger_price: Decimal | None, trailing_distance: Decimal | None,
                 trailing_type: str | None, peak: Decimal) -> Decimal:
    """Where a stop-loss leg's order first rests: its trigger, or its trailing level from ``peak``."""
    if trailing_distance is None:
        return trigger_price
    level = trail_level(side=side, trailing_distance=trailing_distance, trailing_type=trailing_type, peak=peak)
    return bounded_stop(level, side=Side(side), floor=trigger_price)


def retry_delay(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failure a leg is tried again."""
    return timedelta(seconds=RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)])


def gives_up(*, first_failure: datetime, now: datetime, breaker_open: bool = False) -> bool:
    """Whether an unplaced leg is reported (``POSITION_UNPROTECTED``): at once while the exit-order
    breaker is open, else once it has failed for ``RETRY_WINDOW``."""
    return breaker_open or now - first_failure >= RETRY_WINDOW


def unplaced_too_long(now: datetime) -> datetime:
    """A leg still retrying after a first failure before this moment is reported."""
    return now - RETRY_WINDOW


def trim_to(working: Sequence[LegOrder], held: Decimal) -> list[Resize | Cancel]:
    """Cut a leg's working orders, newest first, until they trade no more than ``held``."""
    excess = sum((o.remaining for o in working), start=ZERO) - held
    intents: list[Resize | Cancel] = []
    for order in reversed(working):
        if excess <= 0:
            break
        cut = min(excess, order.remaining)
        intents.append(Cancel(order.order_id) if cut == order.remaining else Resize(order.order_id,
                                                                                   order.quantity - cut))
        excess -= cut
    return intents


def shrink_to(live: Sequence[LegOrder], held: Decimal) -> list[Resize]:
    """After a partial exit fill: shrink the sibling leg's orders, newest first, to what is still held
    (never below what each has filled)."""
    covered = sum((o.quantity for o in live), start=ZERO)
    intents = []
    for order in reversed(live):
        excess = covered - held
        if excess <= 0:
            break
        quantity = max(order.filled_quantity, order.quantity - excess)
        if quantity == order.quantity or not order.working:
            continue
        intents.append(Resize(order.order_id, quantity))
        covered -= order.quantity - quantity
    return intents


def trailing_move(*, level: Decimal, side: Side, floor: Decimal | None, tick: Decimal,
                  current_stop: Decimal | None) -> Decimal | None:
    """The stop a trailing leg's resting order moves to, or None when it stays: it moves only to a better
    level (up for a sell stop, down for a buy stop), on the venue's tick, by at least the threshold."""
    level = bounded_stop(level, side=side, floor=floor)
    level = (level / tick).to_integral_value(rounding=ROUND_FLOOR if side == Side.SELL else ROUND_CEILING) * tick
    if not current_stop:
        return level
    if abs(level - current_stop) / current_stop < TRAIL_MOVE_THRESHOLD:
        return None
    better = level > current_stop if side == Side.SELL else level < current_stop
    return level if better else None
