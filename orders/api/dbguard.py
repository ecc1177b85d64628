"""While the database is out of reach, every HTTP request answers 503, never 500.

/v1 views turn a lost database into 503 DATABASE_UNAVAILABLE themselves (``orders.api.errors``). This
middleware covers the rest: the desk's pages, the admin, and a database error raised outside a view (a
session saved on the way out). A response of 500 is answered instead with

* the protocol's envelope ``{code: DATABASE_UNAVAILABLE, message, details}`` under ``/v1/``, or
* the plain "temporarily unavailable" page (``templates/503.html``) everywhere else,

both with ``Retry-After``, when the request failed on a lost connection or the database does not answer now.
A lost connection is noted wherever it was raised: in the view (``process_exception``) or in a middleware
below this one, such as the two-factor gate reading the session's user (Django's ``got_request_exception``,
sent while the error is being handled). Asking the database afterwards is only the fallback: a server that
was starting up may answer by then, and the request that failed on it must still get 503.
Any other 500 is left alone. Nothing is added to a request that succeeds.

It sits just inside CORS, so a listed origin can read the envelope, and the security headers apply. The
connection that failed is replaced by Django before the thread's next request (``CONN_HEALTH_CHECKS``,
``close_old_connections``), so the desk recovers by itself once the database is back."""

from __future__ import annotations

import logging
import sys
from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.core.signals import got_request_exception
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.decorators import sync_and_async_middleware

from orders.api.errors import database_unavailable_response, is_database_gone
from orders.domain.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
API_PREFIX = "/v1/"
_GONE = "_desk_database_gone"


@sync_and_async_middleware
def database_unavailable(get_response):
    if iscoroutinefunction(get_response):
        async def middleware(request: HttpRequest) -> HttpResponse:
            response = await get_response(request)
            if response.status_code == 500 and not hasattr(request, _GONE):
                if not await sync_to_async(is_database_reachable, thread_sensitive=False)():
                    setattr(request, _GONE, DatabaseUnavailable())
            return _answer(request, response)
    else:
        def middleware(request: HttpRequest) -> HttpResponse:
            response = get_response(request)
            if response.status_code == 500 and not hasattr(request, _GONE) and not is_database_reachable():
                setattr(request, _GONE, DatabaseUnavailable())
            return _answer(request, response)

    middleware.process_exception = _note_database_gone
    return middleware


def _note_database_gone(request: HttpRequest, exception: Exception) -> None:
    if is_database_gone(exception):
        setattr(request, _GONE, exception)


def _note_failure_below(sender, request: HttpRequest | None = None, **kwargs) -> None:
    """A middleware below this one raised (Django turns that into a 500 before it gets here)."""
    exception = sys.exc_info()[1]
    if request is not None and exception is not None and is_database_gone(exception):
        setattr(request, _GONE, exception)


got_request_exception.connect(_note_failure_below, dispatch_uid="desk-database-gone")


def _answer(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    gone = getattr(request, _GONE, None)
    if gone is None or response.status_code != 500:
        return response
    if request.path.startswith(API_PREFIX):
        return database_unavailable_response(request, gone)
    log.warning("database unavailable on %s %s", request.method, request.path)
    return unavailable_page()


def unavailable_page() -> HttpResponse:
    """The desk's "temporarily unavailable" page: no database, no session, no context processors."""
    response = HttpResponse(render_to_string("503.html", {"retry_after": DatabaseUnavailable.RETRY_AFTER_SECONDS}),
                            status=503)
    response["Retry-After"] = str(DatabaseUnavailable.RETRY_AFTER_SECONDS)
    return response


def is_database_reachable() -> bool:
    """Does the database answer now, on this thread's connection or a new one? (Only asked after a 500.)"""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        if connection.connection is not None and connection.is_usable():
            return True
        connection.close()
        connection.ensure_connection()
    except DatabaseError:
        return False
    return True
