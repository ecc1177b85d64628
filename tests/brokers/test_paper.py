"""The paper venue, built directly from a PaperConfig: its pre-trade checks, its matching loop and its
injectable faults. Every price a test expects is read from the same seeded walk the venue matches against."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

import pytest

from orders.brokers import catalogue
from orders.brokers.catalogue import PriceBand, load_catalogue
from orders.brokers.paper import PaperBroker, PaperConfig
from orders.brokers.paper_market import seconds_since_epoch
from orders.brokers.types import (
    AccountContext,
    BracketStrategy,
    BrokerAck,
    ExecutionReport,
    OrderTicket,
    Quote,
    ReportKind,
    WorkingOrder,
)
from orders.domain.account import account_figures
from orders.domain.enums import AssetClass, OrderStatus, OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import OrderRejected, ProviderUnavailable, SymbolNotFound
from orders.domain.money import format_decimal, is_on_grid, quantize_money, round_to_step
from tests.api.support import get_order, submit
from tests.api.support import quote as api_quote
from tests.builders import make_order_request, run_engine

D = Decimal
SEED = 7
MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)        # US stocks trading
SATURDAY = datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
ONE = timedelta(seconds=1)


# -- builders --------------------------------------------------------------------------------------------


def make_broker(fault_file: str = "", *, session: str = "always",
                profile: BracketStrategy = BracketStrategy.PENDING, **instrument_changes: dict) -> PaperBroker:
    """A paper venue over the default catalogue; ``AAPL={"halted": True}`` changes one instrument."""
    instruments = load_catalogue(session=session)
    for symbol, changes in instrument_changes.items():
        instruments[symbol] = dataclasses.replace(instruments[symbol], **changes)
    return PaperBroker(PaperConfig(seed=SEED, instruments=instruments, profile=profile, fault_file=fault_file))


@pytest.fixture
def fault_file(tmp_path) -> str:
    return str(tmp_path / "paper-faults.json")


@pytest.fixture
def paper(fault_file) -> PaperBroker:
    return make_broker(fault_file)


def context(*, cash: str = "100000", position: str = "0", reserved: str = "0") -> AccountContext:
    return AccountContext(figures=account_figures(cash=D(cash), holdings=[], reserved=D(reserved)),
                          position_quantity=D(position))


def ticket(order_type: OrderType = OrderType.MARKET, order_id: str = "ord-1", **fields) -> OrderTicket:
    defaults = {"client_order_id": None, "symbol": "AAPL", "side": Side.BUY, "quantity": D("1")}
    return OrderTicket(order_id=order_id, order_type=order_type, **{**defaults, **fields})


def working(order_type: OrderType = OrderType.MARKET, **fields) -> WorkingOrder:
    defaults = {"order_id": "ord-1", "symbol": "AAPL", "side": Side.BUY, "quantity": D("1"),
                "filled_quantity": D("0"), "time_in_force": TimeInForce.GTC, "created_at": MONDAY}
    return WorkingOrder(order_type=order_type, **{**defaults, **fields})


def quote(broker: PaperBroker, at: datetime, symbol: str = "AAPL") -> Quote:
    return broker.walk.quote(broker.instrument(symbol), at)


def first_time(broker: PaperBroker, predicate: Callable[[Quote], bool], *, start: datetime = MONDAY,
               within: int = 3600, symbol: str = "AAPL") -> datetime:
    """The first second from ``start`` whose quote satisfies ``predicate``."""
    for offset in range(within):
        at = start + offset * ONE
        if predicate(quote(broker, at, symbol)):
            return at
    raise AssertionError(f"no second within {within}s of {start} satisfies the predicate")


def quotes(broker: PaperBroker, start: datetime, end: datetime, symbol: str = "AAPL") -> list[Quote]:
    """Every quote from ``start`` to ``end`` inclusive."""
    count = int((end - start).total_seconds()) + 1
    return [quote(broker, start + k * ONE, symbol) for k in range(count)]


def fills(reports: list[ExecutionReport]) -> list[ExecutionReport]:
    return [r for r in reports if r.kind is ReportKind.FILL]


def kinds(reports: list[ExecutionReport]) -> list[ReportKind]:
    return [r.kind for r in reports]


def rejection(broker: PaperBroker, request, *, ctx: AccountContext | None = None,
              now: datetime = MONDAY) -> OrderRejected:
    with pytest.raises(OrderRejected) as caught:
        broker.check_order(request, context=ctx or context(), now=now)
    assert caught.value.status == 422
    assert caught.value.details["reject_code"] == caught.value.code
    return caught.value


def accepts(broker: PaperBroker, request, *, ctx: AccountContext | None = None, now: datetime = MONDAY) -> Decimal:
    return broker.check_order(request, context=ctx or context(), now=now)


# -- capabilities ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "bracket", "oco"), [
    (BracketStrategy.PENDING, False, False),
    (BracketStrategy.NATIVE_OCO, False, True),
    (BracketStrategy.NATIVE_BRACKET, True, True),
])
def test_the_capability_profile_decides_bracket_and_oco_features(profile, bracket, oco):
    capabilities = make_broker(profile=profile).capabilities
    assert ("bracket_orders" in capabilities.features) is bracket
    assert ("oco" in capabilities.features) is oco
    assert capabilities.bracket_strategy is profile
    assert {"trailing_stop", "reduce_only", "post_only"} <= set(capabilities.features)


def test_it_supports_every_order_type_and_the_asset_classes_of_its_catalogue():
    capabilities = make_broker().capabilities
    assert set(capabilities.supported_order_types) == set(OrderType)
    assert set(capabilities.supported_asset_classes) == {AssetClass.STOCK, AssetClass.CRYPTO, AssetClass.FOREX}
    assert capabilities.platform == "paper"


def test_it_describes_a_known_instrument_and_refuses_an_unknown_one(paper):
    assert paper.instrument("AAPL").tick_size == D("0.01")
    with pytest.raises(SymbolNotFound) as caught:
        paper.instrument("NOPE")
    assert caught.value.status == 404
    assert caught.value.details == {"symbol": "NOPE"}


def test_its_quotes_are_the_seeded_walk(paper):
    assert paper.quote("AAPL", now=MONDAY) == make_broker().quote("AAPL", now=MONDAY)
    assert paper.quote("AAPL", now=MONDAY).timestamp == MONDAY


# -- check_order: what it accepts ------------------------------------------------------------------------


def test_it_accepts_a_market_buy_it_can_fund_and_checks_it_at_the_ask(paper):
    assert accepts(paper, make_order_request(quantity="10")) == quote(paper, MONDAY).ask


def test_it_checks_a_market_sell_at_the_bid(paper):
    request = make_order_request(side=Side.SELL, quantity="10")
    assert accepts(paper, request, ctx=context(position="10")) == quote(paper, MONDAY).bid


def test_it_checks_a_limit_buy_at_the_better_of_its_limit_and_the_ask(paper):
    ask = quote(paper, MONDAY).ask
    below, above = ask - D("1"), ask + D("1")
    assert accepts(paper, make_order_request(order_type=OrderType.LIMIT, limit_price=below)) == below
    assert accepts(paper, make_order_request(order_type=OrderType.LIMIT, limit_price=above)) == ask


def test_it_checks_stop_orders_at_their_stop_price(paper):
    stop = round_to_step(quote(paper, MONDAY).ask * D("1.02"), D("0.01"))
    assert accepts(paper, make_order_request(order_type=OrderType.STOP, stop_price=stop)) == stop


# -- check_order: SYMBOL_NOT_TRADEABLE -------------------------------------------------------------------


def test_it_rejects_an_unknown_symbol_as_not_tradeable(paper):
    error = rejection(paper, make_order_request(symbol="NOPE"))
    assert error.code == "SYMBOL_NOT_TRADEABLE"
    assert error.details == {"reject_code": "SYMBOL_NOT_TRADEABLE", "symbol": "NOPE", "reason": "unknown symbol"}


def test_it_rejects_a_halted_symbol_as_not_tradeable(fault_file):
    broker = make_broker(fault_file, AAPL={"halted": True})
    error = rejection(broker, make_order_request())
    assert error.code == "SYMBOL_NOT_TRADEABLE"
    assert error.details == {"reject_code": "SYMBOL_NOT_TRADEABLE", "symbol": "AAPL", "reason": "halted"}
    accepts(broker, make_order_request(symbol="MSFT"))


@pytest.mark.parametrize("now", [
    SATURDAY,
    datetime(2026, 3, 8, 15, 0, tzinfo=UTC),              # Sunday
    datetime(2026, 3, 2, 3, 0, tzinfo=UTC),               # Monday night
    datetime(2026, 3, 2, 13, 29, 59, tzinfo=UTC),         # a second before the open
    datetime(2026, 3, 2, 20, 0, tzinfo=UTC),              # the close
])
def test_it_rejects_a_stock_outside_exchange_hours(now):
    broker = make_broker(session="exchange")
    error = rejection(broker, make_order_request(), now=now)
    assert error.code == "SYMBOL_NOT_TRADEABLE"
    assert error.details == {"reject_code": "SYMBOL_NOT_TRADEABLE", "symbol": "AAPL", "reason": "market closed"}
    assert "13:30-20:00 UTC" in error.message


@pytest.mark.parametrize("now", [
    datetime(2026, 3, 2, 13, 30, tzinfo=UTC),
    MONDAY,
    datetime(2026, 3, 6, 19, 59, 59, tzinfo=UTC),         # Friday, a second before the close
])
def test_it_accepts_a_stock_during_exchange_hours(now):
    accepts(make_broker(session="exchange"), make_order_request(), now=now)


def test_crypto_and_forex_trade_on_a_saturday_even_when_stocks_keep_exchange_hours():
    broker = make_broker(session="exchange")
    accepts(broker, make_order_request(symbol="BTCUSDT", quantity="0.01"), now=SATURDAY)
    accepts(broker, make_order_request(symbol="F:EURUSD", quantity="10000"), now=SATURDAY)


def test_stocks_trade_around_the_clock_when_the_session_is_always(paper):
    accepts(paper, make_order_request(), now=SATURDAY)


# -- check_order: INVALID_QUANTITY -----------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "quantity", "minimum"), [
    ("AAPL", "0.5", "1"),
    ("F:EURUSD", "999", "1000"),
    ("BTCUSDT", "0.000001", "0.00001"),
])
def test_it_rejects_a_quantity_below_the_instrument_minimum(paper, symbol, quantity, minimum):
    error = rejection(paper, make_order_request(symbol=symbol, quantity=quantity))
    assert error.code == "INVALID_QUANTITY"
    assert error.details == {"reject_code": "INVALID_QUANTITY", "quantity": quantity, "min_quantity": minimum}


@pytest.mark.parametrize(("symbol", "quantity", "step"), [
    ("AAPL", "1.5", "1"),
    ("BTCUSDT", "0.000015", "0.00001"),
    ("F:EURUSD", "1000.5", "1"),
])
def test_it_rejects_a_quantity_off_the_instrument_step(paper, symbol, quantity, step):
    error = rejection(paper, make_order_request(symbol=symbol, quantity=quantity))
    assert error.code == "INVALID_QUANTITY"
    assert error.details == {"reject_code": "INVALID_QUANTITY", "quantity": quantity, "quantity_step": step}


def test_it_rejects_a_btc_order_worth_less_than_the_minimum_notional(paper):
    ask = quote(paper, MONDAY, "BTCUSDT").ask
    quantity = D("0.00001")
    error = rejection(paper, make_order_request(symbol="BTCUSDT", quantity=quantity))
    assert error.code == "INVALID_QUANTITY"
    assert error.details == {"reject_code": "INVALID_QUANTITY", "notional": format_decimal(quantity * ask),
                             "min_notional": "5"}


def test_it_accepts_the_smallest_btc_order_worth_the_minimum_notional(paper):
    ask = quote(paper, MONDAY, "BTCUSDT").ask
    smallest = round_to_step(D("5") / ask, D("0.00001"), ROUND_CEILING)
    accepts(paper, make_order_request(symbol="BTCUSDT", quantity=smallest))
    error = rejection(paper, make_order_request(symbol="BTCUSDT", quantity=smallest - D("0.00001")))
    assert error.code == "INVALID_QUANTITY"


# -- check_order: INVALID_PRICE --------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["limit_price", "stop_loss", "take_profit"])
def test_it_rejects_a_price_off_the_tick(paper, field):
    ask = quote(paper, MONDAY).ask
    prices = {"limit_price": ask - D("1"), "stop_loss": ask - D("5"), "take_profit": ask + D("5")}
    prices[field] += D("0.005")
    request = make_order_request(order_type=OrderType.LIMIT, **prices)
    error = rejection(paper, request)
    assert error.code == "INVALID_PRICE"
    assert error.details == {"reject_code": "INVALID_PRICE", "field": field, "price": format_decimal(prices[field]),
                             "tick_size": "0.01"}


def test_it_rejects_an_absolute_trailing_distance_off_the_tick(paper):
    request = make_order_request(side=Side.SELL, order_type=OrderType.TRAILING_STOP, trailing_distance="0.005",
                                 trailing_type=TrailingType.ABSOLUTE)
    error = rejection(paper, request, ctx=context(position="10"))
    assert error.code == "INVALID_PRICE"
    assert error.details["field"] == "trailing_distance"
    assert error.details["price"] == "0.005"


def test_a_percent_trailing_distance_needs_no_tick(paper):
    request = make_order_request(side=Side.SELL, order_type=OrderType.TRAILING_STOP, trailing_distance="0.005",
                                 trailing_type=TrailingType.PERCENT)
    accepts(paper, request, ctx=context(position="10"))


def test_a_forex_limit_price_outside_the_band_around_the_market_is_refused(paper):
    instrument = paper.instrument("F:EURUSD")
    mid = quote(paper, MONDAY, "F:EURUSD").mid
    low, high = mid * D("0.95"), mid * D("1.05")
    too_high = round_to_step(high, instrument.tick_size, ROUND_CEILING) + instrument.tick_size
    error = rejection(paper, make_order_request(symbol="F:EURUSD", quantity="1000", side=Side.SELL,
                                                order_type=OrderType.LIMIT, limit_price=too_high),
                      ctx=context(position="1000"))
    assert error.code == "INVALID_PRICE"
    assert error.details == {"reject_code": "INVALID_PRICE", "field": "limit_price", "price": format_decimal(too_high),
                             "min_price": format_decimal(quantize_money(low)),
                             "max_price": format_decimal(quantize_money(high))}
    inside = round_to_step(high, instrument.tick_size) - instrument.tick_size
    accepts(paper, make_order_request(symbol="F:EURUSD", quantity="1000", side=Side.SELL,
                                      order_type=OrderType.LIMIT, limit_price=inside), ctx=context(position="1000"))


@pytest.mark.parametrize("fields", [
    {"order_type": OrderType.LIMIT, "limit_price": "1.00"},
    {"order_type": OrderType.LIMIT, "limit_price": "0.01"},
    {"order_type": OrderType.STOP, "stop_price": "10000.00"},
    {"order_type": OrderType.LIMIT, "limit_price": "1.00", "stop_loss": "0.50", "take_profit": "9999.99"},
], ids=["limit-at-1", "limit-at-one-cent", "stop-far-above", "bracket-far-away"])
def test_a_stock_has_no_venue_price_band_as_at_alpaca(paper, fields):
    """The reference gateway's smoke test places a BUY LIMIT AAPL at 1.00: it must rest, not be refused."""
    assert quote(paper, MONDAY).bid > 100
    accepts(paper, make_order_request(quantity="1", **fields))


@pytest.mark.parametrize("price", ["0", "-1.00"])
def test_a_stock_price_must_still_be_above_zero(paper, price):
    error = rejection(paper, make_order_request(quantity="1", order_type=OrderType.LIMIT, limit_price=price))
    assert error.code == "INVALID_PRICE"
    assert error.details["field"] == "limit_price"


def test_a_stock_price_must_still_be_on_the_cent_grid_far_from_the_market(paper):
    error = rejection(paper, make_order_request(quantity="1", order_type=OrderType.LIMIT, limit_price="1.005"))
    assert error.details == {"reject_code": "INVALID_PRICE", "field": "limit_price", "price": "1.005",
                             "tick_size": "0.01"}


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_crypto_prices_must_lie_within_binances_percent_price_by_side_filter(paper, side):
    """BTCUSDT's PERCENT_PRICE_BY_SIDE: a BUY between bidMultiplierDown 0.2 and bidMultiplierUp 5 times the
    market, a SELL between askMultiplierDown 0.2 and askMultiplierUp 5."""
    mid = quote(paper, MONDAY, "BTCUSDT").mid
    low, high = mid * D("0.2"), mid * D("5")
    ctx = context(cash="1000000000", position="0.01")
    for price in (round_to_step(low, D("0.01"), ROUND_CEILING), round_to_step(high, D("0.01"))):
        accepts(paper, make_order_request(symbol="BTCUSDT", quantity="0.01", side=side, order_type=OrderType.LIMIT,
                                          limit_price=price), ctx=ctx)
    for price in (round_to_step(low, D("0.01"), ROUND_CEILING) - D("0.01"), round_to_step(high, D("0.01")) + D("0.01")):
        error = rejection(paper, make_order_request(symbol="BTCUSDT", quantity="0.01", side=side,
                                                    order_type=OrderType.LIMIT, limit_price=price), ctx=ctx)
        assert error.code == "INVALID_PRICE"
        assert error.details == {"reject_code": "INVALID_PRICE", "field": "limit_price",
                                 "price": format_decimal(price), "min_price": format_decimal(quantize_money(low)),
                                 "max_price": format_decimal(quantize_money(high))}
        assert f"outside the {side} price band" in error.message


def test_the_crypto_band_is_read_by_side_and_a_brackets_exits_are_sells(paper, monkeypatch):
    """With a lopsided filter a BUY uses the bid multipliers, and the exits of a BUY bracket (sells) the ask
    multipliers, as Binance checks each order of an OCO on its own side."""
    monkeypatch.setattr(catalogue, "BINANCE_PERCENT_PRICE_BY_SIDE",
                        PriceBand(bid_down=D("0.9"), bid_up=D("1.1"), ask_down=D("0.5"), ask_up=D("2")))
    mid = quote(paper, MONDAY, "BTCUSDT").mid
    below = round_to_step(mid * D("0.8"), D("0.01"))
    buy = {"symbol": "BTCUSDT", "quantity": "0.01", "order_type": OrderType.LIMIT}
    assert rejection(paper, make_order_request(limit_price=below, **buy)).details["field"] == "limit_price"
    accepts(paper, make_order_request(side=Side.SELL, limit_price=below, **buy), ctx=context(position="0.01"))
    accepts(paper, make_order_request(limit_price=round_to_step(mid, D("0.01")), stop_loss=below, **buy))


def test_it_rejects_a_crypto_stop_price_far_below_the_market(paper):
    mid = quote(paper, MONDAY, "BTCUSDT").mid
    too_low = round_to_step(mid * D("0.1"), D("0.01"))
    error = rejection(paper, make_order_request(symbol="BTCUSDT", quantity="0.01", side=Side.SELL,
                                                order_type=OrderType.STOP, stop_price=too_low),
                      ctx=context(position="0.01"))
    assert error.code == "INVALID_PRICE"
    assert error.details["field"] == "stop_price"


# -- check_order: funding --------------------------------------------------------------------------------


def test_it_rejects_a_buy_the_cash_cannot_pay_for_with_the_amounts_as_decimal_strings(paper):
    ask = quote(paper, MONDAY).ask
    error = rejection(paper, make_order_request(quantity="100"), ctx=context(cash="1000"))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert error.details == {"reject_code": "INSUFFICIENT_BALANCE",
                             "required": format_decimal(quantize_money(100 * ask, 2)),
                             "available": "1000", "currency": "USD"}
    assert isinstance(error.details["required"], str)
    assert D(error.details["required"]) == 100 * ask


def test_it_accepts_a_buy_that_uses_exactly_the_cash_there_is(paper):
    cost = 10 * quote(paper, MONDAY).ask
    accepts(paper, make_order_request(quantity="10"), ctx=context(cash=str(cost)))
    error = rejection(paper, make_order_request(quantity="10"), ctx=context(cash=str(cost - D("0.01"))))
    assert error.code == "INSUFFICIENT_BALANCE"


def test_money_reserved_for_working_orders_is_not_available_again(paper):
    cost = 10 * quote(paper, MONDAY).ask
    accepts(paper, make_order_request(quantity="10"), ctx=context(cash=str(cost + 100), reserved="100"))
    error = rejection(paper, make_order_request(quantity="10"), ctx=context(cash=str(cost + 100), reserved="101"))
    assert error.details["available"] == format_decimal(cost - 1)


def test_a_crypto_buy_needs_only_its_notional_because_the_fee_comes_out_of_the_coin(paper):
    ask = quote(paper, MONDAY, "BTCUSDT").ask
    cost = quantize_money(D("0.1") * ask, 2)
    accepts(paper, make_order_request(symbol="BTCUSDT", quantity="0.1"), ctx=context(cash=str(cost)))
    error = rejection(paper, make_order_request(symbol="BTCUSDT", quantity="0.1"),
                      ctx=context(cash=str(cost - D("0.01"))))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert D(error.details["required"]) == cost


def test_a_buy_whose_fee_is_paid_in_cash_must_also_cover_the_fee():
    broker = make_broker(AAPL={"commission_bps": D("10")})
    ask = quote(broker, MONDAY).ask
    error = rejection(broker, make_order_request(quantity="10"), ctx=context(cash=str(10 * ask)))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert D(error.details["required"]) == quantize_money(10 * ask * D("1.001"), 2)


def test_opening_a_stock_short_needs_150_percent_margin(paper):
    bid = quote(paper, MONDAY).bid
    notional = 100 * bid
    error = rejection(paper, make_order_request(side=Side.SELL, quantity="100"), ctx=context(cash=str(notional)))
    assert error.code == "INSUFFICIENT_MARGIN"
    assert error.details == {"reject_code": "INSUFFICIENT_MARGIN",
                             "required": format_decimal(quantize_money(notional * D("1.5"), 2)),
                             "available": format_decimal(quantize_money(notional, 2)), "currency": "USD"}
    accepts(paper, make_order_request(side=Side.SELL, quantity="100"), ctx=context(cash=str(notional * D("1.5"))))


def test_a_large_forex_position_needs_more_margin_than_a_small_account_has(paper):
    ask = quote(paper, MONDAY, "F:EURUSD").ask
    error = rejection(paper, make_order_request(symbol="F:EURUSD", quantity="1000000"), ctx=context(cash="10000"))
    assert error.code == "INSUFFICIENT_MARGIN"
    assert error.details["required"] == format_decimal(quantize_money(1000000 * ask * D("0.02"), 2))
    assert error.details["available"] == "10000"


def test_a_forex_position_is_funded_at_its_margin_rate_not_its_notional(paper):
    # 100 000 EUR is worth about 108 000 USD, but needs only 2 % of that
    accepts(paper, make_order_request(symbol="F:EURUSD", quantity="100000"), ctx=context(cash="10000"))


def test_closing_a_long_needs_no_cash(paper):
    accepts(paper, make_order_request(side=Side.SELL, quantity="10"), ctx=context(cash="0", position="10"))


def test_flipping_a_long_into_a_short_needs_margin_for_the_whole_new_short(paper):
    bid = quote(paper, MONDAY).bid
    error = rejection(paper, make_order_request(side=Side.SELL, quantity="25"), ctx=context(cash="0", position="10"))
    assert error.code == "INSUFFICIENT_MARGIN"
    assert error.details["required"] == format_decimal(quantize_money(15 * bid * D("1.5"), 2))


def test_flipping_to_a_short_smaller_than_the_long_still_needs_margin(paper):
    error = rejection(paper, make_order_request(side=Side.SELL, quantity="15"), ctx=context(cash="0", position="10"))
    assert error.code == "INSUFFICIENT_MARGIN"


def test_it_rejects_selling_crypto_that_is_not_held(paper):
    error = rejection(paper, make_order_request(symbol="BTCUSDT", side=Side.SELL, quantity="0.1"))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert error.details == {"reject_code": "INSUFFICIENT_BALANCE", "asset": "BTC", "required": "0.1",
                             "available": "0"}


def test_it_rejects_selling_more_crypto_than_is_held(paper):
    error = rejection(paper, make_order_request(symbol="ETHUSDT", side=Side.SELL, quantity="1"),
                      ctx=context(position="0.25"))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert (error.details["asset"], error.details["required"], error.details["available"]) == ("ETH", "1", "0.25")


def test_it_rejects_selling_crypto_past_the_holdings_by_less_than_the_holdings(paper):
    # 0.4 out of 0.25 would leave a 0.15 spot short: smaller than the holding, but still a short
    error = rejection(paper, make_order_request(symbol="ETHUSDT", side=Side.SELL, quantity="0.4"),
                      ctx=context(position="0.25"))
    assert error.code == "INSUFFICIENT_BALANCE"
    assert (error.details["required"], error.details["available"]) == ("0.4", "0.25")


def test_it_accepts_selling_crypto_that_is_held(paper):
    accepts(paper, make_order_request(symbol="BTCUSDT", side=Side.SELL, quantity="0.1"),
            ctx=context(cash="0", position="0.1"))


# -- check_order: reduce-only and post-only --------------------------------------------------------------


@pytest.mark.parametrize(("position", "side", "quantity"), [
    ("0", Side.SELL, "10"),     # nothing to reduce
    ("10", Side.SELL, "15"),    # would flip to short
    ("10", Side.BUY, "1"),      # would grow the long
    ("-10", Side.SELL, "1"),    # would grow the short
])
def test_it_rejects_a_reduce_only_order_that_would_open_or_grow_a_position(paper, position, side, quantity):
    error = rejection(paper, make_order_request(side=side, quantity=quantity, reduce_only=True),
                      ctx=context(position=position))
    assert error.code == "REDUCE_ONLY_VIOLATED"
    assert error.details == {"reject_code": "REDUCE_ONLY_VIOLATED", "position_quantity": position,
                             "quantity": quantity}


@pytest.mark.parametrize(("position", "side", "quantity"), [
    ("10", Side.SELL, "5"), ("10", Side.SELL, "10"), ("-10", Side.BUY, "10"),
])
def test_it_accepts_a_reduce_only_order_that_shrinks_the_position(paper, position, side, quantity):
    accepts(paper, make_order_request(side=side, quantity=quantity, reduce_only=True),
            ctx=context(cash="0", position=position))


def test_it_rejects_a_post_only_buy_that_would_take_the_ask(paper):
    market = quote(paper, MONDAY)
    error = rejection(paper, make_order_request(order_type=OrderType.LIMIT, limit_price=market.ask, post_only=True))
    assert error.code == "POST_ONLY_VIOLATED"
    assert error.details == {"reject_code": "POST_ONLY_VIOLATED", "limit_price": format_decimal(market.ask),
                             "bid": format_decimal(market.bid), "ask": format_decimal(market.ask)}


def test_it_rejects_a_post_only_sell_that_would_take_the_bid(paper):
    market = quote(paper, MONDAY)
    error = rejection(paper, make_order_request(side=Side.SELL, order_type=OrderType.LIMIT, limit_price=market.bid,
                                                post_only=True), ctx=context(position="1"))
    assert error.code == "POST_ONLY_VIOLATED"


def test_it_accepts_a_post_only_order_that_rests_inside_the_spread(paper):
    market = quote(paper, MONDAY)
    accepts(paper, make_order_request(order_type=OrderType.LIMIT, limit_price=market.ask - D("0.01"),
                                      post_only=True))


# -- order entry and faults ------------------------------------------------------------------------------


def test_it_acknowledges_a_submitted_order_under_our_own_id(paper):
    assert paper.submit_order(ticket(order_id="abc")) == BrokerAck(broker_order_id="abc", status=OrderStatus.OPEN)


def test_reject_next_rejects_exactly_n_orders_of_that_kind_and_no_other(paper):
    paper.faults.reject_next(2, kind="STOP", reason="INSUFFICIENT_BALANCE")
    stop = ticket(OrderType.STOP, stop_price=D("160"))
    assert paper.submit_order(ticket(OrderType.LIMIT, limit_price=D("140"))).status is OrderStatus.OPEN
    stop_limit = ticket(OrderType.STOP_LIMIT, stop_price=D("160"), limit_price=D("161"))
    assert paper.submit_order(stop_limit).status is OrderStatus.OPEN
    for _ in range(2):
        with pytest.raises(OrderRejected) as caught:
            paper.submit_order(stop)
        assert caught.value.code == "INSUFFICIENT_BALANCE"
        assert caught.value.details == {"reject_code": "INSUFFICIENT_BALANCE", "injected": True}
    assert paper.submit_order(stop).status is OrderStatus.OPEN


def test_reject_next_without_a_kind_rejects_any_order(paper):
    paper.faults.reject_next(1)
    with pytest.raises(OrderRejected) as caught:
        paper.submit_order(ticket(OrderType.LIMIT, limit_price=D("140")))
    assert caught.value.code == "UNKNOWN"
    assert paper.submit_order(ticket()).status is OrderStatus.OPEN


def test_injected_rejections_are_counted_across_venues_sharing_the_fault_file(fault_file):
    web, engine = make_broker(fault_file), make_broker(fault_file)
    web.faults.reject_next(3, kind="MARKET")
    outcomes = []
    for broker in (web, engine, web, engine, web, engine):
        try:
            broker.submit_order(ticket())
            outcomes.append("accepted")
        except OrderRejected:
            outcomes.append("rejected")
    assert outcomes == ["rejected"] * 3 + ["accepted"] * 3


@pytest.mark.parametrize("call", [
    lambda b: b.quote("AAPL", now=MONDAY),
    lambda b: b.submit_order(ticket()),
    lambda b: b.sync([working()], now=MONDAY),
    lambda b: b.check_order(make_order_request(), context=context(), now=MONDAY),
    lambda b: b.bars("AAPL", timeframe="1m", seconds=60, end=MONDAY, count=2),
    lambda b: b.cancel_order(ticket()),
], ids=["quote", "submit", "sync", "check", "bars", "cancel"])
def test_an_unavailable_venue_answers_every_call_with_provider_unavailable(paper, call):
    paper.faults.set_unavailable(True)
    with pytest.raises(ProviderUnavailable) as caught:
        call(paper)
    assert caught.value.status == 503
    assert caught.value.code == "PROVIDER_UNAVAILABLE"
    assert caught.value.retryable is True


def test_the_venue_reports_itself_disconnected_while_unavailable_and_recovers(paper):
    paper.faults.set_unavailable(True)
    assert paper.status(now=MONDAY).connected is False
    paper.faults.set_unavailable(False)
    assert paper.status(now=MONDAY).connected is True
    assert paper.quote("AAPL", now=MONDAY) == quote(paper, MONDAY)


def test_injected_latency_delays_a_submit(paper):
    started = time.monotonic()
    paper.submit_order(ticket())
    baseline = time.monotonic() - started
    paper.faults.set_latency(200)
    started = time.monotonic()
    paper.submit_order(ticket())
    assert time.monotonic() - started >= 0.2
    assert baseline < 0.2


def test_a_latency_for_exits_only_delays_placing_an_exit_leg_and_nothing_else(paper):
    paper.faults.set_latency(200, exits_only=True)
    started = time.monotonic()
    paper.submit_order(ticket())
    paper.quote("AAPL", now=MONDAY)
    paper.submit_order(dataclasses.replace(ticket(), order_id="close", reduce_only=True))      # a market close
    assert time.monotonic() - started < 0.2
    stop = dataclasses.replace(ticket(), order_id="stop", order_type=OrderType.STOP, stop_price=Decimal("150"),
                               side=Side.SELL, reduce_only=True)
    started = time.monotonic()
    paper.submit_order(stop)
    assert time.monotonic() - started >= 0.2


def test_clear_removes_every_injected_fault(paper):
    paper.faults.reject_next(5)
    paper.faults.set_unavailable(True)
    paper.faults.set_latency(500)
    paper.faults.clear()
    started = time.monotonic()
    assert paper.submit_order(ticket()).status is OrderStatus.OPEN
    assert paper.quote("AAPL", now=MONDAY).symbol == "AAPL"
    assert time.monotonic() - started < 0.5


def test_a_venue_without_a_fault_file_has_no_faults():
    broker = make_broker("")
    assert broker.faults is None
    assert broker.submit_order(ticket()).status is OrderStatus.OPEN


# -- matching: market orders -----------------------------------------------------------------------------


def test_a_market_buy_fills_at_the_ask_on_arrival(paper):
    market = quote(paper, MONDAY)
    reports = paper.sync([working(quantity=D("10"))], now=MONDAY + 5 * ONE)
    [fill] = reports
    assert fill.kind is ReportKind.FILL
    assert (fill.quantity, fill.price, fill.timestamp) == (D("10"), market.ask, MONDAY)
    assert fill.is_maker is False
    assert fill.commission == 0
    assert fill.checked_until == MONDAY


def test_a_market_sell_fills_at_the_bid_on_arrival(paper):
    market = quote(paper, MONDAY)
    [fill] = paper.sync([working(side=Side.SELL, quantity=D("10"))], now=MONDAY)
    assert (fill.quantity, fill.price, fill.is_maker) == (D("10"), market.bid, False)


def test_a_crypto_buy_pays_its_commission_in_the_coin_bought(paper):
    """As Binance without BNB: 10 bps of 0.01 BTC is 0.00001 BTC, so 0.00999 BTC is left held."""
    market = quote(paper, MONDAY, "BTCUSDT")
    [fill] = paper.sync([working(symbol="BTCUSDT", quantity=D("0.01"))], now=MONDAY)
    assert fill.price == market.ask
    assert (fill.commission, fill.commission_currency) == (D("0.00001"), "BTC")


def test_a_fee_in_the_coin_is_kept_to_8_places_not_rounded_to_the_lot_step(paper):
    """0.00001 ETH is a tenth of ETHUSDT's 0.0001 step: the venue charges it exactly, and what is held
    afterwards (0.00999) is off the step."""
    [fill] = paper.sync([working(symbol="ETHUSDT", quantity=D("0.01"))], now=MONDAY)
    assert (fill.commission, fill.commission_currency) == (D("0.00001"), "ETH")
    assert not is_on_grid(fill.quantity - fill.commission, paper.instrument("ETHUSDT").quantity_step)


def test_a_crypto_sell_pays_its_commission_in_the_quote_currency(paper):
    market = quote(paper, MONDAY, "BTCUSDT")
    [fill] = paper.sync([working(symbol="BTCUSDT", side=Side.SELL, quantity=D("0.01"))], now=MONDAY)
    assert fill.price == market.bid
    assert fill.commission == quantize_money(D("0.01") * market.bid * D("0.001"), 8)
    assert fill.commission_currency == "USDT"


def test_an_order_larger_than_the_shown_size_fills_in_parts_adding_up_exactly(paper):
    first, second, third = quotes(paper, MONDAY, MONDAY + 2 * ONE)
    quantity = first.ask_size + second.ask_size + 1
    reports = paper.sync([working(quantity=quantity)], now=MONDAY + 10 * ONE)
    assert kinds(reports) == [ReportKind.FILL] * 3
    assert [(f.quantity, f.price) for f in reports] == [(first.ask_size, first.ask), (second.ask_size, second.ask),
                                                         (D("1"), third.ask)]
    assert [f.timestamp for f in reports] == [MONDAY, MONDAY + ONE, MONDAY + 2 * ONE]
    assert sum(f.quantity for f in reports) == quantity


def test_a_partly_filled_order_reports_how_far_it_was_matched(paper):
    market = quote(paper, MONDAY)
    reports = paper.sync([working(quantity=market.ask_size * 10)], now=MONDAY + ONE)
    assert kinds(reports) == [ReportKind.FILL, ReportKind.FILL, ReportKind.STATE]
    assert reports[-1].checked_until == MONDAY + ONE


def test_it_fills_only_what_remains_of_a_partly_filled_order(paper):
    order = working(quantity=D("10"), filled_quantity=D("7"), checked_until=MONDAY)
    [fill] = paper.sync([order], now=MONDAY + ONE)
    assert fill.quantity == D("3")
    assert fill.timestamp == MONDAY + ONE


# -- matching: limit orders ------------------------------------------------------------------------------


def test_a_marketable_limit_buy_fills_at_the_ask_as_taker(paper):
    market = quote(paper, MONDAY)
    [fill] = paper.sync([working(OrderType.LIMIT, limit_price=market.ask + D("0.50"))], now=MONDAY)
    assert (fill.price, fill.is_maker, fill.timestamp) == (market.ask, False, MONDAY)


def test_a_marketable_limit_sell_fills_at_the_bid_as_taker(paper):
    market = quote(paper, MONDAY)
    [fill] = paper.sync([working(OrderType.LIMIT, side=Side.SELL, limit_price=market.bid - D("0.50"))],
                        now=MONDAY)
    assert (fill.price, fill.is_maker) == (market.bid, False)


def _resting_buy_limit(broker: PaperBroker) -> tuple[Decimal, datetime]:
    """A buy limit below the arrival ask that the market reaches within half an hour, and when it does."""
    arrival = quote(broker, MONDAY).ask
    limit = min(q.ask for q in quotes(broker, MONDAY + ONE, MONDAY + 1800 * ONE))
    assert limit < arrival
    return limit, first_time(broker, lambda q: q.ask <= limit)


def test_a_resting_limit_buy_fills_later_at_its_limit_price_as_maker(paper):
    limit, crossing = _resting_buy_limit(paper)
    [fill] = paper.sync([working(OrderType.LIMIT, limit_price=limit)], now=MONDAY + 1800 * ONE)
    assert (fill.timestamp, fill.price, fill.is_maker) == (crossing, limit, True)
    assert fill.fill_id == f"ord-1:{seconds_since_epoch(crossing)}"


def test_a_resting_limit_buy_does_not_fill_before_the_market_reaches_it(paper):
    limit, crossing = _resting_buy_limit(paper)
    reports = paper.sync([working(OrderType.LIMIT, limit_price=limit)], now=crossing - ONE)
    assert kinds(reports) == [ReportKind.STATE]
    assert reports[0].checked_until == crossing - ONE


def test_a_buy_limit_aapl_at_1_rests_through_an_hour_of_market_without_a_fill(paper):
    """No band refuses it on the way in, and the matcher neither fills nor drops it: the ask never comes
    down to 1.00, so each sync only reports how far it has matched."""
    order = working(OrderType.LIMIT, limit_price=D("1.00"))
    [state] = paper.sync([order], now=MONDAY + timedelta(hours=1))
    assert state.kind is ReportKind.STATE
    assert state.checked_until == MONDAY + timedelta(hours=1)
    later = dataclasses.replace(order, checked_until=state.checked_until)
    assert kinds(paper.sync([later], now=MONDAY + timedelta(hours=2))) == [ReportKind.STATE]


def test_a_resting_limit_sell_fills_when_the_bid_comes_up_to_it(paper):
    arrival = quote(paper, MONDAY).bid
    limit = max(q.bid for q in quotes(paper, MONDAY + ONE, MONDAY + 1800 * ONE))
    assert limit > arrival
    crossing = first_time(paper, lambda q: q.bid >= limit)
    [fill] = paper.sync([working(OrderType.LIMIT, side=Side.SELL, limit_price=limit)], now=MONDAY + 1800 * ONE)
    assert (fill.timestamp, fill.price, fill.is_maker) == (crossing, limit, True)


def test_matching_resumes_from_where_the_last_sync_stopped(paper):
    limit, crossing = _resting_buy_limit(paper)
    order = working(OrderType.LIMIT, limit_price=limit)
    [state] = paper.sync([order], now=crossing - ONE)
    resumed = dataclasses.replace(order, checked_until=state.checked_until)
    [fill] = paper.sync([resumed], now=crossing + 10 * ONE)
    assert (fill.timestamp, fill.price, fill.is_maker) == (crossing, limit, True)


# -- matching: stops -------------------------------------------------------------------------------------


def test_a_buy_stop_triggers_only_when_the_ask_reaches_it_and_fills_at_the_ask(paper):
    stop = max(q.ask for q in quotes(paper, MONDAY + ONE, MONDAY + 1800 * ONE))
    assert stop > quote(paper, MONDAY).ask
    crossing = first_time(paper, lambda q: q.ask >= stop)
    order = working(OrderType.STOP, stop_price=stop)
    before = paper.sync([order], now=crossing - ONE)
    assert kinds(before) == [ReportKind.STATE]
    assert before[0].triggered is False
    [fill] = paper.sync([order], now=crossing + 60 * ONE)
    assert (fill.timestamp, fill.price, fill.is_maker, fill.triggered) == (crossing, quote(paper, crossing).ask,
                                                                            False, True)
    assert fill.price >= stop


def test_a_sell_stop_triggers_when_the_bid_falls_to_it(paper):
    stop = min(q.bid for q in quotes(paper, MONDAY + ONE, MONDAY + 1800 * ONE))
    assert stop < quote(paper, MONDAY).bid
    crossing = first_time(paper, lambda q: q.bid <= stop)
    [fill] = paper.sync([working(OrderType.STOP, side=Side.SELL, stop_price=stop)], now=MONDAY + 1800 * ONE)
    assert (fill.timestamp, fill.price) == (crossing, quote(paper, crossing).bid)
    assert fill.price <= stop


def test_a_stop_limit_waits_for_its_trigger_although_its_limit_is_marketable(paper):
    arrival = quote(paper, MONDAY).ask
    stop = max(q.ask for q in quotes(paper, MONDAY + ONE, MONDAY + 1800 * ONE))
    limit = stop + D("1")
    assert arrival <= limit     # a plain limit order at this price would fill on arrival
    crossing = first_time(paper, lambda q: q.ask >= stop)
    [fill] = paper.sync([working(OrderType.STOP_LIMIT, stop_price=stop, limit_price=limit)],
                        now=MONDAY + 1800 * ONE)
    assert (fill.timestamp, fill.price, fill.is_maker) == (crossing, quote(paper, crossing).ask, False)


def test_a_triggered_stop_limit_beyond_its_limit_rests_and_fills_at_the_limit(paper):
    stop = max(q.ask for q in quotes(paper, MONDAY + ONE, MONDAY + 1800 * ONE))
    triggered_at = first_time(paper, lambda q: q.ask >= stop)
    later = quotes(paper, triggered_at + ONE, triggered_at + 1800 * ONE)
    limit = min(q.ask for q in later)
    assert limit < quote(paper, triggered_at).ask
    filled_at = first_time(paper, lambda q: q.ask <= limit, start=triggered_at + ONE)
    order = working(OrderType.STOP_LIMIT, stop_price=stop, limit_price=limit)
    [state] = paper.sync([order], now=filled_at - ONE)
    assert (state.kind, state.triggered) == (ReportKind.STATE, True)
    resumed = dataclasses.replace(order, triggered=True, checked_until=state.checked_until)
    [fill] = paper.sync([resumed], now=filled_at + ONE)
    assert (fill.timestamp, fill.price, fill.is_maker) == (filled_at, limit, True)


# -- matching: trailing stops ----------------------------------------------------------------------------


def _expected_trail(broker: PaperBroker, *, side: Side, distance: Decimal, percent: bool,
                    within: int = 3000) -> tuple[datetime, Decimal, Decimal]:
    """When a trailing stop placed at MONDAY triggers by its definition: the reference is the best touch
    seen so far (highest bid for a sell, lowest ask for a buy); it triggers once the touch retreats from the
    reference by the distance. Returns (trigger time, reference then, reference at arrival)."""
    reference = None
    arrival_reference = None
    for at, q in zip((MONDAY + k * ONE for k in range(within)), quotes(broker, MONDAY, MONDAY + (within - 1) * ONE),
                     strict=True):
        touch = q.bid if side is Side.SELL else q.ask
        better = reference is None or (touch > reference if side is Side.SELL else touch < reference)
        reference = touch if better else reference
        arrival_reference = arrival_reference or reference
        gap = reference * distance / 100 if percent else distance
        if (touch <= reference - gap) if side is Side.SELL else (touch >= reference + gap):
            return at, reference, arrival_reference
    raise AssertionError("the trailing stop never triggers within the window")


@pytest.mark.parametrize(("side", "trailing_type", "distance"), [
    (Side.SELL, TrailingType.ABSOLUTE, D("0.30")),
    (Side.SELL, TrailingType.PERCENT, D("0.2")),
    (Side.BUY, TrailingType.ABSOLUTE, D("0.30")),
    (Side.BUY, TrailingType.PERCENT, D("0.2")),
])
def test_a_trailing_stop_follows_the_favourable_price_and_triggers_after_a_retreat_of_its_distance(
        paper, side, trailing_type, distance):
    percent = trailing_type is TrailingType.PERCENT
    triggered_at, reference, arrival_reference = _expected_trail(paper, side=side, distance=distance,
                                                                 percent=percent)
    assert triggered_at > MONDAY + 60 * ONE
    order = working(OrderType.TRAILING_STOP, side=side, trailing_distance=distance, trailing_type=trailing_type)
    [fill] = paper.sync([order], now=triggered_at + 60 * ONE)
    touch = quote(paper, triggered_at).bid if side is Side.SELL else quote(paper, triggered_at).ask
    assert (fill.timestamp, fill.price, fill.is_maker) == (triggered_at, touch, False)
    assert fill.trail_reference == reference
    gap = reference * distance / 100 if percent else distance
    assert abs(touch - reference) >= gap


def test_a_sell_trailing_stop_reference_only_ever_rises(paper):
    distance = D("0.50")
    triggered_at, reference, arrival_reference = _expected_trail(paper, side=Side.SELL, distance=distance,
                                                                 percent=False)
    order = working(OrderType.TRAILING_STOP, side=Side.SELL, trailing_distance=distance,
                    trailing_type=TrailingType.ABSOLUTE)
    seen = []
    at = MONDAY
    while at < triggered_at:
        [state] = paper.sync([order], now=at)
        assert state.triggered is False
        seen.append(state.trail_reference)
        order = dataclasses.replace(order, trail_reference=state.trail_reference, checked_until=state.checked_until)
        at += 30 * ONE
    assert seen == sorted(seen)
    assert seen[0] == arrival_reference
    assert max(seen) <= reference
    assert reference > arrival_reference     # the reference really moved with the market before it triggered


def test_a_trailing_stop_resumed_from_its_reported_state_triggers_at_the_same_moment(paper):
    distance = D("0.30")
    triggered_at, reference, _ = _expected_trail(paper, side=Side.SELL, distance=distance, percent=False)
    order = working(OrderType.TRAILING_STOP, side=Side.SELL, trailing_distance=distance,
                    trailing_type=TrailingType.ABSOLUTE)
    halfway = MONDAY + (triggered_at - MONDAY) / 2
    [state] = paper.sync([order], now=halfway)
    resumed = dataclasses.replace(order, trail_reference=state.trail_reference, checked_until=state.checked_until)
    [fill] = paper.sync([resumed], now=triggered_at + ONE)
    assert (fill.timestamp, fill.trail_reference) == (triggered_at, reference)


# -- matching: time in force -----------------------------------------------------------------------------


def test_ioc_fills_what_it_can_on_arrival_and_cancels_the_rest(paper):
    market = quote(paper, MONDAY)
    order = working(OrderType.LIMIT, quantity=market.ask_size + 5, limit_price=market.ask + D("1"),
                    time_in_force=TimeInForce.IOC)
    fill, cancel = paper.sync([order], now=MONDAY + 30 * ONE)
    assert (fill.kind, fill.quantity, fill.price) == (ReportKind.FILL, market.ask_size, market.ask)
    assert (cancel.kind, cancel.timestamp, cancel.reason) == (ReportKind.CANCELLED, MONDAY, "IOC remainder cancelled")


def test_ioc_that_cannot_fill_at_all_is_cancelled_on_arrival(paper):
    market = quote(paper, MONDAY)
    order = working(OrderType.LIMIT, limit_price=market.bid - D("1"), time_in_force=TimeInForce.IOC)
    [cancel] = paper.sync([order], now=MONDAY + 30 * ONE)
    assert (cancel.kind, cancel.timestamp, cancel.reason) == (ReportKind.CANCELLED, MONDAY, "IOC could not be filled")


def test_a_market_ioc_larger_than_the_book_fills_the_shown_size_only(paper):
    market = quote(paper, MONDAY)
    reports = paper.sync([working(quantity=market.ask_size * 3, time_in_force=TimeInForce.IOC)], now=MONDAY + ONE)
    assert kinds(reports) == [ReportKind.FILL, ReportKind.CANCELLED]
    assert reports[0].quantity == market.ask_size


def test_fok_larger_than_the_book_fills_nothing_and_is_cancelled(paper):
    market = quote(paper, MONDAY)
    order = working(quantity=market.ask_size + 1, time_in_force=TimeInForce.FOK)
    [cancel] = paper.sync([order], now=MONDAY + 30 * ONE)
    assert (cancel.kind, cancel.reason) == (ReportKind.CANCELLED, "FOK could not be filled")


def test_fok_within_the_book_fills_completely_at_once(paper):
    market = quote(paper, MONDAY)
    order = working(OrderType.LIMIT, quantity=market.ask_size, limit_price=market.ask,
                    time_in_force=TimeInForce.FOK)
    [fill] = paper.sync([order], now=MONDAY + 30 * ONE)
    assert (fill.quantity, fill.price, fill.timestamp) == (market.ask_size, market.ask, MONDAY)


def test_a_day_order_expires_at_the_exchange_close():
    broker = make_broker(session="exchange")
    placed = datetime(2026, 3, 2, 19, 30, tzinfo=UTC)
    close = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    limit = min(q.ask for q in quotes(broker, placed, close)) - D("0.01")
    order = working(OrderType.LIMIT, limit_price=limit, time_in_force=TimeInForce.DAY, created_at=placed)
    assert kinds(broker.sync([order], now=close - ONE)) == [ReportKind.STATE]
    [expired] = broker.sync([order], now=close + 5 * ONE)
    assert (expired.kind, expired.timestamp) == (ReportKind.EXPIRED, close)
    assert expired.reason == "DAY order expired at the session close"


def test_a_gtc_order_outlives_the_close_but_is_not_matched_while_the_market_is_closed():
    broker = make_broker(session="exchange")
    placed = datetime(2026, 3, 2, 19, 59, tzinfo=UTC)
    close = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    limit = min(q.ask for q in quotes(broker, close, close + 1800 * ONE))
    assert limit < min(q.ask for q in quotes(broker, placed, close - ONE))   # only reached after the close
    order = working(OrderType.LIMIT, limit_price=limit, created_at=placed)
    [state] = broker.sync([order], now=close + 1800 * ONE)
    assert (state.kind, state.checked_until) == (ReportKind.STATE, close + 1800 * ONE)
    # the same order on a venue that never closes does fill
    assert fills(make_broker().sync([order], now=close + 1800 * ONE))


def test_a_day_order_on_an_always_open_venue_expires_at_midnight_utc(paper):
    placed = datetime(2026, 3, 2, 23, 59, 30, tzinfo=UTC)
    midnight = datetime(2026, 3, 3, tzinfo=UTC)
    bid = min(q.bid for q in quotes(paper, placed, midnight, symbol="BTCUSDT"))
    order = working(OrderType.LIMIT, symbol="BTCUSDT", quantity=D("0.01"), limit_price=bid - D("100"),
                    time_in_force=TimeInForce.DAY, created_at=placed)
    [expired] = paper.sync([order], now=midnight + 10 * ONE)
    assert (expired.kind, expired.timestamp) == (ReportKind.EXPIRED, midnight)


# -- matching: reports -----------------------------------------------------------------------------------


def test_re_syncing_the_same_seconds_yields_the_same_fill_ids(paper):
    market = quote(paper, MONDAY)
    order = working(quantity=market.ask_size * 3)
    first = paper.sync([order], now=MONDAY + 20 * ONE)
    again = paper.sync([order], now=MONDAY + 20 * ONE)
    elsewhere = make_broker().sync([order], now=MONDAY + 20 * ONE)
    assert first == again == elsewhere
    ids = [f.fill_id for f in fills(first)]
    assert len(ids) == len(set(ids)) >= 2
    assert all(fill_id.startswith("ord-1:") for fill_id in ids)


def test_fill_ids_name_the_order_and_the_second(paper):
    [fill] = paper.sync([working(order_id="xyz")], now=MONDAY)
    assert fill.fill_id == f"xyz:{seconds_since_epoch(MONDAY)}"


def test_a_resting_order_reports_its_state_up_to_now(paper):
    market = quote(paper, MONDAY)
    order = working(OrderType.LIMIT, limit_price=market.bid - D("5"))
    [state] = paper.sync([order], now=MONDAY + 7 * ONE)
    assert state.kind is ReportKind.STATE
    assert state.checked_until == MONDAY + 7 * ONE
    assert state.timestamp == MONDAY + 7 * ONE
    assert state.triggered is False
    assert state.trail_reference is None


def test_it_reports_nothing_when_nothing_new_has_been_matched(paper):
    market = quote(paper, MONDAY)
    order = working(OrderType.LIMIT, limit_price=market.bid - D("5"), checked_until=MONDAY + 7 * ONE)
    assert paper.sync([order], now=MONDAY + 7 * ONE) == []


def test_it_matches_each_order_independently_in_one_sync(paper):
    market = quote(paper, MONDAY)
    orders = [working(order_id="a"), working(OrderType.LIMIT, order_id="b", limit_price=market.bid - D("5")),
              working(order_id="c", symbol="MSFT", side=Side.SELL)]
    reports = paper.sync(orders, now=MONDAY)
    assert [(r.order_id, r.kind) for r in reports] == [("a", ReportKind.FILL), ("b", ReportKind.STATE),
                                                       ("c", ReportKind.FILL)]
    assert reports[2].price == quote(paper, MONDAY, "MSFT").bid


def test_an_order_for_a_symbol_no_longer_traded_is_cancelled(paper):
    [cancel] = paper.sync([working(symbol="GONE")], now=MONDAY)
    assert (cancel.kind, cancel.reason) == (ReportKind.CANCELLED, "symbol no longer traded")


def test_it_catches_up_on_at_most_the_last_hour(paper):
    now = MONDAY + timedelta(hours=2)
    [fill] = paper.sync([working()], now=now)
    assert fill.timestamp == now - timedelta(hours=1)
    assert fill.price == quote(paper, now - timedelta(hours=1)).ask



# -- through the desk: POST /v1/orders and the engine ------------------------------------------------------


@pytest.mark.django_db
def test_a_buy_limit_aapl_at_1_gets_201_and_stays_open_after_engine_ticks(client, account, broker, clock):
    """Issue #13's last "done when": the reference gateway's smoke test order rests at the paper venue."""
    handle = submit(client, symbol="AAPL", side="BUY", quantity="1", order_type="LIMIT", limit_price="1.00").json()
    assert handle["status"] == "OPEN"
    for _ in range(3):
        run_engine(account, broker, seconds=60, clock=clock)
    order = get_order(client, handle["id"])
    assert (order["status"], D(order["filled_quantity"]), D(order["limit_price"])) == ("OPEN", 0, D("1.00"))


@pytest.mark.django_db
def test_a_market_buy_of_btc_leaves_the_desk_holding_what_the_fee_left(client, account, broker, clock):
    """0.01 BTC bought with a 10 bps fee taken in BTC: the desk holds 0.00999, as the venue would, and its
    cash paid the notional only."""
    ask = api_quote(client, "BTCUSDT")["ask"]
    handle = submit(client, symbol="BTCUSDT", quantity="0.01").json()
    run_engine(account, broker, seconds=1, clock=clock)
    assert get_order(client, handle["id"])["status"] == "FILLED"
    [trade] = client.get("/v1/trades").json()
    assert (D(trade["commission"]), trade["commission_currency"]) == (D("0.00001"), "BTC")
    [position] = client.get("/v1/positions").json()
    assert (position["symbol"], D(position["quantity"])) == ("BTCUSDT", D("0.00999"))
    account.refresh_from_db()
    assert account.cash == D("100000") - D("0.01") * ask
