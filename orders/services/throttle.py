"""The order-rate throttle per account (issue #16, point 2): ``PreTradeLimits.orders_per_second`` and
``orders_per_minute`` (empty or 0: none). A new entry over either is refused with 429 ``RATE_LIMITED``,
``Retry-After`` in whole seconds and ``details`` naming the limit and its window.

Counted from the database, not a cache: the check runs inside ``order_submit``'s transaction, under the
account's row lock, so two web processes and the engine see each other's orders (exactly, not within a
cache's delay), and an order that is refused or rolled back is never counted. The count reads the index on
(account, created_at) over at most a minute of one account's entries — a few rows — where a shared counter
(Redis) would add a round trip of its own and count attempts rather than orders.

Reducing orders (position closes, exit legs, reduce-only orders, an entry that only reduces the position)
are never throttled; the caller does not ask for them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orders.caches import pretrade_limits
from orders.domain.errors import RateLimited
from orders.domain.throttle import WINDOWS, retry_after_seconds
from orders.models import Order, PreTradeLimits


class OrdersThrottled(RateLimited):
    """Too many new orders for the account in a second or a minute: send again after ``retry_after_seconds``."""

    def __init__(self, *, limit: int, per: str, window: int, retry_after: int, now: datetime) -> None:
        reset_at = (now + timedelta(seconds=retry_after)).astimezone(UTC).isoformat().replace("+00:00", "Z")
        super().__init__(retry_after_seconds=retry_after, reset_at=reset_at, scope="account", limit=limit,
                         window=per, window_seconds=window)
        self.message = (f"Rate limit exceeded: the account sends at most {limit} new "
                        f"order{'s' if limit != 1 else ''} a {per}; send again in {retry_after} s")
        self.args = (self.message,)


def throttle_rates(account_id: int) -> tuple[int | None, int | None]:
    """(orders a second, orders a minute), remembered like the pre-trade limits (``limits_forget`` empties it)."""
    key = ("throttle", account_id)
    kept = pretrade_limits.get(key)
    if kept is None:
        row = PreTradeLimits.objects.filter(account_id=account_id).values_list(
            "orders_per_second", "orders_per_minute").first()
        kept = pretrade_limits.put(key, row or (None, None))
    return kept


def throttle_enforce(*, account_id: int, now: datetime) -> None:
    """Refuse a new entry over the account's order rate (``OrdersThrottled``, 429). Call it under the account's
    row lock, so concurrent submissions are counted one after the other."""
    for (per, window), limit in zip(WINDOWS, throttle_rates(account_id), strict=True):
        if not limit:
            continue
        times = list(Order.objects.filter(
            # no upper bound: an order committed by another process while this one waited for the lock may
            # carry a later time than this one's ``now``, taken before the wait
            account_id=account_id, created_at__gt=now - timedelta(seconds=window),
            parent__isnull=True, leg_role__isnull=True, reduce_only=False,
        ).order_by("created_at").values_list("created_at", flat=True))
        wait = retry_after_seconds(times, limit=limit, window=window, now=now)
        if wait is not None:
            raise OrdersThrottled(limit=limit, per=per, window=window, retry_after=wait, now=now)
