"""Account trading state, the kill switch, and the risk view's answers to an alert (re-place an unprotected
position's exits).

ACTIVE: anything goes. REDUCING: only orders that shrink a position. HALTED: nothing new
(closing positions and exit legs still work — a halt never blocks getting out)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain.approvals import ApprovalRequired, actor_kept
from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType
from orders.domain.errors import AlertNotFound, Conflict, DeskError, Forbidden, InvalidRequest, InvalidValue
from orders.domain.guards import trading_day
from orders.domain.ids import is_uuid
from orders.domain.lifecycle import UNPLACED
from orders.domain.money import format_decimal
from orders.metrics import APPROVALS
from orders.models import (
    Account,
    AccountDay,
    Alert,
    ApprovalRequest,
    AuditEvent,
    ExitLeg,
    Order,
    Position,
    TradingState,
)
from orders.selectors import position_quantity
from orders.services.audit import audit_record
from orders.services.flatness import flatness_start
from orders.services.orders import order_cancel
from orders.services.positions import position_close
from orders.services.protection import protect
from orders.services.transitions import leg_transition


def trading_state_set(*, account: Account, state: str, actor: str, reason: str = "",
                      supervisor: bool = False, approval: ApprovalRequest | None = None) -> Account:
    """Set the account's trading state. After today's loss guard made it REDUCING or HALTED (``services/guards.py``),
    only a ``supervisor`` (the risk role) may loosen it below what the guard set, and only with a typed reason.
    Leaving HALTED needs a second person: only the ``approval`` of that very change lets it through
    (``ApprovalRequired`` otherwise; people ask through ``services/approvals.py``). Setting HALTED, even on a
    HALTED account, cancels every request to trade again asked before it: approving one would undo this halt."""
    if state not in TradingState.values:
        raise InvalidValue("state", f"must be one of {', '.join(TradingState.values)}", provided=state)
    with transaction.atomic():
        previous = Account.objects.select_for_update().values_list("trading_state", flat=True).get(pk=account.pk)
        if previous == TradingState.HALTED and state != previous and not _approves(approval, account, state):
            raise ApprovalRequired(f"Letting {account.name} trade again ({state}) after it was HALTED")
        guard = _guard_loosened(account, previous=previous, state=state)
        if guard and not supervisor:
            raise Forbidden(f"{account.name} was made {GUARD_STATE[guard]} by its {guard.lower()} loss guard: "
                            f"only a supervisor (the risk role) may set it {state}", detail_code="SUPERVISOR_REQUIRED")
        if guard and not reason.strip():
            raise InvalidValue("reason", f"say why {account.name} may trade again after its {guard.lower()} loss "
                                         "guard", provided=reason)
        Account.objects.filter(pk=account.pk).update(trading_state=state)
        audit_record(account_id=account.pk, actor=actor, action="account.trading_state", target=account.name,
                     previous=previous, state=state, reason=reason, **({"after_guard": guard} if guard else {}),
                     **({"approval": str(approval.pk), "requested_by": approval.requested_by} if approval else {}))
        events.record_desk(account.pk, "trading_state", state=state, previous=previous)
        if state == TradingState.HALTED:
            _resume_requests_cancel(account, actor=actor, reason=reason)
    account.trading_state = state
    return account


def _resume_requests_cancel(account: Account, *, actor: str, reason: str) -> None:
    """Cancel the account's requests to trade again still waiting (a new halt ends them), audited, pushed and
    counted like a withdrawal (``services/approvals.py``)."""
    now = timezone.now()
    note = f"{account.name} was HALTED again by {actor}" + (f": {reason.strip()}" if reason.strip() else "")
    waiting = ApprovalRequest.objects.filter(account_id=account.pk, kind=ApprovalRequest.Kind.RESUME_TRADING,
                                             status=ApprovalRequest.Status.PENDING, expires_at__gt=now)
    for approval in waiting:
        if not ApprovalRequest.objects.filter(pk=approval.pk, status=ApprovalRequest.Status.PENDING).update(
                status=ApprovalRequest.Status.CANCELLED, decided_by=actor_kept(actor), decided_at=now, comment=note):
            continue                        # decided meanwhile
        audit_record(account_id=account.pk, actor=actor, action="approval.cancel", target=str(approval.pk),
                     kind=approval.kind, requested_by=approval.requested_by, comment=note, halted=True)
        events.record_desk(account.pk, "approvals", id=str(approval.pk), kind=approval.kind,
                           status=ApprovalRequest.Status.CANCELLED)
        transaction.on_commit(lambda kind=approval.kind: APPROVALS.inc(kind=kind, outcome="cancelled"))


def _approves(approval: ApprovalRequest | None, account: Account, state: str) -> bool:
    return (approval is not None and approval.kind == ApprovalRequest.Kind.RESUME_TRADING
            and approval.account_id == account.pk and approval.payload.get("state") == state)


# who the loss guard is in the audit trail, what its levels set, and how restrictive each state is (a move down
# this order loosens)
GUARD_ACTOR = "guard:loss"
GUARD_STATE = {"SOFT": TradingState.REDUCING, "HARD": TradingState.HALTED}
_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def is_loosening(previous: str, state: str) -> bool:
    """Does going from ``previous`` to ``state`` let the account trade more (HALTED → REDUCING → ACTIVE)?"""
    return _STRICTNESS.get(state, 0) < _STRICTNESS.get(previous, 0)


def _guard_loosened(account: Account, *, previous: str, state: str) -> str:
    """The loss guard level tripped today ("SOFT"/"HARD") when setting ``state`` loosens the account below what
    that level set; else ""."""
    if not is_loosening(previous, state):
        return ""
    level = AccountDay.objects.filter(account_id=account.pk, day=trading_day(timezone.now(), account.timezone)
                                      ).values_list("level", flat=True).first()
    if level in GUARD_STATE and _STRICTNESS[state] < _STRICTNESS[GUARD_STATE[level]]:
        return level
    # the state the guard set holds past the account's midnight: until a person changes it, it is the guard's
    last = (AuditEvent.objects.filter(account_id=account.pk, action="account.trading_state")
            .order_by("-at", "-pk").values_list("actor", flat=True).first())
    if last == GUARD_ACTOR:
        return next((lvl for lvl, set_to in GUARD_STATE.items() if set_to == previous), "")
    return ""


ROLE_NAMES = {Order.LegRole.STOP_LOSS: "stop-loss", Order.LegRole.TAKE_PROFIT: "take-profit",
              Order.LegRole.CLOSE: "closing order"}


def order_role(order: Order) -> str:
    """What an order is for, as a person calls it: entry, stop-loss, take-profit, trailing stop or closing order."""
    if order.order_type == OrderType.TRAILING_STOP and order.leg_role in (None, Order.LegRole.STOP_LOSS):
        return "trailing stop"
    return ROLE_NAMES.get(order.leg_role, "entry")


@dataclass(frozen=True)
class ReceiptLine:
    """One order the kill switch cancelled, kept or sent to close a position."""
    order_id: str
    symbol: str
    side: str
    quantity: str
    role: str

    @classmethod
    def of(cls, order: Order) -> ReceiptLine:
        return cls(order_id=str(order.id), symbol=order.symbol, side=order.side,
                   quantity=format_decimal(order.quantity), role=order_role(order))


@dataclass
class KillSwitchReceipt:
    """What the kill switch did. The ``*_order_ids`` lists are the /v1 answer's (``wire.KillSwitchOut``); the
    ``cancelled``, ``kept`` and ``closing`` lines name each order by its role for the people reading it."""
    account: str
    trading_state: str
    cancelled: list[ReceiptLine] = field(default_factory=list)
    kept: list[ReceiptLine] = field(default_factory=list)
    closing: list[ReceiptLine] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    run_id: str = ""        # the KillSwitchRun the engine follows until the venue is flat (``services/flatness.py``)

    @property
    def cancelled_order_ids(self) -> list[str]:
        return [line.order_id for line in self.cancelled]

    @property
    def kept_order_ids(self) -> list[str]:
        return [line.order_id for line in self.kept]

    @property
    def closing_order_ids(self) -> list[str]:
        return [line.order_id for line in self.closing]

    def as_dict(self) -> dict:
        return {"account": self.account, "trading_state": self.trading_state,
                "cancelled_order_ids": self.cancelled_order_ids, "cancelled_count": len(self.cancelled),
                "kept_order_ids": self.kept_order_ids, "closing_order_ids": self.closing_order_ids,
                "failures": self.failures, "cancelled": [asdict(line) for line in self.cancelled],
                "kept": [asdict(line) for line in self.kept], "closing": [asdict(line) for line in self.closing],
                "run_id": self.run_id}


def kill_switch(*, account: Account, broker: Broker, actor: str, flatten: bool = False) -> KillSwitchReceipt:
    """Halt the account, cancel every working order and, if asked, flatten every position.

    Without ``flatten`` the stop-loss / take-profit legs of positions that stay open are kept, so the
    kill switch never leaves a position without its stop; they are listed as kept in the receipt."""
    trading_state_set(account=account, state=TradingState.HALTED, actor=actor, reason="kill switch")
    receipt = KillSwitchReceipt(account=account.name, trading_state=TradingState.HALTED)
    working = Order.objects.filter(account=account, status__in=WORKING_STATUSES).order_by("created_at")
    open_symbols = set(Position.objects.filter(account=account).exclude(quantity=0).values_list("symbol", flat=True))
    for order in working:
        order.refresh_from_db()
        if order.status not in WORKING_STATUSES:
            if order.status == OrderStatus.CANCELLED:      # ended with the entry cancelled just before
                receipt.cancelled.append(ReceiptLine.of(order))
            continue
        protective = (order.exit_leg_id is not None and order.symbol in open_symbols
                      and order.exit_leg.entry.filled_quantity > 0)
        if protective and not flatten:
            receipt.kept.append(ReceiptLine.of(order))
            continue
        try:
            order_cancel(account=account, order_id=str(order.id), broker=broker, reason="kill switch", actor=actor)
            receipt.cancelled.append(ReceiptLine.of(order))
        except DeskError as e:
            receipt.failures.append({"order_id": str(order.id), "action": "cancel", "error": e.message,
                                     "symbol": order.symbol, "role": order_role(order)})
    if flatten:
        for symbol in sorted(open_symbols):
            try:
                order = position_close(account=account, position_id=symbol, broker=broker, actor=actor)
                receipt.closing.append(ReceiptLine.of(order))
            except DeskError as e:
                receipt.failures.append({"symbol": symbol, "action": "close", "error": e.message})
    # the engine now asks the venue until it is flat: cancels refused are retried, NOT_FLAT after N s
    receipt.run_id = str(flatness_start(account=account, actor=actor, flatten=flatten, receipt=receipt.as_dict()).pk)
    audit_record(account_id=account.pk, actor=actor, action="account.kill_switch", target=account.name,
                 result="ok" if not receipt.failures else "partial", flatten=flatten,
                 cancelled=len(receipt.cancelled), closing=len(receipt.closing), failures=receipt.failures,
                 run=receipt.run_id)
    return receipt


# -- the risk view's one-click answers to an alert -----------------------------------------------------------

def leg_role_name(leg: ExitLeg) -> str:
    if leg.role == Order.LegRole.STOP_LOSS and leg.trailing_distance is not None:
        return "trailing stop"
    return ROLE_NAMES[leg.role]


@dataclass(frozen=True)
class ExitsReplaced:
    """What re-placing an unprotected position's exits did: the legs placed again, and those the venue still
    refused, each with its error."""
    symbol: str
    placed: list[str]
    failed: list[tuple[str, str]]


class ExitsNotReplaced(Conflict):
    code = "EXITS_NOT_REPLACED"


def position_exits_replace(*, account: Account, alert_id: str, broker: Broker, actor: str) -> ExitsReplaced:
    """POSITION_UNPROTECTED's one click: try the entry's unplaced exit legs again now, through the same
    ``protection.protect`` the engine retries them with (a leg placed again resolves the alert). Audited as
    ``position.exits_replace`` with what was placed and what failed."""
    alert = Alert.objects.filter(pk=alert_id, account=account).first() if is_uuid(alert_id) else None
    if alert is None:
        raise AlertNotFound(alert_id)
    if alert.kind != Alert.Kind.POSITION_UNPROTECTED or alert.entry_id is None:
        raise InvalidRequest(f"a {alert.kind} alert has no exit order to re-place")
    now = timezone.now()
    with transaction.atomic():
        entry = Order.objects.select_for_update().get(pk=alert.entry_id)
        if position_quantity(account=account, symbol=entry.symbol) == 0:
            raise ExitsNotReplaced(f"{entry.symbol} is flat: there is no position to protect")
        unplaced = list(ExitLeg.objects.filter(entry=entry, status__in=UNPLACED).order_by("role"))
        if not unplaced:
            raise ExitsNotReplaced(f"every exit order of this {entry.symbol} position is placed already")
        for leg in unplaced:                       # due now, whatever its backoff said
            leg_transition(leg, leg.status, only_from=(leg.status,), next_attempt_at=now)
        protect(entry=entry, broker=broker, now=now)
    legs = [ExitLeg.objects.get(pk=leg.pk) for leg in unplaced]
    result = ExitsReplaced(symbol=entry.symbol,
                           placed=[leg_role_name(leg) for leg in legs if leg.status not in UNPLACED],
                           failed=[(leg_role_name(leg), leg.last_error) for leg in legs if leg.status in UNPLACED])
    audit_record(account_id=account.pk, actor=actor, action="position.exits_replace", target=str(entry.id),
                 result="failed" if result.failed else "ok", symbol=entry.symbol, alert=str(alert.pk),
                 placed=result.placed, failed=[{"role": role, "error": error} for role, error in result.failed])
    return result

