"""The Binance Spot adapter: signing and the server clock, filters checked before anything is sent, the
order, OCO and cancel requests, duplicate client ids and unknown outcomes, sync reports, the error-code
table, rate limits (Retry-After, bans, request weight) and the user-data stream. Every HTTP answer is a
payload built from the spec, served by ``responses``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from django.core.exceptions import ImproperlyConfigured

from orders.brokers import BROKERS, get_broker, reset_broker_cache
from orders.brokers.binance import BinanceBroker, BinanceConfig, build_binance_broker
from orders.brokers.binance.mapping import (
    BinanceApiError,
    ErrorContext,
    binance_list_client_order_id,
    binance_signature,
    parse_binance_error,
    parse_binance_execution_report,
    parse_binance_status,
    to_binance_interval,
    to_binance_order,
    to_binance_query,
    to_binance_ws_subscribe,
)
from orders.brokers.binance.stream import BinanceUserStream
from orders.brokers.http import HttpClient
from orders.brokers.streams import reconnect_delay
from orders.brokers.types import AccountContext, BracketStrategy, OrderTicket, ReportKind, WorkingOrder
from orders.domain.account import account_figures
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import (
    InvalidRequest,
    InvalidValue,
    OrderNotFound,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
    Unsupported,
)
from orders.exits.strategy import choose_strategy
from tests.brokers.contract import NOW
from tests.builders import make_order_request

D = Decimal
BASE = "https://testnet.binance.vision"
PAYLOADS = Path(__file__).parent / "payloads"
NOW_MS = 1772463600000                     # tests.brokers.contract.NOW
SERVER_OFFSET_MS = 250                     # binance_market_time.json answers NOW + 250 ms
ENTRY = "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
SL = "6a1f0c2e-3b4d-4c5e-9f60-718293a4b5c6"
TP = "7b2e1d3f-4c5e-4d6f-8a71-8293a4b5c6d7"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


# -- builders --------------------------------------------------------------------------------------------

def payload(name: str, **changes):
    body = json.loads((PAYLOADS / f"binance_{name}.json").read_text())
    if changes:
        body.update(changes)
    return body


def error(name: str) -> dict:
    case = payload("errors_rest")[name]
    return {"status": case["status"], "json": case["body"], "headers": case.get("headers", {})}


def exchange_info(**symbol_changes) -> dict:
    body = payload("market_exchangeinfo")
    body["symbols"][0].update(symbol_changes)
    return body


def make_broker(*, at: float = NOW.timestamp(), sleeps: list | None = None, **config) -> BinanceBroker:
    sleeps = [] if sleeps is None else sleeps
    http = HttpClient(base_url=BASE, provider="binance_spot", sleep=sleeps.append)
    settings = {"api_key": API_KEY, "api_secret": SECRET, "base_url": BASE, **config}
    return BinanceBroker(BinanceConfig(**settings), http=http, clock=lambda: at)


def ticket(**changes) -> OrderTicket:
    fields = {"order_id": ENTRY, "client_order_id": "alice-1", "symbol": "BTCUSDT", "side": Side.BUY,
              "order_type": OrderType.LIMIT, "quantity": D("0.001"), "time_in_force": TimeInForce.GTC,
              "limit_price": D("60000.00")}
    fields.update(changes)
    return OrderTicket(**fields)


def exit_pair(side: Side = Side.SELL, **stop_changes) -> list[OrderTicket]:
    stop_price, take_price = (D("58000.00"), D("70000.00")) if side is Side.SELL else (D("70000.00"), D("58000.00"))
    stop = ticket(**{"order_id": SL, "side": side, "order_type": OrderType.STOP, "limit_price": None,
                     "stop_price": stop_price, "reduce_only": True, **stop_changes})
    take = ticket(order_id=TP, side=side, order_type=OrderType.LIMIT, limit_price=take_price, reduce_only=True)
    return [stop, take]


def working(**changes) -> WorkingOrder:
    fields = {"order_id": ENTRY, "symbol": "BTCUSDT", "side": Side.BUY, "order_type": OrderType.LIMIT,
              "quantity": D("0.001"), "filled_quantity": D("0"), "time_in_force": TimeInForce.GTC,
              "created_at": NOW, "limit_price": D("60000.00")}
    fields.update(changes)
    return WorkingOrder(**fields)


def request(**changes):
    fields = {"symbol": "BTCUSDT", "side": Side.BUY, "quantity": "0.001", "order_type": OrderType.LIMIT,
              "limit_price": "60000.00"}
    fields.update(changes)
    return make_order_request(**fields)


def context(position: str = "0") -> AccountContext:
    figures = account_figures(cash=D("100000"), holdings=[], currency="USDT")
    return AccountContext(figures=figures, position_quantity=D(position))


def sent(call) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(call.request.url).query, keep_blank_values=True))


def sent_pairs(call) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(call.request.url).query, keep_blank_values=True)


def calls(venue, method: str | None = None, path: str | None = None) -> list:
    return [c for c in venue.calls if (method is None or c.request.method == method)
            and (path is None or urlsplit(c.request.url).path == path)]


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/api/v3/time", json=payload("market_time"))
        rsps.get(f"{BASE}/api/v3/exchangeInfo", json=payload("market_exchangeinfo"))
        rsps.get(f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))
        yield rsps


@pytest.fixture
def broker() -> BinanceBroker:
    return make_broker()


# -- signing, the server clock, configuration ------------------------------------------------------------

def test_the_signature_matches_the_documented_example():
    query = ("symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000"
             "&timestamp=1499827319559")
    assert binance_signature(SECRET, query) == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_a_non_ascii_symbol_is_percent_encoded_before_signing_as_documented():
    query = to_binance_query([("symbol", "１２３４５６"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC"),
                              ("quantity", D("1")), ("price", D("0.1")), ("recvWindow", 5000),
                              ("timestamp", 1499827319559)])
    assert query.startswith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")
    assert binance_signature(SECRET, query) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"


def test_decimals_go_out_in_plain_notation_and_none_is_left_out():
    assert to_binance_query([("quantity", D("0.00001")), ("price", D("1E+2")), ("stopPrice", None),
                             ("flag", True)]) == "quantity=0.00001&price=100&flag=true"


def test_a_signed_request_carries_key_window_server_timestamp_and_a_valid_signature(venue, broker):
    venue.post(f"{BASE}/api/v3/order", json=payload("trade_order_new"))
    broker.submit_order(ticket())
    call = calls(venue, "POST", "/api/v3/order")[0]
    query = urlsplit(call.request.url).query
    unsigned, signature = query.rsplit("&signature=", 1)
    assert signature == binance_signature(SECRET, unsigned)
    assert call.request.headers["X-MBX-APIKEY"] == API_KEY
    assert sent(call)["recvWindow"] == "5000"
    assert sent(call)["timestamp"] == str(NOW_MS + SERVER_OFFSET_MS)       # our clock + the server's offset


def test_the_server_clock_is_measured_once_then_reused(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=payload("trade_order_query"))
    broker.sync([working()], now=NOW)
    broker.sync([working()], now=NOW)
    assert len(calls(venue, "GET", "/api/v3/time")) == 1
    assert broker.client.offset_ms == SERVER_OFFSET_MS


def test_a_timestamp_outside_recv_window_resyncs_the_clock_and_retries_once(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/time", json={"serverTime": NOW_MS + 250})
    venue.add(responses.GET, f"{BASE}/api/v3/time", json={"serverTime": NOW_MS + 3000})
    venue.post(f"{BASE}/api/v3/order", **error("timestamp"))
    venue.post(f"{BASE}/api/v3/order", json=payload("trade_order_new"))
    ack = broker.submit_order(ticket())
    posts = calls(venue, "POST", "/api/v3/order")
    assert ack.broker_order_id == "28457190"
    assert len(posts) == 2 and len(calls(venue, "GET", "/api/v3/time")) == 2
    assert sent(posts[0])["timestamp"] == str(NOW_MS + 250)
    assert sent(posts[1])["timestamp"] == str(NOW_MS + 3000)


def test_a_timestamp_refused_twice_is_a_provider_error(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("timestamp"))
    with pytest.raises(ProviderError):
        broker.submit_order(ticket())
    assert len(calls(venue, "POST", "/api/v3/order")) == 2


def test_status_reports_latency_and_a_failure_as_disconnected(venue, broker):
    assert broker.status(now=NOW).connected
    venue.replace(responses.GET, f"{BASE}/api/v3/time", **error("unavailable"))
    assert not broker.status(now=NOW).connected


def test_missing_environment_variables_are_all_listed(monkeypatch):
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured) as raised:
        build_binance_broker()
    text = str(raised.value)
    assert "GATEWAY_PROVIDER=binance_spot" in text
    assert "BINANCE_API_KEY: NOT SET" in text and "BINANCE_API_SECRET: NOT SET" in text


def test_one_missing_variable_is_named_and_the_other_shown_as_set(monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured, match="BINANCE_API_KEY: set\n  BINANCE_API_SECRET: NOT SET"):
        build_binance_broker()


def test_the_factory_uses_testnet_and_a_5_second_window_by_default(monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    monkeypatch.delenv("BINANCE_BASE_URL", raising=False)
    monkeypatch.delenv("BINANCE_RECV_WINDOW", raising=False)
    broker = build_binance_broker()
    assert (broker.config.base_url, broker.config.recv_window) == ("https://testnet.binance.vision", 5000)
    assert "api_secret" not in repr(broker.config)


@pytest.mark.parametrize("value", ["abc", "0", "60001"])
def test_a_bad_recv_window_is_refused_at_start(monkeypatch, value):
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    monkeypatch.setenv("BINANCE_RECV_WINDOW", value)
    with pytest.raises(ImproperlyConfigured, match="BINANCE_RECV_WINDOW"):
        build_binance_broker()


def test_the_registry_builds_it_as_binance_spot(monkeypatch):
    monkeypatch.setenv("BINANCE_API_KEY", "k")
    monkeypatch.setenv("BINANCE_API_SECRET", "s")
    reset_broker_cache()
    try:
        broker = get_broker("binance_spot")
    finally:
        reset_broker_cache()
    assert BROKERS["binance_spot"] == "orders.brokers.binance.build_binance_broker"
    assert isinstance(broker, BinanceBroker) and broker.name == "binance_spot" and not broker.answers_at_once


# -- capabilities ----------------------------------------------------------------------------------------

def test_capabilities_say_native_oco_and_no_trailing_stops(broker):
    caps = broker.capabilities
    assert caps.bracket_strategy is BracketStrategy.NATIVE_OCO
    assert broker.one_resting_exit and broker.venue_ledger and broker.deadman_seconds == 0
    assert {"oco", "post_only", "get_quote"} <= set(caps.features)
    assert "bracket_orders" not in caps.features and "trailing_stop" not in caps.features
    assert OrderType.TRAILING_STOP not in caps.supported_order_types
    assert choose_strategy(caps, request(stop_loss="58000", take_profit="70000")) == "native_oco"
    assert choose_strategy(caps, request(stop_loss="58000")) == "pending"


# -- symbol rules and the checks made before anything is sent --------------------------------------------

def test_the_instrument_comes_from_the_symbol_filters(venue, broker):
    instrument = broker.instrument("BTCUSDT")
    assert (instrument.tick_size, instrument.quantity_step, instrument.min_quantity) == (
        D("0.01"), D("0.00001"), D("0.00001"))
    assert instrument.min_notional == D("5") and instrument.quote_currency == "USDT"
    assert not instrument.can_short and not instrument.halted


def test_symbol_rules_are_cached_and_fetched_again_after_their_ttl(venue):
    moments = [NOW.timestamp()]
    broker = BinanceBroker(BinanceConfig(api_key="k", api_secret="s", base_url=BASE, rules_ttl=600),
                           http=HttpClient(base_url=BASE, provider="binance_spot", sleep=lambda s: None),
                           clock=lambda: moments[-1])
    broker.instrument("BTCUSDT")
    broker.instrument("BTCUSDT")
    assert len(calls(venue, "GET", "/api/v3/exchangeInfo")) == 1
    moments.append(NOW.timestamp() + 601)
    broker.instrument("BTCUSDT")
    assert len(calls(venue, "GET", "/api/v3/exchangeInfo")) == 2


def test_the_weight_limit_is_read_from_exchange_info(venue, broker):
    body = payload("market_exchangeinfo")
    body["rateLimits"][0]["limit"] = 1200
    venue.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=body)
    broker.instrument("BTCUSDT")
    assert broker.client.weight_limit == 1200


def test_an_unknown_symbol_is_not_found_for_data_and_not_tradeable_for_orders(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", **error("invalid_symbol"))
    with pytest.raises(SymbolNotFound):
        broker.instrument("NOPEUSDT")
    with pytest.raises(OrderRejected) as raised:
        broker.check_order(request(symbol="NOPEUSDT"), context=context(), now=NOW)
    assert raised.value.reason == "SYMBOL_NOT_TRADEABLE"


def test_a_symbol_that_is_not_trading_is_refused(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=exchange_info(status="BREAK"))
    with pytest.raises(OrderRejected) as raised:
        broker.check_order(request(), context=context(), now=NOW)
    assert raised.value.reason == "SYMBOL_NOT_TRADEABLE" and raised.value.details["reason"] == "break"


def test_an_acceptable_order_returns_its_reference_price(venue, broker):
    assert broker.check_order(request(), context=context(), now=NOW) == D("60000.00")
    assert broker.check_order(request(order_type=OrderType.MARKET, limit_price=None), context=context(),
                              now=NOW) == D("67250.11")            # a market buy takes the ask


@pytest.mark.parametrize(("changes", "reason", "details"), [
    ({"quantity": "0.000001"}, "INVALID_QUANTITY", {"filter": "LOT_SIZE", "min_quantity": "0.00001"}),
    ({"quantity": "0.000015"}, "INVALID_QUANTITY", {"filter": "LOT_SIZE", "quantity_step": "0.00001"}),
    ({"quantity": "9001"}, "INVALID_QUANTITY", {"filter": "LOT_SIZE", "max_quantity": "9000"}),
    ({"order_type": OrderType.MARKET, "limit_price": None, "quantity": "84"}, "INVALID_QUANTITY",
     {"filter": "MARKET_LOT_SIZE", "max_quantity": "83"}),
    ({"limit_price": "60000.005"}, "INVALID_PRICE", {"filter": "PRICE_FILTER", "tick_size": "0.01"}),
    ({"limit_price": "1000000.01"}, "INVALID_PRICE", {"filter": "PRICE_FILTER", "max_price": "1000000"}),
    ({"limit_price": "340000.00"}, "INVALID_PRICE", {"filter": "PERCENT_PRICE_BY_SIDE", "field": "limit_price"}),
    ({"limit_price": "13000.00"}, "INVALID_PRICE", {"filter": "PERCENT_PRICE_BY_SIDE", "field": "limit_price"}),
    ({"quantity": "0.00005"}, "INVALID_QUANTITY", {"filter": "NOTIONAL", "min_notional": "5"}),
    ({"stop_loss": "58000.001", "take_profit": "70000"}, "INVALID_PRICE",
     {"filter": "PRICE_FILTER", "field": "stop_loss"}),
    ({"quantity": "0.0001", "stop_loss": "40000", "take_profit": "70000"}, "INVALID_QUANTITY",
     {"filter": "NOTIONAL", "field": "stop_loss"}),
    ({"post_only": True, "limit_price": "67250.11"}, "POST_ONLY_VIOLATED", {"ask": "67250.11"}),
    ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": "67000.00"}, "INVALID_PRICE",
     {"field": "stop_price"}),
    ({"side": Side.SELL, "reduce_only": True}, "REDUCE_ONLY_VIOLATED", {"position_quantity": "0"}),
])
def test_a_filter_breach_is_rejected_before_any_order_is_sent(venue, broker, changes, reason, details):
    with pytest.raises(OrderRejected) as raised:
        broker.check_order(request(**changes), context=context(), now=NOW)
    assert raised.value.reason == reason and raised.value.status == 422
    assert details.items() <= raised.value.details.items()
    assert not calls(venue, "POST") and not calls(venue, path="/api/v3/order")


def test_a_sell_that_reduces_the_position_passes_the_reduce_only_check(venue, broker):
    broker.check_order(request(side=Side.SELL, reduce_only=True, limit_price="68000.00"), context=context("0.002"),
                       now=NOW)


def test_a_trailing_stop_is_unsupported_before_any_request(venue, broker):
    with pytest.raises(Unsupported) as raised:
        broker.check_order(request(order_type=OrderType.TRAILING_STOP, limit_price=None, trailing_distance=D("1"),
                                   trailing_type="PERCENT"), context=context(), now=NOW)
    assert raised.value.status == 501 and raised.value.code == "UNSUPPORTED_OPERATION"
    with pytest.raises(Unsupported):
        broker.submit_order(ticket(order_type=OrderType.TRAILING_STOP, limit_price=None, trailing_distance=D("1")))
    assert not venue.calls


def test_day_orders_are_an_invalid_value_on_binance(venue, broker):
    with pytest.raises(InvalidValue, match="GTC, IOC or FOK"):
        broker.check_order(request(time_in_force=TimeInForce.DAY), context=context(), now=NOW)


def test_an_order_type_the_symbol_does_not_allow_is_unsupported(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo",
                  json=exchange_info(orderTypes=["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"]))
    with pytest.raises(Unsupported, match="STOP_LOSS orders on BTCUSDT"):
        broker.check_order(request(order_type=OrderType.STOP, limit_price=None, stop_price="70000.00"),
                           context=context(), now=NOW)


def test_exits_on_a_symbol_without_oco_go_separately_so_the_desk_can_watch_the_take_profit(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/exchangeInfo", json=exchange_info(ocoAllowed=False))
    bracket = request(stop_loss="58000", take_profit="70000")
    broker.check_order(bracket, context=context(), now=NOW)
    assert broker.bracket_strategy_for(bracket) is BracketStrategy.PENDING
    assert choose_strategy(broker.capabilities, bracket, broker) == "pending"


def test_exits_on_a_symbol_with_oco_go_as_one_order_list(venue, broker):
    bracket = request(stop_loss="58000", take_profit="70000")
    assert broker.bracket_strategy_for(bracket) is BracketStrategy.NATIVE_OCO
    assert broker.bracket_strategy_for(request(stop_loss="58000")) is BracketStrategy.NATIVE_OCO
    assert choose_strategy(broker.capabilities, request(stop_loss="58000"), broker) == "pending"


# -- orders ----------------------------------------------------------------------------------------------

def test_a_limit_order_request_has_the_documented_shape(venue, broker):
    venue.post(f"{BASE}/api/v3/order", json=payload("trade_order_new"))
    ack = broker.submit_order(ticket())
    names = [name for name, _ in sent_pairs(calls(venue, "POST", "/api/v3/order")[0])]
    assert names == ["symbol", "side", "type", "timeInForce", "quantity", "price", "newClientOrderId",
                     "newOrderRespType", "recvWindow", "timestamp", "signature"]
    params = sent(calls(venue, "POST", "/api/v3/order")[0])
    assert params["quantity"] == "0.001" and params["price"] == "60000"       # plain, no exponent
    assert params["newClientOrderId"] == ENTRY                              # our order id
    assert (ack.broker_order_id, ack.status) == ("28457190", OrderStatus.OPEN)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"order_type": OrderType.MARKET, "limit_price": None},
     {"type": "MARKET"}),
    ({"time_in_force": TimeInForce.IOC},
     {"type": "LIMIT", "timeInForce": "IOC", "price": "60000"}),
    ({"post_only": True},
     {"type": "LIMIT_MAKER", "price": "60000"}),
    ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("70000.50")},
     {"type": "STOP_LOSS", "stopPrice": "70000.5"}),
    ({"order_type": OrderType.STOP_LIMIT, "limit_price": D("70100"), "stop_price": D("70000")},
     {"type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "price": "70100", "stopPrice": "70000"}),
])
def test_order_types_map_to_binance_types(changes, expected):
    params = dict(parse_qsl(to_binance_query(to_binance_order(ticket(**changes)))))
    priced = {"timeInForce", "price", "stopPrice"}
    assert {k: v for k, v in params.items() if k in priced | {"type"}} == expected
    assert params["quantity"] == "0.001" and params["newClientOrderId"] == ENTRY


def test_an_ack_never_claims_a_fill_the_desk_has_not_recorded(venue, broker):
    venue.post(f"{BASE}/api/v3/order", json=payload("trade_order_new", status="FILLED", executedQty="0.00100000"))
    assert broker.submit_order(ticket(order_type=OrderType.MARKET, limit_price=None)).status is OrderStatus.OPEN


def test_a_cancel_names_the_order_by_our_id(venue, broker):
    venue.delete(f"{BASE}/api/v3/order", json=payload("trade_order_cancel"))
    broker.cancel_order(ticket())
    params = sent(calls(venue, "DELETE", "/api/v3/order")[0])
    assert (params["symbol"], params["origClientOrderId"]) == ("BTCUSDT", ENTRY)


def test_cancelling_an_unknown_order_is_order_not_found(venue, broker):
    venue.delete(f"{BASE}/api/v3/order", **error("unknown_order"))
    with pytest.raises(OrderNotFound) as raised:
        broker.cancel_order(ticket())
    assert raised.value.details["id"] == ENTRY


def test_modify_is_unsupported(broker):
    with pytest.raises(Unsupported):
        broker.modify_order(ticket(), limit_price=D("61000"))


# -- duplicate client ids and unknown outcomes -----------------------------------------------------------

def test_a_duplicate_client_id_answers_with_the_existing_order(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("duplicate_order"))
    venue.get(f"{BASE}/api/v3/order", json=payload("trade_order_query"))
    ack = broker.submit_order(ticket())
    assert ack.broker_order_id == "28457190"
    assert len(calls(venue, "POST", "/api/v3/order")) == 1
    assert sent(calls(venue, "GET", "/api/v3/order")[0])["origClientOrderId"] == ENTRY


def test_a_5xx_on_submit_looks_the_order_up_instead_of_sending_it_again(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("unavailable"))
    venue.get(f"{BASE}/api/v3/order", json=payload("trade_order_query", status="FILLED"))
    ack = broker.submit_order(ticket(order_type=OrderType.MARKET, limit_price=None))
    assert ack.broker_order_id == "28457190"
    assert len(calls(venue, "POST", "/api/v3/order")) == 1      # a filled MARKET order is never sent twice


def test_no_answer_and_no_such_order_sends_it_once_more(venue, broker):
    venue.post(f"{BASE}/api/v3/order", body=requests.ConnectionError("reset by peer"))
    venue.post(f"{BASE}/api/v3/order", json=payload("trade_order_new"))
    venue.get(f"{BASE}/api/v3/order", **error("no_such_order"))
    assert broker.submit_order(ticket()).broker_order_id == "28457190"
    assert len(calls(venue, "POST", "/api/v3/order")) == 2


def test_a_backend_timeout_then_a_duplicate_on_resend_finds_the_first_order(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("timeout"))
    venue.post(f"{BASE}/api/v3/order", **error("duplicate_order"))
    venue.get(f"{BASE}/api/v3/order", **error("no_such_order"))
    venue.get(f"{BASE}/api/v3/order", json=payload("trade_order_query"))
    assert broker.submit_order(ticket()).broker_order_id == "28457190"
    assert len(calls(venue, "POST", "/api/v3/order")) == 2


def test_an_unknown_outcome_that_cannot_be_looked_up_stays_unknown(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("unavailable"))
    venue.get(f"{BASE}/api/v3/order", **error("unavailable"))
    with pytest.raises(ProviderUnavailable):
        broker.submit_order(ticket())
    assert len(calls(venue, "POST", "/api/v3/order")) == 1


def test_a_definite_refusal_is_not_retried(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("insufficient_balance"))
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(ticket())
    assert raised.value.reason == "INSUFFICIENT_BALANCE"
    assert raised.value.details["code"] == -2010
    assert len(venue.calls) == 2 and not calls(venue, "GET", "/api/v3/order")       # time + one POST


# -- OCO -------------------------------------------------------------------------------------------------

def test_a_sell_oco_puts_the_take_profit_above_and_the_stop_below(venue, broker):
    pair = exit_pair()
    list_id = binance_list_client_order_id(pair)
    venue.post(f"{BASE}/api/v3/orderList/oco", json=payload("trade_orderlist_oco"))
    acks = broker.submit_oco(pair)
    assert payload("trade_orderlist_oco")["listClientOrderId"] == list_id
    params = sent(calls(venue, "POST", "/api/v3/orderList/oco")[0])
    assert {k: v for k, v in params.items() if k not in ("timestamp", "signature")} == {
        "symbol": "BTCUSDT", "listClientOrderId": list_id, "side": "SELL", "quantity": "0.001",
        "aboveType": "LIMIT_MAKER", "aboveClientOrderId": TP, "abovePrice": "70000",
        "belowType": "STOP_LOSS", "belowClientOrderId": SL, "belowStopPrice": "58000",
        "newOrderRespType": "RESULT", "recvWindow": "5000"}
    assert [(a.broker_order_id, a.status) for a in acks] == [("28457301", OrderStatus.OPEN),
                                                            ("28457302", OrderStatus.OPEN)]


def test_the_list_client_id_is_stable_short_and_distinct_from_the_legs():
    pair = exit_pair()
    list_id = binance_list_client_order_id(pair)
    assert list_id == binance_list_client_order_id(list(reversed(pair)))
    assert len(list_id) <= 36 and list_id not in (SL, TP)


def test_a_buy_oco_puts_the_stop_above_and_the_take_profit_below(venue, broker):
    venue.post(f"{BASE}/api/v3/orderList/oco", json=payload("trade_orderlist_oco"))
    broker.submit_oco(exit_pair(Side.BUY))
    params = sent(calls(venue, "POST", "/api/v3/orderList/oco")[0])
    assert (params["aboveType"], params["aboveStopPrice"], params["aboveClientOrderId"]) == ("STOP_LOSS", "70000", SL)
    assert (params["belowType"], params["belowPrice"], params["belowClientOrderId"]) == ("LIMIT_MAKER", "58000", TP)


def test_a_stop_limit_leg_becomes_stop_loss_limit_with_price_and_time_in_force(venue, broker):
    venue.post(f"{BASE}/api/v3/orderList/oco", json=payload("trade_orderlist_oco"))
    broker.submit_oco(exit_pair(order_type=OrderType.STOP_LIMIT, limit_price=D("57900")))
    params = sent(calls(venue, "POST", "/api/v3/orderList/oco")[0])
    assert (params["belowType"], params["belowPrice"], params["belowStopPrice"], params["belowTimeInForce"]) == (
        "STOP_LOSS_LIMIT", "57900", "58000", "GTC")


def test_a_pair_binance_cannot_link_is_refused_without_a_request(venue, broker):
    stop, take = exit_pair()
    with pytest.raises(InvalidRequest):
        broker.submit_oco([take, replace(stop, order_type=OrderType.LIMIT, limit_price=D("58000"))])
    with pytest.raises(InvalidRequest):
        broker.submit_oco([stop, replace(take, quantity=D("0.002"))])
    assert not venue.calls


def test_a_duplicate_oco_answers_with_the_existing_list(venue, broker):
    pair = exit_pair()
    venue.post(f"{BASE}/api/v3/orderList/oco", **error("duplicate_order"))
    venue.get(f"{BASE}/api/v3/orderList", json=payload("trade_orderlist_query"))
    acks = broker.submit_oco(pair)
    assert [a.broker_order_id for a in acks] == ["28457301", "28457302"]
    assert sent(calls(venue, "GET", "/api/v3/orderList")[0])["origClientOrderId"] == binance_list_client_order_id(pair)


def test_oco_prices_in_the_wrong_order_are_an_invalid_price(venue, broker):
    venue.post(f"{BASE}/api/v3/orderList/oco", **error("oco_prices"))
    with pytest.raises(OrderRejected) as raised:
        broker.submit_oco(exit_pair())
    assert raised.value.reason == "INVALID_PRICE"


# -- sync ------------------------------------------------------------------------------------------------

def order_state(**changes) -> dict:
    return payload("trade_order_query", **changes)


def test_an_open_order_reports_nothing(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state())
    assert broker.sync([working()], now=NOW) == []
    assert sent(calls(venue, "GET", "/api/v3/order")[0])["origClientOrderId"] == ENTRY


def test_a_partial_fill_is_reported_from_the_trade_list_with_its_exact_figures(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="PARTIALLY_FILLED", executedQty="0.00040000",
                                                       cummulativeQuoteQty="24.00000000"))
    venue.get(f"{BASE}/api/v3/myTrades", json=payload("trade_mytrades")[:1])
    [fill] = broker.sync([working()], now=NOW)
    assert (fill.kind, fill.order_id, fill.fill_id) == (ReportKind.FILL, ENTRY, "BTCUSDT:3917265")
    assert (fill.quantity, fill.price, fill.commission, fill.commission_currency) == (
        D("0.0004"), D("60000"), D("0.0000004"), "BTC")
    assert fill.is_maker and fill.timestamp == NOW + timedelta(seconds=30)
    assert sent(calls(venue, "GET", "/api/v3/myTrades")[0])["orderId"] == "28457190"


def test_only_the_growth_beyond_what_is_recorded_is_reported(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="FILLED", executedQty="0.00100000",
                                                       cummulativeQuoteQty="59.99999400"))
    venue.get(f"{BASE}/api/v3/myTrades", json=payload("trade_mytrades"))
    reports = broker.sync([working(filled_quantity=D("0.0004"))], now=NOW)
    assert [(r.fill_id, r.quantity, r.price) for r in reports] == [("BTCUSDT:3917288", D("0.0006"), D("59999.99"))]


def test_nothing_new_executed_asks_for_no_trades(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="PARTIALLY_FILLED", executedQty="0.00040000"))
    assert broker.sync([working(filled_quantity=D("0.0004"))], now=NOW) == []
    assert not calls(venue, "GET", "/api/v3/myTrades")


def test_a_cancel_after_fills_the_trade_list_lags_on_reports_every_quantity_then_the_cancel(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="CANCELED", executedQty="0.00100000",
                                                       cummulativeQuoteQty="59.99999400"))
    venue.get(f"{BASE}/api/v3/myTrades", json=payload("trade_mytrades")[:1])
    reports = broker.sync([working()], now=NOW)
    assert [r.kind for r in reports] == [ReportKind.FILL, ReportKind.FILL, ReportKind.CANCELLED]
    estimated = reports[1]
    assert estimated.quantity == D("0.0006") and estimated.price == D("59999.99")
    assert estimated.extra["estimated"] and estimated.fill_id == "BTCUSDT:order-28457190:0.001"
    assert sum(r.quantity for r in reports) == D("0.001")


def test_a_filled_order_whose_trades_lag_is_completed_from_its_cumulative_figures(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="FILLED", executedQty="0.00100000",
                                                       cummulativeQuoteQty="59.99999400"))
    venue.get(f"{BASE}/api/v3/myTrades", json=[])
    [fill] = broker.sync([working()], now=NOW)
    assert (fill.quantity, fill.price) == (D("0.001"), D("59.999994") / D("0.001"))


def test_the_fill_of_an_oco_winner_comes_before_the_cancel_of_its_sibling(venue, broker):
    """Were the sibling's cancel applied first, the desk would see an unprotected position and re-place it."""
    stop_leg = working(order_id=SL, side=Side.SELL, order_type=OrderType.STOP, limit_price=None,
                       stop_price=D("58000"))
    take_leg = working(order_id=TP, side=Side.SELL, limit_price=D("70000"))
    venue.get(f"{BASE}/api/v3/order", json=order_state(clientOrderId=SL, orderId=28457301, orderListId=1042,
                                                       status="EXPIRED", type="STOP_LOSS", side="SELL"),
              match=[responses.matchers.query_param_matcher({"origClientOrderId": SL}, strict_match=False)])
    venue.get(f"{BASE}/api/v3/order", json=order_state(clientOrderId=TP, orderId=28457302, orderListId=1042,
                                                       status="FILLED", executedQty="0.00100000",
                                                       cummulativeQuoteQty="70.00000000", side="SELL"),
              match=[responses.matchers.query_param_matcher({"origClientOrderId": TP}, strict_match=False)])
    venue.get(f"{BASE}/api/v3/myTrades", json=[{
        "symbol": "BTCUSDT", "id": 3917400, "orderId": 28457302, "orderListId": 1042, "price": "70000.00000000",
        "qty": "0.00100000", "quoteQty": "70.00000000", "commission": "0.07000000", "commissionAsset": "USDT",
        "time": NOW_MS + 90000, "isBuyer": False, "isMaker": True, "isBestMatch": True}])
    reports = broker.sync([stop_leg, take_leg], now=NOW)
    assert [(r.order_id, r.kind) for r in reports] == [(TP, ReportKind.FILL), (SL, ReportKind.CANCELLED)]
    assert reports[1].reason == "OCO sibling filled"


@pytest.mark.parametrize(("changes", "kind", "reason"), [
    ({"status": "CANCELED"}, ReportKind.CANCELLED, "cancelled at the venue"),
    ({"status": "EXPIRED", "orderListId": 1042}, ReportKind.CANCELLED, "OCO sibling filled"),
    ({"status": "EXPIRED", "orderListId": 1042, "expiryReason": "OCO_TRIGGER"}, ReportKind.CANCELLED,
     "OCO sibling filled"),
    ({"status": "EXPIRED", "timeInForce": "IOC"}, ReportKind.EXPIRED, "expired at the venue (time in force)"),
    ({"status": "EXPIRED_IN_MATCH"}, ReportKind.EXPIRED, "expired by self-trade prevention"),
    ({"status": "REJECTED"}, ReportKind.REJECTED, "rejected by the venue"),
])
def test_an_ended_order_is_reported_once_with_its_reason(venue, broker, changes, kind, reason):
    venue.get(f"{BASE}/api/v3/order", json=order_state(**changes))
    [report] = broker.sync([working()], now=NOW)
    assert (report.kind, report.reason) == (kind, reason)


def test_a_triggered_stop_reports_its_state(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(type="STOP_LOSS_LIMIT", stopPrice="70000.00000000"))
    [report] = broker.sync([working(order_type=OrderType.STOP_LIMIT, stop_price=D("70000"))], now=NOW)
    assert report.kind is ReportKind.STATE and report.triggered


def test_an_order_the_venue_never_got_is_rejected_once_the_window_has_passed(venue, broker):
    venue.get(f"{BASE}/api/v3/order", **error("no_such_order"))
    assert broker.sync([working()], now=NOW + timedelta(seconds=10)) == []          # it may still arrive
    [report] = broker.sync([working()], now=NOW + timedelta(minutes=5))
    assert report.kind is ReportKind.REJECTED and "never arrived" in report.reason


def test_a_partly_filled_order_the_venue_forgot_is_cancelled(venue, broker):
    venue.get(f"{BASE}/api/v3/order", **error("no_such_order"))
    [report] = broker.sync([working(filled_quantity=D("0.0004"))], now=NOW + timedelta(minutes=5))
    assert report.kind is ReportKind.CANCELLED


def test_an_archived_order_is_cancelled(venue, broker):
    venue.get(f"{BASE}/api/v3/order", **error("archived"))
    [report] = broker.sync([working()], now=NOW)
    assert report.kind is ReportKind.CANCELLED


def test_an_outage_before_any_report_fails_the_sync(venue, broker):
    venue.get(f"{BASE}/api/v3/order", **error("unavailable"))
    with pytest.raises(ProviderUnavailable):
        broker.sync([working()], now=NOW)


def test_one_order_the_venue_cannot_answer_for_does_not_block_the_others(venue, broker):
    other = "1c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f"
    venue.get(f"{BASE}/api/v3/order", **error("internal"),
              match=[responses.matchers.query_param_matcher({"origClientOrderId": ENTRY}, strict_match=False)])
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="CANCELED", clientOrderId=other),
              match=[responses.matchers.query_param_matcher({"origClientOrderId": other}, strict_match=False)])
    reports = broker.sync([working(), working(order_id=other)], now=NOW)
    assert [(r.order_id, r.kind) for r in reports] == [(other, ReportKind.CANCELLED)]


@pytest.mark.parametrize(("status", "executed", "expected"), [
    ("PENDING_NEW", "0", OrderStatus.PENDING),
    ("NEW", "0", OrderStatus.OPEN),
    ("PARTIALLY_FILLED", "0.5", OrderStatus.PARTIALLY_FILLED),
    ("FILLED", "1", OrderStatus.FILLED),
    ("CANCELED", "0", OrderStatus.CANCELLED),
    ("PENDING_CANCEL", "0", OrderStatus.OPEN),
    ("PENDING_CANCEL", "0.5", OrderStatus.PARTIALLY_FILLED),
    ("REJECTED", "0", OrderStatus.REJECTED),
    ("EXPIRED", "0", OrderStatus.EXPIRED),
    ("EXPIRED_IN_MATCH", "0", OrderStatus.EXPIRED),
    ("SOMETHING_NEW", "0", OrderStatus.OPEN),
])
def test_the_status_table(status, executed, expected):
    assert parse_binance_status(status, executed=D(executed)) is expected


# -- market data -----------------------------------------------------------------------------------------

def test_a_quote_has_decimal_prices_and_sizes(venue, broker):
    quote = broker.quote("BTCUSDT", now=NOW)
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (D("67250.1"), D("67250.11"), D("1.234"),
                                                                      D("0.5"))
    assert quote.last == (quote.bid + quote.ask) / 2 and quote.provider == "binance_spot"
    assert sent(calls(venue, "GET", "/api/v3/ticker/bookTicker")[0]) == {"symbol": "BTCUSDT"}


def test_a_quote_for_an_unknown_symbol_is_symbol_not_found(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", **error("invalid_symbol"))
    with pytest.raises(SymbolNotFound):
        broker.quote("NOPEUSDT", now=NOW)


def test_bars_come_from_klines_oldest_first(venue, broker):
    venue.get(f"{BASE}/api/v3/klines", json=payload("market_klines"))
    bars = broker.bars("BTCUSDT", timeframe="1m", seconds=60, end=NOW, count=6)
    params = sent(calls(venue, "GET", "/api/v3/klines")[0])
    assert params == {"symbol": "BTCUSDT", "interval": "1m", "endTime": str(NOW_MS), "limit": "6"}
    assert [b.timestamp for b in bars] == [NOW - timedelta(minutes=5 - i) for i in range(6)]
    assert bars[-1].close == D("67262") and isinstance(bars[0].volume, Decimal)


def test_two_minute_bars_are_built_from_one_minute_klines(venue, broker):
    venue.get(f"{BASE}/api/v3/klines", json=payload("market_klines"))
    bars = broker.bars("BTCUSDT", timeframe="2m", seconds=120, end=NOW, count=2)
    assert sent(calls(venue, "GET", "/api/v3/klines")[0])["limit"] == "5"
    rows = payload("market_klines")
    first = bars[0]                                     # 14:58 and 14:59
    assert first.timestamp == NOW - timedelta(minutes=2) and first.timeframe == "2m"
    assert (first.open, first.close) == (D(rows[3][1]), D(rows[4][4]))
    assert first.high == max(D(rows[3][2]), D(rows[4][2])) and first.volume == D(rows[3][5]) + D(rows[4][5])
    assert bars[1].timestamp == NOW                     # the bar in progress


def test_more_than_a_thousand_klines_are_fetched_backwards_page_by_page(venue, broker):
    def klines(req):
        params = dict(parse_qsl(urlsplit(req.url).query))
        end, limit = int(params["endTime"]), int(params["limit"])
        start = end // 60000 * 60000
        rows = [[start - i * 60000, "1", "2", "0.5", "1.5", "10", start - i * 60000 + 59999, "15", 5, "4", "6", "0"]
                for i in reversed(range(limit))]
        return 200, {}, json.dumps(rows)

    venue.add_callback(responses.GET, f"{BASE}/api/v3/klines", callback=klines)
    bars = broker.bars("BTCUSDT", timeframe="1m", seconds=60, end=NOW, count=1500)
    limits = [sent(c)["limit"] for c in calls(venue, "GET", "/api/v3/klines")]
    assert limits == ["1000", "500"] and len(bars) == 1500
    assert bars[-1].timestamp == NOW and bars[0].timestamp == NOW - timedelta(minutes=1499)
    assert len({b.timestamp for b in bars}) == 1500


@pytest.mark.parametrize(("timeframe", "expected"), [
    ("1m", ("1m", 1)), ("5m", ("5m", 1)), ("15m", ("15m", 1)), ("1h", ("1h", 1)), ("4h", ("4h", 1)),
    ("12h", ("12h", 1)), ("1d", ("1d", 1)), ("1w", ("1w", 1)), ("2m", ("1m", 2)), ("10m", ("5m", 2)),
])
def test_timeframes_map_to_binance_intervals(timeframe, expected):
    assert to_binance_interval(timeframe) == expected


def test_a_timeframe_binance_cannot_build_is_an_invalid_value():
    with pytest.raises(InvalidValue):
        to_binance_interval("7m")


# -- the error-code table --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "error_type", "reason"), [
    ("insufficient_balance", OrderRejected, "INSUFFICIENT_BALANCE"),
    ("market_closed", OrderRejected, "MARKET_CLOSED"),
    ("would_match", OrderRejected, "POST_ONLY_VIOLATED"),
    ("would_trigger", OrderRejected, "INVALID_PRICE"),
    ("oco_prices", OrderRejected, "INVALID_PRICE"),
    ("lot_size", OrderRejected, "INVALID_QUANTITY"),
    ("market_lot_size", OrderRejected, "INVALID_QUANTITY"),
    ("min_notional", OrderRejected, "INVALID_QUANTITY"),
    ("notional", OrderRejected, "INVALID_QUANTITY"),
    ("price_filter", OrderRejected, "INVALID_PRICE"),
    ("percent_price", OrderRejected, "INVALID_PRICE"),
    ("percent_price_by_side", OrderRejected, "INVALID_PRICE"),
    ("bad_precision", OrderRejected, "INVALID_QUANTITY"),
    ("sell_oco_stop", OrderRejected, "INVALID_PRICE"),
    ("invalid_symbol", OrderRejected, "SYMBOL_NOT_TRADEABLE"),
    ("unknown_order", OrderNotFound, "ORDER_NOT_FOUND"),
    ("no_such_order", OrderNotFound, "ORDER_NOT_FOUND"),
    ("bad_signature", Unauthorized, "UNAUTHORIZED"),
    ("bad_key_format", Unauthorized, "UNAUTHORIZED"),
    ("rejected_key", Unauthorized, "UNAUTHORIZED"),
    ("too_much_weight", RateLimited, "RATE_LIMITED"),
    ("too_many_orders", RateLimited, "RATE_LIMITED"),
    ("ip_banned", RateLimited, "RATE_LIMITED"),
    ("server_busy", ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    ("unavailable", ProviderUnavailable, "PROVIDER_UNAVAILABLE"),
    ("internal", ProviderError, "PROVIDER_ERROR"),
    ("unsupported", Unsupported, "UNSUPPORTED_OPERATION"),
])
def test_every_mapped_binance_error(name, error_type, reason):
    case = payload("errors_rest")[name]
    raw = BinanceApiError(status=case["status"], code=case["body"]["code"], msg=case["body"]["msg"],
                          retry_after=float(case.get("headers", {}).get("Retry-After", 0)) or None)
    mapped = parse_binance_error(raw, context=ErrorContext.ORDER, symbol="BTCUSDT", order_id=ENTRY)
    assert type(mapped) is error_type and mapped.code == reason


def test_a_filter_failure_names_the_filter_and_keeps_binance_code_and_message():
    raw = BinanceApiError(status=400, code=-1013, msg="Filter failure: LOT_SIZE")
    mapped = parse_binance_error(raw, context=ErrorContext.ORDER)
    assert mapped.details == {"reject_code": "INVALID_QUANTITY", "code": -1013, "msg": "Filter failure: LOT_SIZE",
                              "filter": "LOT_SIZE"}


def test_an_unclassified_refusal_of_an_order_is_still_a_definite_rejection():
    raw = BinanceApiError(status=400, code=-1102, msg="Mandatory parameter 'price' was not sent.")
    assert isinstance(parse_binance_error(raw, context=ErrorContext.ORDER), OrderRejected)
    assert isinstance(parse_binance_error(raw, context=ErrorContext.MARKET), ProviderError)


def test_auth_errors_carry_the_binance_code():
    raw = BinanceApiError(status=401, code=-2015, msg="Invalid API-key, IP, or permissions for action.")
    assert parse_binance_error(raw, context=ErrorContext.LOOKUP).details == {"code": "-2015"}


# -- rate limits -----------------------------------------------------------------------------------------

def test_a_429_is_retried_after_its_retry_after(venue):
    sleeps = []
    broker = make_broker(sleeps=sleeps)
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", **error("too_much_weight"))
    venue.add(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))
    assert broker.quote("BTCUSDT", now=NOW).bid == D("67250.1")
    assert sleeps == [7.0]


def test_a_503_is_retried_after_its_retry_after(venue):
    sleeps = []
    broker = make_broker(sleeps=sleeps)
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", status=503, json={"code": -1001, "msg": "x"},
                  headers={"Retry-After": "1"})
    venue.add(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))
    broker.quote("BTCUSDT", now=NOW)
    assert sleeps == [1.0]


def test_a_new_order_is_never_retried_on_a_429(venue, broker):
    venue.post(f"{BASE}/api/v3/order", **error("too_many_orders"))
    with pytest.raises(RateLimited) as raised:
        broker.submit_order(ticket())
    assert raised.value.details["retry_after_seconds"] == 3
    assert len(calls(venue, "POST", "/api/v3/order")) == 1


def test_after_a_429_no_request_is_sent_until_retry_after_has_passed(venue):
    moments = [NOW.timestamp()]
    broker = BinanceBroker(BinanceConfig(api_key="k", api_secret="s", base_url=BASE),
                           http=HttpClient(base_url=BASE, provider="binance_spot", sleep=lambda s: None),
                           clock=lambda: moments[-1])
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", **error("too_much_weight"))
    with pytest.raises(RateLimited):
        broker.quote("BTCUSDT", now=NOW)
    sent_before = len(venue.calls)
    with pytest.raises(RateLimited) as raised:
        broker.quote("BTCUSDT", now=NOW)
    assert len(venue.calls) == sent_before and raised.value.details["retry_after_seconds"] == 7
    moments.append(NOW.timestamp() + 8)
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"))
    broker.quote("BTCUSDT", now=NOW)


def test_an_ip_ban_is_honoured_until_the_time_it_names(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", **error("ip_banned"))
    with pytest.raises(RateLimited) as raised:
        broker.quote("BTCUSDT", now=NOW)
    assert raised.value.details["banned"] is True
    assert len(calls(venue, "GET", "/api/v3/ticker/bookTicker")) == 1       # a 418 is not retried
    with pytest.raises(RateLimited) as again:
        broker.quote("BTCUSDT", now=NOW)
    assert again.value.details["reset_at"] == "2026-03-02T15:02:00Z"
    assert len(calls(venue, "GET", "/api/v3/ticker/bookTicker")) == 1


def test_a_call_that_would_exceed_the_weight_budget_is_refused_without_sending(venue, broker):
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"),
                  headers={"x-mbx-used-weight-1m": "5399", "x-mbx-used-weight": "5399"})
    broker.quote("BTCUSDT", now=NOW)                         # 5399 of 6000 used; the budget is 90 % = 5400
    with pytest.raises(RateLimited) as raised:
        broker.quote("BTCUSDT", now=NOW)                     # weight 2 would pass 5400
    assert len(calls(venue, "GET", "/api/v3/ticker/bookTicker")) == 1
    assert raised.value.details["retry_after_seconds"] == 60 and raised.value.details["used_weight"] == 5399
    assert raised.value.details["reset_at"] == "2026-03-02T15:01:00Z"


def test_close_to_the_next_minute_the_call_waits_for_it_instead(venue):
    sleeps = []
    broker = make_broker(at=NOW.timestamp() + 59, sleeps=sleeps)    # 15:00:59 (public calls need no offset)
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"),
                  headers={"x-mbx-used-weight-1m": "5399"})
    broker.quote("BTCUSDT", now=NOW)
    broker.quote("BTCUSDT", now=NOW)
    assert sleeps == [1.0]
    assert len(calls(venue, "GET", "/api/v3/ticker/bookTicker")) == 2


def test_the_weight_used_counts_again_from_zero_in_a_new_minute(venue):
    moments = [NOW.timestamp()]
    broker = BinanceBroker(BinanceConfig(api_key="k", api_secret="s", base_url=BASE),
                           http=HttpClient(base_url=BASE, provider="binance_spot", sleep=lambda s: None),
                           clock=lambda: moments[-1])
    venue.replace(responses.GET, f"{BASE}/api/v3/ticker/bookTicker", json=payload("market_bookticker"),
                  headers={"X-MBX-USED-WEIGHT-1M": "5399"})
    broker.quote("BTCUSDT", now=NOW)
    moments.append(NOW.timestamp() + 61)
    broker.quote("BTCUSDT", now=NOW)
    assert len(calls(venue, "GET", "/api/v3/ticker/bookTicker")) == 2


# -- the user-data stream --------------------------------------------------------------------------------

def frames() -> dict:
    return payload("stream_userdata")


def test_execution_reports_become_our_reports():
    recorded = frames()
    assert parse_binance_execution_report(recorded["new"]) == []
    [fill] = parse_binance_execution_report(recorded["trade_partial"])
    assert (fill.kind, fill.order_id, fill.fill_id, fill.quantity, fill.price) == (
        ReportKind.FILL, ENTRY, "BTCUSDT:3917265", D("0.0004"), D("60000"))
    assert (fill.commission, fill.commission_currency, fill.is_maker) == (D("0.0000004"), "BTC", True)
    assert fill.timestamp == NOW + timedelta(seconds=30)
    [last] = parse_binance_execution_report(recorded["trade_filled"])
    assert (last.kind, last.fill_id, last.quantity) == (ReportKind.FILL, "BTCUSDT:3917288", D("0.0006"))


def test_stream_and_sync_give_a_fill_the_same_id(venue, broker):
    venue.get(f"{BASE}/api/v3/order", json=order_state(status="PARTIALLY_FILLED", executedQty="0.00040000"))
    venue.get(f"{BASE}/api/v3/myTrades", json=payload("trade_mytrades")[:1])
    [from_sync] = broker.sync([working()], now=NOW)
    [from_stream] = parse_binance_execution_report(frames()["trade_partial"])
    assert from_sync.fill_id == from_stream.fill_id


@pytest.mark.parametrize(("name", "kind", "order_id", "reason"), [
    ("canceled", ReportKind.CANCELLED, ENTRY, "cancelled at the venue"),
    ("expired_oco_trigger", ReportKind.CANCELLED, SL, "OCO sibling filled"),
    ("expired_ioc", ReportKind.EXPIRED, ENTRY, "expired at the venue (UNFILLED_IOC_QUANTITY_EXPIRED)"),
    ("rejected", ReportKind.REJECTED, ENTRY, "rejected by the venue: INSUFFICIENT_BALANCES"),
])
def test_ending_events_become_terminal_reports(name, kind, order_id, reason):
    [report] = parse_binance_execution_report(frames()[name])
    assert (report.kind, report.order_id, report.reason) == (kind, order_id, reason)


@pytest.mark.parametrize("name", ["list_status", "balance", "terminated"])
def test_other_events_make_no_reports(name):
    assert parse_binance_execution_report(frames()[name]) == []


def test_the_subscription_is_signed_over_its_sorted_params():
    request = to_binance_ws_subscribe(api_key=API_KEY, secret=SECRET, timestamp=NOW_MS, recv_window=5000,
                                      request_id="r-1")
    assert request["method"] == "userDataStream.subscribe.signature" and request["id"] == "r-1"
    params = request["params"]
    expected = hmac.new(SECRET.encode(), f"apiKey={API_KEY}&recvWindow=5000&timestamp={NOW_MS}".encode(),
                        hashlib.sha256).hexdigest()
    assert params == {"apiKey": API_KEY, "recvWindow": 5000, "timestamp": NOW_MS, "signature": expected}


def test_reconnect_delays_double_up_to_a_ceiling_with_jitter_on_top():
    assert [reconnect_delay(n, jitter=lambda: 0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert reconnect_delay(0, jitter=lambda: 1) == 1.25


class FakeSocket:
    """One scripted WebSocket API connection: answers the subscription, then plays events."""

    def __init__(self, answer: str, events: list[dict]) -> None:
        self.answer, self.events, self.sent = answer, events, []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def recv(self) -> str:
        answer = dict(frames()[self.answer], id=self.sent[-1]["id"])
        return json.dumps(answer)

    def __aiter__(self):
        return self._play()

    async def _play(self):
        for event in self.events:
            yield json.dumps(event)


def test_the_stream_reconnects_with_backoff_and_delivers_reports(venue, broker):
    recorded = frames()
    sockets = [OSError("connection refused"),
               FakeSocket("subscribe_refused", []),
               FakeSocket("subscribe_ok", [recorded["new"], recorded["trade_partial"], recorded["terminated"]]),
               FakeSocket("subscribe_ok", [recorded["trade_filled"]])]
    opened, slept, received = [], [], []

    def connect(url):
        opened.append(url)
        socket = sockets[len(opened) - 1]
        if isinstance(socket, Exception):
            raise socket
        return socket

    async def sleep(seconds):
        slept.append(seconds)

    stream = broker.user_stream(connect=connect, sleep=sleep)
    asyncio.run(stream.run(received.extend, max_connections=4))
    assert opened == ["wss://ws-api.testnet.binance.vision/ws-api/v3"] * 4
    assert [r.fill_id for r in received] == ["BTCUSDT:3917265", "BTCUSDT:3917288"]
    assert 1 <= slept[0] <= 1.25 and 2 <= slept[1] <= 2.5          # backoff grows while failing…
    assert 1 <= slept[2] <= 1.25                                    # …and starts again after a subscription
    subscribe = sockets[2].sent[0]
    assert subscribe["method"] == "userDataStream.subscribe.signature"
    assert subscribe["params"]["apiKey"] == API_KEY
    assert subscribe["params"]["timestamp"] == NOW_MS + SERVER_OFFSET_MS          # on the server's clock
    assert stream.subscription_id is None                           # the last connection has ended


def test_the_stream_awaits_an_async_callback_and_stops_when_asked(broker):
    recorded = frames()
    socket = FakeSocket("subscribe_ok", [recorded["trade_partial"], recorded["trade_filled"]])
    received = []

    async def main():
        stop = asyncio.Event()

        async def on_reports(reports):
            received.extend(reports)
            stop.set()

        await BinanceUserStream(broker.config, timestamp=lambda: NOW_MS, connect=lambda url: socket).run(
            on_reports, stop=stop)

    asyncio.run(main())
    assert [r.fill_id for r in received] == ["BTCUSDT:3917265"]


class QuietSocket(FakeSocket):
    """Answers the subscription, then sends nothing, as a quiet account's stream does for hours."""

    async def _play(self):
        await asyncio.Event().wait()
        yield ""                                    # never reached


def test_a_quiet_stream_lets_go_as_soon_as_it_is_asked_to_stop(broker):
    async def main():
        stop = asyncio.Event()
        stream = BinanceUserStream(broker.config, timestamp=lambda: NOW_MS, connect=lambda url: QuietSocket(
            "subscribe_ok", []))
        task = asyncio.create_task(stream.run(lambda reports: None, stop=stop))
        while stream.subscription_id is None:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2)

    asyncio.run(main())
