"""Which way an entry's legs are placed, decided per submission from what the broker supports
(placing-orders, "Atomicity"):

* native bracket — the broker takes entry + SL + TP as one atomic unit;
* native OCO — entry first; once it fills, SL and TP go as one OCO pair at the broker
  (only when both legs are asked for);
* pending — entry first; once it fills, SL and TP go as separate orders and the engine
  cancels the survivor.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from orders.brokers.types import BracketStrategy, Capabilities
from orders.domain.enums import Side, TrailingType
from orders.domain.orders import OrderRequest

STOP_LOSS, TAKE_PROFIT = "stop_loss", "take_profit"


@dataclass(frozen=True)
class LegPlan:
    role: str
    side: Side
    trigger_price: Decimal | None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    emulated: bool = False


def choose_strategy(capabilities: Capabilities, request: OrderRequest, broker=None) -> str:
    """``broker`` (optional) may narrow the strategy per request via ``bracket_strategy_for``."""
    both = request.stop_loss is not None and request.take_profit is not None
    offered = broker.bracket_strategy_for(request) if broker is not None else capabilities.bracket_strategy
    if offered is BracketStrategy.NATIVE_BRACKET:
        return "native_bracket"
    if offered is BracketStrategy.NATIVE_OCO and both:
        return "native_oco"
    return "pending"


def leg_plans(request: OrderRequest, *, capabilities: Capabilities, strategy: str,
              one_resting_exit: bool = False) -> list[LegPlan]:
    """The entry's legs. On a venue where one balance backs only one resting reducing order
    (``one_resting_exit``), two separate legs cannot both rest: the stop rests, since it is the protection, and
    the take-profit is watched by the engine and fired on the quote (``emulated``)."""
    side = request.side.opposite
    plans = []
    trailing = request.stop_loss_trailing_distance is not None
    if request.stop_loss is not None or trailing:
        # a broker-side trailing stop cannot also hold a fixed stop_loss floor: that combination is emulated
        native_trailing = ("trailing_stop" in capabilities.features and strategy == "pending"
                           and request.stop_loss is None)
        plans.append(LegPlan(STOP_LOSS, side, request.stop_loss,
                             trailing_distance=request.stop_loss_trailing_distance,
                             trailing_type=request.stop_loss_trailing_type,
                             emulated=trailing and not native_trailing))
    if request.take_profit is not None:
        watched = one_resting_exit and strategy == "pending" and bool(plans)
        plans.append(LegPlan(TAKE_PROFIT, side, request.take_profit, emulated=watched))
    return plans
