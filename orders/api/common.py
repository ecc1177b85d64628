"""Small helpers shared by the /v1 routers."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import register_converter
from django.urls.converters import PathConverter

from orders.brokers import get_broker
from orders.brokers.base import Broker
from orders.domain.enums import OrderStatus
from orders.domain.errors import InvalidValue
from orders.models import Account

CODES_4XX = frozenset({400, 401, 403, 404, 409, 422, 429})


class AnyPathConverter(PathConverter):
    """Django's ``path`` converter, line breaks included (``.+`` stops at ``\\n``): a symbol or position id
    holding an encoded ``%0A`` reaches its handler and gets the JSON error envelope, not Django's HTML 404."""

    regex = r"[\s\S]+"


register_converter(AnyPathConverter, "anypath")


def in_pool(func):
    """Run ``func`` on a thread of the process's pool, whose database connection lives on from request to
    request, instead of on a thread made for this request alone (Django's default for sync code under
    ASGI, which opens and closes a connection every time). Off in tests, whose database transaction
    belongs to the test's own thread (``DESK_POOLED_WRITES``)."""
    return sync_to_async(func, thread_sensitive=not settings.DESK_POOLED_WRITES)


def wire_response(data: Any, status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, safe=False)


def account_of(request: HttpRequest) -> Account:
    return request.auth.account


def actor_of(request: HttpRequest) -> str:
    return request.auth.actor


def broker_for(account: Account) -> Broker:
    return get_broker(account.broker)


def parse_statuses(raw: list[str] | None) -> tuple[OrderStatus, ...]:
    """``status`` may repeat and/or hold a comma-separated list; values are UPPER-case only."""
    values = [part.strip() for item in (raw or []) for part in item.split(",") if part.strip()]
    try:
        return tuple(OrderStatus(v) for v in values)
    except ValueError:
        raise InvalidValue("status", f"must be one of {', '.join(s.value for s in OrderStatus)}",
                           provided=",".join(values)) from None
