"""Four-eyes approvals (issue #17): three changes need a second person with the risk role (or an admin).

* leaving HALTED (to ACTIVE or REDUCING): ``trading_state_ask`` (the doors that set the state), or
  ``trading_resume_ask`` (the desk's and the risk view's ask, which only asks and never sets a state itself); a
  new halt cancels every request to trade again asked before it (``risk.trading_state_set``);
* raising a limit, or removing one (lowering is done at once): ``limits_ask``, optionally for a while (the engine
  puts the limit back when its time is up, to the level in force when it was approved; a later change of that
  level supersedes it, ``limits.limits_set``, and a later raise for a while carries its level to go back to);
* a person's order whose notional is above the account's ``approval_notional_above``: ``ticket_send``. It is
  placed when approved, through ``tickets.ticket_submit`` with every check run again then; the request is
  APPROVING meanwhile (nobody withdraws, rejects or expires it while its order is sent), then APPROVED, or
  PENDING again when the order was refused. A request left APPROVING by a process that died while placing it
  is settled by the engine after ``STUCK_APPROVING``: APPROVED when its order was recorded, PENDING otherwise
  (``approvals_recover``).

Each ask writes an ``ApprovalRequest``; ``approval_approve`` makes the change with the decision, ``approval_reject``
and ``approval_cancel`` (the person asking withdraws it) close it, and the engine expires what nobody decided in
time (``approvals_tick``, never a web request). The person asking never decides their own request, whichever door
they come through (``domain.approvals.is_same_person``). Every ask, decision, refusal, expiry and revert is in the
audit trail (``approval.*``), pushed to every open risk view (``events.record_desk(…, "approvals")``) and counted
(``desk_approvals_total{kind, outcome}``). The services that make the changes refuse them without the approval
(``risk.trading_state_set``, ``limits.limits_set``), so no door can skip the second person."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain.approvals import (
    ApprovalFailed,
    ApprovalNotFound,
    ApprovalNotPending,
    ApproverRequired,
    NotHalted,
    SelfApproval,
    actor_kept,
    is_same_person,
    loosened,
    order_from_payload,
    order_payload,
)
from orders.domain.errors import Conflict, DeskError, Forbidden, InvalidValue
from orders.domain.guards import soft_not_below_hard
from orders.domain.ids import is_uuid
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest
from orders.metrics import APPROVALS
from orders.models import Account, ApprovalRequest, Order, PreTradeLimits, TradingState
from orders.services.audit import audit_record
from orders.services.limits import LEVELS, limits_check, limits_set, override_levels, overrides_under
from orders.services.risk import trading_state_set
from orders.services.tickets import ApprovalNeeded, TicketDraft, TicketResult, ticket_submit

Kind, Status = ApprovalRequest.Kind, ApprovalRequest.Status
ENGINE = "engine"
RESUME_STATES = (TradingState.ACTIVE, TradingState.REDUCING)
LONGEST_OVERRIDE_MINUTES = 24 * 60
# far longer than any venue takes to answer an order (the brokers' HTTP calls time out within seconds)
STUCK_APPROVING = timedelta(minutes=2)
_OUTCOME = {Status.APPROVED: "approved", Status.REJECTED: "rejected", Status.CANCELLED: "cancelled",
            Status.EXPIRED: "expired"}


class ApprovalPending(Conflict):
    code = "APPROVAL_PENDING"


# -- asking ----------------------------------------------------------------------------------------------------

def trading_state_ask(*, account: Account, state: str, actor: str, reason: str = "",
                      supervisor: bool = False) -> Account | ApprovalRequest:
    """Set the trading state as asked, or, leaving HALTED, ask a second person to: the request is returned (the
    same open request when it was asked already). ``reason`` is required then: the person approving reads it."""
    if state not in TradingState.values:
        raise InvalidValue("state", f"must be one of {', '.join(TradingState.values)}", provided=state)
    with transaction.atomic():
        current = Account.objects.select_for_update().values_list("trading_state", flat=True).get(pk=account.pk)
        if current != TradingState.HALTED or state == TradingState.HALTED:
            return trading_state_set(account=account, state=state, actor=actor, reason=reason, supervisor=supervisor)
        return _resume_ask(account=account, state=state, actor=actor, reason=reason, current=current)


def trading_resume_ask(*, account: Account, state: str, actor: str, reason: str = "") -> ApprovalRequest:
    """Ask a second person to let a HALTED account trade again, and nothing else: an account that is not HALTED
    is refused (``NotHalted``), so this door never sets a state itself (anyone on the account may ask here; any
    other change of the state is the risk desk's, ``trading_state_ask``)."""
    if state not in RESUME_STATES:
        raise InvalidValue("state", f"must be one of {', '.join(RESUME_STATES)}", provided=state)
    with transaction.atomic():
        current = Account.objects.select_for_update().values_list("trading_state", flat=True).get(pk=account.pk)
        if current != TradingState.HALTED:
            raise NotHalted(account.name, current)
        return _resume_ask(account=account, state=state, actor=actor, reason=reason, current=current)


def _resume_ask(*, account: Account, state: str, actor: str, reason: str, current: str) -> ApprovalRequest:
    """The request to leave HALTED for ``state`` (the one waiting already when it asks the same), under the
    account's lock."""
    if not reason.strip():
        raise InvalidValue("reason", f"say why {account.name} may trade again: the second person who approves "
                                     "it reads this", provided=reason)
    waiting = _waiting(account.pk, Kind.RESUME_TRADING).first()
    if waiting is not None:
        if waiting.payload.get("state") == state:
            return waiting
        raise ApprovalPending(f"{waiting.requested_by} already asked to set {account.name} "
                              f"{waiting.payload.get('state')}: that request must be decided or withdrawn first",
                              details={"approval_id": str(waiting.pk)})
    return _ask(account=account, kind=Kind.RESUME_TRADING, actor=actor, reason=reason,
                payload={"state": state, "previous": current})


@dataclass(frozen=True)
class LimitsAsked:
    """What ``limits_ask`` did: the limits as they are now (the lowered ones set), and the request for the raised
    ones (None when nothing was raised)."""
    row: PreTradeLimits | None
    approval: ApprovalRequest | None

    @property
    def raised(self) -> list[str]:
        return list(self.approval.payload["levels"]) if self.approval is not None else []


def limits_ask(*, account_id: int, actor: str, reason: str = "", minutes: int | None = None,
               **levels: Decimal | int | bool | None) -> LimitsAsked:
    """Set ``levels`` as a person asks: those that lower a limit (or add one) at once, through ``limits_set``; those
    that raise or remove one go to a second person, for ``minutes`` only when given (then put back by the engine)."""
    limits_check(levels)
    row = PreTradeLimits.objects.filter(account_id=account_id).first()
    before = {name: getattr(row, name) if row else _default(name) for name in levels}
    raised = loosened(before, levels)
    if minutes is not None and not 1 <= minutes <= LONGEST_OVERRIDE_MINUTES:
        raise InvalidValue("minutes", f"a limit is raised for 1 to {LONGEST_OVERRIDE_MINUTES} minutes, or empty for "
                                      "good", provided=minutes)
    if minutes is not None and not raised:
        raise InvalidValue("minutes", "only a raise is for a while: this change lowers the limit, which stays",
                           provided=minutes)
    lowered = {name: value for name, value in levels.items() if name not in raised}
    if lowered:
        row = limits_set(account_id=account_id, actor=actor, **lowered)
    if not raised:
        return LimitsAsked(row, None)
    asked = {"levels": {name: _wire(levels[name]) for name in raised},
             "previous": {name: _wire(before[name]) for name in raised}, "minutes": minutes}
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account_id)
        same = [a for a in _waiting(account_id, Kind.RAISE_LIMIT)
                if a.payload.get("levels") == asked["levels"] and a.payload.get("minutes") == minutes]
        approval = same[0] if same else _ask(account=account, kind=Kind.RAISE_LIMIT, actor=actor, reason=reason,
                                              payload=asked)
    return LimitsAsked(row, approval)


def ticket_send(*, account: Account, request: OrderRequest | TicketDraft, broker: Broker, actor: str,
                override_reason: str = "", confirmed: str = "") -> TicketResult | ApprovalRequest:
    """A person's ticket: placed by ``ticket_submit``, or, above the account's approval notional, sent for a second
    person's approval once every other check has passed (the same ticket sent again answers the same request)."""
    try:
        return ticket_submit(account=account, request=request, broker=broker, actor=actor, by_person=True,
                             override_reason=override_reason, confirmed=confirmed)
    except ApprovalNeeded as e:
        return _order_ask(account=account, preview=e.preview, actor=actor, override_reason=override_reason)


def _order_ask(*, account: Account, preview, actor: str, override_reason: str) -> ApprovalRequest:
    order = preview.request
    if not order.client_order_id:           # placed once, whoever approves it and however often
        order = order.with_changes(client_order_id=f"approval-{uuid.uuid4()}")
    with transaction.atomic():
        Account.objects.select_for_update().filter(pk=account.pk).first()
        twin = _waiting(account.pk, Kind.LARGE_ORDER).filter(
            payload__order__client_order_id=order.client_order_id).first()
        if twin is not None:
            return twin
        return _ask(account=account, kind=Kind.LARGE_ORDER, actor=actor, reason=override_reason, payload={
            "order": order_payload(order), "label": preview.label, "notional": format_decimal(preview.notional),
            "currency": account.currency, "override_reason": override_reason.strip()})


def _ask(*, account: Account, kind: str, actor: str, reason: str, payload: dict) -> ApprovalRequest:
    now = timezone.now()
    approval = ApprovalRequest.objects.create(account=account, kind=kind, requested_by=actor_kept(actor),
                                              requested_at=now, reason=reason.strip(), payload=payload,
                                              expires_at=now + _time_to_live(account.pk))
    audit_record(account_id=account.pk, actor=actor, action="approval.request", target=str(approval.pk), kind=kind,
                 reason=approval.reason, payload=payload, expires_at=approval.expires_at.isoformat())
    _told(approval, "requested")
    return approval


# -- deciding --------------------------------------------------------------------------------------------------

def approval_approve(*, account: Account, approval_id: str, actor: str, supervisor: bool, comment: str = "",
                     broker: Broker | None = None) -> ApprovalRequest:
    """Approve a request and make its change with the decision: the trading state set, the limits raised (until
    ``override_until`` when asked for a while), or the order placed through ``ticket_submit`` (every check run again
    now; a refusal leaves the request waiting: ``ApprovalFailed``). Only a ``supervisor`` who did not ask for it
    decides it. A large order's request is APPROVING while its order is sent, outside the claim's transaction."""
    now = timezone.now()
    try:
        with transaction.atomic():
            approval = _claimed(account, approval_id, actor=actor, supervisor=supervisor, now=now)
            if approval.kind != Kind.LARGE_ORDER:
                result, until = _carry_out(approval, actor=actor, now=now)
                return _decided(approval, Status.APPROVED, actor=actor, comment=comment, now=now, result=result,
                                override_until=until)
            _moved(approval, Status.PENDING, Status.APPROVING, decided_by=actor_kept(actor), decided_at=now)
        return _order_approve(approval, actor=actor, comment=comment, broker=broker)
    except DeskError as e:
        _refused(account, approval_id, actor=actor, verb="approve", error=e)
        raise


def _order_approve(approval: ApprovalRequest, *, actor: str, comment: str, broker: Broker | None) -> ApprovalRequest:
    """Place the order of a request claimed APPROVING (the venue is asked: no transaction is held), then close it
    APPROVED as of now, or put it back PENDING when the order was refused (an identical retry of its
    client_order_id answers the order already placed, so approving again never places it twice)."""
    try:
        result = _place(approval, broker=broker, comment=comment)
    except Exception:
        with transaction.atomic():
            _moved(approval, Status.APPROVING, Status.PENDING, decided_by="")
        raise
    with transaction.atomic():
        return _decided(approval, Status.APPROVED, actor=actor, comment=comment, now=timezone.now(), result=result,
                        claimed=Status.APPROVING)


def _moved(approval: ApprovalRequest, old: str, new: str, *, decided_by: str,
           decided_at: datetime | None = None) -> None:
    """Move a request from ``old`` to ``new`` (compare-and-set: ``ApprovalNotPending`` when it is no longer
    ``old``), pushed to every open risk view. APPROVING keeps when it was claimed in ``decided_at``."""
    if ApprovalRequest.objects.filter(pk=approval.pk, status=old).update(
            status=new, decided_by=decided_by, decided_at=decided_at) != 1:
        approval.refresh_from_db()
        raise ApprovalNotPending(approval.status, approval.decided_by)
    approval.status, approval.decided_by, approval.decided_at = new, decided_by, decided_at
    events.record_desk(approval.account_id, "approvals", id=str(approval.pk), kind=approval.kind, status=new)


def approval_reject(*, account: Account, approval_id: str, actor: str, supervisor: bool,
                    comment: str) -> ApprovalRequest:
    """Reject a request, saying why (the person who asked reads it). Only a ``supervisor`` who did not ask for it."""
    if not comment.strip():
        raise InvalidValue("comment", "say why it is rejected: the person who asked reads this", provided=comment)
    now = timezone.now()
    try:
        with transaction.atomic():
            approval = _claimed(account, approval_id, actor=actor, supervisor=supervisor, now=now)
            return _decided(approval, Status.REJECTED, actor=actor, comment=comment, now=now)
    except DeskError as e:
        _refused(account, approval_id, actor=actor, verb="reject", error=e)
        raise


def approval_cancel(*, account: Account, approval_id: str, actor: str) -> ApprovalRequest:
    """The person who asked withdraws their request (anyone else rejects it instead); not while its order is being
    placed (APPROVING)."""
    now = timezone.now()
    with transaction.atomic():
        approval = _found(account, approval_id, lock=True)
        if not is_same_person(actor, approval.requested_by):
            raise Forbidden(f"only the person who asked ({approval.requested_by}) may withdraw this request; "
                            "reject it instead", detail_code="NOT_REQUESTER")
        _check_pending(approval, now)
        return _decided(approval, Status.CANCELLED, actor=actor, comment="withdrawn", now=now)


def _found(account: Account, approval_id: str, *, lock: bool = False) -> ApprovalRequest:
    rows = ApprovalRequest.objects.select_for_update() if lock else ApprovalRequest.objects
    approval = rows.filter(pk=approval_id, account=account).first() if is_uuid(approval_id) else None
    if approval is None:
        raise ApprovalNotFound(approval_id)
    return approval


def _claimed(account: Account, approval_id: str, *, actor: str, supervisor: bool, now: datetime) -> ApprovalRequest:
    """The request, locked, that ``actor`` may decide now: still waiting, and not theirs. The account is locked
    first, as ``trading_state_set`` locks it before a halt cancels the requests to trade again."""
    Account.objects.select_for_update().filter(pk=account.pk).first()
    approval = _found(account, approval_id, lock=True)
    if not supervisor:
        raise ApproverRequired()
    _check_pending(approval, now)
    if is_same_person(actor, approval.requested_by):
        raise SelfApproval(approval.requested_by)
    return approval


def _check_pending(approval: ApprovalRequest, now: datetime) -> None:
    if approval.status != Status.PENDING:
        by_another = approval.status == Status.CANCELLED and not is_same_person(approval.decided_by,
                                                                                approval.requested_by)
        raise ApprovalNotPending(approval.status, approval.decided_by, note=approval.comment if by_another else "")
    if approval.expires_at <= now:          # the engine marks it EXPIRED at its next tick
        raise ApprovalNotPending(Status.EXPIRED)


def _carry_out(approval: ApprovalRequest, *, actor: str, now: datetime) -> tuple[dict, datetime | None]:
    """Make a trading-state or limit change, with the approval that lets it through (``ApprovalFailed`` when it
    cannot be made now)."""
    try:
        with transaction.atomic():
            return _change(approval, actor=actor, now=now)
    except DeskError as e:
        raise ApprovalFailed(e) from e


def _change(approval: ApprovalRequest, *, actor: str, now: datetime) -> tuple[dict, datetime | None]:
    if approval.kind == Kind.RESUME_TRADING:
        state = approval.payload["state"]
        trading_state_set(account=approval.account, state=state, actor=actor, reason=approval.reason,
                          supervisor=True, approval=approval)
        return {"state": state}, None
    levels = {name: _typed(name, value) for name, value in approval.payload["levels"].items()}
    row = PreTradeLimits.objects.select_for_update().filter(account_id=approval.account_id).first()
    in_force = {name: getattr(row, name) if row else _default(name) for name in LEVELS}
    measure = soft_not_below_hard(in_force | levels)
    if measure is not None:
        raise InvalidValue(f"{measure}_soft", f"the soft {measure.replace('_', ' ')} level would no longer be below "
                                              "the hard one")
    base = {name: in_force[name] for name in levels} | _carried(approval.account_id, levels)
    limits_set(account_id=approval.account_id, actor=actor, approval=approval, **levels)
    minutes = approval.payload.get("minutes")
    return ({"levels": approval.payload["levels"], "base": {name: _wire(value) for name, value in base.items()}},
            now + timedelta(minutes=minutes) if minutes else None)


def _carried(account_id: int, levels: dict[str, Any]) -> dict[str, Any]:
    """For each of ``levels`` a raise for a while still holds, the level it goes back to: a raise that replaces it
    goes back there too, never to the raised level (a chain of raises would stay raised)."""
    carried = {}
    for running in overrides_under(account_id, levels):
        base = override_base(running)
        carried |= {name: base[name] for name in override_levels(running) & set(levels)}
    return carried


def override_base(approval: ApprovalRequest) -> dict[str, Any]:
    """The levels a raise for a while goes back to: those in force when it was approved (asked for, by a request
    approved before they were kept)."""
    kept = approval.result.get("base") or approval.payload["previous"]
    return {name: _typed(name, value) for name, value in kept.items()}


def _place(approval: ApprovalRequest, *, broker: Broker | None, comment: str) -> dict:
    """Place the approved order as its requester's, through the ticket's one rule (every check run again)."""
    if broker is None:
        raise InvalidValue("broker", "placing an approved order needs the account's broker")
    payload = approval.payload
    try:
        result = ticket_submit(account=approval.account, request=order_from_payload(payload["order"]), broker=broker,
                               actor=approval.requested_by, by_person=True,
                               override_reason=payload.get("override_reason") or comment, approval=approval)
    except DeskError as e:
        raise ApprovalFailed(e) from e
    return {"order_id": str(result.order.id), "status": result.order.status}


def _decided(approval: ApprovalRequest, status: str, *, actor: str, comment: str, now: datetime,
             result: dict | None = None, override_until: datetime | None = None,
             claimed: str = Status.PENDING) -> ApprovalRequest:
    """Close the request as ``status`` (compare-and-set from ``claimed``: one decision wins), audited, pushed and
    counted."""
    fields = {"status": status, "decided_by": actor_kept(actor), "decided_at": now, "comment": comment.strip(),
              "result": result or {}, "override_until": override_until}
    if ApprovalRequest.objects.filter(pk=approval.pk, status=claimed).update(**fields) != 1:
        approval.refresh_from_db()
        raise ApprovalNotPending(approval.status, approval.decided_by)
    for name, value in fields.items():
        setattr(approval, name, value)
    verb = {Status.APPROVED: "approve", Status.REJECTED: "reject", Status.CANCELLED: "cancel"}[status]
    audit_record(account_id=approval.account_id, actor=actor, action=f"approval.{verb}", target=str(approval.pk),
                 kind=approval.kind, requested_by=approval.requested_by, comment=approval.comment,
                 done=approval.result,
                 **({"override_until": override_until.isoformat()} if override_until else {}))
    _told(approval, _OUTCOME[status])
    return approval


def _refused(account: Account, approval_id: str, *, actor: str, verb: str, error: DeskError) -> None:
    """A decision refused, in the audit trail (a person deciding their own request is counted too)."""
    kind = ApprovalRequest.objects.filter(pk=approval_id, account=account).values_list(
        "kind", flat=True).first() if is_uuid(approval_id) else None
    with transaction.atomic():
        audit_record(account_id=account.pk, actor=actor, action=f"approval.{verb}", target=str(approval_id)[:64],
                     result="failed" if isinstance(error, ApprovalFailed) else "refused", code=error.code,
                     message=error.message, kind=kind or "")
    if kind and isinstance(error, SelfApproval | ApprovalFailed):
        APPROVALS.inc(kind=kind, outcome="self_refused" if isinstance(error, SelfApproval) else "failed")


def _told(approval: ApprovalRequest, outcome: str) -> None:
    """Every open risk view redraws its queue; the count once the change is committed."""
    events.record_desk(approval.account_id, "approvals", id=str(approval.pk), kind=approval.kind,
                       status=approval.status)
    transaction.on_commit(lambda: APPROVALS.inc(kind=approval.kind, outcome=outcome))


# -- the engine: expiry and temporary raises put back -------------------------------------------------------------

def approvals_tick(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    account_ids = [account.pk for account in accounts]
    approvals_recover(account_ids=account_ids, now=now)
    approvals_expire(account_ids=account_ids, now=now)
    overrides_revert(account_ids=account_ids, now=now)


def approvals_expire(*, account_ids: list[int], now: datetime) -> int:
    """Close every request nobody decided in time (EXPIRED). Returns how many."""
    due = list(ApprovalRequest.objects.filter(account_id__in=account_ids, status=Status.PENDING,
                                              expires_at__lte=now).order_by("expires_at")[:500])
    expired = 0
    for approval in due:
        with transaction.atomic():
            if not ApprovalRequest.objects.filter(pk=approval.pk, status=Status.PENDING).update(
                    status=Status.EXPIRED, decided_at=now):
                continue                    # decided meanwhile
            approval.refresh_from_db(fields=["status", "decided_at"])
            audit_record(account_id=approval.account_id, actor=ENGINE, action="approval.expire",
                         target=str(approval.pk), kind=approval.kind, requested_by=approval.requested_by,
                         expires_at=approval.expires_at.isoformat())
            _told(approval, "expired")
            expired += 1
    return expired


def approvals_recover(*, account_ids: list[int], now: datetime) -> int:
    """Settle every request left APPROVING longer than ``STUCK_APPROVING`` (the process placing its order died
    before closing it): APPROVED with its order when the order was recorded (placed once: its client id is the
    request's), PENDING again otherwise, for a second person to approve or the clock to expire. Returns how many."""
    stuck = list(ApprovalRequest.objects.filter(account_id__in=account_ids, status=Status.APPROVING,
                                                decided_at__lte=now - STUCK_APPROVING).order_by("decided_at")[:500])
    for approval in stuck:
        client_order_id = approval.payload["order"].get("client_order_id") or ""
        order = Order.objects.filter(account_id=approval.account_id, client_order_id=client_order_id).first() \
            if client_order_id else None
        with transaction.atomic():
            try:
                if order is not None:
                    _decided(approval, Status.APPROVED, actor=approval.decided_by, comment=approval.comment,
                             now=approval.decided_at, result={"order_id": str(order.id), "status": order.status},
                             claimed=Status.APPROVING)
                else:
                    _moved(approval, Status.APPROVING, Status.PENDING, decided_by="")
            except ApprovalNotPending:
                continue                    # closed meanwhile by the process placing it
            audit_record(account_id=approval.account_id, actor=ENGINE, action="approval.recover",
                         target=str(approval.pk), kind=approval.kind, requested_by=approval.requested_by,
                         outcome="placed" if order is not None else "not placed, waiting again",
                         order_id=str(order.id) if order is not None else "")
    return len(stuck)


def overrides_revert(*, account_ids: list[int], now: datetime) -> int:
    """Put back every limit raised for a while whose time is up: each level it still holds returns to the level in
    force when it was approved (one changed since, which superseded it, is left as it is and named in the audit
    trail). Returns how many raises."""
    due = list(ApprovalRequest.objects.filter(account_id__in=account_ids, status=Status.APPROVED,
                                              reverted_at__isnull=True, override_until__lte=now)[:500])
    for approval in due:
        with transaction.atomic():
            if not ApprovalRequest.objects.filter(pk=approval.pk, reverted_at__isnull=True).update(reverted_at=now):
                continue
            row = PreTradeLimits.objects.select_for_update().filter(account_id=approval.account_id).first()
            raised = {name: _typed(name, value) for name, value in approval.payload["levels"].items()}
            base, held = override_base(approval), override_levels(approval)
            back = {name: base[name] for name, value in raised.items()
                    if name in held and row is not None and getattr(row, name) == value}
            if back:
                limits_set(account_id=approval.account_id, actor=ENGINE, **back)
            audit_record(account_id=approval.account_id, actor=ENGINE, action="approval.revert",
                         target=str(approval.pk), requested_by=approval.requested_by,
                         restored={name: _wire(value) for name, value in back.items()},
                         left=sorted(set(raised) - set(back)))
            events.record_desk(approval.account_id, "approvals", id=str(approval.pk), status="REVERTED")
    return len(due)


# -- what the risk view shows -------------------------------------------------------------------------------------

def approvals_waiting(*, account: Account) -> list[ApprovalRequest]:
    """The requests a second person may still decide, oldest first, and those whose order is being placed."""
    return list(_waiting(account.pk).order_by("requested_at"))


def approvals_decided(*, account: Account, count: int = 5) -> list[ApprovalRequest]:
    """The latest requests closed (approved, rejected, withdrawn, expired), newest first."""
    return list(ApprovalRequest.objects.filter(account=account).exclude(status__in=(Status.PENDING,
                                                                                   Status.APPROVING))
                .order_by("-decided_at", "-requested_at")[:count])


def overrides_running(*, account: Account) -> list[ApprovalRequest]:
    """Limits raised for a while, not yet put back."""
    return list(ApprovalRequest.objects.filter(account=account, status=Status.APPROVED, reverted_at__isnull=True,
                                               override_until__gt=timezone.now()).order_by("override_until"))


def _waiting(account_id: int, kind: str | None = None):
    rows = ApprovalRequest.objects.filter(Q(status=Status.PENDING, expires_at__gt=timezone.now())
                                          | Q(status=Status.APPROVING), account_id=account_id)
    return rows.filter(Q(kind=kind)) if kind else rows


def _time_to_live(account_id: int) -> timedelta:
    minutes = PreTradeLimits.objects.filter(account_id=account_id).values_list(
        "approval_ttl_minutes", flat=True).first()
    return timedelta(minutes=minutes or _default("approval_ttl_minutes"))


def _default(name: str) -> Any:
    field = PreTradeLimits._meta.get_field(name)
    return field.get_default()


def _typed(name: str, value: Any) -> Any:
    """A level kept in a request's JSON, as its column holds it."""
    if value is None:
        return None
    internal = PreTradeLimits._meta.get_field(name).get_internal_type()
    if internal == "DecimalField":
        return Decimal(str(value))
    return bool(value) if internal == "BooleanField" else int(value)


def _wire(value: Any) -> Any:
    return format_decimal(value) if isinstance(value, Decimal) else value

