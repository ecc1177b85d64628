"""``login_required`` for the desk's views, which also answers htmx requests.

A page asked for without a session is redirected to the login page, as Django's decorator does. An htmx
request cannot follow that redirect usefully: htmx would swap the whole login page into the ticket or the
blotter. It gets ``401`` and a short notice instead (header ``X-Desk-Notice``), which ``static/js/refusals.js``
shows where the request came from: "Your session has expired — log in again", linking to the login page
and back to the page the person was on.

A session that still owes its second factor is sent to that step (``second_factor_redirect``), an htmx request
by ``HX-Redirect``, so the whole page goes there rather than a fragment of it."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from orders.services.two_factor import has_authenticator

NOTICE_HEADER = "X-Desk-Notice"


def login_required(view):
    page_view = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if getattr(request, "htmx", False) and not request.user.is_authenticated:
            return session_expired(request)
        return page_view(request, *args, **kwargs)

    return wrapper


def session_expired(request: HttpRequest) -> HttpResponse:
    """401 with the notice an htmx request shows in place of what it asked for."""
    login = redirect_to_login(_back_to(request), settings.LOGIN_URL)["Location"]
    notice = format_html('<p class="error session-expired" role="alert">Your session has expired — '
                         '<a href="{}">log in again</a>.</p>', login)
    response = HttpResponse(notice, status=401)
    response[NOTICE_HEADER] = "session-expired"
    return response


def _back_to(request: HttpRequest) -> str:
    """The page the person is on (htmx says which), not the fragment URL it posted to."""
    current = urlsplit(request.htmx.current_url or "")
    if current.path and current.netloc in ("", request.get_host()):
        return current.path + (f"?{current.query}" if current.query else "")
    return "/"


def second_factor_redirect(request: HttpRequest, user, *, wanted: str) -> HttpResponse:
    """To the code step, or to setting up an authenticator for someone who has none yet; then on to ``wanted``."""
    step = reverse("login-code" if has_authenticator(user) else "two-factor-setup")
    url = f"{step}?{urlencode({'next': wanted})}"
    if getattr(request, "htmx", False):
        response = HttpResponse(status=401)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)
