"""The order-rate throttle and the quote's age, as rules (issue #16, points 2 and 3): pure arithmetic on times.

* An account may send at most ``limit`` new orders in any ``window`` (1 s, 60 s). Over it, the next one can
  go when enough of those in the window have left it: ``retry_after_seconds`` says when, in whole seconds
  (HTTP's ``Retry-After`` has no fractions), rounded up so a client that waits that long is let through.
* An order priced from the live market (MARKET fills at the touch, STOP turns into one when the market
  reaches it, TRAILING_STOP trails it from the quote) is only as good as the quote: ``LIVE_PRICED``.
  STOP_LIMIT and LIMIT carry the trader's own price, which caps what they can fill at, so a stale quote
  cannot make them fill somewhere unseen; they are not held back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from orders.domain.enums import OrderType

WINDOWS = (("second", 1), ("minute", 60))
LIVE_PRICED = frozenset({OrderType.MARKET, OrderType.STOP, OrderType.TRAILING_STOP})


def retry_after_seconds(times: Sequence[datetime], *, limit: int, window: int, now: datetime) -> int | None:
    """None when one more order fits in the ``window`` seconds before ``now`` (``times``: the orders already in
    it, oldest first); else the whole seconds to wait until one does (at least 1)."""
    if len(times) < limit:
        return None
    leaves = times[len(times) - limit] + timedelta(seconds=window)
    return max(1, math.ceil((leaves - now).total_seconds()))


def quote_age(quote_time: datetime, *, now: datetime) -> Decimal:
    """Seconds since the quote was taken, to the tenth (never below zero: a venue's clock may run ahead)."""
    seconds = Decimal(str(max(0.0, (now - quote_time).total_seconds())))
    return seconds.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def age_text(age: Decimal) -> str:
    """The age as the ticket shows it: "0.4 s old", "2.3 s old", "3 min old"."""
    if age >= 120:
        return f"{int(age // 60)} min old"
    return f"{age:.1f} s old" if age < 10 else f"{int(age)} s old"
