"""Every failure on /v1 leaves as the protocol's envelope ``{code, message, details}``.

One handler per base class: DeskError (our own tree), ninja's ValidationError and
parse errors (400 INVALID_REQUEST), Http404, the database out of reach (503
DATABASE_UNAVAILABLE, retryable, see ``is_database_gone``), and anything unexpected (500
INTERNAL_ERROR, logged, with no internals in the body). Messages and details are
scrubbed of secrets before they leave."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from orders.domain.errors import DatabaseUnavailable, DeskError, InvalidRequest, PayloadTooLarge
from orders.domain.redact import redact
from orders.wire import ErrorOut

log = logging.getLogger(__name__)


def error_response(code: str, message: str, status: int, details: Any = None) -> JsonResponse:
    """The envelope (``orders.wire.ErrorOut``, ``details`` left out when there are none), as a response of its
    own: handlers answer outside the view's ``response=`` models."""
    envelope = ErrorOut.build(code=code, message=redact(message), details=None if details is None else redact(details))
    response = JsonResponse(envelope.model_dump(exclude_none=True), status=status)
    if status in (429, 503) and isinstance(details, dict) and details.get("retry_after_seconds"):
        response["Retry-After"] = str(details["retry_after_seconds"])
    return response


def desk_error_response(error: DeskError) -> JsonResponse:
    return error_response(error.code, error.message, error.status, error.details)


def is_database_gone(exc: BaseException) -> bool:
    """Did the database go away (refused or lost connection, a server shutting down), rather than refuse a
    statement? Django raises ``OperationalError`` / ``InterfaceError`` for those; the connection that failed
    is replaced before the thread's next request (``orders.api.common.in_pool``, Django's request signals)."""
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable_response(request: HttpRequest, exc: BaseException) -> JsonResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.path,
                (str(exc).strip().splitlines() or [type(exc).__name__])[0])
    return desk_error_response(DatabaseUnavailable())


def _describe(errors: list[dict]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "payload", "query", "path"))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else e.get("msg", "invalid"))
    return "; ".join(parts)


def _first_field(errors: list[dict]) -> str | None:
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "payload", "query", "path")]
        if loc:
            return loc[0]
    return None


def install(api: NinjaAPI) -> None:
    @api.exception_handler(DeskError)
    def on_desk_error(request: HttpRequest, exc: DeskError):
        return desk_error_response(exc)

    @api.exception_handler(ValidationError)
    def on_validation_error(request: HttpRequest, exc: ValidationError):
        field = _first_field(exc.errors)
        return error_response("INVALID_REQUEST", f"Invalid request: {_describe(exc.errors)}", 400,
                              {"field": field} if field else None)

    @api.exception_handler(AuthenticationError)
    def on_auth_error(request: HttpRequest, exc: AuthenticationError):
        return error_response("UNAUTHORIZED", "Unauthorized: API key required", 401, {"code": "MISSING_API_KEY"})

    @api.exception_handler(HttpError)
    def on_http_error(request: HttpRequest, exc: HttpError):
        message = str(exc)
        if exc.status_code == 400:
            return error_response("INVALID_REQUEST", f"Invalid request: Invalid JSON: {message}", 400)
        return error_response("INVALID_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR", message,
                              exc.status_code)

    @api.exception_handler(RequestDataTooBig)
    def on_body_too_big(request: HttpRequest, exc: RequestDataTooBig):
        return desk_error_response(PayloadTooLarge(max_bytes=settings.DESK_API_MAX_BODY_BYTES))

    @api.exception_handler(TooManyFieldsSent)
    def on_too_many_fields(request: HttpRequest, exc: TooManyFieldsSent):
        return desk_error_response(InvalidRequest(
            f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} query or form parameters"))

    @api.exception_handler(Http404)
    def on_not_found(request: HttpRequest, exc: Http404):
        return error_response("INVALID_REQUEST", "Invalid request: no such resource", 404)

    @api.exception_handler(OperationalError)
    def on_database_gone(request: HttpRequest, exc: OperationalError):
        return database_unavailable_response(request, exc)

    api.add_exception_handler(InterfaceError, on_database_gone)

    @api.exception_handler(Exception)
    def on_unexpected(request: HttpRequest, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response("INTERNAL_ERROR", "Internal error: the desk could not complete the request", 500)
