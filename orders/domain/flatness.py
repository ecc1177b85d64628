"""What "flat" means after a kill switch, and how what is left over is said (pure: ``services/flatness.py`` asks
the venue and applies these).

- With ``flatten``: flat is no working order at all at the venue and no position (a closing order still
  working is waited for, never cancelled).
- Without it: positions and the exit orders (stop-loss, take-profit) protecting them stay by design, so flat
  is no working entry: every order but those protective exits is gone. Positions are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.domain.money import format_decimal

PROTECTIVE = "protective"      # an exit order of a position that stays open
CLOSING = "closing"            # an order sent to close a position
OTHER = "other"                # an entry, or anything the desk does not know


@dataclass(frozen=True)
class OrderLeft:
    """A working order the venue still lists. ``order_id`` is the desk's id ('' for one placed elsewhere)."""
    order_id: str
    symbol: str
    side: str
    quantity: Decimal
    kind: str              # PROTECTIVE, CLOSING or OTHER
    role: str = "entry"    # as people call it: entry, stop-loss, closing order, …


@dataclass(frozen=True)
class PositionLeft:
    symbol: str
    quantity: Decimal      # signed: above zero long, below short


def counts(order: OrderLeft, *, flatten: bool) -> bool:
    """Whether the kill switch is not flat while ``order`` works."""
    return flatten or order.kind != PROTECTIVE


def to_cancel(order: OrderLeft, *, flatten: bool) -> bool:
    """Whether the kill switch cancels ``order`` (again): anything that counts, but a closing order (waited for)
    and an order the desk does not know (it has no ticket to cancel it with: said, not touched)."""
    return counts(order, flatten=flatten) and order.kind != CLOSING and bool(order.order_id)


def to_close(*, orders: list[OrderLeft], positions: list[PositionLeft]) -> list[PositionLeft]:
    """The positions left over (with ``flatten``) that no working closing order is closing: sent again."""
    closing = {o.symbol for o in orders if o.kind == CLOSING}
    return [p for p in positions if p.quantity != 0 and p.symbol not in closing]


def leftovers(*, orders: list[OrderLeft], positions: list[PositionLeft], flatten: bool) -> tuple[list, list]:
    """The orders and positions that keep the account from being flat."""
    return ([o for o in orders if counts(o, flatten=flatten)],
            [p for p in positions if flatten and p.quantity != 0])


def describe_position(position: PositionLeft) -> str:
    side = "long" if position.quantity > 0 else "short"
    return f"{position.symbol} {format_decimal(abs(position.quantity))} {side}"


def describe_order(order: OrderLeft) -> str:
    name = f"order {order.order_id[:8]}" if order.order_id else "an order placed elsewhere"
    return f"{name} ({order.role} {order.side} {format_decimal(order.quantity)} {order.symbol}) working"


def describe(*, orders: list[OrderLeft], positions: list[PositionLeft]) -> str:
    """'AAPL 5 long, order 1a2b3c4d (entry BUY 10 MSFT) working'."""
    return ", ".join([*(describe_position(p) for p in positions), *(describe_order(o) for o in orders)])


def retried(count: int, *, closes: int = 0) -> str:
    said = f"{count} cancel{'s' if count != 1 else ''} retried"
    return said + (f", {closes} close{'s' if closes != 1 else ''} sent again" if closes else "")
