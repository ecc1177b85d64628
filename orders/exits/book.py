"""The engine's book of synthetic (engine-held) trailing stops, per symbol.

A trailing stop's level is ``peak - distance`` (sell side; mirrored for buys), where
``peak`` is the best price since the leg was armed. Checking every leg on every quote
costs O(legs). This book costs O(log legs) per quote that triggers nothing:

* legs sharing a peak live in one *bucket*; a bucket's trigger level is set by its
  tightest leg (smallest distance), kept on a heap;
* a new best price lifts every bucket whose peak it passes — those buckets merge into one
  (smaller into larger), so each leg is merged O(log n) times over its life;
* a global heap of bucket trigger levels answers "did anything trigger?" at its top.

Sell-side legs work on prices as they are; buy-side legs on negated prices, so one
implementation serves both. ABSOLUTE and PERCENT legs are kept in separate books because
their levels scale differently with the peak.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from orders.domain.enums import Side, TrailingType


@dataclass
class TrailingLeg:
    leg_id: str
    symbol: str
    side: Side                 # the side of the stop order (SELL protects a long)
    distance: Decimal
    trailing_type: TrailingType
    peak: Decimal              # best price seen since armed, in real (not negated) terms

    def level(self) -> Decimal:
        """The current stop price."""
        if self.trailing_type is TrailingType.PERCENT:
            offset = self.peak * self.distance / 100
        else:
            offset = self.distance
        return self.peak - offset if self.side is Side.SELL else self.peak + offset


@dataclass
class _Bucket:
    peak: Decimal                               # in book terms (negated for buy legs)
    distances: list = field(default_factory=list)  # heap of (distance, seq, leg_id)
    version: int = 0
    alive: bool = True


class _OneWayBook:
    """Sell-style trailing stops for one symbol and one trailing type, in book terms
    (price rises are good; a leg triggers when price <= peak - offset)."""

    def __init__(self, percent: bool) -> None:
        self.percent = percent
        self.by_peak: list = []        # min-heap of (peak, seq, bucket)
        self.by_level: list = []       # max-heap as (-level, seq, version, bucket)
        self.leg_bucket: dict[str, _Bucket] = {}
        self.legs: dict[str, Decimal] = {}   # leg_id -> distance
        self._seq = itertools.count()

    def _level(self, bucket: _Bucket) -> Decimal | None:
        while bucket.distances and bucket.distances[0][2] not in self.legs:
            heapq.heappop(bucket.distances)
        if not bucket.distances:
            return None
        d = bucket.distances[0][0]
        return bucket.peak - abs(bucket.peak) * d / 100 if self.percent else bucket.peak - d

    def _push_level(self, bucket: _Bucket) -> None:
        bucket.version += 1
        level = self._level(bucket)
        if level is not None:
            heapq.heappush(self.by_level, (-level, next(self._seq), bucket.version, bucket))

    def add(self, leg_id: str, distance: Decimal, peak: Decimal) -> None:
        bucket = _Bucket(peak=peak)
        heapq.heappush(bucket.distances, (distance, next(self._seq), leg_id))
        self.legs[leg_id] = distance
        self.leg_bucket[leg_id] = bucket
        heapq.heappush(self.by_peak, (peak, next(self._seq), bucket))
        self._push_level(bucket)

    def remove(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)
        bucket = self.leg_bucket.pop(leg_id, None)
        if bucket is not None and bucket.alive:
            self._push_level(bucket)

    def peak_of(self, leg_id: str) -> Decimal:
        return self.leg_bucket[leg_id].peak

    def on_price(self, price: Decimal) -> tuple[list[str], list[str]]:
        """Apply one price. Returns (triggered leg ids, leg ids whose peak moved)."""
        moved = self._raise_peaks(price)
        triggered = []
        while self.by_level:
            neg_level, _, version, bucket = self.by_level[0]
            if not bucket.alive or version != bucket.version:
                heapq.heappop(self.by_level)
                continue
            if price > -neg_level:
                break
            heapq.heappop(self.by_level)
            _, _, leg_id = heapq.heappop(bucket.distances)
            if leg_id in self.legs:
                triggered.append(leg_id)
                self.legs.pop(leg_id)
                self.leg_bucket.pop(leg_id, None)
            self._push_level(bucket)
        return triggered, [leg for leg in moved if leg in self.legs]

    def _raise_peaks(self, price: Decimal) -> list[str]:
        lifted: list[_Bucket] = []
        while self.by_peak and self.by_peak[0][0] < price:
            _, _, bucket = heapq.heappop(self.by_peak)
            if bucket.alive:
                lifted.append(bucket)
        if not lifted:
            return []
        target = max(lifted, key=lambda b: len(b.distances))
        moved: list[str] = []
        for bucket in lifted:
            moved.extend(leg for _, _, leg in bucket.distances)
            if bucket is target:
                continue
            bucket.alive = False
            for entry in bucket.distances:
                heapq.heappush(target.distances, entry)
                if entry[2] in self.leg_bucket:
                    self.leg_bucket[entry[2]] = target
        target.peak = price
        heapq.heappush(self.by_peak, (price, next(self._seq), target))
        self._push_level(target)
        return moved


class TrailingBook:
    """All synthetic trailing stops, indexed by symbol, side and trailing type."""

    def __init__(self) -> None:
        self._books: dict[tuple[str, Side, TrailingType], _OneWayBook] = {}
        self._legs: dict[str, TrailingLeg] = {}

    def __len__(self) -> int:
        return len(self._legs)

    def _book(self, symbol: str, side: Side, kind: TrailingType) -> _OneWayBook:
        key = (symbol, side, kind)
        book = self._books.get(key)
        if book is None:
            book = self._books[key] = _OneWayBook(percent=kind is TrailingType.PERCENT)
        return book

    def add(self, leg: TrailingLeg) -> None:
        self._legs[leg.leg_id] = leg
        peak = leg.peak if leg.side is Side.SELL else -leg.peak
        self._book(leg.symbol, leg.side, leg.trailing_type).add(leg.leg_id, leg.distance, peak)

    def remove(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is not None:
            self._book(leg.symbol, leg.side, leg.trailing_type).remove(leg_id)

    def get(self, leg_id: str) -> TrailingLeg | None:
        return self._legs.get(leg_id)

    def on_quote(self, symbol: str, *, bid: Decimal, ask: Decimal) -> tuple[list[TrailingLeg], list[TrailingLeg]]:
        """Sell stops watch the bid, buy stops the ask. Returns (triggered legs, legs whose level moved)."""
        triggered: list[TrailingLeg] = []
        moved: list[TrailingLeg] = []
        for side, price in ((Side.SELL, bid), (Side.BUY, -ask)):
            for kind in (TrailingType.ABSOLUTE, TrailingType.PERCENT):
                book = self._books.get((symbol, side, kind))
                if book is None or not book.legs:
                    continue
                fired, lifted = book.on_price(price)
                for leg_id in lifted:
                    leg = self._legs[leg_id]
                    leg.peak = book.peak_of(leg_id) if side is Side.SELL else -book.peak_of(leg_id)
                    moved.append(leg)
                for leg_id in fired:
                    triggered.append(self._legs.pop(leg_id))
        return triggered, moved
