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
from orders.exits.decide import trail_level


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
        return trail_level(side=self.side, trailing_distance=self.distance, trailing_type=self.trailing_type,
                           peak=self.peak)


@dataclass
class _Bucket:
    peak: Decimal                               # in book terms (negated for buy legs)
    distances: list = field(default_factory=list)  # heap of (distance, seq, leg_id)
    version: int = 0
    alive: bool = True


_NOTHING: tuple = ()
_INF = Decimal("Infinity")
_NO_BAND = (-_INF, _INF, _INF, -_INF)      # no legs: every quote is quiet
_QUIET: tuple = ((), False)


class _OneWayBook:
    """Sell-style trailing stops for one symbol and one trailing type, in book terms
    (price rises are good; a leg triggers when price <= peak - offset)."""

    def __init__(self, percent: bool) -> None:
        self.percent = percent
        self.by_peak: list = []        # min-heap of (peak, seq, bucket)
        self.by_level: list = []       # max-heap as (-level, seq, version, bucket)
        self.leg_bucket: dict[str, _Bucket] = {}
        # leg_id -> seq of its live heap entry: a removed leg's entries linger in bucket heaps, and an id
        # added again must not bring them back to life
        self.legs: dict[str, int] = {}
        self.top_level: Decimal | None = None
        self._buckets = 0
        self._levels_stale = False
        self._seq = itertools.count()

    def _level(self, bucket: _Bucket) -> Decimal | None:
        while bucket.distances and self.legs.get(bucket.distances[0][2]) != bucket.distances[0][1]:
            heapq.heappop(bucket.distances)
        if not bucket.distances:
            return None
        d = bucket.distances[0][0]
        return bucket.peak - abs(bucket.peak) * d / 100 if self.percent else bucket.peak - d

    def _rebuild_levels(self) -> None:
        self._levels_stale = False
        self.by_level = []
        for _, _, bucket in self.by_peak:
            if bucket.alive:
                bucket.version += 1
                level = self._level(bucket)
                if level is not None:
                    self.by_level.append((-level, next(self._seq), bucket.version, bucket))
        heapq.heapify(self.by_level)
        self._refresh_top()

    def _push_level(self, bucket: _Bucket) -> None:
        if self._levels_stale:
            self._rebuild_levels()
        bucket.version += 1
        level = self._level(bucket)
        if level is not None:
            heapq.heappush(self.by_level, (-level, next(self._seq), bucket.version, bucket))
        if len(self.by_level) > 4 * self._buckets + 64:
            self.by_level = [e for e in self.by_level if e[3].alive and e[2] == e[3].version]
            heapq.heapify(self.by_level)
        self._refresh_top()

    def _refresh_top(self) -> None:
        while self.by_level:
            _, _, version, bucket = self.by_level[0]
            if bucket.alive and version == bucket.version:
                self.top_level = -self.by_level[0][0]
                return
            heapq.heappop(self.by_level)
        self.top_level = None

    def add(self, leg_id: str, distance: Decimal, peak: Decimal) -> None:
        bucket = _Bucket(peak=peak)
        seq = next(self._seq)
        heapq.heappush(bucket.distances, (distance, seq, leg_id))
        self.legs[leg_id] = seq
        self.leg_bucket[leg_id] = bucket
        self._buckets += 1
        heapq.heappush(self.by_peak, (peak, next(self._seq), bucket))
        self._push_level(bucket)

    def remove(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)
        bucket = self.leg_bucket.pop(leg_id, None)
        if bucket is not None and bucket.alive:
            self._push_level(bucket)

    def peak_of(self, leg_id: str) -> Decimal:
        return self.leg_bucket[leg_id].peak

    def on_price(self, price: Decimal) -> tuple[tuple | list, bool]:
        """Apply one price. Returns (triggered leg ids, whether any leg's peak moved)."""
        moved = False
        if self.by_peak and price > self.by_peak[0][0]:
            moved = self._raise_peaks(price)
        top = self.top_level
        if top is None or price > top:
            return _NOTHING, moved
        if self._levels_stale:
            self._rebuild_levels()
        triggered = []
        while self.by_level:
            neg_level, _, version, bucket = self.by_level[0]
            if not bucket.alive or version != bucket.version:
                heapq.heappop(self.by_level)
                continue
            if price > -neg_level:
                break
            heapq.heappop(self.by_level)
            _, seq, leg_id = heapq.heappop(bucket.distances)
            if self.legs.get(leg_id) == seq:
                triggered.append((leg_id, bucket.peak))
                self.legs.pop(leg_id)
                self.leg_bucket.pop(leg_id, None)
            self._push_level(bucket)
        self._refresh_top()
        return triggered, moved

    def _raise_peaks(self, price: Decimal) -> bool:
        head = self.by_peak[0][2]
        if self._buckets == 1 and head.alive:
            # the usual case once buckets have merged: one bucket, lifted in place
            head.peak = price
            self.by_peak[0] = (price, self.by_peak[0][1], head)
            self.top_level = self._level(head)
            self._levels_stale = True      # by_level is rebuilt from the buckets when next needed
            return True
        if self._levels_stale:
            self._rebuild_levels()
        lifted: list[_Bucket] = []
        while self.by_peak and self.by_peak[0][0] < price:
            _, _, bucket = heapq.heappop(self.by_peak)
            if bucket.alive:
                lifted.append(bucket)
        if not lifted:
            return False
        target = max(lifted, key=lambda b: len(b.distances))
        for bucket in lifted:
            if bucket is target:
                continue
            bucket.alive = False
            self._buckets -= 1
            for entry in bucket.distances:
                heapq.heappush(target.distances, entry)
                if self.legs.get(entry[2]) == entry[1]:
                    self.leg_bucket[entry[2]] = target
        target.peak = price
        heapq.heappush(self.by_peak, (price, next(self._seq), target))
        self._push_level(target)
        return True


def _lifted_level(peak: Decimal, percent: bool, distance: Decimal) -> Decimal:
    """A bucket's stop level in book terms once its peak is ``peak``."""
    return peak - abs(peak) * distance / 100 if percent else peak - distance


class TrailingBook:
    """All synthetic trailing stops, indexed by symbol, side and trailing type."""

    def __init__(self) -> None:
        self._by_symbol: dict[str, list[tuple[Side, bool, _OneWayBook]]] = {}
        self._legs: dict[str, TrailingLeg] = {}
        # per symbol, the quiet band (sell_trigger, sell_raise, buy_trigger, buy_raise): a quote with
        # sell_trigger < bid <= sell_raise and buy_raise <= ask < buy_trigger changes nothing
        self._bands: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        # per symbol and side, when every book of that side has a single bucket: [(percent, tightest distance)]
        # — a new best price then lifts them all with a little arithmetic, the books being told later
        self._lazy_sell: dict[str, list[tuple[bool, Decimal, Decimal]] | None] = {}
        self._lazy_buy: dict[str, list[tuple[bool, Decimal, Decimal]] | None] = {}
        self._pending_sell: dict[str, Decimal] = {}     # best prices not yet applied to the books
        self._pending_buy: dict[str, Decimal] = {}

    def __len__(self) -> int:
        return len(self._legs)

    def _book(self, symbol: str, side: Side, kind: TrailingType) -> _OneWayBook:
        books = self._by_symbol.setdefault(symbol, [])
        percent = kind is TrailingType.PERCENT
        for book_side, book_percent, book in books:
            if book_side is side and book_percent == percent:
                return book
        book = _OneWayBook(percent=percent)
        books.append((side, percent, book))
        return book

    def _materialize(self, symbol: str) -> None:
        """Apply lifts held back by the lazy path to the books themselves."""
        for side, pending in ((Side.SELL, self._pending_sell), (Side.BUY, self._pending_buy)):
            price = pending.pop(symbol, None)
            if price is None:
                continue
            # raise only: at its own best price no stop can trigger; triggers are judged at the quote at hand
            for book_side, _, book in self._by_symbol.get(symbol, ()):
                if book_side is side and book.legs and book.by_peak and price > book.by_peak[0][0]:
                    book._raise_peaks(price)

    def add(self, leg: TrailingLeg) -> None:
        self._materialize(leg.symbol)
        self._legs[leg.leg_id] = leg
        peak = leg.peak if leg.side is Side.SELL else -leg.peak
        self._book(leg.symbol, leg.side, leg.trailing_type).add(leg.leg_id, leg.distance, peak)
        self._update_band(leg.symbol)

    def remove(self, leg_id: str) -> None:
        leg = self._legs.pop(leg_id, None)
        if leg is not None:
            self._materialize(leg.symbol)
            self._book(leg.symbol, leg.side, leg.trailing_type).remove(leg_id)
            self._update_band(leg.symbol)

    def _update_band(self, symbol: str, sides: tuple[Side, ...] = (Side.SELL, Side.BUY)) -> None:
        sell_trigger, sell_raise, buy_trigger, buy_raise = self._bands.get(symbol, _NO_BAND)
        if Side.SELL in sides:
            sell_trigger, sell_raise = -_INF, _INF
        if Side.BUY in sides:
            buy_trigger, buy_raise = _INF, -_INF
        for side, _, book in self._by_symbol.get(symbol, ()):
            if side not in sides or not book.legs:
                continue
            top = book.top_level
            low_peak = book.by_peak[0][0] if book.by_peak else _INF
            if side is Side.SELL:
                if top is not None and top > sell_trigger:
                    sell_trigger = top
                if low_peak < sell_raise:
                    sell_raise = low_peak
            else:
                if top is not None and -top < buy_trigger:
                    buy_trigger = -top
                if -low_peak > buy_raise:
                    buy_raise = -low_peak
        self._bands[symbol] = (sell_trigger, sell_raise, buy_trigger, buy_raise)
        self._update_lazy(symbol)

    def _update_lazy(self, symbol: str) -> None:
        for side in (Side.SELL, Side.BUY):
            info: list[tuple[bool, Decimal, Decimal]] | None = []
            for book_side, percent, book in self._by_symbol.get(symbol, ()):
                if book_side is not side or not book.legs:
                    continue
                head = book.by_peak[0][2] if book.by_peak else None
                if book._buckets != 1 or head is None or not head.alive or book._level(head) is None:
                    info = None
                    break
                info.append((percent, head.distances[0][0], head.peak))
            (self._lazy_sell if side is Side.SELL else self._lazy_buy)[symbol] = info or None

    def get(self, leg_id: str) -> TrailingLeg | None:
        leg = self._legs.get(leg_id)
        if leg is not None:
            self._materialize(leg.symbol)
            self._refresh_peak(leg)
        return leg

    def leg_ids(self) -> set[str]:
        return set(self._legs)

    def legs_of(self, symbol: str) -> list[TrailingLeg]:
        """The resting legs of a symbol with their current peaks."""
        self._materialize(symbol)
        legs = [leg for leg in self._legs.values() if leg.symbol == symbol]
        for leg in legs:
            self._refresh_peak(leg)
        return legs

    def symbols(self) -> set[str]:
        return {symbol for symbol, books in self._by_symbol.items() if any(b.legs for _, _, b in books)}

    def _refresh_peak(self, leg: TrailingLeg) -> None:
        book = self._book(leg.symbol, leg.side, leg.trailing_type)
        peak = book.peak_of(leg.leg_id)
        leg.peak = peak if leg.side is Side.SELL else -peak

    def on_quote(self, symbol: str, *, bid: Decimal, ask: Decimal) -> tuple[list[TrailingLeg] | tuple, bool]:
        """Sell stops watch the bid, buy stops the ask. Returns (triggered legs, whether any level moved)."""
        sell_trigger, sell_raise, buy_trigger, buy_raise = self._bands.get(symbol, _NO_BAND)
        sell_quiet = sell_trigger < bid <= sell_raise
        buy_quiet = buy_raise <= ask < buy_trigger
        if sell_quiet and buy_quiet:
            return _QUIET
        lifted_lazily = False
        if not sell_quiet and bid > sell_raise:
            lazy = self._lazy_sell.get(symbol)
            if lazy is not None:          # a new best bid lifts every sell stop: new levels, no book work
                self._pending_sell[symbol] = bid
                sell_trigger = -_INF
                for pct, d, peak in lazy:
                    level = _lifted_level(peak if peak > bid else bid, pct, d)
                    if level > sell_trigger:
                        sell_trigger = level
                sell_raise, sell_quiet, lifted_lazily = bid, sell_trigger < bid, True
        if not buy_quiet and ask < buy_raise:
            lazy = self._lazy_buy.get(symbol)
            if lazy is not None:          # a new best ask (book terms: -ask) lifts every buy stop
                peak = -ask
                buy_trigger = _INF
                for pct, d, old in lazy:
                    level = -_lifted_level(old if old > peak else peak, pct, d)
                    if level < buy_trigger:
                        buy_trigger = level
                self._pending_buy[symbol] = peak
                buy_raise, buy_quiet, lifted_lazily = ask, buy_raise < buy_trigger, True
        if sell_quiet and buy_quiet:
            self._bands[symbol] = (sell_trigger, sell_raise, buy_trigger, buy_raise)
            return ((), True) if lifted_lazily else _QUIET
        books = self._by_symbol.get(symbol)
        if not books:
            return _QUIET
        self._materialize(symbol)
        triggered: list[TrailingLeg] = []
        moved = lifted_lazily
        # one pass: apply the price to the books of each disturbed side and rebuild that side's band
        sells = (-_INF, _INF) if not sell_quiet else (sell_trigger, sell_raise)
        buys = (_INF, -_INF) if not buy_quiet else (buy_trigger, buy_raise)
        for side, _, book in books:
            is_sell = side is Side.SELL
            if (sell_quiet if is_sell else buy_quiet) or not book.legs:
                continue
            fired, lifted = book.on_price(bid if is_sell else -ask)
            moved = moved or lifted
            for leg_id, peak in fired:
                leg = self._legs.pop(leg_id)
                leg.peak = peak if is_sell else -peak
                triggered.append(leg)
            if not book.legs:
                continue
            top, low_peak = book.top_level, (book.by_peak[0][0] if book.by_peak else _INF)
            if is_sell:
                sells = (max(sells[0], top) if top is not None else sells[0], min(sells[1], low_peak))
            else:
                buys = (min(buys[0], -top) if top is not None else buys[0], max(buys[1], -low_peak))
        self._bands[symbol] = (sells[0], sells[1], buys[0], buys[1])
        self._update_lazy(symbol)
        return triggered, moved
