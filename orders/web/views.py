"""The web desk. One view serves a page and, for htmx requests, the fragment it refreshes; the
same template partials are pushed over the desk socket (``realtime/desk.py``)."""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import replace
from datetime import datetime

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from orders.brokers import get_broker
from orders.domain.enums import WORKING_STATUSES
from orders.domain.errors import DeskError, InvalidRequest
from orders.domain.money import format_decimal, to_decimal
from orders.models import Alert, ApprovalRequest, AuditEvent, Order, Position, TradingState
from orders.selectors import latest_fills, live_alerts, order_get
from orders.services.alerts import alert_acknowledge
from orders.services.approvals import ticket_send, trading_state_ask
from orders.services.breakers import breaker_snapshot, breakers_reset
from orders.services.guards import LEVEL_NAMES, guard_levels_set
from orders.services.orders import OrderChanges, order_cancel, order_modify, orders_cancel_all
from orders.services.positions import position_close, positions_close_all
from orders.services.reconcile import position_adopt_venue
from orders.services.risk import kill_switch, position_exits_replace
from orders.services.staleness import StaleQuote
from orders.services.tickets import (
    ConfirmRequired,
    OverrideRequired,
    PriceMoved,
    TicketBlocked,
    TicketPreview,
    ticket_preview,
)
from orders.web.approvals import approval_text, approvals_context
from orders.web.banner import placed_out
from orders.web.context import (
    GUARD_LABELS,
    alerts_context,
    blotter_context,
    guards_context,
    risk_context,
    ticket_symbols,
)
from orders.web.forms import OrderTicketForm
from orders.web.roles import can_supervise, can_trade, desk_account, require, roles_of, visible_accounts
from orders.web.session import login_required

# an error answer that is the fragment its request asked for, redrawn to show the error (static/js/refusals.js)
FRAGMENT_HEADER = "X-Desk-Fragment"
trader_only = require(can_trade, "Only traders place, change or cancel orders.")
risk_only = require(can_supervise, "Only the risk desk may do this.")


# -- context -------------------------------------------------------------------------------------------

def page_context(request: HttpRequest) -> dict:
    account = desk_account(request)
    broker = get_broker(account.broker)
    return {
        "account": account,
        "broker": broker,
        "is_paper": broker.simulated,
        "roles": sorted(roles_of(request.user)),
        "can_trade": can_trade(request.user),
        "can_supervise": can_supervise(request.user),
        "accounts": visible_accounts(request.user),
        "live_alerts": live_alerts(account_id=account.pk),
        "breakers": breaker_snapshot(account=account),
    }


# -- the desk page -------------------------------------------------------------------------------------

@login_required
@require_GET
@vary_on_headers("HX-Request")              # one URL, two answers: a browser must not cache one for the other
def desk(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    context.update(blotter_context(context["account"], context["broker"]))
    context["form"] = OrderTicketForm(symbols=ticket_symbols(context["account"], context["broker"]))
    template = "orders/desk.html"
    if request.htmx:
        template += "#blotter"
    return render(request, template, context)


def _ticket_response(request, context, form, *, preview=None, placed=None, queued=None, status=200) -> HttpResponse:
    """The ticket redrawn: a refusal (any status) shows its message in place of an earlier order's banner; an
    order ``queued`` for a second person's approval says so in its place."""
    # the whole ticket says a refusal above its form: its preview does not say it again
    context.update(form=form, preview=preview, placed=placed, queued=queued, ticket_drawn=True)
    response = render(request, "orders/desk.html#ticket", context, status=status)
    if status >= 400:
        response[FRAGMENT_HEADER] = "ticket"          # refusals.js swaps it in like a 200 (htmx drops 4xx/5xx)
    return response


@login_required
@require_POST
def ticket_preview_view(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    form = OrderTicketForm(request.POST, symbols=ticket_symbols(context["account"], context["broker"]))
    preview = None
    if form.is_valid():
        try:
            preview = ticket_preview(account=context["account"], request=form.to_draft(), broker=context["broker"])
        except DeskError as e:
            form.add_desk_error(e)
    context.update(preview=preview, form=form)
    # the submit button follows the preview: its label, its side's colour, disabled by a hard breach
    return HttpResponse(render_to_string("orders/desk.html#ticket-preview", context, request) +
                        render_to_string("orders/desk.html#ticket-button", {**context, "oob": True}, request))


@login_required
@require_POST
@trader_only
def ticket_submit(request: HttpRequest) -> HttpResponse:
    """Place the ticket's order, or send it for a second person's approval above the account's approval notional.
    The ticket's token becomes the order's client id, so a double click, a retry or a resubmitted form places one
    order (or asks once), never two."""
    context = page_context(request)
    account, broker = context["account"], context["broker"]
    form = OrderTicketForm(request.POST, symbols=ticket_symbols(account, broker))
    if not form.is_valid():
        return _ticket_response(request, context, form, status=400)
    draft = form.to_draft()
    try:
        result = ticket_send(account=account, request=draft, broker=broker, actor=_actor(request),
                             override_reason=form.cleaned_data.get("override_reason", ""),
                             confirmed=form.cleaned_data.get("confirmed", ""))
    except ConfirmRequired as e:
        context["confirm_open"] = True                 # the question, with Send and Back, before anything is sent
        return _ticket_response(request, context, form, preview=e.preview)
    except TicketBlocked as e:
        for breach in e.preview.hard_breaches:
            form.add_error(breach.field if breach.field in form.fields else None,
                           breach.text if breach.code else f"Blocked: {breach.message}")
        return _ticket_response(request, context, form, preview=e.preview, status=422)
    except OverrideRequired as e:
        form.add_error("override_reason", "Type a reason to send an order past the warnings above.")
        return _ticket_response(request, context, form, preview=e.preview, status=422)
    except StaleQuote as e:                            # beside the reason that would send it past the old quote
        form.add_error("override_reason", f"{e.code}: {e.message}")
        return _ticket_response(request, context, form, preview=_fresh_preview(account, draft, broker),
                                status=e.status)
    except PriceMoved as e:
        form.add_desk_error(e)                         # with the figures at today's price, to check and send again
        return _ticket_response(request, context, form, preview=_fresh_preview(account, draft, broker),
                                status=e.status)
    except DeskError as e:
        form.add_desk_error(e)
        return _ticket_response(request, context, form, status=e.status)
    fresh = OrderTicketForm(symbols=ticket_symbols(account, broker), initial={
        "symbol": draft.request.symbol, "side": draft.request.side, "order_type": draft.request.order_type,
        "token": uuid.uuid4()})
    if isinstance(result, ApprovalRequest):
        return _ticket_response(request, context, fresh, queued=result)
    return _ticket_response(request, context, fresh, placed=placed_out(result.order))


def _fresh_preview(account, draft, broker) -> TicketPreview | None:
    try:
        return ticket_preview(account=account, request=replace(draft, anchor=None), broker=broker)
    except DeskError:
        return None


# -- blotter actions -----------------------------------------------------------------------------------

def _blotter_response(request: HttpRequest, note: str = "", error: str = "", **extra) -> HttpResponse:
    context = page_context(request)
    context.update(blotter_context(context["account"], context["broker"]))
    context.update(note=note, action_error=error, **extra)
    return render(request, "orders/desk.html#blotter", context)


def _actor(request: HttpRequest) -> str:
    return f"user:{request.user.username}"


@login_required
@require_POST
@trader_only
def cancel_order_view(request: HttpRequest, order_id: uuid.UUID) -> HttpResponse:
    context = page_context(request)
    try:
        order_cancel(account=context["account"], order_id=str(order_id), broker=context["broker"],
                     actor=_actor(request))
    except DeskError as e:
        return _blotter_response(request, error=e.message)
    return _blotter_response(request, note="Order cancelled.")


@login_required
@require_POST
@trader_only
def modify_order_view(request: HttpRequest, order_id: uuid.UUID) -> HttpResponse:
    context = page_context(request)
    try:
        changes = _changes(request, order_get(account=context["account"], order_id=str(order_id)))
        order_modify(account=context["account"], order_id=str(order_id), changes=changes, broker=context["broker"],
                     actor=_actor(request))
    except ValueError as e:
        return _modify_refused(request, order_id, f"INVALID_VALUE: {e}")
    except DeskError as e:
        return _modify_refused(request, order_id, f"{e.code}: {e.message}")
    return _blotter_response(request, note="Order modified.")


_MODIFIABLE = ("quantity", "limit_price", "stop_price")


def _changes(request: HttpRequest, order: Order) -> OrderChanges:
    """What the modify form changes: its fields are filled with the order's values, so only those that differ
    are sent (a blank one is left as it is)."""
    typed = {name: to_decimal(request.POST[name]) for name in _MODIFIABLE if request.POST.get(name, "").strip()}
    changed = {name: value for name, value in typed.items() if value != getattr(order, name)}
    if typed and not changed:
        raise InvalidRequest("nothing to change: the quantity and prices are the order's own")
    return OrderChanges(**changed)


def _modify_refused(request: HttpRequest, order_id: uuid.UUID, message: str) -> HttpResponse:
    """The refusal above the blotter and in the order's row, its modify form left open (today's values in it)."""
    return _blotter_response(request, error=f"Modify refused: {message}",
                             modify_refused={"order_id": str(order_id), "message": message})


@login_required
@require_POST
@trader_only
def close_position_view(request: HttpRequest, symbol: str) -> HttpResponse:
    context = page_context(request)
    try:
        position_close(account=context["account"], position_id=symbol, broker=context["broker"],
                       actor=_actor(request))
    except DeskError as e:
        return _blotter_response(request, error=e.message)
    return _blotter_response(request, note=f"Closing {symbol}.")


@login_required
@require_POST
@trader_only
def cancel_all_view(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    result = orders_cancel_all(account=context["account"], broker=context["broker"], actor=_actor(request))
    note = f"{len(result.cancelled)} cancelled" + (f", {len(result.failed)} failed" if result.failed else "")
    return _blotter_response(request, note=note)


@login_required
@require_POST
@trader_only
def flatten_all_view(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    closed = positions_close_all(account=context["account"], broker=context["broker"], actor=_actor(request))
    return _blotter_response(request, note=f"Closing {len(closed)} positions.")


@login_required
@require_GET
def chart_data(request: HttpRequest) -> JsonResponse:
    """Bars for the chart plus the position's entry, stop and target lines and its fills."""
    context = page_context(request)
    account, broker = context["account"], context["broker"]
    symbol = request.GET.get("symbol", "AAPL")
    try:
        bars = broker.bars(symbol, timeframe="1m", seconds=60, end=timezone.now(), count=120)
    except DeskError as e:
        return JsonResponse({"error": e.message}, status=e.status)
    position = Position.objects.filter(account=account, symbol=symbol).exclude(quantity=0).first()
    lines = []
    if position:
        lines.append({"label": "entry", "price": format_decimal(position.average_price)})
        for leg in Order.objects.filter(account=account, symbol=symbol, leg_role__in=("stop_loss", "take_profit"),
                                        status__in=WORKING_STATUSES):
            price = leg.stop_price or leg.limit_price
            lines.append({"label": "stop" if leg.leg_role == "stop_loss" else "target",
                          "price": format_decimal(price)})
    fills = latest_fills(account, 50, symbol=symbol)
    return JsonResponse({
        "symbol": symbol,
        "bars": [{"time": int(b.timestamp.timestamp()), "open": str(b.open), "high": str(b.high), "low": str(b.low),
                  "close": str(b.close)} for b in bars],
        "lines": lines,
        "fills": [{"time": int(f.timestamp.timestamp()), "side": f.side, "price": format_decimal(f.price),
                   "quantity": format_decimal(f.quantity)} for f in fills],
    })


# -- risk ----------------------------------------------------------------------------------------------

@login_required
@require_GET
@vary_on_headers("HX-Request")              # one URL, two answers: a browser must not cache one for the other
def risk(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    context.update(risk_context(context["account"], context["broker"]))
    context.update(approvals_context(context["account"], actor=_actor(request), can_supervise=context["can_supervise"],
                                     can_trade=context["can_trade"]))
    template = "orders/risk.html"
    if request.htmx:
        template += "#alerts"
    return render(request, template, context)


@login_required
@require_POST
@risk_only
def acknowledge_view(request: HttpRequest, alert_id: str) -> HttpResponse:
    context = page_context(request)
    try:
        if not Alert.objects.filter(pk=alert_id, account=context["account"]).exists():
            raise DeskError("Alert not found", code="INVALID_REQUEST")
        alert_acknowledge(alert_id=alert_id, actor=_actor(request), comment=request.POST.get("comment", ""))
    except (DeskError, ValueError) as e:
        messages.error(request, getattr(e, "message", str(e)))
    return _alerts_response(request)


@login_required
@require_POST
@risk_only
def adopt_venue_view(request: HttpRequest, alert_id: str) -> HttpResponse:
    """POSITION_MISMATCH's one click: the desk takes the venue's quantity (the alert resolves with it)."""
    context = page_context(request)
    alert = Alert.objects.filter(pk=alert_id, account=context["account"], kind=Alert.Kind.POSITION_MISMATCH).first()
    if alert is None:
        messages.error(request, "No such position-mismatch alert on this account")
    else:
        try:
            shown = request.POST.get("venue_quantity") or None
            position_adopt_venue(account=context["account"], symbol=alert.symbol, broker=context["broker"],
                                 actor=_actor(request), expected=to_decimal(shown) if shown else None)
        except ValueError:
            messages.error(request, "The venue's quantity sent with the form is not a number")
        except DeskError as e:
            messages.error(request, e.message)
        else:
            messages.success(request, f"{alert.symbol}: the desk now holds the venue's quantity")
    return _alerts_response(request)


def _alerts_response(request: HttpRequest, *, ok: list[str] | None = None,
                     errors: list[str] | None = None) -> HttpResponse:
    """The risk view's alerts redrawn after an action, with its result (``ok``) or refusals (``errors``) above
    them, out of band: a push that redraws the alerts a moment later leaves the result on screen."""
    context = page_context(request)
    context.update(alerts_context(context["account"], context["broker"]))
    html = render_to_string("orders/risk.html#alerts", context, request=request)
    if ok is not None or errors is not None:
        html += render_to_string("orders/risk.html#alert-result", {"result_ok": ok or [], "oob": True,
                                                                  "result_errors": errors or []})
    return HttpResponse(html)


@login_required
@require_POST
@risk_only
def alert_flatten_view(request: HttpRequest, alert_id: uuid.UUID) -> HttpResponse:
    """An alert's "Flatten this position": the position closed at market by the same service as the blotter's."""
    context = page_context(request)
    alert = Alert.objects.filter(pk=alert_id, account=context["account"]).first()
    if alert is None:
        return _alerts_response(request, errors=["No such alert on this account"])
    try:
        order = position_close(account=context["account"], position_id=alert.symbol, broker=context["broker"],
                               actor=_actor(request))
    except DeskError as e:
        return _alerts_response(request, errors=[f"{alert.symbol} not flattened: {e.message}"])
    return _alerts_response(request, ok=[f"Flattening {alert.symbol}: {order.side} {format_decimal(order.quantity)} "
                                         f"at market sent ({order.status})."])


@login_required
@require_POST
@risk_only
def alert_replace_exits_view(request: HttpRequest, alert_id: uuid.UUID) -> HttpResponse:
    """POSITION_UNPROTECTED's "Re-place the stop": the failed exit legs tried again now, by the engine's own
    protection service."""
    context = page_context(request)
    try:
        done = position_exits_replace(account=context["account"], alert_id=str(alert_id), broker=context["broker"],
                                      actor=_actor(request))
    except DeskError as e:
        return _alerts_response(request, errors=[f"Nothing re-placed: {e.message}"])
    return _alerts_response(
        request, ok=[f"{done.symbol}: {' and '.join(done.placed)} placed again."] if done.placed else [],
        errors=[f"{done.symbol}: the {role} was refused again: {error}" for role, error in done.failed])


@login_required
@require_POST
@risk_only
def kill_switch_view(request: HttpRequest) -> HttpResponse:
    """The risk view's kill-switch card, or (``from=dialog``: Ctrl+Shift+K on any page) the receipt alone."""
    context = page_context(request)
    try:
        receipt = kill_switch(account=context["account"], broker=context["broker"], actor=_actor(request),
                              flatten=request.POST.get("flatten") == "on")
    except DeskError as e:
        if request.POST.get("from") != "dialog":
            raise
        return render(request, "orders/fragments.html#kill-result", {"kill_error": e.message})
    if request.POST.get("from") == "dialog":
        return render(request, "orders/fragments.html#kill-result", {"receipt": receipt.as_dict()})
    context["account"].refresh_from_db()
    context["receipt"] = receipt.as_dict()
    context["states"] = TradingState.values            # the trading state is redrawn with the receipt
    return render(request, "orders/risk.html#kill-switch", context)


@login_required
@require_POST
@risk_only
def trading_state_view(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    try:
        done = trading_state_ask(account=context["account"], state=request.POST.get("state", ""),
                                 actor=_actor(request), reason=request.POST.get("reason", ""),
                                 supervisor=can_supervise(request.user))
    except DeskError as e:
        messages.error(request, e.message)
    else:
        if isinstance(done, ApprovalRequest):            # leaving HALTED: a second person decides (the queue)
            context["state_pending"] = (f"Sent for approval: {approval_text(done, context['account'].name)}. "
                                        "It waits for a second person with the risk role.")
        context["state_changed"] = True                  # redraws the badge in the top bar too
    context["states"] = TradingState.values
    return render(request, "orders/risk.html#trading-state", context)


@login_required
@require_POST
@risk_only
def breakers_reset_view(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    try:
        context["breakers"] = breakers_reset(account=context["account"], actor=_actor(request))
    except DeskError as e:
        context["breaker_error"] = f"{e.code}: {e.message}"
    else:
        context["breaker_changed"] = True                # redraws the badge in the top bar too
    return render(request, "orders/risk.html#breakers", context)


@login_required
@require_POST
@risk_only
def guard_levels_view(request: HttpRequest) -> HttpResponse:
    """The risk view's loss-guard levels: the day's loss and drawdown, soft and hard (empty = no level), and whether
    a hard halt flattens; redrawn with today's figures, or with what was wrong beside the form."""
    context = page_context(request)
    levels, errors = {}, []
    for name in LEVEL_NAMES:
        raw = request.POST.get(name, "").strip()
        try:
            levels[name] = to_decimal(raw) if raw else None
        except (ValueError, ArithmeticError):
            errors.append(f"{GUARD_LABELS[name]}: “{raw[:40]}” is not an amount")
    if not errors:
        try:
            done = guard_levels_set(account_id=context["account"].pk, actor=_actor(request),
                                    flatten_on_hard_halt=request.POST.get("flatten_on_hard_halt") == "on", **levels)
        except DeskError as e:
            errors.append(e.message)
        else:
            context["guard_saved"] = True
            if done.approval is not None:             # a raise waits for a second person (the approval queue)
                asked = approval_text(done.approval, context["account"].name)
                context["guard_pending"] = (f"Sent for approval: {asked}. It applies once a second person with the "
                                            "risk role approves it.")
    context.update(guards_context(context["account"], context["broker"], posted=request.POST if errors else None))
    context["guard_errors"] = errors
    response = render(request, "orders/risk.html#guards", context, status=422 if errors else 200)
    if errors:
        response[FRAGMENT_HEADER] = "guards"          # refusals.js swaps it in like a 200 (htmx drops 4xx/5xx)
    return response


# -- audit ---------------------------------------------------------------------------------------------

def _audit_rows(request: HttpRequest):
    rows = AuditEvent.objects.all().order_by("-at")
    if not can_supervise(request.user):
        rows = rows.filter(account__in=visible_accounts(request.user))
    for name in ("actor", "action", "result"):
        value = request.GET.get(name, "").strip()
        if value:
            rows = rows.filter(**{f"{name}__icontains": value})
    for name, lookup in (("since", "at__gte"), ("until", "at__lt")):
        value = request.GET.get(name, "").strip()
        if value:
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                continue
            if timezone.is_naive(moment):           # a datetime-local field: the desk's time zone
                moment = timezone.make_aware(moment)
            rows = rows.filter(**{lookup: moment})
    return rows


@login_required
@require_GET
@vary_on_headers("HX-Request")              # one URL, two answers: a browser must not cache one for the other
def audit(request: HttpRequest) -> HttpResponse:
    context = page_context(request)
    context["rows"] = _audit_rows(request)[:500]
    context["filters"] = {k: request.GET.get(k, "") for k in ("actor", "action", "result", "since", "until")}
    template = "orders/audit.html"
    if request.htmx and not request.htmx.history_restore_request:     # the filters push their URL: a restored
        template += "#audit-table"                                      # history entry needs the whole page
    return render(request, template, context)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    """A cell a spreadsheet will show as text, never run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def audit_csv(request: HttpRequest) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    header = ["at", "account", "actor", "action", "target", "result", "details"]

    def rows():
        yield writer.writerow(header)
        for event in _audit_rows(request).select_related("account").iterator(chunk_size=2000):
            yield writer.writerow([csv_safe(v) for v in (
                event.at.isoformat(), event.account.name if event.account else "", event.actor, event.action,
                event.target, event.result, json.dumps(event.details, sort_keys=True))])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="audit.csv"'
    return response
