"""Binance's REST transport on top of ``brokers.http``: signing, the server-clock offset and the
request-weight budget.

* SIGNED calls carry ``recvWindow`` + ``timestamp`` (server time: local clock + the offset measured on
  ``/api/v3/time``) and an HMAC-SHA256 ``signature`` of the query string, plus the ``X-MBX-APIKEY``
  header. ``HttpClient`` re-signs every attempt, so a retry never replays a stale timestamp.
* ``-1021`` (timestamp outside recvWindow): resynchronise the offset and send once more.
* Every answer's ``X-MBX-USED-WEIGHT-1M`` is remembered; a call that would take the minute's weight past
  the budget waits for the next minute when that is close, else raises ``RateLimited`` without sending.
* A 429 / 418 starts a back-off (``Retry-After``; a 418 is an IP ban): until it ends every call raises
  ``RateLimited`` without touching the network, since insisting is what turns a 429 into a ban.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orders.brokers.binance.mapping import (
    PROVIDER,
    BinanceApiError,
    binance_ban_until_ms,
    binance_signature,
    ms_to_datetime,
    to_binance_query,
)
from orders.brokers.http import HttpClient, HttpResponse
from orders.domain.errors import ProviderError, RateLimited
from orders.metrics import RATE_LIMIT_EVENTS

Params = Sequence[tuple[str, object]]
MINUTE_MS = 60_000
TIME_RESYNC_MS = 30 * MINUTE_MS


@dataclass(frozen=True)
class BinanceConfig:
    api_key: str
    api_secret: str = field(repr=False)
    base_url: str = "https://testnet.binance.vision"
    ws_api_url: str = ""                  # "" = derived from base_url (endpoints.py)
    quote_asset: str = "USDT"             # the account's currency: cash, equity and every position's mark
    recv_window: int = 5000
    weight_limit: int = 6000              # REQUEST_WEIGHT per minute until exchangeInfo says otherwise
    weight_budget: float = 0.9            # share of the limit we let ourselves use
    max_weight_wait: float = 2.0          # seconds we may sleep for the next minute instead of refusing
    rules_ttl: float = 3600.0             # seconds a symbol's exchangeInfo is trusted


class BinanceClient:
    def __init__(self, config: BinanceConfig, *, http: HttpClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.http = http or HttpClient(base_url=config.base_url, provider=PROVIDER)
        self.clock = clock
        self.offset_ms = 0
        self.synced_at_ms: int | None = None
        self.weight_limit = config.weight_limit
        self.used_weight = 0
        self.weight_window = -1
        self.backoff_until_ms = 0

    # -- clock -------------------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """Binance's clock as we best know it."""
        return int(self.clock() * 1000) + self.offset_ms

    def sync_time(self) -> int:
        """Measure the offset to the server clock (half the round trip counts as latency); returns the
        round trip in ms."""
        before = self.clock()
        body = self.public("/api/v3/time", weight=1)
        after = self.clock()
        try:
            server = int(body["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise ProviderError("the server time answer has no serverTime", provider=PROVIDER) from None
        self.offset_ms = server - int((before + after) / 2 * 1000)
        self.synced_at_ms = int(after * 1000)
        return int((after - before) * 1000)

    def _time_is_stale(self) -> bool:
        return self.synced_at_ms is None or int(self.clock() * 1000) - self.synced_at_ms > TIME_RESYNC_MS

    # -- calls -------------------------------------------------------------------------------------------
    def public(self, path: str, params: Params = (), *, weight: int) -> Any:
        return self._call("GET", path, params, weight=weight, signed=False)

    def signed(self, method: str, path: str, params: Params = (), *, weight: int) -> Any:
        self.ensure_time()
        try:
            return self._call(method, path, params, weight=weight, signed=True)
        except BinanceApiError as e:
            if e.code != -1021:
                raise
        self.sync_time()                                      # our clock drifted: measure again, send once more
        return self._call(method, path, params, weight=weight, signed=True)

    def signed_query(self, params: Params, timestamp: int) -> str:
        query = to_binance_query([*params, ("recvWindow", self.config.recv_window), ("timestamp", timestamp)])
        return f"{query}&signature={binance_signature(self.config.api_secret, query)}"

    def ensure_time(self) -> None:
        """Measure the server clock if it was never measured or is old (before signing outside REST)."""
        if self._time_is_stale():
            self.sync_time()

    def _signer(self, params: Params) -> Callable[[dict], dict]:
        def sign(call: dict) -> dict:                 # called for every attempt: a fresh timestamp each time
            call["params"] = self.signed_query(params, self.now_ms())
            call["headers"]["X-MBX-APIKEY"] = self.config.api_key
            return call
        return sign

    def _call(self, method: str, path: str, params: Params, *, weight: int, signed: bool) -> Any:
        self._guard(weight)
        sign = self._signer(params) if signed else None
        query = None if signed else (to_binance_query(params) or None)
        # a new order is not safe to repeat blindly (client ids are unique among *open* orders only)
        response = self.http.request(method, path, params=query, sign=sign, idempotent=method != "POST")
        self._observe(response, weight)
        if response.status >= 400:
            raise _api_error(response)
        if response.body is None:
            raise ProviderError(f"{method} {path} answered HTTP {response.status} without JSON", provider=PROVIDER)
        return response.body

    # -- request weight and back-off ---------------------------------------------------------------------
    def _guard(self, weight: int) -> None:
        now = self.now_ms()
        if now < self.backoff_until_ms:
            raise RateLimited(retry_after_seconds=math.ceil((self.backoff_until_ms - now) / 1000),
                              reset_at=_iso(self.backoff_until_ms), provider=PROVIDER,
                              reason="backing off after the venue limited us")
        window = now // MINUTE_MS
        used = self.used_weight if window == self.weight_window else 0
        budget = int(self.weight_limit * self.config.weight_budget)
        if used + weight <= budget:
            return
        next_window_ms = (window + 1) * MINUTE_MS
        wait_ms = next_window_ms - now
        RATE_LIMIT_EVENTS.inc(platform=PROVIDER, event_type="warning")     # held back: waited for, or refused
        if wait_ms <= self.config.max_weight_wait * 1000:
            self.http.sleep(wait_ms / 1000)
            self.used_weight, self.weight_window = 0, window + 1
            return
        raise RateLimited(retry_after_seconds=math.ceil(wait_ms / 1000), reset_at=_iso(next_window_ms),
                          provider=PROVIDER, reason="request weight budget used up", used_weight=used,
                          weight_limit=self.weight_limit)

    def _observe(self, response: HttpResponse, weight: int) -> None:
        now = self.now_ms()
        window = now // MINUTE_MS
        used = _header(response, "x-mbx-used-weight-1m")
        if used is not None and used.isdigit():
            self.used_weight = int(used)
        else:
            self.used_weight = (self.used_weight if window == self.weight_window else 0) + weight
        self.weight_window = window
        if response.status in (418, 429):
            error = _api_error(response)
            until = binance_ban_until_ms(error) if response.status == 418 else None
            seconds = error.retry_after if error.retry_after is not None else 60.0
            self.backoff_until_ms = max(self.backoff_until_ms, until or now + int(seconds * 1000))


def _header(response: HttpResponse, name: str) -> str | None:
    for key, value in response.headers.items():
        if key.lower() == name:
            return value
    return None


def _api_error(response: HttpResponse) -> BinanceApiError:
    body = response.body if isinstance(response.body, dict) else {}
    retry_after = _header(response, "retry-after")
    try:
        wait = float(retry_after) if retry_after is not None else None
    except ValueError:
        wait = None
    code = body.get("code")
    return BinanceApiError(status=response.status, code=int(code) if code is not None else None,
                           msg=str(body.get("msg") or response.text[:200] or f"HTTP {response.status}"),
                           retry_after=wait, headers=response.headers)


def _iso(ms: int) -> str:
    return ms_to_datetime(ms).isoformat().replace("+00:00", "Z")
