"""Four-eyes approvals (issue #17), as pure rules: which limit changes loosen an account's limits, who counts as
the same person, and the refusals a request meets.

A limit is loosened by a change that lets more through: a higher value, or no value at all (None is "no limit").
A few levels read the other way round: a shorter duplicate-order window warns about fewer orders, and a hard halt
that no longer flattens leaves positions open. An order rate of 0 is no limit (the throttle skips it), as None is.
A request that waits longer (``approval_ttl_minutes``) is looser too: an old request is approved on old facts.

Errors (codes are the wire's):

    DeskError
    ├── ApprovalRequired      403 UNAUTHORIZED (details.code APPROVAL_REQUIRED)  the change needs a second person
    ├── SelfApproval          403 UNAUTHORIZED (details.code SELF_APPROVAL)      the person asking cannot decide it
    ├── ApproverRequired      403 UNAUTHORIZED (details.code APPROVER_REQUIRED)  deciding needs the risk role
    ├── ApprovalNotFound      404 APPROVAL_NOT_FOUND
    ├── ApprovalNotPending    409 APPROVAL_NOT_PENDING  decided, withdrawn or expired already, or its order
    │                                                   being placed now (APPROVING)
    ├── NotHalted             409 NOT_HALTED            asking to let an account trade again that is not HALTED
    ├── ApprovalFailed        409 APPROVAL_FAILED       approved, but the change itself was refused now (the order's
    │                                                   checks, re-run); the request stays pending
    └── OrderNeedsApproval    422 ORDER_REJECTED (reject_code APPROVAL_REQUIRED)  a script's order above the
                                                        account's approval notional: no one to ask
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from enum import StrEnum
from typing import Any

from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import Conflict, DeskError, Forbidden, NotFound, OrderRejected
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest

LOWER_IS_LOOSER = frozenset({"duplicate_window_seconds"})
OFF_IS_LOOSER = frozenset({"flatten_on_hard_halt"})
ZERO_IS_NO_LIMIT = frozenset({"orders_per_second", "orders_per_minute"})
ACTOR_LENGTH = 150          # what the requests' and the audit trail's actor columns hold


def is_loosening(name: str, before: Any, after: Any) -> bool:
    """Whether setting the level ``name`` from ``before`` to ``after`` lets more through (None: no limit)."""
    if name in ZERO_IS_NO_LIMIT:
        before, after = before or None, after or None
    if before == after:
        return False
    if name in OFF_IS_LOOSER:
        return bool(before) and not after
    if after is None:
        return True                     # a limit removed
    if before is None:
        return False                    # a limit where there was none
    return after < before if name in LOWER_IS_LOOSER else after > before


def loosened(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The levels of ``after`` that loosen what ``before`` holds, in ``after``'s order."""
    return [name for name, value in after.items() if is_loosening(name, before.get(name), value)]


def person_of(actor: str) -> str:
    """Who an actor is, whichever door they came through: ``user:rita`` (the desk) and ``admin:rita`` (the admin)
    are both rita. A key, a command or the engine is no person: it is itself."""
    door, _, name = actor.partition(":")
    return name if door in ("user", "admin") and name else actor


def actor_kept(actor: str) -> str:
    """An actor as a request keeps it: cut to its column (``user:`` and a 150-character username are longer)."""
    return actor[:ACTOR_LENGTH]


def is_same_person(actor: str, other: str) -> bool:
    """Compared as kept: two names alike in all that is kept are one person (never a way to decide one's own)."""
    return person_of(actor_kept(actor)) == person_of(actor_kept(other))


def level_text(value: Any) -> str:
    """A level as a person reads it: 25, "no limit", on/off."""
    if value is None:
        return "no limit"
    if isinstance(value, bool):
        return "on" if value else "off"
    return format_decimal(value) if isinstance(value, Decimal) else str(value)


_ORDER_ENUMS: dict[str, type[StrEnum]] = {"side": Side, "order_type": OrderType, "time_in_force": TimeInForce,
                                          "trailing_type": TrailingType, "stop_loss_trailing_type": TrailingType}
_ORDER_DECIMALS = frozenset({"quantity", "limit_price", "stop_price", "trailing_distance", "stop_loss", "take_profit",
                             "display_quantity", "stop_loss_trailing_distance"})


def order_payload(request: OrderRequest) -> dict[str, Any]:
    """An order waiting for approval, as its request keeps it (JSON: decimals as strings, enums as their values)."""
    return {name: format_decimal(value) if isinstance(value, Decimal) else
            (value.value if isinstance(value, StrEnum) else value) for name, value in asdict(request).items()}


def order_from_payload(data: dict[str, Any]) -> OrderRequest:
    """The order ``order_payload`` kept, exactly as it was asked for."""
    fields = {}
    for name, value in data.items():
        if value is not None and name in _ORDER_DECIMALS:
            value = Decimal(value)
        elif value is not None and name in _ORDER_ENUMS:
            value = _ORDER_ENUMS[name](value)
        fields[name] = value
    return OrderRequest(**fields)


class ApprovalRequired(Forbidden):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs a second person's approval: ask for it, and someone else with the risk "
                         "role approves it", detail_code="APPROVAL_REQUIRED")


class SelfApproval(Forbidden):
    def __init__(self, requested_by: str) -> None:
        super().__init__(f"you asked for this yourself ({requested_by}): a second person with the risk role must "
                         "approve or reject it", detail_code="SELF_APPROVAL")


class ApproverRequired(Forbidden):
    def __init__(self) -> None:
        super().__init__("only a person with the risk role (or an admin) may approve or reject a request",
                         detail_code="APPROVER_REQUIRED")


class ApprovalNotFound(NotFound):
    code = "APPROVAL_NOT_FOUND"

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"Approval request not found: {str(approval_id)[:64]}",
                         details={"resource": "approval", "id": str(approval_id)[:64]})


class ApprovalNotPending(Conflict):
    code = "APPROVAL_NOT_PENDING"

    def __init__(self, status: str, by: str = "", *, note: str = "") -> None:
        if status == "APPROVING":
            message = (f"This request is being approved{f' by {by}' if by else ''}: its order is being placed now, "
                       "so it can no longer be withdrawn, rejected or approved again")
        else:
            said = {"APPROVED": "approved", "REJECTED": "rejected", "CANCELLED": "cancelled" if note else "withdrawn",
                    "EXPIRED": "expired"}
            message = (f"This request is no longer waiting: it was {said.get(status, status.lower())}"
                       + (f" by {by}" if by and status in ("APPROVED", "REJECTED", "CANCELLED") else "")
                       + (f" ({note})" if note else ""))
        super().__init__(message, details={"status": status})


class NotHalted(Conflict):
    code = "NOT_HALTED"

    def __init__(self, account: str, state: str) -> None:
        super().__init__(f"{account} is {state}, not HALTED: only a HALTED account is asked to trade again here. "
                         "The risk desk sets any other trading state", details={"trading_state": state})


class ApprovalFailed(Conflict):
    code = "APPROVAL_FAILED"

    def __init__(self, error: DeskError) -> None:
        super().__init__(f"Not approved: {error.message}. The request still waits; reject it, or approve it once "
                         "it can be done", details={"code": error.code, "error": error.details})
        self.error = error


class OrderNeedsApproval(OrderRejected):
    def __init__(self, *, notional: Decimal, threshold: Decimal) -> None:
        super().__init__("ORDER_REJECTED",
                         f"Order rejected: its notional {format_decimal(notional)} is above "
                         f"{format_decimal(threshold)}, above which an order on this account needs a second "
                         "person's approval; send it from the desk's ticket, where it waits for that approval",
                         reject_code="APPROVAL_REQUIRED", notional=format_decimal(notional),
                         approval_notional_above=format_decimal(threshold))
