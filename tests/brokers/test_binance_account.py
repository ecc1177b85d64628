"""The venue's truth on Binance Spot: the account's figures and positions from ``/api/v3/account`` balances in
one quote asset, every open order from ``/api/v3/openOrders``, and the commission of every fill in the asset
the venue really took it in. Answers are payloads built from the spec, served by ``responses``."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from orders.brokers.binance.account import Balance, to_venue_account
from orders.brokers.binance.mapping import parse_binance_execution_report
from orders.brokers.types import ReportKind, VenueAccount, VenuePosition
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import RateLimited, Unauthorized
from tests.brokers.contract import NOW
from tests.brokers.test_binance import BASE, SL, TP, calls, error, make_broker, payload, sent, working

D = Decimal
ACCOUNT = f"{BASE}/api/v3/account"
PRICES = f"{BASE}/api/v3/ticker/price"
OPEN_ORDERS = f"{BASE}/api/v3/openOrders"


def exchange_info_for(request):
    """``exchangeInfo?symbol=``: the recorded BTCUSDT, ETHUSDT built from it, -1121 for anything else."""
    symbol = dict(parse_qsl(urlsplit(request.url).query))["symbol"]
    body = payload("market_exchangeinfo")
    info = body["symbols"][0]
    if symbol == "ETHUSDT":
        info.update(symbol="ETHUSDT", baseAsset="ETH")
    elif symbol != "BTCUSDT":
        case = payload("errors_rest")["invalid_symbol"]
        return case["status"], {}, json.dumps(case["body"])
    return 200, {}, json.dumps(body)


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
        rsps.add_callback("GET", f"{BASE}/api/v3/exchangeInfo", callback=exchange_info_for)
        rsps.get(ACCOUNT, json=payload("account_get"))
        rsps.get(PRICES, json=payload("market_ticker_price"))
        rsps.get(OPEN_ORDERS, json=payload("open_orders"))
        yield rsps


@pytest.fixture
def broker():
    return make_broker()


# -- the account's figures -------------------------------------------------------------------------------

def test_the_figures_are_the_quote_asset_plus_every_held_asset_at_its_last_price(venue, broker):
    account = broker.account_state(now=NOW)
    assert account == VenueAccount(
        cash=D("9502.5"),                                   # USDT free + locked
        equity=D("11049.328499"),                           # + 0.00999 BTC × 67,250.10 + 0.25 ETH × 3,500
        buying_power=D("9400.5"), margin_used=D("0"), margin_available=D("9400.5"), currency="USDT")
    assert all(isinstance(v, Decimal) for v in (account.cash, account.equity, account.buying_power))


def test_the_account_is_read_signed_without_its_zero_balances(venue, broker):
    broker.account_state(now=NOW)
    (call,) = calls(venue, "GET", "/api/v3/account")
    params = sent(call)
    assert params["omitZeroBalances"] == "true"
    assert {"timestamp", "recvWindow", "signature"} <= set(params)
    assert call.request.headers["X-MBX-APIKEY"] == broker.config.api_key


def test_all_prices_come_in_one_ticker_call_for_the_symbols_held(venue, broker):
    broker.account_state(now=NOW)
    (call,) = calls(venue, "GET", "/api/v3/ticker/price")
    assert json.loads(sent(call)["symbols"]) == ["BTCUSDT", "ETHUSDT"]


def test_dust_without_a_symbol_against_the_quote_asset_is_left_out_and_not_asked_about_again(venue, broker):
    broker.account_state(now=NOW)
    asked = [sent(c)["symbol"] for c in calls(venue, "GET", "/api/v3/exchangeInfo")]
    assert sorted(asked) == ["BTCUSDT", "ETHUSDT", "LDBTCUSDT"]        # BNB is zero, USDT is the cash
    broker.account_state(now=NOW.replace(second=5))
    assert len(calls(venue, "GET", "/api/v3/exchangeInfo")) == 3, "rules and the missing symbol are remembered"
    assert len(calls(venue, "GET", "/api/v3/account")) == 2


def test_a_symbol_that_is_not_trading_is_a_position_without_a_mark_and_out_of_equity(venue, broker):
    def halted(request):
        status, headers, body = exchange_info_for(request)
        data = json.loads(body)
        if status == 200 and data["symbols"][0]["symbol"] == "ETHUSDT":
            data["symbols"][0]["status"] = "BREAK"
        return status, headers, json.dumps(data)

    venue.remove("GET", f"{BASE}/api/v3/exchangeInfo")
    venue.add_callback("GET", f"{BASE}/api/v3/exchangeInfo", callback=halted)
    venue.replace("GET", PRICES, json=payload("market_ticker_price")[0])
    positions = {p.symbol: p for p in broker.positions(now=NOW)}
    assert positions["ETHUSDT"] == VenuePosition(symbol="ETHUSDT", quantity=D("0.25"), average_price=None, mark=None)
    assert sent(calls(venue, "GET", "/api/v3/ticker/price")[0]) == {"symbol": "BTCUSDT"}
    assert broker.account_state(now=NOW).equity == D("9502.5") + D("0.00999") * D("67250.1")


def test_without_any_quote_balance_the_cash_is_zero():
    account = to_venue_account({"BTC": Balance("BTC", D("1"), D("0"))}, quote="USDT", marks={"BTC": D("50000")})
    assert (account.cash, account.equity, account.buying_power) == (D("0"), D("50000"), D("0"))


def test_the_account_reads_within_the_request_weight_budget(venue, broker):
    broker.client.ensure_time()
    broker.client.used_weight = int(broker.client.weight_limit * broker.config.weight_budget) - 10
    broker.client.weight_window = broker.client.now_ms() // 60_000
    with pytest.raises(RateLimited):
        broker.account_state(now=NOW)              # 20 would pass the budget: nothing is sent
    assert not calls(venue, "GET", "/api/v3/account")


def test_a_refused_key_is_unauthorized(venue, broker):
    venue.replace("GET", ACCOUNT, **error("rejected_key"))
    with pytest.raises(Unauthorized):
        broker.account_state(now=NOW)


# -- positions -------------------------------------------------------------------------------------------

def test_positions_are_the_whole_balance_of_each_asset_traded_against_the_quote_asset(venue, broker):
    assert broker.positions(now=NOW) == [
        VenuePosition(symbol="BTCUSDT", quantity=D("0.00999"), average_price=None, mark=D("67250.1")),
        VenuePosition(symbol="ETHUSDT", quantity=D("0.25"), average_price=None, mark=D("3500"))]


def test_the_figures_and_positions_of_one_moment_cost_one_read(venue, broker):
    broker.account_state(now=NOW)
    broker.positions(now=NOW)
    assert len(calls(venue, "GET", "/api/v3/account")) == 1
    assert len(calls(venue, "GET", "/api/v3/ticker/price")) == 1


def test_another_quote_asset_reads_the_account_in_it(venue):
    broker = make_broker(quote_asset="BTC")
    account = broker.account_state(now=NOW)
    assert (account.currency, account.cash, account.buying_power) == ("BTC", D("0.00999"), D("0.00499"))
    asked = sorted(sent(c)["symbol"] for c in calls(venue, "GET", "/api/v3/exchangeInfo"))
    assert asked == ["ETHBTC", "LDBTCBTC", "USDTBTC"]
    assert broker.positions(now=NOW.replace(second=9)) == []


# -- open orders -----------------------------------------------------------------------------------------

def test_open_orders_list_every_symbol_with_the_legs_of_an_order_list(venue, broker):
    by_id = {o.broker_order_id: o for o in broker.open_orders(now=NOW)}
    stop, take, external = by_id["28457301"], by_id["28457302"], by_id["1388201"]
    assert (stop.client_order_id, stop.order_type, stop.side, stop.stop_price, stop.limit_price) == (
        SL, OrderType.STOP, Side.SELL, D("58000"), None)
    assert (take.client_order_id, take.order_type, take.limit_price, take.stop_price) == (
        TP, OrderType.LIMIT, D("70000"), None)
    assert (stop.quantity, stop.status) == (D("0.005"), OrderStatus.OPEN)
    assert (external.symbol, external.client_order_id, external.side, external.quantity, external.filled_quantity,
            external.status, external.time_in_force) == (
        "ETHUSDT", "web_8f2c0d7e1b9a4e56a3c2", Side.BUY, D("0.05"), D("0.02"), OrderStatus.PARTIALLY_FILLED,
        TimeInForce.GTC)
    assert external.created_at.isoformat() == "2026-03-02T14:58:20+00:00"


def test_open_orders_are_asked_for_without_a_symbol_and_weigh_80(venue, broker):
    broker.client.ensure_time()
    before = broker.client.used_weight
    broker.open_orders(now=NOW)
    (call,) = calls(venue, "GET", "/api/v3/openOrders")
    assert "symbol" not in sent(call) and "signature" in sent(call)
    assert broker.client.used_weight - before == 80


def test_open_orders_come_oldest_first(venue, broker):
    assert [o.broker_order_id for o in broker.open_orders(now=NOW)] == ["1388201", "28457301", "28457302"]


# -- commissions -----------------------------------------------------------------------------------------

def test_a_fill_from_the_trade_list_carries_the_fee_in_the_coin_bought(broker):
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
        rsps.get(f"{BASE}/api/v3/order", json=payload(
            "trade_order_query", type="MARKET", status="FILLED", origQty="0.01000000", executedQty="0.01000000",
            cummulativeQuoteQty="500.00000000", isWorking=False))
        trade = {**payload("trade_mytrades")[0], "qty": "0.01000000", "price": "50000.00000000",
                 "quoteQty": "500.00000000", "commission": "0.00001000", "commissionAsset": "BTC"}
        rsps.get(f"{BASE}/api/v3/myTrades", json=[trade])
        (fill,) = broker.sync([working(order_type=OrderType.MARKET, quantity=D("0.01"), limit_price=None)], now=NOW)
    assert (fill.kind, fill.quantity, fill.commission, fill.commission_currency) == (
        ReportKind.FILL, D("0.01"), D("0.00001"), "BTC")


def test_a_sell_fill_from_the_trade_list_pays_in_the_quote_asset(broker):
    with responses.RequestsMock() as rsps:
        rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
        rsps.get(f"{BASE}/api/v3/order", json=payload(
            "trade_order_query", side="SELL", status="FILLED", executedQty="0.00100000",
            cummulativeQuoteQty="60.00000000", isWorking=False))
        trade = {**payload("trade_mytrades")[0], "qty": "0.00100000", "quoteQty": "60.00000000",
                 "commission": "0.06000000", "commissionAsset": "USDT", "isBuyer": False}
        rsps.get(f"{BASE}/api/v3/myTrades", json=[trade])
        (fill,) = broker.sync([working(side=Side.SELL)], now=NOW)
    assert (fill.commission, fill.commission_currency) == (D("0.06"), "USDT")


def test_a_stream_fill_carries_the_commission_and_its_asset():
    frames = payload("stream_userdata")
    (partial,) = parse_binance_execution_report(frames["trade_partial"])
    (filled,) = parse_binance_execution_report(frames["trade_filled"])
    assert (partial.commission, partial.commission_currency) == (D("0.0000004"), "BTC")
    assert (filled.commission, filled.commission_currency) == (D("0.0000006"), "BTC")


def _filled_without_trades(rsps, *, side="BUY", trades=()):
    rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
    rsps.get(f"{BASE}/api/v3/exchangeInfo", json=payload("market_exchangeinfo"))
    rsps.get(f"{BASE}/api/v3/order", json=payload(
        "trade_order_query", side=side, status="FILLED", executedQty="0.00100000",
        cummulativeQuoteQty="60.00000000", isWorking=False))
    rsps.get(f"{BASE}/api/v3/myTrades", json=list(trades))


def test_a_buy_whose_trades_lag_is_estimated_with_the_fee_in_the_coin_bought(broker):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _filled_without_trades(rsps)
        (fill,) = broker.sync([working()], now=NOW)
    assert fill.extra["estimated"] and fill.quantity == D("0.001")
    assert (fill.commission, fill.commission_currency) == (D("0.000001"), "BTC")      # 0.1 % of 0.001 BTC


def test_a_sell_whose_trades_lag_is_estimated_with_the_fee_in_the_quote_asset(broker):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _filled_without_trades(rsps, side="SELL")
        (fill,) = broker.sync([working(side=Side.SELL)], now=NOW)
    assert (fill.commission, fill.commission_currency) == (D("0.06"), "USDT")        # 0.1 % of 60 USDT


def test_the_estimate_follows_the_account_rate_and_the_asset_the_order_already_paid_in(venue, broker):
    body = payload("account_get")
    body["commissionRates"]["taker"] = "0.00075000"
    venue.replace("GET", ACCOUNT, json=body)
    broker.account_state(now=NOW)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _filled_without_trades(rsps)
        (fill,) = broker.sync([working()], now=NOW)
    assert (fill.commission, fill.commission_currency) == (D("0.00000075"), "BTC")

    first = {**payload("trade_mytrades")[0], "commission": "0.00000010", "commissionAsset": "BNB"}   # 0.0004 BTC
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _filled_without_trades(rsps, trades=[first])
        rest = [r for r in broker.sync([working()], now=NOW) if r.extra.get("estimated")]
    assert [(r.quantity, r.commission, r.commission_currency) for r in rest] == [(D("0.0006"), D("0.00000015"), "BNB")]
