"""Who is calling /v1: an API key (``Authorization: Bearer`` or ``X-API-Key``) bound to an
account and a role, or — only on a loopback deployment, from a loopback client, when no
key is configured — the default account without a key, as the protocol's examples expect."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.http import HttpRequest
from django.utils import timezone

from orders.api.common import in_pool
from orders.caches import api_keys as _recent_keys
from orders.domain.enums import ApiRole
from orders.domain.errors import Forbidden, RateLimited, Unauthorized
from orders.domain.keys import KEY_PREFIX, hash_key
from orders.models import Account, ApiKey

log = logging.getLogger(__name__)
RISK_PATHS = ("/v1/kill-switch", "/v1/trading-state", "/v1/alerts")     # checked on the risk pool
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class ApiClient:
    account: Account
    role: ApiRole
    actor: str                  # what the audit trail records: key:<prefix>, gateway-key or keyless
    rate_key: str
    rate_limit: int             # requests per minute, 0 = unlimited


def credentials_from(headers) -> str | None:
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        value = auth[len("Bearer "):].strip()
        if value:
            return value
    key = headers.get("X-API-Key", "").strip()
    return key or None


def is_loopback_client(request: HttpRequest) -> bool:
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def resolve_client(raw_key: str | None, *, loopback: bool) -> ApiClient:
    """The caller behind a raw key (or no key). Raises Unauthorized."""
    if raw_key is None:
        if settings.API_ALLOW_KEYLESS and loopback:
            return ApiClient(default_account(), ApiRole.TRADING, "keyless", "keyless",
                             settings.API_RATE_LIMIT_PER_MINUTE)
        raise Unauthorized("API key required", detail_code="MISSING_API_KEY")
    if settings.GATEWAY_API_KEY and hmac.compare_digest(raw_key.encode(), settings.GATEWAY_API_KEY.encode()):
        return ApiClient(default_account(), ApiRole.TRADING, "gateway-key", "gateway-key",
                         settings.API_RATE_LIMIT_PER_MINUTE)
    digest = hash_key(raw_key)
    cached = _recent_keys.get(digest)
    if cached is not None:
        return cached
    key = _lookup(raw_key)
    if key is None:
        raise Unauthorized("Invalid API key", detail_code="INVALID_API_KEY")
    limit = settings.API_RATE_LIMIT_PER_MINUTE if key.rate_limit_per_minute is None else key.rate_limit_per_minute
    return _recent_keys.put(digest, ApiClient(key.account, ApiRole(key.role), f"key:{key.prefix}",
                                              f"key:{key.prefix}", limit))


# A verified key is remembered for a few seconds per process (``orders/caches.py``).


def _lookup(raw_key: str) -> ApiKey | None:
    if not raw_key.startswith(KEY_PREFIX) or raw_key.count("_") < 2:
        return None
    prefix = raw_key[len(KEY_PREFIX):].split("_", 1)[0]
    key = ApiKey.objects.select_related("account").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.hashed_key, hash_key(raw_key)):
        return None
    last_used = key.last_used_at
    now = timezone.now()
    if last_used is None or (now - last_used).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def default_account() -> Account:
    account = Account.objects.filter(is_default=True).first()
    if account is None:
        raise Unauthorized("no default account is set up for keyless access; run manage.py desk_setup",
                           detail_code="MISSING_API_KEY")
    return account


def check_rate(client: ApiClient, *, now: float) -> None:
    """Fixed one-minute windows per key, counted in the cache (shared across processes on Redis). While the
    cache cannot be reached (Redis restarting) the limit fails open: the request is served, uncounted, and a
    warning says so — a trading client must not lose its orders, or get a 500, because a counter is away."""
    if client.rate_limit <= 0:
        return
    window = int(now // 60)
    count = _count_request(f"rate:{client.rate_key}:{window}")
    if count is None or count <= client.rate_limit:
        return
    reset = (window + 1) * 60
    reset_at = datetime.fromtimestamp(reset, tz=UTC).isoformat().replace("+00:00", "Z")
    raise RateLimited(retry_after_seconds=max(1, int(reset - now)), reset_at=reset_at,
                      limit_per_minute=client.rate_limit)


def _count_request(bucket: str) -> int | None:
    """This request's number in its window, or None when the cache failed (any error of the cache's client,
    e.g. redis-py's ConnectionError or TimeoutError: the cache backends pass them through)."""
    try:
        if cache.add(bucket, 1, timeout=90):
            return 1
        try:
            return cache.incr(bucket)
        except ValueError:                  # the bucket expired between add and incr
            cache.set(bucket, 1, timeout=90)
            return 1
    except Exception as error:  # noqa: BLE001 - whatever the cache's client raises, the request goes on
        _warn_rate_limit_off(error)
        return None


_rate_warned_at: list[float] = [-60.0]      # when this process last warned that rate limiting is off


def _warn_rate_limit_off(error: Exception) -> None:
    now = time.monotonic()
    if now - _rate_warned_at[0] >= 60:
        _rate_warned_at[0] = now
        log.warning("rate limiting is off while the cache cannot be reached (%s: %s); /v1 requests are served "
                    "uncounted (this warning repeats at most once a minute)", type(error).__name__, error)


async def api_key_auth_pooled(request: HttpRequest) -> ApiClient:
    """``api_key_auth`` for async views. A key verified in the last few seconds whose rate is counted in
    this process (or not at all) is recognised right here; anything needing the database or a shared
    cache goes to the pooled threads that also do the view's database work."""
    raw_key = credentials_from(request.headers)
    client = _recent_keys.get(hash_key(raw_key)) if raw_key and raw_key.startswith(KEY_PREFIX) else None
    if client is not None and (client.rate_limit <= 0 or isinstance(caches["default"], LocMemCache)):
        return _authorise(request, client)
    return await in_pool(api_key_auth, pool="risk" if request.path_info.startswith(RISK_PATHS) else "api")(request)


def api_key_auth(request: HttpRequest) -> ApiClient:
    """The ninja auth callable for every /v1 route: authenticate, authorise by role, rate-limit."""
    return _authorise(request, resolve_client(credentials_from(request.headers),
                                              loopback=is_loopback_client(request)))


def _authorise(request: HttpRequest, client: ApiClient) -> ApiClient:
    if client.role == ApiRole.READ_ONLY and request.method not in _SAFE_METHODS:
        raise Forbidden("this API key is read-only", detail_code="READ_ONLY_KEY")
    check_rate(client, now=time.time())
    request.api_client = client
    return client
