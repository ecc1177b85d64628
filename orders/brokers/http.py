"""The one seam every real broker's HTTP goes through (the only broker module that imports ``requests``;
alert webhooks have their own, ``notify/webhook.py``).

* an explicit ``(connect, read)`` timeout on every call;
* retries with exponential backoff and jitter on 429 and 5xx and on transport errors — only for
  requests that are safe to repeat (GET/DELETE, or a POST the adapter marks idempotent because it
  carries a client order id the broker deduplicates);
* ``Retry-After`` honoured;
* a response turned into a ``DeskError`` by status when the adapter has no finer mapping;
* secrets never in an error message (``domain.redact``).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import requests

from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    Unauthorized,
)
from orders.domain.redact import redact_text
from orders.metrics import RATE_LIMIT_EVENTS

log = logging.getLogger(__name__)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RATE_LIMITED_STATUSES = frozenset({429, 418})      # 418: Binance's ban for going on after a 429


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay * 4)
        backoff = min(self.max_delay, self.base_delay * 2 ** attempt)
        return backoff * (0.75 + random.random() * 0.5)


@dataclass
class HttpResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""


class HttpClient:
    """A small wrapper over one ``requests.Session`` for one broker."""

    def __init__(self, *, base_url: str, provider: str, timeout: tuple[float, float] = (3.05, 10.0),
                 retry: RetryPolicy | None = None, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.sleep = sleep

    def request(self, method: str, path: str, *, params: Any = None, json_body: Any = None, data: Any = None,
                headers: dict[str, str] | None = None, idempotent: bool | None = None,
                sign: Callable[[dict], dict] | None = None) -> HttpResponse:
        """Send, retrying what is safe to retry. ``sign`` re-signs each attempt (nonce/timestamp)."""
        safe = idempotent if idempotent is not None else method.upper() in ("GET", "DELETE")
        url = self.base_url + path
        for attempt in range(self.retry.attempts):
            call = {"params": params, "json": json_body, "data": data, "headers": dict(headers or {})}
            if sign is not None:
                call = sign(call)
            try:
                # never follow a redirect: it would carry the key headers to a host the configuration did not name
                raw = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **call)
            except (requests.ConnectionError, requests.Timeout) as e:
                if safe and attempt + 1 < self.retry.attempts:
                    self.sleep(self.retry.delay(attempt))
                    continue
                raise ProviderUnavailable(f"{self.provider} did not answer: {type(e).__name__}") from None
            response = _parse(raw)
            if response.status in RATE_LIMITED_STATUSES:
                RATE_LIMIT_EVENTS.inc(platform=self.provider, event_type="hit")
            if response.status in RETRY_STATUSES and safe and attempt + 1 < self.retry.attempts:
                self.sleep(self.retry.delay(attempt, _retry_after(response)))
                continue
            return response
        raise ProviderUnavailable(f"{self.provider} kept failing")       # pragma: no cover - loop returns


def _parse(raw: requests.Response) -> HttpResponse:
    text = raw.text
    try:
        body = json.loads(text, parse_float=Decimal) if text else None
    except ValueError:
        body = None
    return HttpResponse(status=raw.status_code, body=body, headers=dict(raw.headers), text=text[:2000])


def _retry_after(response: HttpResponse) -> float | None:
    value = response.headers.get("Retry-After") or response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_for_status(response: HttpResponse, *, provider: str, message: str | None = None) -> DeskError:
    """The default mapping of a broker's HTTP status to our error (PROTOCOL.md §2.2)."""
    text = redact_text(message or response.text or f"HTTP {response.status}")[:300]
    status = response.status
    if status == 429:
        return RateLimited(retry_after_seconds=int(_retry_after(response) or 1), reset_at=None, provider=provider)
    if status == 503:
        return ProviderUnavailable(f"{provider}: {text}")
    if status in (500, 502, 504):
        return ProviderError(text, provider=provider)
    if status == 400:
        return InvalidRequest(f"{provider}: {text}")
    if status == 401:
        return Unauthorized(f"{provider} refused the credentials", detail_code="BROKER_AUTH")
    if status in (403, 422):
        return OrderRejected("ORDER_REJECTED", f"Order rejected: {text}", provider=provider)
    return ProviderError(text, provider=provider)
