"""The risk view of every account a person supervises (``/risk/all/``): one list of the live alerts of all of them,
each naming its account; a row per account with its state and its own kill switch; one kill switch for all of
them, confirmed in a dialog that names how many. The page is pushed live from every account
(``realtime/risk_all.py`` renders the same partials)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from orders import selectors
from orders.brokers import get_broker
from orders.brokers.base import Broker
from orders.domain.enums import WORKING_STATUSES
from orders.domain.errors import DeskError
from orders.models import Account, Alert, Order, Position
from orders.services.alerts import alert_acknowledge
from orders.services.kill_all import AccountKill, kill_switch_all
from orders.web.context import alert_cards
from orders.web.roles import account_refusal, can_supervise, can_trade, require, roles_of, visible_accounts
from orders.web.session import login_required

TEMPLATE = "orders/risk_all.html"
risk_only = require(can_supervise, "Only the risk desk sees every account at once: your role does not supervise.")


def supervised_accounts(user) -> list[Account]:
    """Every account ``user`` supervises (the risk and admin roles supervise every account they can see)."""
    return list(visible_accounts(user)) if can_supervise(user) else []


def broker_of(account: Account) -> Broker | None:
    """The account's broker, or None when this process has no configuration for it (its credentials)."""
    try:
        return get_broker(account.broker)
    except ImproperlyConfigured:
        return None


@dataclass
class AccountRow:
    account: Account
    open_alerts: int = 0
    live_alerts: int = 0
    working: int = 0
    positions: int = 0
    configured: bool = True


def all_accounts_context(accounts: list[Account]) -> dict:
    """The page's alerts (every account's live ones, unacknowledged first, then newest first; each card with its
    account) and one row per account: trading state, live alerts, working orders, open positions."""
    ids = [a.pk for a in accounts]
    working = dict(Order.objects.filter(account_id__in=ids, status__in=WORKING_STATUSES).values_list("account_id")
                   .annotate(n=Count("id")))
    held = dict(Position.objects.filter(account_id__in=ids).exclude(quantity=0).values_list("account_id")
                .annotate(n=Count("id")))
    rows, cards = [], []
    for account in Account.objects.filter(pk__in=ids).order_by("name"):       # fresh: states change under us
        broker = broker_of(account)
        alerts = selectors.live_alerts(account_id=account.pk)
        if broker is not None:
            account_cards = alert_cards(account, broker, alerts)
        else:
            account_cards = [{"alert": alert, "position": None, "reasons": [alert.message]} for alert in alerts]
        cards.extend({**card, "account": account} for card in account_cards)
        rows.append(AccountRow(account=account, live_alerts=len(alerts), working=working.get(account.pk, 0),
                               open_alerts=sum(1 for a in alerts if a.status == Alert.Status.OPEN),
                               positions=held.get(account.pk, 0), configured=broker is not None))
    cards.sort(key=lambda card: card["alert"].raised_at, reverse=True)
    cards.sort(key=lambda card: card["alert"].status != Alert.Status.OPEN)     # unacknowledged first (stable)
    return {"alert_cards": cards, "rows": rows, "account_names": [row.account.name for row in rows]}


def _page_context(request: HttpRequest, accounts: list[Account]) -> dict:
    """What base.html draws above the page: no one account, the switcher (back to one account's risk view)."""
    return {"all_accounts": True, "accounts": accounts, "switch_path": reverse("risk"),
            "roles": sorted(roles_of(request.user)), "can_trade": can_trade(request.user), "can_supervise": True}


@login_required
@require_GET
@risk_only
@vary_on_headers("HX-Request")              # one URL, two answers: a browser must not cache one for the other
def risk_all(request: HttpRequest) -> HttpResponse:
    accounts = supervised_accounts(request.user)
    if not accounts:
        raise PermissionDenied("There is no account to supervise yet.")
    context = {**_page_context(request, accounts), **all_accounts_context(accounts)}
    context["live_alerts"] = [card["alert"] for card in context["alert_cards"]]     # the top bar's count
    return render(request, TEMPLATE + ("#all-alerts" if request.htmx else ""), context)


def _supervised(request: HttpRequest, name: str) -> Account:
    account = next((a for a in supervised_accounts(request.user) if a.name == name), None)
    if account is None:
        raise Http404(account_refusal(request.user, name))
    return account


def _alerts_response(request: HttpRequest, *, ok: str = "", error: str = "") -> HttpResponse:
    context = {**all_accounts_context(supervised_accounts(request.user)), "can_supervise": True,
               "result_ok": [ok] if ok else [], "result_errors": [error] if error else []}
    return HttpResponse(render_to_string(TEMPLATE + "#all-alerts", context, request=request))


@login_required
@require_POST
@risk_only
def acknowledge_view(request: HttpRequest, alert_id: str) -> HttpResponse:
    """Acknowledge an alert of any supervised account; the list of every account's alerts comes back."""
    alert = Alert.objects.filter(pk=alert_id, account__in=supervised_accounts(request.user)).select_related(
        "account").first()
    if alert is None:
        return _alerts_response(request, error="No such alert on the accounts you supervise.")
    try:
        alert_acknowledge(alert_id=str(alert.pk), actor=f"user:{request.user.username}",
                          comment=request.POST.get("comment", ""))
    except DeskError as e:
        return _alerts_response(request, error=f"{alert.account.name} · {alert.kind}: {e.message}")
    return _alerts_response(request, ok=f"{alert.account.name} · {alert.kind} {alert.symbol} acknowledged.")


@login_required
@require_POST
@risk_only
def kill_switch_view(request: HttpRequest) -> HttpResponse:
    """One account's kill switch (``account``), or every account's (``scope=all``): exactly the accounts the
    dialog named and the person confirmed (``accounts``), never one added since. A receipt per account."""
    if request.POST.get("scope") == "all":
        names = request.POST.getlist("accounts")
        if not names:
            return _kill_response(request, [], error="No account was named: nothing was halted.")
    else:
        names = [request.POST.get("account") or request.GET.get("account") or ""]
    accounts = [_supervised(request, name) for name in dict.fromkeys(names)]
    outcomes = kill_switch_all(accounts=accounts, broker_for=lambda a: get_broker(a.broker),
                               actor=f"user:{request.user.username}", flatten=request.POST.get("flatten") == "on")
    return _kill_response(request, outcomes)


def _kill_response(request: HttpRequest, outcomes: list[AccountKill], *, error: str = "") -> HttpResponse:
    """The receipts, and the accounts' rows redrawn out of band (each now HALTED)."""
    context = {**all_accounts_context(supervised_accounts(request.user)), "can_supervise": True,
               "kills": outcomes, "kill_error": error, "oob": True}
    return HttpResponse(render_to_string(TEMPLATE + "#kill-receipts", {**context, "oob": False}, request=request) +
                        render_to_string(TEMPLATE + "#account-rows", context, request=request))
