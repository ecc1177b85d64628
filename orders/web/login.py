"""The desk's login and its throttle. django-axes counts failed logins (the desk's and the admin's: its
backend sees every authenticate(); and every wrong two-factor code, sent to it by ``web/two_factor.py``) and
refuses a locked name or address before the password is checked; the pieces here are what its settings name
(tradingdesk/settings.py, "Login throttling"): how a name and an address are counted, the two limits, and the
answer a locked client gets. django-axes serves, so it stays: it is well kept, shared by every web process
through the database, and a code step only has to report its failures to it.

A person who must give a second factor (``services/two_factor.py``) is logged in by the password, but their
session reaches only the code step until they give it (``web/two_factor.py``); the password alone forgives
none of their name's failures, so a wrong code cannot be followed by the password to start counting again."""

from __future__ import annotations

import ipaddress
import unicodedata
from urllib.parse import urlencode

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from orders.metrics import LOGINS
from orders.services.audit import audit_record
from orders.services.two_factor import is_second_factor_missing
from orders.web.session import second_factor_redirect

LOGIN_NAME_MAX = 255             # axes' username column


def login_name(request: HttpRequest | None, credentials: dict | None) -> str | None:
    """The name failures count against (``AXES_USERNAME_CALLABLE``): normalised as Django's login form
    normalises it before authenticating (stripped, NFKC), then casefolded, so every spelling that reaches
    one login ("risk ", " risk", "risk\\t", "ｒｉｓｋ") and every case of it ("RISK") is one name."""
    raw = (credentials or {}).get("username")
    if raw is None and request is not None:
        raw = request.POST.get("username")
    if raw is None:
        return None
    name = unicodedata.normalize("NFKC", raw.strip()[:LOGIN_NAME_MAX])
    return name.strip().casefold()[:LOGIN_NAME_MAX]


def login_address(request: HttpRequest) -> str | None:
    """The address failures count against (``AXES_CLIENT_IP_CALLABLE``): the peer's. The desk is served
    directly (daphne), and a forwarded-for header is anyone's to write. An IPv6 client counts as its /64,
    the block one client is usually given, so walking through it does not buy fresh attempts."""
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def login_lock_message(request: HttpRequest) -> str:
    minutes = round(get_cool_off(request).total_seconds() / 60)
    return f"Too many failed attempts. Try again in {minutes} minutes."


class LoginThrottle(AxesDatabaseHandler):
    """axes' database handler (``AXES_HANDLER``) with a limit per lockout parameter: axes compares the
    failures of the name and those of the address with one limit, while an address, which may be an
    office of traders, gets ``DESK_LOGIN_ADDRESS_FAILURE_LIMIT`` failures (over any names) before it is
    locked, a name ``AXES_FAILURE_LIMIT``. Failures are rows in the database (so every web process sees
    them), each counted until ``AXES_COOLOFF_TIME`` after its latest failure."""

    def get_failures(self, request, credentials: dict | None = None) -> int:
        """The failures measured against ``AXES_FAILURE_LIMIT``: the name's, or that limit once the
        address has used up its own."""
        by_name = self._recent_failures(request, username=get_client_username(request, credentials))
        by_address = self._recent_failures(request, ip_address=request.axes_ip_address)
        if by_address >= settings.DESK_LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(by_name, settings.AXES_FAILURE_LIMIT)
        return by_name

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        """A successful login forgives the failures of that name from that address, and nothing else:
        axes would also wipe every failure of the address (for any name), so logging in to one's own
        account would buy fresh guesses at everyone else's. A login that still owes its second factor is
        not successful yet: it forgives nothing until the code is given (``login_forgive``)."""
        user = getattr(request, "user", None)
        if user is not None and is_second_factor_missing(user, request.session):
            return 0
        mine = AccessAttempt.objects.filter(username=get_client_username(request, credentials),
                                            ip_address=request.axes_ip_address)
        count, _ = mine.delete()
        return count

    def _recent_failures(self, request, **client) -> int:
        recent = AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request), **client)
        return recent.aggregate(failures=Sum("failures_since_start"))["failures"] or 0


def login_forgive(request: HttpRequest, user) -> None:
    """The second factor given: forgive that name's failures from this address, as a login without one does."""
    AxesProxyHandler.update_request(request)
    AxesProxyHandler.get_implementation().reset_user_attempts(request, {"username": user.get_username()})


def login_locked_out(request: HttpRequest, *args) -> HttpResponse:
    """What a locked name or address gets (``AXES_LOCKOUT_CALLABLE``), at the desk's login, the admin's and the
    two-factor code step: the login page again (its form alone for htmx) with the reason, and 429; the same
    whether the name exists or not, and whatever the password. axes passes (response, credentials), or from
    its async middleware only (credentials); the credentials name the login when no form field does (a code)."""
    credentials = next((arg for arg in args if isinstance(arg, dict)), None)
    username = request.POST.get("username") or (credentials or {}).get("username", "")
    LOGINS.inc(outcome="locked_out")
    if getattr(request, "axes_failures_since_start", None) is not None:
        # this failure reached a limit (refusals while locked are not counted, so not audited again)
        audit_record(account_id=None, actor="system", action="user.lockout",
                     target=login_name(request, credentials) or "", result="locked",
                     address=getattr(request, "axes_ip_address", None))
    wanted = request.POST.get("next") or request.GET.get("next", "")
    is_safe = url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure())
    context = {"form": AuthenticationForm(request, initial={"username": username}),
               "next": wanted if is_safe else "", "lock_message": login_lock_message(request)}
    template = "orders/login.html#login-form" if getattr(request, "htmx", False) else "orders/login.html"
    return render(request, template, context, status=429)


class ThrottledLoginView(auth_views.LoginView):
    """The desk's login. Failed attempts are counted and locked out by django-axes (above)."""
    template_name = "orders/login.html"

    def get_template_names(self) -> list[str]:
        names = super().get_template_names()
        return [f"{names[0]}#login-form"] if self.request.htmx else names

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        if request.htmx:
            # an htmx action of a page whose session expired lands here: load the whole login page
            # (and come back to that page after) rather than swap a login form into the ticket
            back = request.htmx.current_url_abs_path or settings.LOGIN_REDIRECT_URL
            response["HX-Redirect"] = f"{reverse('login')}?{urlencode({'next': back})}"
        return response

    def form_valid(self, form):
        user = form.get_user()
        LOGINS.inc(outcome="password_ok")
        response = super().form_valid(form)
        owed = is_second_factor_missing(user, self.request.session)
        audit_record(account_id=None, actor=f"user:{user.username}", action="user.login",
                     **({"second_factor": "owed"} if owed else {}))
        if owed:
            # straight to the code (or to setting up an authenticator), then on to the page asked for
            return second_factor_redirect(self.request, user, wanted=response["Location"])
        return response

    def form_invalid(self, form):
        if not getattr(self.request, "axes_locked_out", False):    # a locked refusal is counted as locked_out
            LOGINS.inc(outcome="password_failed")
        return super().form_invalid(form)
