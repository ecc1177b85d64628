"""The stale-quote guard (issue #16, point 3): an entry priced from the live market (MARKET, STOP,
TRAILING_STOP: ``domain/throttle.LIVE_PRICED``) is refused ``STALE_QUOTE`` (422) when the venue's quote of its
symbol is older than the account's ``PreTradeLimits.max_quote_age_seconds`` (empty: no limit). Its notional and
price-band checks are measured from that same quote, so they are never made on a stale one.

A feed that stops shows as quotes that age (the paper venue's ``paper_faults --freeze-quotes on``); a venue that
cannot be asked at all answers 503 ``PROVIDER_UNAVAILABLE`` before this check.

Reducing orders (closes, exit legs, reduce-only, an entry that only reduces the position) are never blocked: the
caller does not ask for them. A person on the desk may send past it with a typed reason (the ticket's override
reason), written to the audit trail as ``order.override`` with the quote's age; a script cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from orders.brokers.base import Broker
from orders.brokers.types import Quote
from orders.caches import pretrade_limits
from orders.domain.errors import OrderRejected
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest
from orders.domain.throttle import LIVE_PRICED, age_text, quote_age
from orders.models import PreTradeLimits


class StaleQuote(OrderRejected):
    """The quote an order would be priced from is older than the account allows."""

    def __init__(self, *, symbol: str, age: Decimal, limit: Decimal) -> None:
        super().__init__("STALE_QUOTE",
                         f"Order rejected: the quote of {symbol} is {age_text(age)}, over the account's limit of "
                         f"{format_decimal(limit)} s; wait for a live quote (or type a reason on the desk's ticket)",
                         symbol=symbol, quote_age_seconds=format_decimal(age),
                         max_quote_age_seconds=format_decimal(limit))
        self.age, self.limit = age, limit


@dataclass(frozen=True)
class StaleOverride:
    """A stale quote a person sent past, with the reason the audit trail keeps."""
    age: Decimal
    limit: Decimal
    reason: str


def max_quote_age(account_id: int) -> Decimal | None:
    """The account's limit, remembered like its pre-trade limits (``limits_forget`` empties it)."""
    key = ("max_quote_age", account_id)
    kept = pretrade_limits.get(key)
    if kept is None:
        row = PreTradeLimits.objects.filter(account_id=account_id).values_list("max_quote_age_seconds", flat=True)
        kept = pretrade_limits.put(key, (row.first(),))
    return kept[0]


def quote_too_old(*, account_id: int, quote: Quote, now: datetime) -> tuple[Decimal, Decimal] | None:
    """(age, limit) when ``quote`` is older than the account allows, else None."""
    limit = max_quote_age(account_id)
    if limit is None:
        return None
    age = quote_age(quote.timestamp, now=now)
    return (age, limit) if age > limit else None


def stale_quote_enforce(*, account_id: int, request: OrderRequest, broker: Broker, now: datetime,
                        override_reason: str = "") -> StaleOverride | None:
    """Refuse an entry priced from a stale quote (``StaleQuote``), unless ``override_reason`` is typed: then the
    override, for the caller to audit with the order."""
    if request.order_type not in LIVE_PRICED or max_quote_age(account_id) is None:
        return None
    too_old = quote_too_old(account_id=account_id, quote=broker.quote(request.symbol, now=now), now=now)
    if too_old is None:
        return None
    age, limit = too_old
    if override_reason.strip():
        return StaleOverride(age=age, limit=limit, reason=override_reason.strip())
    raise StaleQuote(symbol=request.symbol, age=age, limit=limit)
