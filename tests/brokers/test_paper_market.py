from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orders.brokers.catalogue import load_catalogue
from orders.brokers.paper_market import EPOCH, WINDOW_SECONDS, PriceWalk, seconds_since_epoch
from orders.domain.enums import Timeframe
from orders.domain.money import is_on_grid

CATALOGUE = load_catalogue()
AAPL = CATALOGUE["AAPL"]
AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)   # a Monday afternoon


def _seconds(count: int, *, every: int = 1, start: datetime = AT) -> list[datetime]:
    return [start + timedelta(seconds=i * every) for i in range(count)]


# -- reproducibility -------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", list(CATALOGUE))
def test_the_same_seed_and_second_give_the_same_quote_in_two_separate_walks(symbol):
    instrument = CATALOGUE[symbol]
    first, second = PriceWalk(seed=7), PriceWalk(seed=7)
    for at in _seconds(5, every=37):
        assert first.quote(instrument, at) == second.quote(instrument, at)


def test_the_quote_does_not_depend_on_what_was_asked_before():
    fresh = PriceWalk(seed=7)
    warmed = PriceWalk(seed=7)
    for at in _seconds(200, every=11, start=AT - timedelta(days=3)):
        warmed.quote(AAPL, at)
    assert warmed.quote(AAPL, AT) == fresh.quote(AAPL, AT)


def test_a_sub_second_time_reads_the_quote_of_its_whole_second():
    walk = PriceWalk(seed=7)
    assert walk.quote(AAPL, AT + timedelta(milliseconds=999)) == walk.quote(AAPL, AT)
    assert walk.quote(AAPL, AT).timestamp == AT


def test_different_seeds_give_different_paths():
    first, second = PriceWalk(seed=7), PriceWalk(seed=8)
    moments = _seconds(20, every=600)
    assert [first.quote(AAPL, at).last for at in moments] != [second.quote(AAPL, at).last for at in moments]


def test_different_symbols_move_independently():
    walk = PriceWalk(seed=7)
    msft, googl = CATALOGUE["MSFT"], CATALOGUE["GOOGL"]
    moments = _seconds(20, every=600)
    msft_moves = [walk.quote(msft, at).last / msft.base_price for at in moments]
    googl_moves = [walk.quote(googl, at).last / googl.base_price for at in moments]
    assert msft_moves != googl_moves


def test_the_price_moves_from_second_to_second():
    walk = PriceWalk(seed=7)
    lasts = {walk.quote(AAPL, at).last for at in _seconds(120)}
    assert len(lasts) > 10


def test_it_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="aware"):
        PriceWalk(seed=7).quote(AAPL, datetime(2026, 3, 2, 15, 0))


def test_times_before_the_first_window_read_the_first_priced_second():
    assert seconds_since_epoch(EPOCH) == WINDOW_SECONDS
    assert seconds_since_epoch(datetime(2001, 1, 1, tzinfo=UTC)) == WINDOW_SECONDS


# -- quote shape -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", list(CATALOGUE))
def test_a_quote_has_bid_below_last_below_ask_all_on_the_tick_grid(symbol):
    instrument = CATALOGUE[symbol]
    walk = PriceWalk(seed=7)
    for at in _seconds(30, every=97):
        quote = walk.quote(instrument, at)
        assert quote.bid < quote.last < quote.ask
        for price in (quote.bid, quote.ask, quote.last):
            assert is_on_grid(price, instrument.tick_size), (symbol, price)
        assert quote.mid == (quote.bid + quote.ask) / 2
        assert quote.symbol == symbol
        assert quote.provider == "paper"


@pytest.mark.parametrize("symbol", list(CATALOGUE))
def test_the_spread_is_about_what_the_instrument_says(symbol):
    instrument = CATALOGUE[symbol]
    quote = PriceWalk(seed=7).quote(instrument, AT)
    spread_bps = (quote.ask - quote.bid) / quote.last * 10000
    # at least the configured spread, widened by at most a tick each side for rounding
    assert spread_bps >= instrument.spread_bps * Decimal("0.99")
    assert quote.ask - quote.bid <= quote.last * instrument.spread_bps / 10000 + 3 * instrument.tick_size


@pytest.mark.parametrize("symbol", list(CATALOGUE))
def test_quote_sizes_sit_on_the_quantity_step_and_at_least_the_minimum(symbol):
    instrument = CATALOGUE[symbol]
    walk = PriceWalk(seed=7)
    for at in _seconds(30, every=53):
        quote = walk.quote(instrument, at)
        for size in (quote.bid_size, quote.ask_size, quote.volume):
            assert size >= instrument.min_quantity
            assert is_on_grid(size, instrument.quantity_step), (symbol, size)


def test_quote_sizes_scatter_around_the_typical_size():
    instrument = CATALOGUE["MSFT"]
    walk = PriceWalk(seed=7)
    sizes = [walk.quote(instrument, at).ask_size for at in _seconds(300)]
    assert len(set(sizes)) > 50
    assert all(instrument.typical_size * Decimal("0.4") - 1 <= s <= instrument.typical_size * 2 for s in sizes)


# -- staying near the base price -------------------------------------------------------------------------


def test_aapl_stays_within_ten_percent_of_its_base_price_for_a_year():
    walk = PriceWalk(seed=7)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    prices = [walk.quote(AAPL, at).last for at in _seconds(24 * 365, every=3600, start=start)]
    assert min(prices) >= AAPL.base_price * Decimal("0.9")
    assert max(prices) <= AAPL.base_price * Decimal("1.1")


@pytest.mark.parametrize("seed", [1, 7, 2024])
def test_the_log_price_wanders_about_as_far_as_the_instrument_volatility(seed):
    tsla = CATALOGUE["TSLA"]
    walk = PriceWalk(seed=seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    offsets = [math.log(walk.quote(tsla, at).last / tsla.base_price)
               for at in _seconds(2000, every=4 * 3600, start=start)]
    spread = statistics.pstdev(offsets)
    assert 0.5 * float(tsla.volatility) < spread < 1.5 * float(tsla.volatility)
    assert abs(statistics.fmean(offsets)) < float(tsla.volatility)


# -- bars ------------------------------------------------------------------------------------------------


def _bars(timeframe: Timeframe, *, count: int = 10, end: datetime = AT + timedelta(minutes=17, seconds=5),
          walk: PriceWalk | None = None):
    walk = walk or PriceWalk(seed=7)
    return walk.bars(AAPL, timeframe=timeframe.value, seconds=timeframe.seconds, end=end, count=count)


@pytest.mark.parametrize("timeframe", [Timeframe.M1, Timeframe.M5, Timeframe.H1, Timeframe.H4, Timeframe.D1])
def test_bars_are_ascending_contiguous_and_aligned_to_the_timeframe(timeframe):
    bars = _bars(timeframe)
    assert len(bars) == 10
    for bar in bars:
        assert bar.timeframe == timeframe.value
        assert bar.timestamp.tzinfo is not None
        assert bar.timestamp.timestamp() % timeframe.seconds == 0
    for earlier, later in zip(bars, bars[1:], strict=False):
        assert later.timestamp - earlier.timestamp == timedelta(seconds=timeframe.seconds)


def test_weekly_bars_open_on_monday_at_midnight():
    bars = _bars(Timeframe.W1, count=4)
    assert len(bars) == 4
    for bar in bars:
        assert bar.timestamp.weekday() == 0
        assert (bar.timestamp.hour, bar.timestamp.minute, bar.timestamp.second) == (0, 0, 0)


def test_daily_bars_open_at_midnight_utc():
    for bar in _bars(Timeframe.D1, count=3):
        assert (bar.timestamp.hour, bar.timestamp.minute) == (0, 0)


@pytest.mark.parametrize("timeframe", [Timeframe.M1, Timeframe.M15, Timeframe.H1, Timeframe.D1])
def test_each_bar_high_and_low_enclose_its_open_and_close(timeframe):
    for bar in _bars(timeframe, count=20):
        assert bar.high >= max(bar.open, bar.close)
        assert bar.low <= min(bar.open, bar.close)
        assert bar.low > 0
        assert bar.volume > 0
        for price in (bar.open, bar.high, bar.low, bar.close):
            assert is_on_grid(price, AAPL.tick_size)


def test_the_last_bar_contains_the_end_time():
    end = AT + timedelta(minutes=17, seconds=5)
    last = _bars(Timeframe.H1, end=end)[-1]
    assert last.timestamp <= end < last.timestamp + timedelta(hours=1)


def test_a_one_minute_bar_opens_at_the_price_of_its_first_second():
    walk = PriceWalk(seed=7)
    end = AT + timedelta(minutes=10)
    for bar in _bars(Timeframe.M1, count=5, end=end, walk=walk)[:-1]:
        assert bar.open == walk.quote(AAPL, bar.timestamp).last
        assert bar.close == walk.quote(AAPL, bar.timestamp + timedelta(seconds=59)).last
        minute = [walk.quote(AAPL, at).last for at in _seconds(60, start=bar.timestamp)]
        assert (bar.high, bar.low) == (max(minute), min(minute))


def test_the_bar_in_progress_closes_at_the_current_price_and_shows_nothing_from_the_future():
    walk = PriceWalk(seed=7)
    end = AT + timedelta(minutes=1, seconds=30)
    current = _bars(Timeframe.M1, count=3, end=end, walk=walk)[-1]
    assert current.timestamp == AT + timedelta(minutes=1)
    assert current.close == walk.quote(AAPL, end).last
    seen = [walk.quote(AAPL, at).last for at in _seconds(31, start=current.timestamp)]
    assert (current.open, current.high, current.low) == (seen[0], max(seen), min(seen))


def test_an_hourly_bar_in_progress_closes_at_the_quote_of_its_end_time():
    walk = PriceWalk(seed=7)
    end = AT + timedelta(minutes=17, seconds=5)
    assert _bars(Timeframe.H1, end=end, walk=walk)[-1].close == walk.quote(AAPL, end).last


def test_finished_bars_do_not_change_as_time_moves_on():
    walk = PriceWalk(seed=7)
    earlier = _bars(Timeframe.M5, count=6, end=AT + timedelta(minutes=29), walk=walk)
    later = _bars(Timeframe.M5, count=12, end=AT + timedelta(minutes=59), walk=walk)
    assert earlier[:-1] == later[:5]


def test_bars_are_reproducible_across_walks_with_the_same_seed():
    assert _bars(Timeframe.M15, walk=PriceWalk(seed=3)) == _bars(Timeframe.M15, walk=PriceWalk(seed=3))
