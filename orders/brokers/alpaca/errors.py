"""Alpaca error replies -> desk errors (PROTOCOL.md §2.2, NOTES.md §2.8).

Alpaca answers ``{"code": <8 digits>, "message": "<text>"}`` (spec schema ``Error``), sometimes with extra keys
(``buying_power``, ``cost_basis``). The code's first three digits repeat the HTTP status; the message says what
was wrong, so both are read. First matching row wins:

======  =========  ============================================  ==============================================
HTTP    code       message contains                              desk error
======  =========  ============================================  ==============================================
401     any        -                                             Unauthorized (details.code BROKER_AUTH)
403     40310000   "buying power"                                OrderRejected INSUFFICIENT_BALANCE, required =
                                                                 ``cost_basis``, available = ``buying_power``
403     40310000   "insufficient qty" / "insufficient balance"   OrderRejected INSUFFICIENT_BALANCE, required /
                                                                 available from "(requested: X, available: Y)"
403     40310000   anything else                                 OrderRejected ORDER_REJECTED
403     other      -                                             Unauthorized (key not allowed: "forbidden.")
404     any        -                                             OrderNotFound / SymbolNotFound (by endpoint)
4xx     any        "client_order_id must be unique"              OrderRejected ORDER_REJECTED with
                                                                 reject_code DUPLICATE_CLIENT_ORDER_ID
4xx     any        "order_id is missing" (non-UUID id in path)   OrderNotFound (Alpaca-API#135)
4xx     any        "asset not found", "could not find",          SymbolNotFound on market-data calls, else
                   "invalid symbol", "not tradable", "is not     OrderRejected SYMBOL_NOT_TRADEABLE
                   active"
4xx     any        "wash trade"                                  OrderRejected ORDER_REJECTED with
                                                                 reject_code WASH_TRADE_DETECTED
4xx     any        limit_price, stop_price, trail_, sub-penny,   OrderRejected INVALID_PRICE
                   take_profit, stop_loss, "price"
4xx     any        qty, quantity, fractional, notional           OrderRejected INVALID_QUANTITY
422     any        anything else (bracket rules ...)             OrderRejected ORDER_REJECTED
400     any        anything else (malformed request body)        InvalidRequest
429     any        -                                             RateLimited: Retry-After, else X-Ratelimit-Reset
500/502/504, 503, other                                          brokers.http defaults: ProviderError /
                                                                 ProviderUnavailable / ProviderError
======  =========  ============================================  ==============================================

Every OrderRejected carries ``alpaca_code`` and ``provider``. Messages quote Alpaca's text (redacted), never a
request header, so the API key and secret cannot leak into an error.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orders.brokers.http import HttpResponse, error_for_status
from orders.domain.enums import RejectReason
from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
)
from orders.domain.money import format_decimal
from orders.domain.redact import redact_text

PROVIDER = "alpaca"
FORBIDDEN = 40310000
_REQUESTED = re.compile(r"requested:\s*([0-9.]+),\s*available:\s*([0-9.]+)")
_SYMBOL_WORDS = ("asset not found", "could not find", "invalid symbol", "not tradable", "is not active")
_PRICE_WORDS = ("limit_price", "stop_price", "trail_price", "trail_percent", "sub-penny", "take_profit",
                "stop_loss", "price")
_QUANTITY_WORDS = ("qty", "quantity", "fractional", "notional")


def parse_alpaca_error(response: HttpResponse, *, order_ref: str | None = None, symbol: str | None = None,
                       market_data: bool = False, now: float | None = None) -> DeskError:
    """The desk error for a non-2xx Alpaca reply (table in the module docstring)."""
    body = response.body if isinstance(response.body, dict) else {}
    code = _int(body.get("code"))
    message = redact_text(str(body.get("message") or response.text or f"HTTP {response.status}"))[:300]
    status = response.status
    if status == 401:
        return Unauthorized(f"{PROVIDER} refused the credentials", detail_code="BROKER_AUTH")
    if status == 403:
        return _forbidden(code, message, body)
    if status == 404:
        return _not_found(order_ref, symbol, message)
    if status == 429:
        return _rate_limited(response, now)
    if 400 <= status < 500:
        return _refused(status, code, message, order_ref=order_ref, symbol=symbol, market_data=market_data)
    return error_for_status(response, provider=PROVIDER, message=message)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _rejected(reason: str, message: str, code: int | None, **details: Any) -> OrderRejected:
    return OrderRejected(reason, f"Order rejected: {message}", alpaca_code=code, provider=PROVIDER, **details)


def _forbidden(code: int | None, message: str, body: dict[str, Any]) -> DeskError:
    if code != FORBIDDEN:
        return Unauthorized(f"{PROVIDER} does not allow this key to do that", detail_code="BROKER_FORBIDDEN")
    lowered = message.lower()
    if "buying power" in lowered:
        amounts = {k: format_decimal(Decimal(str(body[v]))) for k, v in
                   (("required", "cost_basis"), ("available", "buying_power")) if body.get(v) not in (None, "")}
        return _rejected(RejectReason.INSUFFICIENT_BALANCE, message, code, currency="USD", **amounts)
    if "insufficient qty" in lowered or "insufficient balance" in lowered:
        found = _REQUESTED.search(message)
        amounts = {"required": found.group(1), "available": found.group(2)} if found else {}
        return _rejected(RejectReason.INSUFFICIENT_BALANCE, message, code, **amounts)
    return _rejected("ORDER_REJECTED", message, code)


def _not_found(order_ref: str | None, symbol: str | None, message: str) -> DeskError:
    if order_ref is not None:
        return OrderNotFound(order_ref)
    if symbol is not None:
        return SymbolNotFound(symbol)
    return error_for_status(HttpResponse(status=404, body=None), provider=PROVIDER, message=message)


def _refused(status: int, code: int | None, message: str, *, order_ref: str | None, symbol: str | None,
             market_data: bool) -> DeskError:
    lowered = message.lower()
    if "client_order_id must be unique" in lowered:
        return OrderRejected("ORDER_REJECTED", f"Order rejected: {message}", reject_code="DUPLICATE_CLIENT_ORDER_ID",
                             alpaca_code=code, provider=PROVIDER)
    if "order_id is missing" in lowered and order_ref is not None:
        return OrderNotFound(order_ref)
    if any(word in lowered for word in _SYMBOL_WORDS):
        if market_data and symbol is not None:
            return SymbolNotFound(symbol)
        return _rejected(RejectReason.SYMBOL_NOT_TRADEABLE, message, code, **({"symbol": symbol} if symbol else {}))
    if "wash trade" in lowered:
        return OrderRejected("ORDER_REJECTED", f"Order rejected: {message}", reject_code="WASH_TRADE_DETECTED",
                             alpaca_code=code, provider=PROVIDER)
    if any(word in lowered for word in _PRICE_WORDS):
        return _rejected(RejectReason.INVALID_PRICE, message, code)
    if any(word in lowered for word in _QUANTITY_WORDS):
        return _rejected(RejectReason.INVALID_QUANTITY, message, code)
    if status == 422:
        return _rejected("ORDER_REJECTED", message, code)
    return InvalidRequest(f"{PROVIDER}: {message}")


def _rate_limited(response: HttpResponse, now: float | None) -> RateLimited:
    """Alpaca documents ``X-Ratelimit-Reset`` (epoch seconds) on every reply; ``Retry-After`` wins if sent."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    retry_after, reset_at = None, None
    reset = _int(headers.get("x-ratelimit-reset"))
    if reset is not None:
        reset_at = datetime.fromtimestamp(reset, tz=UTC).isoformat().replace("+00:00", "Z")
        if now is not None:
            retry_after = max(1, reset - int(now))
    if "retry-after" in headers:
        retry_after = _int(headers["retry-after"]) or retry_after
    return RateLimited(retry_after_seconds=retry_after or 1, reset_at=reset_at, provider=PROVIDER,
                       limit=_int(headers.get("x-ratelimit-limit")),
                       remaining=_int(headers.get("x-ratelimit-remaining")))
