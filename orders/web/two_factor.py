"""Two-factor login in the browser: the gate every request passes, the code step after the password, setting up an
authenticator (a QR code drawn here, never by an outside service, and its secret as text), and the security page
where a trader turns it on and anyone makes new recovery codes. Who must give a code, and checking it, are
``services/two_factor.py``'s.

The gate: a session that still owes its second factor reaches the code step, the set-up page, logging out and
what needs no session (static files, health, /v1 with its keys), and nothing else: the desk, the risk view and
the admin site all send it to its step, whichever login it came through (the desk's or the admin's). The desk
socket refuses such a session too (``realtime/desk.py``)."""

from __future__ import annotations

from inspect import iscoroutinefunction

import segno
from asgiref.sync import sync_to_async
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import sync_and_async_middleware
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.domain.errors import Conflict
from orders.services.two_factor import (
    RECOVERY_CODES,
    CodeRefused,
    SetupExpired,
    authenticator_pending,
    authenticator_secret,
    has_authenticator,
    is_required_by_role,
    is_second_factor_missing,
    recovery_codes_left,
    recovery_codes_renew,
    two_factor_setup,
    two_factor_verify,
)
from orders.web.login import login_address, login_forgive, login_locked_out
from orders.web.session import login_required, second_factor_redirect
from orders.web.views import page_context

# what a session owing its code may still reach, besides the code step and the set-up page
_OPEN_PREFIXES = ("/login/", "/logout/", "/admin/logout/", "/v1/", "/livez", "/readyz", "/health", "/metrics")


# -- the gate --------------------------------------------------------------------------------------------------

@sync_and_async_middleware
def second_factor_gate(get_response):
    if iscoroutinefunction(get_response):
        async def middleware(request: HttpRequest) -> HttpResponse:
            if _is_open(request.path):
                return await get_response(request)
            refusal = await sync_to_async(_refusal)(request)
            return refusal if refusal is not None else await get_response(request)
    else:
        def middleware(request: HttpRequest) -> HttpResponse:
            refusal = None if _is_open(request.path) else _refusal(request)
            return refusal if refusal is not None else get_response(request)
    return middleware


def _is_open(path: str) -> bool:
    return (path.startswith(_OPEN_PREFIXES) or path.startswith(f"/{settings.STATIC_URL.lstrip('/')}")
            or path == reverse("two-factor-setup"))


def _refusal(request: HttpRequest) -> HttpResponse | None:
    if SESSION_KEY not in request.session:          # nobody logged in: the views' own login_required answers
        return None
    if not is_second_factor_missing(request.user, request.session):
        return None
    return second_factor_redirect(request, request.user, wanted=_back_after(request))


def _back_after(request: HttpRequest) -> str:
    """Where to go once the code is given: the page asked for, the page an htmx request came from, else home."""
    if request.htmx:
        return request.htmx.current_url_abs_path or settings.LOGIN_REDIRECT_URL
    return request.get_full_path() if request.method == "GET" else settings.LOGIN_REDIRECT_URL


# -- the code step ---------------------------------------------------------------------------------------------

@never_cache
@require_http_methods(["GET", "POST"])
def code_view(request: HttpRequest) -> HttpResponse:
    """After the password: the authenticator's code, or a recovery code."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    wanted = _wanted(request)
    if not is_second_factor_missing(user, request.session):
        return HttpResponseRedirect(wanted)
    if not has_authenticator(user):
        return second_factor_redirect(request, user, wanted=wanted)
    if request.method == "GET":
        return _code_page(request, wanted)
    credentials = {"username": user.get_username()}
    if AxesProxyHandler.is_locked(request, credentials):
        logout(request)
        return login_locked_out(request, credentials)
    try:
        accepted = two_factor_verify(user=user, code=request.POST.get("code", ""), address=login_address(request))
    except CodeRefused as refusal:
        if refusal.is_guess:
            # a failed login for axes: five lock the name (and this session ends, to the lockout page)
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            if getattr(request, "axes_locked_out", False):
                logout(request)
        return _code_page(request, wanted, error=refusal.message)
    _second_factor_given(request, user, accepted.device)
    return HttpResponseRedirect(wanted)


def _code_page(request: HttpRequest, wanted: str, *, error: str = "") -> HttpResponse:
    return render(request, "orders/two_factor_code.html",
                  {**_owing_chrome(request), "next": wanted, "error": error})


# -- setting up an authenticator -------------------------------------------------------------------------------

@never_cache
@require_http_methods(["GET", "POST"])
def setup_view(request: HttpRequest) -> HttpResponse:
    """The QR code and the secret of a new authenticator, this session's own; its first code confirms it and shows
    the recovery codes, once. Someone who has an authenticator never gets here: a session owing its code goes to
    the code step (a password alone must not add another authenticator), a verified one to the security page."""
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    owing = is_second_factor_missing(user, request.session)
    wanted = _wanted(request, default=settings.LOGIN_REDIRECT_URL if owing else reverse("security"))
    if has_authenticator(user):
        return second_factor_redirect(request, user, wanted=wanted) if owing else redirect("security")
    context = {**(_owing_chrome(request) if owing else _desk_chrome(request)), "next": wanted}
    if request.method == "POST":
        try:
            done = two_factor_setup(user=user, session=request.session, code=request.POST.get("code", ""),
                                    address=login_address(request))
        except (CodeRefused, SetupExpired) as refusal:
            context["error"] = refusal.message
        except Conflict:
            return redirect("security")
        else:
            _second_factor_given(request, user, done.device)
            return render(request, "orders/two_factor_setup.html", {**context, "codes": done.recovery_codes})
    device = authenticator_pending(user=user, session=request.session)
    return render(request, "orders/two_factor_setup.html", {**context, **_enrolment(device)})


def _enrolment(device: TOTPDevice) -> dict:
    """What a person needs to add the authenticator: a QR code of its otpauth:// address (an inline SVG image,
    drawn here), the same address as a link (for the phone the app is on) and the secret to type in."""
    url = device.config_url
    return {"otpauth_url": url, "secret": authenticator_secret(device),
            "qr_data_uri": segno.make(url, error="m").svg_data_uri(scale=5, border=2, dark="#000", light="#fff")}


# -- the security page -----------------------------------------------------------------------------------------

@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def security_view(request: HttpRequest) -> HttpResponse:
    """Two-factor login on or off, required or by choice, the recovery codes left; new recovery codes (POST)."""
    user = request.user
    context = {**_desk_chrome(request), "has_authenticator": has_authenticator(user),
               "required": is_required_by_role(user), "recovery_codes": RECOVERY_CODES}
    if request.method == "POST":
        try:
            context["codes"] = recovery_codes_renew(user=user)
        except Conflict as refusal:
            context["error"] = refusal.message
    context["codes_left"] = recovery_codes_left(user)
    return render(request, "orders/security.html", context)


# -- shared ----------------------------------------------------------------------------------------------------

def _second_factor_given(request: HttpRequest, user, device) -> None:
    """The session is verified from now on: a new session key (the one that carried only the password is not
    the one that carries the code), django-otp's mark of the device, and that name's failures forgiven."""
    request.session.cycle_key()
    otp_login(request, device)
    login_forgive(request, user)


def _wanted(request: HttpRequest, *, default: str = settings.LOGIN_REDIRECT_URL) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    is_safe = url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()},
                                              require_https=request.is_secure())
    return wanted if is_safe and wanted else default


def _owing_chrome(request: HttpRequest) -> dict:
    """The page's frame for a session still owing its code: the login page's (no navigation, no socket, no kill
    switch: base.html draws those for a logged-in user only), with the person named on the page itself."""
    return {"user": AnonymousUser(), "person": request.user}


def _desk_chrome(request: HttpRequest) -> dict:
    """The desk's frame (its account, navigation and badges) for someone who is in; none for someone who has no
    account to show."""
    try:
        return {**page_context(request), "person": request.user}
    except PermissionDenied:
        return {"person": request.user}
