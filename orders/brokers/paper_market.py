"""The paper venue's market: a seeded, reproducible price path per symbol.

The path is a pure function of (seed, symbol, second), so the web process and the
engine process see exactly the same quotes without sharing any state, and a test
that fixes the clock fixes the prices.

Construction. ``W`` is a standard Brownian motion on integer seconds since
2020-01-01, built by Lévy's midpoint construction: the value at a point whose
lowest set bit is ``h`` is the mean of its neighbours ``h`` away plus
``sqrt(h/2)`` times a normal draw hashed from (seed, symbol, point). Any second is
reached in about 33 cached steps. The log price is the stationary window
``W(t) - W(t - T)``, scaled so its standard deviation is the instrument's
``volatility``: locally a random walk, globally it stays near ``base_price``
(so a demo bracket at 145/165 on AAPL ≈ 150 stays valid for years).
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from orders.brokers.types import Bar, Instrument, Quote
from orders.domain.money import round_to_step

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_TOP = 1 << 34                      # ~544 years of seconds
WINDOW_SECONDS = 4 * 3600           # T: the memory of the stationary window
_CACHE_LIMIT = 200_000
_BAR_ANCHOR = -2 * 86400            # Monday 2019-12-30 00:00 UTC: bars align to it (weekly bars open on Mondays)


def seconds_since_epoch(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("the market clock needs an aware datetime")
    return max(WINDOW_SECONDS, int((at - EPOCH).total_seconds()))


class PriceWalk:
    def __init__(self, *, seed: int, provider: str = "paper") -> None:
        self.seed = seed
        self.provider = provider
        self._cache: OrderedDict[tuple[str, int], float] = OrderedDict()
        # injected price shocks: symbol -> (from_second, factor); the walk is multiplied by factor from then on
        self.shocks: dict[str, tuple[int, Decimal]] = {}

    # -- the path --------------------------------------------------------------------------------------
    def _normal(self, symbol: str, point: int) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{symbol}|{point}".encode(), digest_size=16).digest()
        a, b = struct.unpack("<QQ", digest)
        u1 = (a + 1) / 18446744073709551617.0
        u2 = b / 18446744073709551616.0
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def _w(self, symbol: str, point: int) -> float:
        if point <= 0:
            return 0.0
        if point >= _TOP:
            return math.sqrt(_TOP) * self._normal(symbol, _TOP)
        key = (symbol, point)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        h = point & -point
        value = (self._w(symbol, point - h) + self._w(symbol, point + h)) / 2 + math.sqrt(h / 2) * self._normal(
            symbol, point)
        self._cache[key] = value
        if len(self._cache) > _CACHE_LIMIT:
            for _ in range(_CACHE_LIMIT // 10):
                self._cache.popitem(last=False)
        return value

    def _log_offset(self, instrument: Instrument, second: int) -> float:
        window = self._w(instrument.symbol, second) - self._w(instrument.symbol, second - WINDOW_SECONDS)
        return float(instrument.volatility) * window / math.sqrt(WINDOW_SECONDS)

    def price_at_second(self, instrument: Instrument, second: int) -> Decimal:
        raw = float(instrument.base_price) * math.exp(self._log_offset(instrument, second))
        price = Decimal(repr(raw))
        shock = self.shocks.get(instrument.symbol)
        if shock is not None and second >= shock[0]:
            price *= shock[1]
        price = round_to_step(price, instrument.tick_size)
        return max(price, instrument.tick_size)

    def _unit(self, symbol: str, second: int, salt: str) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{symbol}|{second}|{salt}".encode(), digest_size=8).digest()
        return struct.unpack("<Q", digest)[0] / 18446744073709551616.0

    def _size(self, instrument: Instrument, second: int, salt: str) -> Decimal:
        factor = Decimal(repr(round(0.4 + 1.6 * self._unit(instrument.symbol, second, salt), 3)))
        size = (instrument.typical_size * factor)
        return max(instrument.min_quantity, round_to_step(size, instrument.quantity_step, ROUND_FLOOR))

    # -- what clients see ------------------------------------------------------------------------------
    def quote(self, instrument: Instrument, at: datetime) -> Quote:
        second = seconds_since_epoch(at)
        return self.quote_at_second(instrument, second)

    def quote_at_second(self, instrument: Instrument, second: int) -> Quote:
        last = self.price_at_second(instrument, second)
        half = max(instrument.tick_size, last * instrument.spread_bps / Decimal(20000))
        bid = max(instrument.tick_size, round_to_step(last - half, instrument.tick_size, ROUND_FLOOR))
        ask = round_to_step(last + half, instrument.tick_size, ROUND_CEILING)
        if ask <= bid:
            ask = bid + instrument.tick_size
        timestamp = EPOCH + timedelta(seconds=second)
        return Quote(symbol=instrument.symbol, provider=self.provider, bid=bid, ask=ask, last=last,
                     bid_size=self._size(instrument, second, "bid"), ask_size=self._size(instrument, second, "ask"),
                     volume=self._size(instrument, second, "vol") * 40, timestamp=timestamp)

    def bars(self, instrument: Instrument, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        """``count`` bars of ``seconds`` each, ascending, the last one containing ``end``.
        Each bar's open/high/low/close come from up to 60 evenly spaced samples of the path. The bar in
        progress stops at ``end`` and closes at its price: a bar never shows a price from the future.
        Bars start on multiples of their length counted from a Monday midnight, so weekly bars open on Mondays."""
        end_second = seconds_since_epoch(end)
        last_start = (end_second - _BAR_ANCHOR) // seconds * seconds + _BAR_ANCHOR
        first_start = last_start - (count - 1) * seconds
        step = max(1, seconds // 60)
        bars = []
        for start in range(first_start, last_start + 1, seconds):
            if start < WINDOW_SECONDS:
                continue
            points = list(range(start, min(start + seconds, end_second + 1), step))
            volume = sum((self._size(instrument, s, "vol") for s in points), Decimal(0)) * step
            if start + seconds > end_second + 1 and points[-1] != end_second:
                points.append(end_second)
            samples = [self.price_at_second(instrument, s) for s in points]
            bars.append(Bar(symbol=instrument.symbol, provider=self.provider, timeframe=timeframe,
                            timestamp=EPOCH + timedelta(seconds=start), open=samples[0], high=max(samples),
                            low=min(samples), close=samples[-1], volume=volume))
        return bars
