"""Kraken's own figures: the account (``BalanceEx`` + ``TradeBalance``), the positions a spot account holds (its
balances that trade against the quote asset), its working orders (``OpenOrders``), and the dead man's switch
(``CancelAllOrdersAfter``), each against recorded answers served by ``KrakenVenue``.

``kraken_user_balanceex.json`` is the spec's ``BalanceEx`` example (``ZUSD`` and ``XXBT``) with the amounts as the
strings Kraken sends (the spec's schema types them as strings; its inline example prints numbers), and the other
assets of the recorded ``Balance`` example beside them, plus an earn balance (``ETH2.S``) and a credit line
(``USDT``) the spec describes. ``kraken_user_tradebalance.json`` is the spec's ``TradeBalance`` example and
``kraken_trading_cancelallordersafter.json`` the spec's ``CancelAllOrdersAfter`` example."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import responses
from django.core.exceptions import ImproperlyConfigured

from orders.brokers.http import HttpClient
from orders.brokers.kraken import (
    KrakenBroker,
    KrakenConfig,
    build_kraken_broker,
    kraken_signature,
    parse_kraken_open_order,
)
from orders.brokers.kraken.wire import kraken_asset_code
from orders.brokers.types import VenueAccount, VenueOrder, VenuePosition
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from tests.brokers.test_kraken import (
    API_KEY,
    BASE,
    NOW,
    SECRET,
    KrakenVenue,
    answer,
    envelope,
    kraken_order,
    make_kraken,
    payload,
)


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        kraken_venue = KrakenVenue(mock)
        kraken_venue.stage("BalanceEx", payload("user_balanceex"))
        kraken_venue.stage("TradeBalance", payload("user_tradebalance"))
        yield kraken_venue


@pytest.fixture
def kraken(venue) -> KrakenBroker:
    return make_kraken()


def kraken_in(quote_asset: str) -> KrakenBroker:
    http = HttpClient(base_url=BASE, provider="kraken", sleep=lambda s: None)
    return KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=SECRET, quote_asset=quote_asset), http=http)


# -- the account -------------------------------------------------------------------------------------------

def test_the_account_is_krakens_cash_free_balance_and_equivalent_balance_in_usd(venue, kraken):
    assert kraken.account_state(now=NOW) == VenueAccount(
        cash=Decimal("25435.2100"), equity=Decimal("3224744.0162"),
        buying_power=Decimal("17185.4500"),            # 25435.21 less the 8249.76 open orders hold
        margin_used=Decimal("0.0000"), margin_available=Decimal("17185.4500"), currency="USD", unrealized_pnl=None)


def test_every_figure_is_a_decimal(venue, kraken):
    account = kraken.account_state(now=NOW)
    figures = [account.cash, account.equity, account.buying_power, account.margin_used, account.margin_available]
    assert all(type(value) is Decimal for value in figures)


def test_the_trade_balance_is_asked_in_the_quote_asset_with_signed_calls(venue, kraken):
    kraken.account_state(now=NOW)
    (trade,) = venue.calls_to("TradeBalance")
    assert trade.body == f"nonce={trade.fields['nonce']}&asset=ZUSD"
    assert trade.headers["API-Sign"] == kraken_signature(path="/0/private/TradeBalance", nonce=trade.fields["nonce"],
                                                         postdata=trade.body, secret=SECRET)
    assert [c.endpoint for c in venue.calls] == ["BalanceEx", "TradeBalance"]


def test_an_account_kept_in_euros_reads_zeur(venue):
    kraken = kraken_in("EUR")
    account = kraken.account_state(now=NOW)
    assert (account.currency, account.cash, account.buying_power) == ("EUR", Decimal("102559.9012"),
                                                                      Decimal("102559.9012"))
    assert venue.calls_to("TradeBalance")[0].fields["asset"] == "ZEUR"


def test_a_credit_line_counts_in_what_is_free_as_kraken_computes_it(venue):
    account = kraken_in("USDT").account_state(now=NOW)
    assert (account.cash, account.buying_power) == (Decimal("1500.00000000"), Decimal("1580.00000000"))


def test_a_quote_asset_the_account_does_not_hold_is_zero_cash(venue):
    account = kraken_in("GBP").account_state(now=NOW)
    assert (account.cash, account.buying_power, account.currency) == (Decimal("0"), Decimal("0"), "GBP")


@pytest.mark.parametrize(("desk", "kraken_code"), [("USD", "ZUSD"), ("usd", "ZUSD"), ("ZUSD", "ZUSD"),
                                                    ("EUR", "ZEUR"), ("XBT", "XXBT"), ("BTC", "XXBT"),
                                                    ("USDT", "USDT"), ("SOL", "SOL")])
def test_the_desks_asset_names_become_krakens_codes(desk, kraken_code):
    assert kraken_asset_code(desk) == kraken_code


def test_a_refusal_of_balanceex_is_the_mapped_desk_error(venue, kraken):
    from orders.domain.errors import Unauthorized
    venue.stage("BalanceEx", envelope("EGeneral:Permission denied"))
    with pytest.raises(Unauthorized):
        kraken.account_state(now=NOW)


# -- positions ---------------------------------------------------------------------------------------------

def test_positions_are_the_balances_that_trade_against_usd_marked_at_the_last_trade(venue, kraken):
    assert kraken.positions(now=NOW) == [
        VenuePosition(symbol="XBTUSD", quantity=Decimal("1.2435000000"), average_price=None,
                      mark=Decimal("3537.50000"))]


def test_positions_skip_the_quote_zero_balances_fee_credits_earn_balances_and_assets_without_a_usd_pair(
        venue, kraken):
    symbols = [p.symbol for p in kraken.positions(now=NOW)]
    # ZUSD is the cash, XXRP is zero, KFEE and XETH (only ETH/XBT is listed) have no USD pair, ETH2.S is earn
    assert symbols == ["XBTUSD"]


def test_positions_list_every_pair_once_and_mark_them_in_one_ticker_call(venue, kraken):
    kraken.positions(now=NOW)
    kraken.positions(now=NOW + timedelta(seconds=30))
    assert len(venue.calls_to("AssetPairs")) == 1, "the pairs are kept for an hour"
    assert "pair" not in venue.calls_to("AssetPairs")[0].fields
    assert [c.fields["pair"] for c in venue.calls_to("Ticker")] == ["XBTUSD", "XBTUSD"]


def test_a_held_balance_is_still_held(venue, kraken):
    """A resting sell holds its volume (``hold_trade``) but the balance is still the account's."""
    (position,) = kraken.positions(now=NOW)
    assert position.quantity == Decimal("1.2435000000")


def test_a_ticker_kraken_will_not_give_leaves_the_position_unmarked(venue, kraken):
    venue.stage("Ticker", envelope("EService:Unavailable"))
    assert kraken.positions(now=NOW) == [VenuePosition(symbol="XBTUSD", quantity=Decimal("1.2435000000"))]


class Clock:
    def __init__(self) -> None:
        self.now = 1772463600.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def paced(venue, clock) -> KrakenBroker:
    return make_kraken(clock=clock)


def test_one_refresh_reads_the_balances_once(venue, paced):
    """``account_state`` and ``positions`` asked about the same moment share one ``BalanceEx`` (one point of
    Kraken's private-call counter)."""
    paced.account_state(now=NOW)
    paced.positions(now=NOW)
    assert len(venue.calls_to("BalanceEx")) == 1


def test_the_account_is_read_at_most_every_20_seconds_while_nothing_happens(venue, paced, clock):
    for seconds in (0, 5, 10, 19):
        clock.now += 5 if seconds else 0
        paced.account_state(now=NOW + timedelta(seconds=seconds))
    assert (len(venue.calls_to("BalanceEx")), len(venue.calls_to("TradeBalance"))) == (1, 1)
    clock.now += 6
    paced.account_state(now=NOW + timedelta(seconds=25))
    assert (len(venue.calls_to("BalanceEx")), len(venue.calls_to("TradeBalance"))) == (2, 2)


@pytest.mark.parametrize("change", ["submit", "cancel", "amend"])
def test_an_order_sent_cancelled_or_amended_has_the_account_read_afresh(venue, paced, clock, change):
    from tests.brokers.test_kraken import ticket
    venue.stage("AddOrder", payload("trading_addorder"))
    venue.stage("CancelOrder", payload("trading_cancelorder"))
    venue.stage("AmendOrder", payload("trading_amendorder"))
    paced.account_state(now=NOW)
    clock.now += 1
    {"submit": lambda: paced.submit_order(ticket()), "cancel": lambda: paced.cancel_order(ticket()),
     "amend": lambda: paced.modify_order(ticket(), limit_price=Decimal("30100.0"))}[change]()
    paced.account_state(now=NOW + timedelta(seconds=1))
    assert len(venue.calls_to("BalanceEx")) == 2


def test_a_poll_that_saw_an_order_change_has_the_account_read_afresh(venue, paced, clock):
    from tests.brokers.test_kraken import ORDER_ID, ticket, working
    venue.stage("QueryOrders", answer({"OQCLML-BW3P3-BUCMWZ": kraken_order(cl_ord_id=ORDER_ID, status="open")}))
    paced.account_state(now=NOW)
    paced.sync([working(ticket(), txid="OQCLML-BW3P3-BUCMWZ")], now=NOW)
    paced.account_state(now=NOW + timedelta(seconds=1))
    assert len(venue.calls_to("BalanceEx")) == 1, "nothing changed: the read is kept"
    venue.stage("QueryOrders", answer({"OQCLML-BW3P3-BUCMWZ": kraken_order(
        cl_ord_id=ORDER_ID, status="canceled", reason="User requested", closetm=1772463700.0)}))
    paced.sync([working(ticket(), txid="OQCLML-BW3P3-BUCMWZ")], now=NOW)
    paced.account_state(now=NOW + timedelta(seconds=2))
    assert len(venue.calls_to("BalanceEx")) == 2


def test_no_balances_no_positions_and_no_ticker(venue, kraken):
    venue.stage("BalanceEx", answer({"ZUSD": {"balance": "100.0000", "hold_trade": "0.0000"}}))
    assert kraken.positions(now=NOW) == []
    assert venue.calls_to("Ticker") == []


# -- open orders -------------------------------------------------------------------------------------------

def test_open_orders_are_every_working_order_oldest_first(venue, kraken):
    venue.stage("OpenOrders", payload("user_openorders"))
    orders = kraken.open_orders(now=NOW)
    assert [o.broker_order_id for o in orders] == ["OB5VMB-B4U2U-DK2WRW", "OQCLML-BW3P3-BUCMWZ"]
    other_app, partly = orders
    assert partly == VenueOrder(
        broker_order_id="OQCLML-BW3P3-BUCMWZ", client_order_id=None, symbol="XBTUSD", side=Side.BUY,
        order_type=OrderType.LIMIT, quantity=Decimal("1.25000000"), filled_quantity=Decimal("0.37500000"),
        status=OrderStatus.PARTIALLY_FILLED, created_at=datetime.fromtimestamp(1688666559.8974, UTC),
        limit_price=Decimal("30010.0"))
    assert (other_app.client_order_id, other_app.status, other_app.limit_price) == (
        "45326", OrderStatus.OPEN, Decimal("14500.0")), "another app's userref is its client id"
    (call,) = venue.calls_to("OpenOrders")
    assert call.body == f"nonce={call.fields['nonce']}"


def test_an_order_the_desk_sent_carries_its_id_back(venue, kraken):
    order_id = "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
    venue.stage("OpenOrders", answer({"open": {"OSTOPL-BBBBB-BBBBBB": kraken_order(
        cl_ord_id=order_id, side="sell", ordertype="stop-loss", price="29000.0")}}))
    (order,) = kraken.open_orders(now=NOW)
    assert (order.client_order_id, order.side, order.order_type, order.stop_price, order.limit_price) == (
        order_id, Side.SELL, OrderType.STOP, Decimal("29000.0"), None)


@pytest.mark.parametrize(("ordertype", "price", "price2", "expected"), [
    ("market", "0", "0", (OrderType.MARKET, None, None)),
    ("limit", "31000.0", "0", (OrderType.LIMIT, Decimal("31000.0"), None)),
    ("stop-loss", "29000.0", "0", (OrderType.STOP, None, Decimal("29000.0"))),
    ("stop-loss-limit", "29000.0", "28900.0", (OrderType.STOP_LIMIT, Decimal("28900.0"), Decimal("29000.0"))),
    ("take-profit", "31000.0", "0", (OrderType.LIMIT, Decimal("31000.0"), None)),
    ("take-profit-limit", "31000.0", "30900.0", (OrderType.LIMIT, Decimal("30900.0"), None)),
    ("trailing-stop", "+100.0", "0", (OrderType.TRAILING_STOP, None, None)),
    ("trailing-stop", "+1.0000%", "0", (OrderType.TRAILING_STOP, None, None)),
])
def test_krakens_order_types_become_the_desks(ordertype, price, price2, expected):
    raw = copy.deepcopy(payload("user_openorders")["result"]["open"]["OQCLML-BW3P3-BUCMWZ"])
    raw["descr"].update(ordertype=ordertype, price=price, price2=price2)
    order = parse_kraken_open_order("OXXXXX-XXXXX-XXXXXX", raw)
    assert (order.order_type, order.limit_price, order.stop_price) == expected


def test_an_order_with_an_expiry_is_a_day_order_and_one_without_is_gtc():
    raw = copy.deepcopy(payload("user_openorders")["result"]["open"]["OQCLML-BW3P3-BUCMWZ"])
    assert parse_kraken_open_order("O1", raw).time_in_force is TimeInForce.GTC
    raw["expiretm"] = 1772496000
    assert parse_kraken_open_order("O1", raw).time_in_force is TimeInForce.DAY


# -- the dead man's switch ---------------------------------------------------------------------------------

def test_arming_the_switch_is_a_signed_cancel_all_orders_after_with_the_timeout(venue, kraken):
    kraken.arm_deadman(seconds=60)
    (call,) = venue.calls_to("CancelAllOrdersAfter")
    assert call.body == f"nonce={call.fields['nonce']}&timeout=60"
    assert call.headers["API-Key"] == API_KEY
    assert call.headers["API-Sign"] == kraken_signature(path="/0/private/CancelAllOrdersAfter",
                                                        nonce=call.fields["nonce"], postdata=call.body, secret=SECRET)
    assert kraken.deadman_armed_at == datetime(2023, 3, 24, 17, 41, 56, tzinfo=UTC)
    assert kraken.deadman_trigger_at == datetime(2023, 3, 24, 17, 42, 56, tzinfo=UTC)


def test_zero_disarms_the_switch(venue, kraken):
    venue.stage("CancelAllOrdersAfter", answer({"currentTime": "2023-03-24T17:41:56Z", "triggerTime": "0"}))
    kraken.arm_deadman(seconds=0)
    assert venue.calls_to("CancelAllOrdersAfter")[0].fields["timeout"] == "0"
    assert kraken.deadman_trigger_at is None


@pytest.mark.parametrize("seconds", [-1, 86400])
def test_a_timeout_kraken_would_refuse_is_refused_before_sending(venue, kraken, seconds):
    with pytest.raises(ValueError):
        kraken.arm_deadman(seconds=seconds)
    assert venue.calls_to("CancelAllOrdersAfter") == []


def test_a_failure_to_arm_is_the_mapped_desk_error(venue, kraken):
    from orders.domain.errors import ProviderUnavailable
    venue.stage("CancelAllOrdersAfter", envelope("EService:Unavailable"))
    with pytest.raises(ProviderUnavailable):
        kraken.arm_deadman(seconds=60)


@pytest.fixture
def kraken_env(monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", SECRET)
    for name in ("KRAKEN_BASE_URL", "KRAKEN_WS_AUTH_URL", "KRAKEN_QUOTE_ASSET", "KRAKEN_DEADMAN_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_switch_is_armed_for_60_seconds_unless_configured_otherwise(kraken_env):
    assert build_kraken_broker().deadman_seconds == 60
    kraken_env.setenv("KRAKEN_DEADMAN_SECONDS", "0")
    assert build_kraken_broker().deadman_seconds == 0
    kraken_env.setenv("KRAKEN_DEADMAN_SECONDS", "120")
    assert build_kraken_broker().deadman_seconds == 120


@pytest.mark.parametrize("value", ["sixty", "-5", "86400", "1.5"])
def test_a_switch_timeout_that_is_not_whole_seconds_under_a_day_stops_the_start(kraken_env, value):
    kraken_env.setenv("KRAKEN_DEADMAN_SECONDS", value)
    with pytest.raises(ImproperlyConfigured, match="KRAKEN_DEADMAN_SECONDS"):
        build_kraken_broker()


def test_the_quote_asset_is_configured_and_usd_by_default(kraken_env):
    assert (build_kraken_broker().quote_asset, build_kraken_broker().config.quote_asset) == ("ZUSD", "USD")
    kraken_env.setenv("KRAKEN_QUOTE_ASSET", "eur")
    assert build_kraken_broker().quote_asset == "ZEUR"


# -- what the desk may count on --------------------------------------------------------------------------

def test_kraken_is_the_truth_and_rests_one_exit_per_balance(kraken):
    assert kraken.venue_ledger is True
    assert kraken.one_resting_exit is True
    assert kraken.deadman_seconds == 60


def test_the_emulated_take_profit_has_what_it_needs_cancel_by_client_id_then_a_market_sell(venue, kraken):
    """Firing a take-profit on the quote: the stop is cancelled by our id, then the balance sold at market."""
    from tests.brokers.test_kraken import sent, ticket
    venue.stage("CancelOrder", payload("trading_cancelorder"))
    venue.stage("AddOrder", payload("trading_addorder"))
    stop = ticket(order_id="5d0c3b9a-7f0e-4c1e-9a57-3c1f0f6f2d11", side=Side.SELL, order_type=OrderType.STOP,
                  stop_price=Decimal("29000.0"), limit_price=None)
    market = ticket(order_id="9a1e0c7b-2b4d-4f6a-8e3c-5d7f9b1a3c5e", side=Side.SELL, order_type=OrderType.MARKET,
                    limit_price=None)
    assert kraken.quote("XBTUSD", now=NOW).bid == Decimal("3537.40000")
    kraken.cancel_order(stop)
    kraken.submit_order(market)
    assert sent(venue.calls_to("CancelOrder")[0]) == f"cl_ord_id={stop.order_id}"
    assert sent(venue.calls_to("AddOrder")[0]) == (
        f"pair=XBTUSD&type=sell&ordertype=market&volume=0.01&oflags=fciq&cl_ord_id={market.order_id}")
