"""The /v1 edge against browsers: what keeps a web page on another site from using the API.

A page the trader happens to visit can send a "simple" cross-site request (a form post, or a
``fetch`` with ``text/plain``) without any preflight, and the desk's keyless loopback access would
serve it. Two middlewares close that, both only for paths under ``/v1/``:

* ``refuse_foreign_origins`` (before CORS): a request carrying an ``Origin`` that is neither the
  desk's own nor listed in ``DESK_CORS_ORIGINS`` gets 403. Scripts send no ``Origin``; browsers
  always do on the requests that could change anything. A ``Sec-Fetch-Site: cross-site`` request
  without one is refused too.
* ``api_body_rules`` (after CORS, so a listed origin can read the answer): a body must be JSON
  (415 otherwise, or with no ``Content-Type``) and at most ``DESK_API_MAX_BODY_BYTES`` (413).

Both answer in the protocol's envelope. ``origin_allowed`` is shared with the websocket routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from inspect import iscoroutinefunction

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.utils.decorators import sync_and_async_middleware

from orders.api.errors import desk_error_response
from orders.domain.errors import DeskError, Forbidden, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from orders.metrics import API_EDGE_REFUSALS

log = logging.getLogger(__name__)
API_PREFIX = "/v1/"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_allowed(origin: str, *, scheme: str, host: str) -> bool:
    """Is ``origin`` (the header's value) the desk's own (``scheme://host`` of the request itself), one of
    ``CSRF_TRUSTED_ORIGINS``, or listed in ``DESK_CORS_ORIGINS``? ``null`` (sandboxed frames, files) never is."""
    origin = origin.strip().rstrip("/").lower()
    if not origin or origin == "null":
        return False
    if host and origin == f"{scheme}://{host}".lower() and _named_literally(host):
        return True
    return any(origin == allowed.rstrip("/").lower()
               for allowed in (*settings.DESK_CORS_ORIGINS, *settings.CSRF_TRUSTED_ORIGINS))


def _named_literally(host: str) -> bool:
    """Is the request's host one ``ALLOWED_HOSTS`` names as it is, not through a wildcard (``*``,
    ``.example.com``)? A page whose own name merely matches a wildcard and resolves to the desk (DNS
    rebinding) is not the desk's own page."""
    name = split_domain_port(host)[0]
    return any(name == allowed.lower() for allowed in settings.ALLOWED_HOSTS
               if allowed != "*" and not allowed.startswith("."))


def is_json(content_type: str) -> bool:
    """``application/json`` or a structured ``application/…+json`` type (parameters ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _refuse(request: HttpRequest, error: DeskError, reason: str) -> HttpResponse:
    API_EDGE_REFUSALS.inc(reason=reason)
    return desk_error_response(error)


def _origin_refusal(request: HttpRequest) -> HttpResponse | None:
    if not request.path_info.startswith(API_PREFIX):
        return None
    try:
        host = request.get_host()
    except DisallowedHost:
        return _refuse(request, InvalidRequest("the Host header names no host this desk serves"), "host")
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin_allowed(origin, scheme=request.scheme, host=host):
            return None
        log.warning("refused %s %s from foreign origin %r", request.method, request.path, origin[:200])
        return _refuse(request, Forbidden(f"requests from {origin[:200]} are not allowed",
                                          detail_code="ORIGIN_NOT_ALLOWED"), "origin")
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site" and request.method not in _SAFE_METHODS:
        log.warning("refused cross-site %s %s without an Origin", request.method, request.path)
        return _refuse(request, Forbidden("cross-site requests are not allowed", detail_code="ORIGIN_NOT_ALLOWED"),
                       "origin")
    return None


def _body_refusal(request: HttpRequest) -> HttpResponse | None:
    if not request.path_info.startswith(API_PREFIX):
        return None
    limit = settings.DESK_API_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    try:
        size = int(declared) if declared else None
    except ValueError:
        size = None
    if size is None and request.method not in _SAFE_METHODS:
        try:
            size = len(request.body)            # no length given (chunked): what actually arrived
        except RequestDataTooBig:
            size = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    if size is not None and size > limit:
        return _refuse(request, PayloadTooLarge(max_bytes=limit, size=size), "size")
    content_type = request.META.get("CONTENT_TYPE", "").strip()
    carries_body = bool(size)
    if content_type and not is_json(content_type) and (carries_body or request.method not in _SAFE_METHODS):
        return _refuse(request, UnsupportedMediaType(content_type), "media_type")
    if carries_body and not content_type:
        return _refuse(request, UnsupportedMediaType(""), "media_type")
    return None


def _edge(check: Callable[[HttpRequest], HttpResponse | None]):
    """A middleware, sync and async alike, that answers ``check``'s refusal or passes the request on.
    The checks read only the request (no database), so the async path makes no thread hop."""

    def factory(get_response):
        if iscoroutinefunction(get_response):
            async def middleware(request):
                refusal = check(request)
                return refusal if refusal is not None else await get_response(request)
        else:
            def middleware(request):
                refusal = check(request)
                return refusal if refusal is not None else get_response(request)
        return middleware

    factory.__name__ = check.__name__.lstrip("_")
    return sync_and_async_middleware(factory)


refuse_foreign_origins = _edge(_origin_refusal)
api_body_rules = _edge(_body_refusal)
