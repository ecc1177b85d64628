"""The risk view's approval queue (four eyes, ``services/approvals.py``): the requests waiting for a second person,
each with Approve and Reject (and a comment) for the risk desk, or "waiting for a second person" and Withdraw for
the person who asked; the latest decisions and the limits raised for a while. Anyone on the account asks to let a
HALTED account trade again here, and only that (any other change of the trading state is the risk desk's form);
the risk desk sets or asks to raise a limit. One partial serves the page, every
answer and every push (``realtime/desk.py`` redraws it for each open risk view as its own person sees it)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from orders.brokers import get_broker
from orders.domain.approvals import is_same_person, level_text
from orders.domain.errors import DeskError, InvalidValue
from orders.domain.money import to_decimal
from orders.models import Account, ApprovalRequest, PreTradeLimits, TradingState
from orders.services.approvals import (
    RESUME_STATES,
    approval_approve,
    approval_cancel,
    approval_reject,
    approvals_decided,
    approvals_waiting,
    limits_ask,
    overrides_running,
    trading_resume_ask,
)
from orders.services.limits import LEVELS
from orders.web.context import LIMIT_LABELS
from orders.web.roles import can_supervise, can_trade, desk_account, require
from orders.web.session import login_required

TEMPLATE = "orders/approvals.html"
FRAGMENT_HEADER = "X-Desk-Fragment"         # a refusal drawn as the card itself (static/js/refusals.js)
TITLES = {ApprovalRequest.Kind.RESUME_TRADING: "Trade again after HALTED",
          ApprovalRequest.Kind.RAISE_LIMIT: "Raise a limit", ApprovalRequest.Kind.LARGE_ORDER: "Large order"}
risk_only = require(can_supervise, "Only the risk desk may do this.")



def approvals_context(account: Account, *, actor: str, can_supervise: bool, can_trade: bool) -> dict:
    """The queue as ``actor`` sees it: their own requests wait for someone else, the risk desk decides the rest."""
    waiting = approvals_waiting(account=account)
    limits = PreTradeLimits.objects.filter(account=account).first()
    state = Account.objects.values_list("trading_state", flat=True).get(pk=account.pk)
    return {
        "approvals": [{"approval": a, "title": TITLES[a.kind], "text": approval_text(a, account.name),
                       "mine": is_same_person(actor, a.requested_by)} for a in waiting],
        "approvals_decided": [{"approval": a, "text": approval_text(a, account.name), "after": afterwards(a)}
                              for a in approvals_decided(account=account)],
        "overrides": [{"approval": a, "text": approval_text(a, account.name), "after": afterwards(a)}
                      for a in overrides_running(account=account)],
        "ask_resume": state == TradingState.HALTED and (can_trade or can_supervise) and not any(
            a.kind == ApprovalRequest.Kind.RESUME_TRADING for a in waiting),
        "resume_states": RESUME_STATES, "can_supervise": can_supervise,
        "limit_choices": [(name, LIMIT_LABELS[name]) for name in LEVELS],
        "approval_above": limits.approval_notional_above if limits else None,
        "approval_ttl": limits.approval_ttl_minutes if limits else 15,
    }


def approval_text(approval: ApprovalRequest, account_name: str) -> str:
    """What a request would change, in a person's words."""
    payload = approval.payload
    if approval.kind == ApprovalRequest.Kind.RESUME_TRADING:
        return f"Let {account_name} trade again: HALTED → {payload.get('state')}"
    if approval.kind == ApprovalRequest.Kind.LARGE_ORDER:
        return f"{payload.get('label')} ≈ {Decimal(payload.get('notional', '0')):,.2f} {payload.get('currency', '')}"
    changes = "; ".join(f"{name} {level_text(payload['previous'].get(name))} → {level_text(value)}"
                        for name, value in payload.get("levels", {}).items())
    minutes = payload.get("minutes")
    return changes + (f", for {minutes} minutes" if minutes else "")


def afterwards(approval: ApprovalRequest) -> str:
    """What became of a raise for a while: put back, or changed since (then the later change stays)."""
    superseded = sorted((approval.result or {}).get("superseded", {}))
    changed = f"{', '.join(superseded)} changed since (that change stays)" if superseded else ""
    if approval.reverted_at is None:
        return changed
    if set(superseded) >= set(approval.payload.get("levels", {})):
        return f"{changed}, not put back"
    when = f"put back at {approval.reverted_at:%H:%M:%S} UTC"
    return f"{changed}; the rest {when}" if changed else when


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.username}"


def _card(request: HttpRequest, account: Account, *, ok: list[str] | None = None,
          errors: list[str] | None = None, status: int = 200) -> HttpResponse:
    """The card redrawn, and out of band beside it what the action did (a push redraws the card, not that)."""
    context = {**approvals_context(account, actor=_actor(request), can_supervise=can_supervise(request.user),
                                   can_trade=can_trade(request.user)), "account": account}
    html = render_to_string(f"{TEMPLATE}#approvals", context, request=request) + render_to_string(
        f"{TEMPLATE}#approval-result", {"approval_ok": ok or [], "approval_errors": errors or [], "oob": True})
    response = HttpResponse(html, status=status)
    if status >= 400:
        response[FRAGMENT_HEADER] = "approvals"
    return response


def _refused(request: HttpRequest, account: Account, error: DeskError) -> HttpResponse:
    return _card(request, account, errors=[error.message], status=error.status)


@login_required
@require_POST
def resume_ask_view(request: HttpRequest) -> HttpResponse:
    """Ask to let a HALTED account trade again (anyone with a role on it); a second risk person approves it. Only
    that: an account that is not HALTED is refused in the card (the risk desk's form sets any other state)."""
    account = desk_account(request)
    if not (can_trade(request.user) or can_supervise(request.user)):
        return _card(request, account, errors=["Your role cannot ask for this."], status=403)
    try:
        trading_resume_ask(account=account, state=request.POST.get("state", ""), actor=_actor(request),
                           reason=request.POST.get("reason", ""))
    except DeskError as e:
        return _refused(request, account, e)
    return _card(request, account, ok=["Sent for approval: waiting for a second person with the risk role."])


@login_required
@require_POST
@risk_only
def limits_ask_view(request: HttpRequest) -> HttpResponse:
    """Set a limit (lowered: at once) or ask to raise or remove one, for good or for some minutes."""
    account = desk_account(request)
    name = request.POST.get("name", "")
    try:
        value = _level(name, request.POST.get("value", "").strip())
        minutes = _minutes(request.POST.get("minutes", "").strip())
        done = limits_ask(account_id=account.pk, actor=_actor(request), reason=request.POST.get("reason", ""),
                          minutes=minutes, **{name: value})
    except DeskError as e:
        return _refused(request, account, e)
    if done.approval is not None:
        return _card(request, account, ok=[f"Sent for approval: {approval_text(done.approval, account.name)}."])
    return _card(request, account, ok=[f"{name} is now {level_text(value)}."])


def _level(name: str, raw: str) -> Decimal | int | bool | None:
    if name not in LEVELS:
        raise InvalidValue("name", f"must be one of {', '.join(LEVELS)}", provided=name[:64])
    if raw == "":
        return None
    kind = PreTradeLimits._meta.get_field(name).get_internal_type()
    try:
        if kind == "BooleanField":
            return {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}[raw.lower()]
        return to_decimal(raw) if kind == "DecimalField" else int(raw)
    except (KeyError, ValueError, ArithmeticError):
        shape = "on or off" if kind == "BooleanField" else "a whole number" if kind != "DecimalField" else "a number"
        raise InvalidValue(name, f"must be {shape}, or empty for no limit", provided=raw[:40]) from None


def _minutes(raw: str) -> int | None:
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidValue("minutes", "must be a whole number of minutes, or empty for good",
                           provided=raw[:40]) from None


@login_required
@require_POST
def decide_view(request: HttpRequest, approval_id: uuid.UUID) -> HttpResponse:
    """Approve (placing a large order, setting the state or the limits) or reject, with a comment."""
    account = desk_account(request)
    decision, comment = request.POST.get("decision", ""), request.POST.get("comment", "")
    arguments = {"account": account, "approval_id": str(approval_id), "actor": _actor(request),
                 "supervisor": can_supervise(request.user)}
    try:
        if decision == "approve":
            done = approval_approve(**arguments, comment=comment, broker=get_broker(account.broker))
        elif decision == "reject":
            done = approval_reject(**arguments, comment=comment)
        else:
            raise InvalidValue("decision", "must be approve or reject", provided=decision[:20])
    except DeskError as e:
        return _refused(request, account, e)
    said = "Approved" if done.status == ApprovalRequest.Status.APPROVED else "Rejected"
    placed = f" (order {done.result['order_id'][:8]} {done.result['status']})" if done.result.get("order_id") else ""
    return _card(request, account, ok=[f"{said}: {approval_text(done, account.name)}{placed}."])


@login_required
@require_POST
def cancel_view(request: HttpRequest, approval_id: uuid.UUID) -> HttpResponse:
    """The person who asked withdraws their request."""
    account = desk_account(request)
    try:
        done = approval_cancel(account=account, approval_id=str(approval_id), actor=_actor(request))
    except DeskError as e:
        return _refused(request, account, e)
    return _card(request, account, ok=[f"Withdrawn: {approval_text(done, account.name)}."])

