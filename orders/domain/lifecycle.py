"""The life of an order and of an exit leg: which status may follow which, and what each step tells.

Pure tables, read by the one writer (``services/transitions.py``). Nothing else decides whether a
status may change, so every door (a request, a venue report, the engine) follows the same rules.

An order::

    PENDING ──venue accepts──▶ OPEN ──fills──▶ PARTIALLY_FILLED ──fills──▶ FILLED
       │                         │                   │                       │
       │                         └──────┬────────────┘        a filled leg grown
       ├──refused──▶ REJECTED           ├──cancelled──▶ CANCELLED ──late fill──▶ FILLED
       └──cancelled / expired           └──expired────▶ EXPIRED

A fill the venue made before our cancel reached it is real: a CANCELLED order still takes it
(and becomes FILLED when that completes it). A filled exit leg grown to cover a later entry
fill works again (FILLED → PARTIALLY_FILLED). Nothing leaves REJECTED or EXPIRED.
"""

from __future__ import annotations

from enum import StrEnum

from orders.domain.enums import OrderStatus
from orders.domain.errors import Conflict

_S = OrderStatus

ORDER_NEXT: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.PENDING: frozenset({_S.PENDING, _S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED,
                           _S.EXPIRED}),
    _S.OPEN: frozenset({_S.OPEN, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.REJECTED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.PENDING_CANCEL: frozenset({_S.PENDING_CANCEL, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED}),
    _S.CANCELLED: frozenset({_S.CANCELLED, _S.FILLED}),
    _S.FILLED: frozenset({_S.FILLED, _S.PARTIALLY_FILLED}),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


class OrderStep(StrEnum):
    """Why an order's row changes. With the status it reaches, it names the event clients are sent."""
    CREATED = "created"            # recorded, or answered by the venue at once
    HELD = "held"                  # a bracket leg recorded with its entry, held until the entry fills
    ACCEPTED = "accepted"          # the venue took it (an answer that was lost, or a held leg released)
    FILLED = "filled"              # a fill was applied
    MODIFIED = "modified"          # quantity or prices changed on request, or by the engine
    ENDED = "ended"                # cancelled, refused or expired, by us or by the venue


EVENT_BY_STATUS = {
    _S.PENDING: "ORDER_CREATED",
    _S.OPEN: "ORDER_CREATED",
    _S.PARTIALLY_FILLED: "ORDER_PARTIALLY_FILLED",
    _S.FILLED: "ORDER_FILLED",
    _S.CANCELLED: "ORDER_CANCELLED",
    _S.REJECTED: "ORDER_REJECTED",
    _S.EXPIRED: "ORDER_EXPIRED",
}


class IllegalTransition(Conflict):
    code = "ORDER_NOT_MODIFIABLE"

    def __init__(self, before: str, after: str) -> None:
        super().__init__(f"Order cannot be modified: an order cannot go from {before} to {after}",
                         details={"status": before, "requested_status": after})


def order_event(before: OrderStatus | None, after: OrderStatus, step: OrderStep) -> str:
    """The event that moving an order from ``before`` (None: not recorded yet) to ``after`` emits.
    Raises ``IllegalTransition`` when the table does not allow the move."""
    if before is not None and after not in ORDER_NEXT[OrderStatus(before)]:
        raise IllegalTransition(before, after)
    if step is OrderStep.HELD:
        return "BRACKET_ORDER_CREATED"
    if step is OrderStep.MODIFIED and after not in (_S.FILLED, _S.CANCELLED):
        return "ORDER_MODIFIED"
    if step is OrderStep.ACCEPTED:
        return "ORDER_CREATED"
    return EVENT_BY_STATUS[OrderStatus(after)]


class LegStatus(StrEnum):
    PENDING = "PENDING"
    PLACED = "PLACED"
    RETRYING = "RETRYING"
    FAILED = "FAILED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"


_L = LegStatus
LIVE_LEG = (_L.PENDING, _L.PLACED, _L.RETRYING, _L.FAILED)
UNPLACED = (_L.RETRYING, _L.FAILED)

# an exit leg (see ``ExitLeg``): placed when its entry fills, retried until placed, ended once
LEG_NEXT: dict[LegStatus, frozenset[LegStatus]] = {
    _L.PENDING: frozenset({_L.PLACED, _L.RETRYING, _L.FAILED, _L.CANCELLED, _L.FILLED}),
    _L.PLACED: frozenset({_L.RETRYING, _L.FILLED, _L.CANCELLED}),
    _L.RETRYING: frozenset({_L.PLACED, _L.RETRYING, _L.FAILED, _L.CANCELLED, _L.FILLED}),
    _L.FAILED: frozenset({_L.PLACED, _L.FAILED, _L.CANCELLED, _L.FILLED}),
    _L.FILLED: frozenset(),
    _L.CANCELLED: frozenset({_L.FILLED}),      # its order filled at the venue before our cancel arrived
}


def leg_sources(after: str) -> tuple[LegStatus, ...]:
    """The statuses a leg may reach ``after`` from: the compare-and-set's expected values."""
    return tuple(before for before, nexts in LEG_NEXT.items() if LegStatus(after) in nexts)
