"""/v1/quotes and /v1/bars: market data from the paper venue, symbols in their native form."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from tests.api.support import assert_error

pytestmark = pytest.mark.django_db

QUOTE_DECIMALS = ("bid", "ask", "last", "bid_size", "ask_size", "volume")
BAR_DECIMALS = ("open", "high", "low", "close", "volume")


def bars(client, query: str, symbol: str = "AAPL") -> list[dict]:
    response = client.get(f"/v1/bars/{symbol}?{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_quote_has_bid_below_ask_as_decimal_strings(client, account, clock):
    response = client.get("/v1/quotes/AAPL")
    assert response.status_code == 200
    body = response.json()
    assert (body["symbol"], body["provider"]) == ("AAPL", "paper")
    for name in QUOTE_DECIMALS:
        assert isinstance(body[name], str), name
    assert Decimal(body["bid"]) < Decimal(body["ask"])
    assert Decimal(body["bid"]) <= Decimal(body["last"]) <= Decimal(body["ask"])
    assert body["timestamp"] == "2026-03-02T15:00:00.000000Z"


def test_a_quote_follows_the_clock(client, account, clock):
    first = client.get("/v1/quotes/AAPL").json()
    clock.shift(30)
    later = client.get("/v1/quotes/AAPL").json()
    assert datetime.fromisoformat(later["timestamp"]) - datetime.fromisoformat(first["timestamp"]) == timedelta(
        seconds=30)


def test_the_same_moment_always_shows_the_same_quote(client, account, clock):
    assert client.get("/v1/quotes/MSFT").json() == client.get("/v1/quotes/MSFT").json()


def test_an_unknown_symbol_is_404_symbol_not_found(client, account):
    body = assert_error(client.get("/v1/quotes/NOPE"), 404, "SYMBOL_NOT_FOUND")
    assert body["details"] == {"symbol": "NOPE"}


@pytest.mark.parametrize("path, symbol", [("F:EURUSD", "F:EURUSD"), ("F%3AEURUSD", "F:EURUSD")])
def test_a_symbol_with_a_colon_reaches_the_venue_intact(client, account, clock, path, symbol):
    response = client.get(f"/v1/quotes/{path}")
    assert response.status_code == 200, response.content
    assert response.json()["symbol"] == symbol
    assert Decimal(response.json()["bid"]) < Decimal("2")


@pytest.mark.parametrize("path", ["BTC/USD", "BTC%2FUSD"])
def test_a_symbol_with_a_slash_reaches_the_venue_intact(client, account, path):
    body = assert_error(client.get(f"/v1/quotes/{path}"), 404, "SYMBOL_NOT_FOUND")
    assert body["details"] == {"symbol": "BTC/USD"}
    body = assert_error(client.get(f"/v1/bars/{path}?timeframe=1h"), 404, "SYMBOL_NOT_FOUND")
    assert body["details"] == {"symbol": "BTC/USD"}


def test_five_hourly_bars_come_oldest_first_an_hour_apart(client, account, clock):
    result = bars(client, "timeframe=1h&limit=5")
    assert len(result) == 5
    starts = [datetime.fromisoformat(b["timestamp"]) for b in result]
    assert starts == sorted(starts)
    assert {later - earlier for earlier, later in zip(starts, starts[1:], strict=False)} == {timedelta(hours=1)}
    assert starts[-1] <= datetime.fromisoformat("2026-03-02T15:00:00+00:00") < starts[-1] + timedelta(hours=1)
    for bar in result:
        assert (bar["symbol"], bar["provider"], bar["timeframe"]) == ("AAPL", "paper", "1h")
        assert bar["timestamp"].endswith("Z")
        for name in BAR_DECIMALS:
            assert isinstance(bar[name], str), name
        low, high = Decimal(bar["low"]), Decimal(bar["high"])
        assert low <= Decimal(bar["open"]) <= high
        assert low <= Decimal(bar["close"]) <= high


def test_bars_default_to_one_hundred(client, account, clock):
    assert len(bars(client, "timeframe=1m")) == 100


def test_a_limit_of_zero_answers_no_bars(client, account, clock):
    assert bars(client, "timeframe=1d&limit=0") == []


def test_bars_of_a_colon_symbol(client, account, clock):
    result = bars(client, "timeframe=5m&limit=3", symbol="F:EURUSD")
    assert [b["symbol"] for b in result] == ["F:EURUSD"] * 3


def test_bars_from_a_start_time_cover_up_to_now(client, account, clock):
    result = bars(client, "timeframe=1h&start=2026-03-02T12:00:00Z")
    assert [b["timestamp"] for b in result] == ["2026-03-02T12:00:00.000000Z", "2026-03-02T13:00:00.000000Z",
                                                "2026-03-02T14:00:00.000000Z", "2026-03-02T15:00:00.000000Z"]


def test_bars_without_a_timeframe_are_400(client, account):
    response = client.get("/v1/bars/AAPL?limit=5")
    assert response.status_code == 400


@pytest.mark.parametrize("timeframe", ["7m", "1H", "hourly", ""])
def test_bars_with_an_unknown_timeframe_are_400(client, account, timeframe):
    response = client.get(f"/v1/bars/AAPL?timeframe={timeframe}")
    assert response.status_code == 400


@pytest.mark.parametrize("query", ["timeframe=1h&limit=-1", "timeframe=1h&limit=lots", "timeframe=1h&start=soon",
                                   "timeframe=1h&start=2026-03-03T00:00:00Z"])
def test_bars_with_a_bad_range_are_400(client, account, clock, query):
    assert client.get(f"/v1/bars/AAPL?{query}").status_code == 400


def test_bars_of_an_unknown_symbol_are_404(client, account, clock):
    assert_error(client.get("/v1/bars/NOPE?timeframe=1h&limit=2"), 404, "SYMBOL_NOT_FOUND")


def test_market_data_of_an_unavailable_venue_is_503(client, account, broker, clock):
    broker.faults.set_unavailable(True)
    assert_error(client.get("/v1/quotes/AAPL"), 503, "PROVIDER_UNAVAILABLE")
    assert_error(client.get("/v1/bars/AAPL?timeframe=1h&limit=2"), 503, "PROVIDER_UNAVAILABLE")
