"""Every HTTP answer counted and timed, by route: ``desk_http_requests_total{method,route,status}`` and
``desk_http_request_duration_seconds{method,route}`` (``orders/metrics.py``).

The route is the URL pattern that served the request (``/v1/orders/<order_id>``), never the raw path, so
ids and symbols make no new series; a path that no pattern matches is ``unmatched``. The middleware sits
first, so the edge's refusals (403, 413, 415) and the 429s are counted under the route they were aimed at.
The stream's sockets are counted by the consumer (``orders/realtime/consumers.py``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from inspect import iscoroutinefunction
from time import perf_counter

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.decorators import sync_and_async_middleware

from orders.metrics import HTTP_REQUESTS, HTTP_SECONDS

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
log = logging.getLogger(__name__)


def route_of(request: HttpRequest) -> str:
    """The URL pattern of the view that answered (or would have answered) ``request``."""
    match = request.resolver_match
    if match is None:                   # answered before the view was resolved (the edge), or no route
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return UNMATCHED
    return "/" + match.route


def _record(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    """Count the request; a failure to record (a full disk under the metrics directory) never costs the answer."""
    try:
        method = request.method if request.method in _METHODS else "other"
        route = route_of(request)
        HTTP_REQUESTS.inc(method=method, route=route, status=str(response.status_code))
        HTTP_SECONDS.observe(seconds, method=method, route=route)
    except Exception:
        log.exception("request not counted in the metrics")


@sync_and_async_middleware
def http_metrics(get_response: Callable) -> Callable:
    if iscoroutinefunction(get_response):
        async def middleware(request: HttpRequest) -> HttpResponse:
            started = perf_counter()
            response = await get_response(request)
            _record(request, response, perf_counter() - started)
            return response
    else:
        def middleware(request: HttpRequest) -> HttpResponse:
            started = perf_counter()
            response = get_response(request)
            _record(request, response, perf_counter() - started)
            return response
    return middleware
