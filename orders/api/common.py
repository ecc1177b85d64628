"""Small helpers shared by the /v1 routers."""

from __future__ import annotations

import functools
import inspect
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.urls import register_converter
from django.urls.converters import PathConverter
from ninja import Router, Schema
from ninja.errors import ValidationError
from pydantic import ValidationError as PydanticValidationError

from orders.brokers import get_broker
from orders.brokers.base import Broker
from orders.domain.enums import OrderStatus
from orders.domain.errors import InvalidRequest, InvalidValue
from orders.models import Account

CODES_4XX = frozenset({400, 401, 403, 404, 409, 413, 415, 422, 429})
T = TypeVar("T")


class AnyPathConverter(PathConverter):
    """Django's ``path`` converter, line breaks included (``.+`` stops at ``\\n``): a symbol or position id
    holding an encoded ``%0A`` reaches its handler and gets the JSON error envelope, not Django's HTML 404."""

    regex = r"[\s\S]+"


register_converter(AnyPathConverter, "anypath")


def in_pool(func, *, pool: str = "api"):
    """Run ``func`` on a thread of one of the process's pools, whose database connections live on from
    request to request, instead of on a thread made for this request alone (Django's default for sync code
    under ASGI, which opens and closes a connection every time). Separate pools keep one kind of work from
    queueing behind another: ``risk`` (kill switch, trading state, alerts) never waits for order traffic,
    ``market`` (quotes and bars, network calls to a real broker) never holds up either. Off in tests, whose
    database transaction belongs to the test's own thread (``DESK_POOLED_WRITES``).

    A pooled thread never sees Django's ``request_started``/``request_finished`` signals, which is where
    Django drops a broken or expired connection, so every call here does that first (``fresh_connection``):
    a thread whose connection died with a database restart answers that one request with 503
    DATABASE_UNAVAILABLE and reconnects for the next, and with ``CONN_HEALTH_CHECKS`` (PostgreSQL) a connection
    that died while the thread was idle is replaced before it is used."""
    if not settings.DESK_POOLED_WRITES:
        return sync_to_async(func, thread_sensitive=True)
    return sync_to_async(fresh_connection(func), thread_sensitive=False, executor=pool_executor(pool))


def fresh_connection(func):
    """``func`` preceded by Django's per-request connection check (``close_old_connections``): a connection
    whose last statement failed is tested and closed if unusable, one past ``CONN_MAX_AGE`` is closed, and the
    health check (``CONN_HEALTH_CHECKS``) is due again before the next statement. Costs nothing on SQLite;
    on PostgreSQL one ``SELECT 1`` round trip per call."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        close_old_connections()
        return func(*args, **kwargs)

    return run


POOL_SIZES = {"api": lambda: settings.DESK_API_THREADS, "risk": lambda: 2, "market": lambda: 4}
_executors: dict[str, ThreadPoolExecutor] = {}
_executors_lock = threading.Lock()


def pool_executor(pool: str) -> ThreadPoolExecutor:
    executor = _executors.get(pool)
    if executor is None:
        with _executors_lock:
            executor = _executors.get(pool)
            if executor is None:
                executor = _executors[pool] = ThreadPoolExecutor(max_workers=POOL_SIZES[pool](),
                                                                  thread_name_prefix=f"desk-{pool}")
    return executor


def pooled(view, *, pool: str = "api"):
    """A sync view served as an async one whose body runs ``in_pool``: every /v1 request then costs no
    thread and no database connection of its own (see ``PooledRouter``)."""

    @functools.wraps(view)
    async def run(request, *args, **kwargs):
        return await in_pool(view, pool=pool)(request, *args, **kwargs)

    # ninja reads parameter types from the signature, resolving string annotations in the view's own module
    run.__signature__ = inspect.signature(view, eval_str=True)
    return run


class PooledRouter(Router):
    """The /v1 routers: each sync view runs on the router's pool (``pooled``); authentication is the API's
    async ``api_key_auth_pooled``, which knows a recently verified key without a thread hop. Views return the
    ``Out`` models of ``orders.wire`` and ninja serialises them with ``exclude_none``: the protocol omits an
    absent optional field rather than sending null."""

    def __init__(self, *args, pool: str = "api", **kwargs) -> None:
        kwargs.setdefault("exclude_none", True)
        super().__init__(*args, **kwargs)
        self.pool = pool

    def add_api_operation(self, path: str, methods: list[str], view_func, **kwargs):
        if not inspect.iscoroutinefunction(view_func):
            view_func = pooled(view_func, pool=self.pool)
        return super().add_api_operation(path, methods, view_func, **kwargs)


NEXT_CURSOR_HEADER = "X-Next-Cursor"
PAGED_DOC = {"headers": {
    NEXT_CURSOR_HEADER: {"description": "Present when more rows follow: pass it as `cursor` for the next page",
                         "schema": {"type": "string"}},
    "Link": {"description": "`<next page URL>; rel=\"next\"` when more rows follow", "schema": {"type": "string"}},
}}


def paged_response(request: HttpRequest, response: HttpResponse, rows: list[T], next_cursor: str | None) -> list[T]:
    """A list page: ``rows`` is the body (returned for ninja to serialise) and ``response`` the view's
    response (ninja's ``response: HttpResponse`` parameter). When more rows follow, the cursor of the next page
    travels in ``X-Next-Cursor`` and in a ``Link`` header (RFC 8288) holding the same query with that cursor,
    so the body stays the protocol's plain array."""
    if next_cursor:
        query = request.GET.copy()
        query["cursor"] = next_cursor
        response[NEXT_CURSOR_HEADER] = next_cursor
        response["Link"] = f'<{request.path}?{query.urlencode()}>; rel="next"'
    return rows


def account_of(request: HttpRequest) -> Account:
    return request.auth.account


def actor_of(request: HttpRequest) -> str:
    return request.auth.actor


def broker_for(account: Account) -> Broker:
    return get_broker(account.broker)


def parse_statuses(raw: list[str] | None) -> tuple[OrderStatus, ...]:
    """``status`` may repeat and/or hold a comma-separated list; values are UPPER-case only."""
    values = [part.strip() for item in (raw or []) for part in item.split(",") if part.strip()]
    if len(values) > len(OrderStatus):
        raise InvalidValue("status", f"at most {len(OrderStatus)} values", provided=f"{len(values)} values")
    try:
        return tuple(OrderStatus(v) for v in values)
    except ValueError:
        raise InvalidValue("status", f"must be one of {', '.join(s.value for s in OrderStatus)}",
                           provided=",".join(values)) from None


SchemaT = TypeVar("SchemaT", bound=Schema)


def optional_body(request: HttpRequest, schema: type[SchemaT]) -> SchemaT:
    """A body that may be left out: no body, an empty one or ``null`` all mean the schema's defaults.
    Anything else must be a JSON object valid for ``schema`` (a list, a number … is a 400)."""
    raw = request.body.strip()
    if not raw or raw == b"null":
        return schema()
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidRequest(f"Invalid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid JSON: expected an object")
    try:
        return schema.model_validate(data)
    except PydanticValidationError as e:
        raise ValidationError(e.errors(include_url=False)) from None


def optional_body_openapi(schema: type[Schema]) -> dict:
    """``openapi_extra`` documenting an optional JSON body of ``schema``, inline (ninja lists only the
    schemas its own parameters use; enums the body refers to are among them)."""
    body = schema.model_json_schema(ref_template="#/components/schemas/{model}")
    body.pop("$defs", None)
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": body}}}}
