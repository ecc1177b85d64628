"""An account's pre-trade limits (``PreTradeLimits``, set in the admin) and the hard ones enforced on every
new entry, whichever way it comes: the desk's ticket, or a script on ``/v1``.

The ticket shows every breach before submit; a soft one needs a typed reason there. A script has no way to
give one, so for it soft levels are advice and only hard levels count. Orders that can only reduce exposure
(position closes, exit legs, reduce-only orders) are never held back by a limit: a cap on the day's orders
must not trap a position.

The limits are read at most once per ``CACHE_SECONDS`` per process: a change in the admin applies within that.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal

from orders.brokers.base import Broker
from orders.domain.enums import OrderType
from orders.domain.errors import DeskError, OrderRejected
from orders.domain.orders import OrderRequest
from orders.domain.pretrade import Limits, pretrade_breaches
from orders.models import Order, PreTradeLimits

CACHE_SECONDS = 5.0


def limits_read(account_id: int) -> tuple[Limits, int | None]:
    """The account's limits and its duplicate-order window (seconds), from the database now."""
    row = PreTradeLimits.objects.filter(account_id=account_id).first()
    if row is None:
        return Limits(), None
    return Limits(max_quantity=(row.max_quantity_soft, row.max_quantity_hard),
                  max_notional=(row.max_notional_soft, row.max_notional_hard),
                  price_band_pct=(row.price_band_pct_soft, row.price_band_pct_hard),
                  daily_orders=(row.daily_orders_soft, row.daily_orders_hard)), row.duplicate_window_seconds


def orders_today(account_id: int, *, now: datetime) -> int:
    """Entries (not exit legs) the account has placed since midnight UTC."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Order.objects.filter(account_id=account_id, created_at__gte=start, parent__isnull=True).count()


def limits_enforce(*, account_id: int, request: OrderRequest, reference: Decimal, broker: Broker,
                   now: datetime) -> None:
    """Refuse an entry that breaks one of the account's hard limits (``ORDER_REJECTED``, ``PRETRADE_LIMIT``)."""
    limits = _remembered(account_id)
    hard = [levels[1] for levels in (limits.max_quantity, limits.max_notional, limits.price_band_pct,
                                     limits.daily_orders)]
    if request.reduce_only or all(level is None for level in hard):
        return
    price = request.limit_price if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else (
        request.stop_price)
    market = _market(broker, request.symbol, now) if price is not None and hard[2] is not None else Decimal(0)
    today = orders_today(account_id, now=now) if hard[3] is not None else 0
    breaches = pretrade_breaches(limits=Limits(max_quantity=(None, hard[0]), max_notional=(None, hard[1]),
                                               price_band_pct=(None, hard[2]), daily_orders=(None, hard[3])),
                                 quantity=request.quantity, notional=request.quantity * reference,
                                 order_price=price, market=market, orders_today=today, duplicate_of=None)
    if breaches:
        breach = breaches[0]
        raise OrderRejected("ORDER_REJECTED", f"Order rejected: {breach.message} (pre-trade limit of the account)",
                            reject_code="PRETRADE_LIMIT", check=breach.check, field=breach.field)


def limits_forget() -> None:
    """Read every account's limits afresh next time (tests; the admin's change otherwise waits a few seconds)."""
    _cache.clear()


_cache: dict[int, tuple[float, Limits]] = {}


def _remembered(account_id: int) -> Limits:
    known = _cache.get(account_id)
    if known is not None and known[0] > time.monotonic():
        return known[1]
    limits, _ = limits_read(account_id)
    _cache[account_id] = (time.monotonic() + CACHE_SECONDS, limits)
    return limits


def _market(broker: Broker, symbol: str, now: datetime) -> Decimal:
    try:
        return broker.quote(symbol, now=now).mid
    except DeskError:
        return Decimal(0)   # no market to measure the band against: the band is not checked

