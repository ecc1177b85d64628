"""The Alpaca adapter: wire mapping both ways, the error table, retries, order entry, sync and the stream.

Every reply comes from ``tests/brokers/payloads/alpaca_*.json`` (built from the OpenAPI examples and the
bodies quoted in NOTES.md) and is served by ``responses``; nothing reaches the network."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import responses
from django.core.exceptions import ImproperlyConfigured
from responses import matchers
from websockets.exceptions import ConnectionClosedError

from orders.brokers import get_broker
from orders.brokers.alpaca import AlpacaBroker, AlpacaConfig, AlpacaTradeUpdates, build_alpaca_broker
from orders.brokers.alpaca.errors import parse_alpaca_error
from orders.brokers.alpaca.mapping import (
    KNOWN_STATUSES,
    parse_alpaca_asset,
    parse_alpaca_order,
    parse_alpaca_order_type,
    parse_alpaca_side,
    parse_alpaca_status,
    parse_alpaca_time_in_force,
    to_alpaca_bracket,
    to_alpaca_oco,
    to_alpaca_order,
    to_alpaca_replace,
    to_alpaca_symbol,
    to_alpaca_time_in_force,
    to_alpaca_timeframe,
)
from orders.brokers.alpaca.reports import parse_alpaca_trade_update
from orders.brokers.alpaca.stream import parse_alpaca_frame
from orders.brokers.http import HttpClient, HttpResponse, RetryPolicy
from orders.brokers.types import AccountContext, BracketStrategy, OrderTicket, ReportKind, WorkingOrder
from orders.domain.account import account_figures
from orders.domain.enums import AssetClass, OrderStatus, OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import (
    InvalidRequest,
    InvalidValue,
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
    Unsupported,
)
from orders.domain.orders import OrderRequest
from orders.services.tickets import _day_open

PAYLOADS = Path(__file__).parent / "payloads"
TRADING = "https://paper-api.alpaca.markets"
DATA = "https://data.alpaca.markets"
KEY, SECRET = "PKAPCAKEYID0001", "s3cr3t-alpaca-value-never-shown"
ORDER_ID = "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
ALPACA_ID = "7b08df51-c1ac-453c-99f9-323a5f075f0d"     # the spec's equity order, as alpaca_orders_post.json has it
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
D = Decimal


def payload(name: str):
    return json.loads((PAYLOADS / f"alpaca_{name}.json").read_text())


def error_case(name: str) -> dict:
    return payload("orders_errors")[name]


def alpaca_order(**changes) -> dict:
    return {**payload("orders_post"), **changes}


def ticket(**changes) -> OrderTicket:
    fields = {"order_id": ORDER_ID, "client_order_id": "mine-1", "symbol": "AAPL", "side": Side.BUY,
              "order_type": OrderType.LIMIT, "quantity": D("2"), "time_in_force": TimeInForce.GTC,
              "limit_price": D("150")}
    fields.update(changes)
    return OrderTicket(**fields)


def working(**changes) -> WorkingOrder:
    fields = {"order_id": ORDER_ID, "symbol": "AAPL", "side": Side.BUY, "order_type": OrderType.LIMIT,
              "quantity": D("2"), "filled_quantity": D("0"), "time_in_force": TimeInForce.GTC, "created_at": NOW,
              "limit_price": D("150")}
    fields.update(changes)
    return WorkingOrder(**fields)


def request(**changes) -> OrderRequest:
    fields = {"symbol": "AAPL", "side": Side.BUY, "quantity": D("2"), "order_type": OrderType.LIMIT,
              "limit_price": D("150")}
    fields.update(changes)
    return OrderRequest(**fields)


CONTEXT = AccountContext(figures=account_figures(cash=D("100000"), holdings=[]), position_quantity=D("0"))


@pytest.fixture
def venue():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def alpaca(sleeps) -> AlpacaBroker:
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET, base_url=TRADING, data_url=DATA)
    return AlpacaBroker(config, sleep=sleeps.append, clock=lambda: NOW.timestamp())


# -- configuration -----------------------------------------------------------------------------------
def test_missing_env_vars_are_listed_together(monkeypatch):
    monkeypatch.delenv("ALPACA_API_KEY", raising=False)
    monkeypatch.delenv("ALPACA_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured) as raised:
        build_alpaca_broker()
    assert "ALPACA_API_KEY: NOT SET" in str(raised.value)
    assert "ALPACA_API_SECRET: NOT SET" in str(raised.value)


def test_one_missing_env_var_is_named_and_the_other_shown_as_set(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.delenv("ALPACA_API_SECRET", raising=False)
    with pytest.raises(ImproperlyConfigured) as raised:
        build_alpaca_broker()
    assert "ALPACA_API_KEY: set" in str(raised.value) and "ALPACA_API_SECRET: NOT SET" in str(raised.value)
    assert KEY not in str(raised.value)


def test_the_factory_builds_a_paper_broker_with_defaults_from_the_registry(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    for name in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPACA_FEED"):
        monkeypatch.delenv(name, raising=False)
    broker = get_broker("alpaca")
    assert isinstance(broker, AlpacaBroker) and broker.name == "alpaca" and broker.answers_at_once is False
    assert (broker.config.base_url, broker.config.data_url, broker.config.feed) == (TRADING, DATA, "iex")
    assert broker.config.stream_url == "wss://paper-api.alpaca.markets/stream"


def test_the_factory_reads_live_urls_and_feed(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    monkeypatch.setenv("ALPACA_BASE_URL", "https://api.alpaca.markets")
    monkeypatch.setenv("ALPACA_FEED", "sip")
    broker = build_alpaca_broker()
    assert broker.config.base_url == "https://api.alpaca.markets" and broker.config.feed == "sip"
    assert broker.config.stream_url == "wss://api.alpaca.markets/stream"


def test_the_config_never_shows_its_secrets():
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET)
    assert KEY not in repr(config) and SECRET not in repr(config)


def test_capabilities_are_truthful(alpaca):
    caps = alpaca.capabilities
    assert caps.platform == "alpaca" and caps.bracket_strategy is BracketStrategy.NATIVE_BRACKET
    assert {"bracket_orders", "oco", "trailing_stop"} <= set(caps.features)
    assert not {"post_only", "reduce_only", "hidden_orders", "iceberg_orders"} & set(caps.features)
    assert set(caps.supported_order_types) == set(OrderType)
    assert caps.supported_asset_classes == (AssetClass.STOCK, AssetClass.CRYPTO)
    assert caps.rate_limits == {"requests_per_minute": 200, "orders_per_second": 10}


# -- mapping: ours -> venue ----------------------------------------------------------------------------
@pytest.mark.parametrize(("changes", "wire"), [
    ({"order_type": OrderType.MARKET, "limit_price": None}, {"type": "market"}),
    ({"order_type": OrderType.LIMIT}, {"type": "limit", "limit_price": "150"}),
    ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("149.50")},
     {"type": "stop", "stop_price": "149.5"}),
    ({"order_type": OrderType.STOP_LIMIT, "stop_price": D("151"), "limit_price": D("151.25")},
     {"type": "stop_limit", "limit_price": "151.25", "stop_price": "151"}),
    ({"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trailing_distance": D("6.15"),
      "trailing_type": TrailingType.ABSOLUTE}, {"type": "trailing_stop", "trail_price": "6.15"}),
    ({"order_type": OrderType.TRAILING_STOP, "limit_price": None, "trailing_distance": D("1.5"),
      "trailing_type": TrailingType.PERCENT}, {"type": "trailing_stop", "trail_percent": "1.5"}),
])
def test_every_order_type_goes_on_the_wire_with_string_decimals(changes, wire):
    body = to_alpaca_order(ticket(**changes))
    assert body == {"symbol": "AAPL", "qty": "2", "side": "buy", "time_in_force": "gtc",
                    "client_order_id": ORDER_ID, **wire}
    assert all(isinstance(v, str) for v in body.values())


def test_the_spec_example_order_is_what_we_send_for_the_same_ticket():
    spec_example = {"symbol": "AAPL", "qty": "2", "side": "buy", "type": "limit", "limit_price": "150",
                    "time_in_force": "gtc"}
    body = to_alpaca_order(ticket())
    assert {k: v for k, v in body.items() if k != "client_order_id"} == spec_example


@pytest.mark.parametrize(("symbol", "qty", "side", "order_type", "price"), [
    ("BTCUSD", D("1"), Side.BUY, OrderType.MARKET, None),
    ("BTC/USD", D("0.001"), Side.SELL, OrderType.MARKET, None),
    ("BTCUSD", D("0.001"), Side.BUY, OrderType.LIMIT, D("20000")),
])
def test_crypto_orders_match_the_recorded_ccxt_wire_requests(symbol, qty, side, order_type, price):
    ccxt = {  # ccxt/request/alpaca.json createOrder outputs, client_order_id skipped as ccxt does
        (D("1"), Side.BUY): {"symbol": "BTC/USD", "qty": "1", "side": "buy", "type": "market",
                             "time_in_force": "gtc"},
        (D("0.001"), Side.SELL): {"symbol": "BTC/USD", "qty": "0.001", "side": "sell", "type": "market",
                                  "time_in_force": "gtc"},
        (D("0.001"), Side.BUY): {"symbol": "BTC/USD", "qty": "0.001", "side": "buy", "type": "limit",
                                 "limit_price": "20000", "time_in_force": "gtc"},
    }
    body = to_alpaca_order(ticket(symbol=symbol, quantity=qty, side=side, order_type=order_type, limit_price=price))
    assert {k: v for k, v in body.items() if k != "client_order_id"} == ccxt[(qty, side)]


def test_decimals_never_use_exponent_notation():
    body = to_alpaca_order(ticket(quantity=D("1E+2"), limit_price=D("1.50000")))
    assert body["qty"] == "100" and body["limit_price"] == "1.5"


@pytest.mark.parametrize(("ours", "theirs"), [
    (TimeInForce.GTC, "gtc"), (TimeInForce.DAY, "day"), (TimeInForce.IOC, "ioc"), (TimeInForce.FOK, "fok")])
def test_time_in_force_maps_both_ways(ours, theirs):
    assert to_alpaca_time_in_force(ours) == theirs
    assert parse_alpaca_time_in_force(theirs) is ours


def test_auction_time_in_force_reads_as_day():
    assert parse_alpaca_time_in_force("opg") is TimeInForce.DAY
    assert parse_alpaca_time_in_force("cls") is TimeInForce.DAY


@pytest.mark.parametrize(("ours", "theirs"), [
    (OrderType.MARKET, "market"), (OrderType.LIMIT, "limit"), (OrderType.STOP, "stop"),
    (OrderType.STOP_LIMIT, "stop_limit"), (OrderType.TRAILING_STOP, "trailing_stop")])
def test_order_types_map_both_ways(ours, theirs):
    assert to_alpaca_order(ticket(order_type=ours, stop_price=D("1"), trailing_distance=D("1")))["type"] == theirs
    assert parse_alpaca_order_type(theirs) is ours


def test_sides_map_both_ways_and_an_unknown_type_is_none():
    assert parse_alpaca_side("buy") is Side.BUY and parse_alpaca_side("sell") is Side.SELL
    assert to_alpaca_order(ticket(side=Side.SELL))["side"] == "sell"
    assert parse_alpaca_order_type("") is None


@pytest.mark.parametrize(("symbol", "alpaca_symbol"), [
    ("AAPL", "AAPL"), ("BTCUSD", "BTC/USD"), ("ETHUSDT", "ETH/USDT"), ("SOLUSDC", "SOL/USDC"),
    ("ETHBTC", "ETH/BTC"), ("BTC/USD", "BTC/USD"), ("btcusd", "BTC/USD")])
def test_symbols_map_to_alpaca_spelling(symbol, alpaca_symbol):
    assert to_alpaca_symbol(symbol) == alpaca_symbol


def test_post_only_is_not_something_alpaca_can_do():
    with pytest.raises(Unsupported):
        to_alpaca_order(ticket(post_only=True))


# -- status table ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "unfilled", "partly_filled"), [
    ("accepted", OrderStatus.PENDING, OrderStatus.PENDING),
    ("pending_new", OrderStatus.PENDING, OrderStatus.PENDING),
    ("accepted_for_bidding", OrderStatus.PENDING, OrderStatus.PENDING),
    ("pending_review", OrderStatus.PENDING, OrderStatus.PENDING),
    ("held", OrderStatus.PENDING, OrderStatus.PENDING),
    ("new", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("stopped", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("suspended", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("done_for_day", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("pending_replace", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("partially_filled", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("calculated", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
    ("filled", OrderStatus.FILLED, OrderStatus.FILLED),
    ("pending_cancel", OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_CANCEL),
    ("canceled", OrderStatus.CANCELLED, OrderStatus.CANCELLED),
    ("replaced", OrderStatus.CANCELLED, OrderStatus.CANCELLED),
    ("rejected", OrderStatus.REJECTED, OrderStatus.REJECTED),
    ("expired", OrderStatus.EXPIRED, OrderStatus.EXPIRED),
    ("something_new_from_alpaca", OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED),
])
def test_every_alpaca_status_has_a_desk_status(status, unfilled, partly_filled):
    assert parse_alpaca_status(status, filled=D("0"), quantity=D("10")) is unfilled
    assert parse_alpaca_status(status, filled=D("4"), quantity=D("10")) is partly_filled


def test_calculated_with_everything_filled_is_filled():
    assert parse_alpaca_status("calculated", filled=D("10"), quantity=D("10")) is OrderStatus.FILLED


def test_the_status_table_covers_the_whole_spec_enum():
    spec_path = Path(__file__).resolve().parents[3] / "shared" / "reference" / "brokers" / "alpaca" / "trading-api.json"
    assert spec_path.exists(), f"the reference spec belongs beside the repository: {spec_path}"
    spec_enum = json.loads(spec_path.read_text())["components"]["schemas"]["OrderStatus"]["enum"]
    assert set(spec_enum) <= KNOWN_STATUSES


# -- mapping: venue -> ours ---------------------------------------------------------------------------------
def test_the_spec_equity_order_parses_with_decimals_and_utc_times():
    order = parse_alpaca_order(payload("orders_post"))
    assert order.id == "7b08df51-c1ac-453c-99f9-323a5f075f0d" and order.order_type is OrderType.LIMIT
    assert order.quantity == D("2") and isinstance(order.quantity, Decimal) and order.limit_price == D("150")
    assert order.desk_status is OrderStatus.PENDING
    assert order.updated_at == datetime(2023, 12, 12, 22, 31, 24, 668464, tzinfo=UTC)


def test_the_spec_crypto_order_parses():
    order = parse_alpaca_order(payload("orders_post_crypto"))
    assert order.symbol == "ETH/USD" and order.quantity == D("0.02") and order.status == "pending_new"


def test_bracket_legs_parse_as_held_orders():
    order = parse_alpaca_order(payload("orders_post_bracket"))
    assert [(leg.order_type, leg.desk_status) for leg in order.legs] == [
        (OrderType.LIMIT, OrderStatus.PENDING), (OrderType.STOP_LIMIT, OrderStatus.PENDING)]


def test_an_order_without_an_id_is_a_provider_error():
    with pytest.raises(ProviderError):
        parse_alpaca_order({"status": "new"})


def test_the_spec_asset_example_is_a_fractionable_stock():
    instrument = parse_alpaca_asset("AAPL", payload("assets_get"))
    assert instrument.asset_class is AssetClass.STOCK and instrument.tick_size == D("0.01")
    assert instrument.quantity_step == D("0.000000001") and instrument.can_short and not instrument.halted


def test_an_inactive_crypto_asset_is_halted_and_cannot_short():
    raw = {**payload("assets_get"), "class": "crypto", "symbol": "BTC/USD", "status": "inactive",
           "min_order_size": "0.0001", "min_trade_increment": "0.000000001", "price_increment": "1"}
    instrument = parse_alpaca_asset("BTCUSD", raw)
    assert instrument.asset_class is AssetClass.CRYPTO and instrument.halted and not instrument.can_short
    assert (instrument.tick_size, instrument.min_quantity) == (D("1"), D("0.0001"))


@pytest.mark.parametrize(("seconds", "timeframe"), [
    (60, "1Min"), (120, "2Min"), (300, "5Min"), (600, "10Min"), (900, "15Min"), (1800, "30Min"),
    (3600, "1Hour"), (7200, "2Hour"), (14400, "4Hour"), (43200, "12Hour"), (86400, "1Day"), (604800, "1Week")])
def test_bar_sizes_map_to_alpaca_timeframes(seconds, timeframe):
    assert to_alpaca_timeframe(seconds) == timeframe


def test_an_odd_bar_size_is_refused():
    with pytest.raises(InvalidValue):
        to_alpaca_timeframe(45)


# -- bracket / oto / oco / replace bodies ------------------------------------------------------------------
def _legs(stop_limit: Decimal | None = D("298.5")) -> list[OrderTicket]:
    tp = ticket(order_id="tp-1", symbol="SPY", side=Side.SELL, quantity=D("100"), limit_price=D("301"),
                reduce_only=True)
    sl_type = OrderType.STOP_LIMIT if stop_limit else OrderType.STOP
    sl = ticket(order_id="sl-1", symbol="SPY", side=Side.SELL, quantity=D("100"), order_type=sl_type,
                stop_price=D("299"), limit_price=stop_limit, reduce_only=True)
    return [tp, sl]


def test_a_bracket_body_is_the_documented_one():
    entry = ticket(symbol="SPY", order_type=OrderType.MARKET, limit_price=None, quantity=D("100"))
    documented = {"side": "buy", "symbol": "SPY", "type": "market", "qty": "100", "time_in_force": "gtc",
                  "order_class": "bracket", "take_profit": {"limit_price": "301"},
                  "stop_loss": {"stop_price": "299", "limit_price": "298.5"}}
    assert to_alpaca_bracket(entry, _legs()) == {**documented, "client_order_id": ORDER_ID}


def test_one_exit_is_an_oto_not_a_one_legged_bracket():
    entry = ticket(symbol="SPY", quantity=D("100"))
    body = to_alpaca_bracket(entry, _legs(stop_limit=None)[1:])
    assert body["order_class"] == "oto" and body["stop_loss"] == {"stop_price": "299"}
    assert "take_profit" not in body


@pytest.mark.parametrize("entry", [
    ticket(symbol="BTCUSD"),
    ticket(order_type=OrderType.STOP, limit_price=None, stop_price=D("151")),
])
def test_crypto_and_stop_entries_cannot_be_bracketed(entry):
    with pytest.raises(Unsupported):
        to_alpaca_bracket(entry, _legs())


def test_a_trailing_stop_cannot_be_a_bracket_leg():
    trailing = ticket(order_type=OrderType.TRAILING_STOP, limit_price=None, trailing_distance=D("1"),
                      side=Side.SELL)
    with pytest.raises(Unsupported):
        to_alpaca_bracket(ticket(), [trailing])


def test_an_oco_body_has_the_take_profit_as_the_parent():
    tp, sl = _legs(stop_limit=None)
    assert to_alpaca_oco([tp, sl]) == {
        "symbol": "SPY", "qty": "100", "side": "sell", "type": "limit", "time_in_force": "gtc",
        "client_order_id": "tp-1", "order_class": "oco", "take_profit": {"limit_price": "301"},
        "stop_loss": {"stop_price": "299"}}


def test_an_oco_of_mismatched_orders_is_refused():
    tp, sl = _legs(stop_limit=None)
    with pytest.raises(Unsupported):
        to_alpaca_oco([tp, replace(sl, quantity=D("50"))])
    with pytest.raises(Unsupported):
        to_alpaca_oco([tp, tp])


def test_a_replace_body_carries_only_what_changes():
    live = parse_alpaca_order(alpaca_order(status="new"))
    assert to_alpaca_replace(live, already_filled=D("0"), quantity=None, limit_price=D("151"), stop_price=None,
                             trailing_distance=None) == {"limit_price": "151"}
    assert to_alpaca_replace(live, already_filled=D("0"), quantity=D("5"), limit_price=None, stop_price=None,
                             trailing_distance=D("2")) == {"qty": "5", "trail": "2"}


def test_a_replace_after_a_partial_fill_asks_only_for_the_remainder():
    live = parse_alpaca_order(alpaca_order(status="partially_filled", qty="10", filled_qty="4"))
    assert to_alpaca_replace(live, already_filled=D("4"), quantity=None, limit_price=D("151"), stop_price=None,
                             trailing_distance=None) == {"qty": "6", "limit_price": "151"}
    assert to_alpaca_replace(live, already_filled=D("4"), quantity=D("12"), limit_price=None, stop_price=None,
                             trailing_distance=None) == {"qty": "8"}
    with pytest.raises(InvalidValue):
        to_alpaca_replace(live, already_filled=D("4"), quantity=D("4"), limit_price=None, stop_price=None,
                          trailing_distance=None)


# -- error table -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "error", "reason"), [
    ("insufficient_buying_power", OrderRejected, "INSUFFICIENT_BALANCE"),
    ("insufficient_qty", OrderRejected, "INSUFFICIENT_BALANCE"),
    ("forbidden", Unauthorized, None),
    ("unauthorized", Unauthorized, None),
    ("duplicate_client_order_id", OrderRejected, "ORDER_REJECTED"),
    ("asset_not_found", OrderRejected, "SYMBOL_NOT_TRADEABLE"),
    ("could_not_find_asset", OrderRejected, "SYMBOL_NOT_TRADEABLE"),
    ("invalid_symbol", OrderRejected, "SYMBOL_NOT_TRADEABLE"),
    ("sub_penny", OrderRejected, "INVALID_PRICE"),
    ("invalid_qty", OrderRejected, "INVALID_QUANTITY"),
    ("bracket_entry_type", OrderRejected, "ORDER_REJECTED"),
    ("wash_trade", OrderRejected, "ORDER_REJECTED"),
    ("not_cancelable", OrderRejected, "ORDER_REJECTED"),
    ("order_id_missing", OrderNotFound, None),
    ("order_not_found", OrderNotFound, None),
    ("body_invalid", InvalidRequest, None),
    ("rate_limited", RateLimited, None),
    ("internal", ProviderError, None),
])
def test_the_error_table(case, error, reason):
    recorded = error_case(case)
    response = HttpResponse(status=recorded["status"], body=recorded["body"], text=json.dumps(recorded["body"]))
    raised = parse_alpaca_error(response, order_ref=ORDER_ID)
    assert type(raised) is error
    if reason is not None:
        assert raised.reason == reason and raised.status == 422
        assert raised.details["alpaca_code"] == recorded["body"]["code"]


def test_insufficient_buying_power_carries_required_and_available():
    recorded = error_case("insufficient_buying_power")
    raised = parse_alpaca_error(HttpResponse(status=403, body=recorded["body"]))
    assert raised.details["required"] == "48640000" and raised.details["available"] == "176531.28"


def test_insufficient_qty_reads_requested_and_available_from_the_message():
    raised = parse_alpaca_error(HttpResponse(status=403, body=error_case("insufficient_qty")["body"]))
    assert (raised.details["required"], raised.details["available"]) == ("10", "0")


@pytest.mark.parametrize(("case", "reject_code"), [
    ("duplicate_client_order_id", "DUPLICATE_CLIENT_ORDER_ID"), ("wash_trade", "WASH_TRADE_DETECTED")])
def test_classified_rejections_say_so_in_reject_code(case, reject_code):
    raised = parse_alpaca_error(HttpResponse(status=422, body=error_case(case)["body"]))
    assert raised.details["reject_code"] == reject_code


def test_a_missing_symbol_on_a_market_data_call_is_symbol_not_found():
    raised = parse_alpaca_error(HttpResponse(status=422, body=error_case("invalid_symbol")["body"]),
                                symbol="ZZZZ", market_data=True)
    assert isinstance(raised, SymbolNotFound)
    assert isinstance(parse_alpaca_error(HttpResponse(status=404, body=None), symbol="ZZZZ"), SymbolNotFound)


def test_503_is_unavailable_and_502_an_error():
    assert isinstance(parse_alpaca_error(HttpResponse(status=503, body=None, text="down")), ProviderUnavailable)
    assert isinstance(parse_alpaca_error(HttpResponse(status=502, body=None, text="bad gateway")), ProviderError)


def test_rate_limited_uses_the_ratelimit_reset_header():
    reset = int(NOW.timestamp()) + 42
    response = HttpResponse(status=429, body=error_case("rate_limited")["body"],
                            headers={"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0",
                                     "X-Ratelimit-Reset": str(reset)})
    raised = parse_alpaca_error(response, now=NOW.timestamp())
    assert raised.details["retry_after_seconds"] == 42 and raised.details["limit"] == 200
    assert raised.details["reset_at"] == "2026-03-02T15:00:42Z"


# -- auth, secrets, retries ------------------------------------------------------------------------------------
def test_every_call_carries_the_two_auth_headers(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=alpaca_order(client_order_id=ORDER_ID),
               match=[matchers.header_matcher({"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})])
    venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"),
              match=[matchers.header_matcher({"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})])
    alpaca.submit_order(ticket())
    alpaca.quote("AAPL", now=NOW)


@pytest.mark.parametrize("case", sorted(payload("orders_errors")))
def test_no_error_ever_shows_the_key_or_the_secret(alpaca, case):
    recorded = error_case(case)
    body = {**recorded["body"], "message": f"{recorded['body'].get('message', '')} secret={SECRET}"}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as venue:
        venue.post(f"{TRADING}/v2/orders", status=recorded["status"], json=body)
        venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
        with pytest.raises(Exception) as raised:  # noqa: B017 - every mapped error, whatever its class
            alpaca.submit_order(ticket())
    shown = f"{raised.value} {getattr(raised.value, 'message', '')} {json.dumps(raised.value.details, default=str)}"
    assert SECRET not in shown and KEY not in shown


def test_a_429_is_retried_after_retry_after(venue, alpaca, sleeps):
    venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", status=429, headers={"Retry-After": "7"},
              json=error_case("rate_limited")["body"])
    venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"))
    assert alpaca.quote("AAPL", now=NOW).bid == D("172.6")
    assert sleeps == [7.0]


def test_a_503_submit_is_retried_because_alpaca_dedupes_our_client_id(venue, sleeps):
    fake_sleeps: list[float] = []
    http = HttpClient(base_url=TRADING, provider="alpaca", sleep=fake_sleeps.append)
    broker = AlpacaBroker(AlpacaConfig(api_key=KEY, api_secret=SECRET), http=http)
    venue.post(f"{TRADING}/v2/orders", status=503, headers={"Retry-After": "2"}, body="busy")
    venue.post(f"{TRADING}/v2/orders", json=alpaca_order(client_order_id=ORDER_ID))
    assert broker.submit_order(ticket()).broker_order_id == "7b08df51-c1ac-453c-99f9-323a5f075f0d"
    assert fake_sleeps == [2.0]


def test_a_429_that_persists_is_rate_limited(venue, sleeps):
    broker = AlpacaBroker(AlpacaConfig(api_key=KEY, api_secret=SECRET), sleep=sleeps.append,
                          retry=RetryPolicy(attempts=2), clock=lambda: NOW.timestamp())
    reset = str(int(NOW.timestamp()) + 30)
    for _ in range(2):
        venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", status=429, json=error_case("rate_limited")["body"],
                  headers={"X-Ratelimit-Limit": "200", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": reset})
    with pytest.raises(RateLimited) as raised:
        broker.quote("AAPL", now=NOW)
    assert raised.value.details["retry_after_seconds"] == 30 and raised.value.details["remaining"] == 0
    assert len(sleeps) == 1


# -- order entry ------------------------------------------------------------------------------------------------
def test_an_accepted_order_is_acknowledged_with_alpacas_id_as_working(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=alpaca_order(client_order_id=ORDER_ID),
               match=[matchers.json_params_matcher(to_alpaca_order(ticket()))])
    ack = alpaca.submit_order(ticket())
    assert (ack.broker_order_id, ack.status) == ("7b08df51-c1ac-453c-99f9-323a5f075f0d", OrderStatus.OPEN)


def test_a_duplicate_client_id_from_our_own_earlier_attempt_returns_that_order(venue, alpaca):
    case = error_case("duplicate_client_order_id")
    venue.post(f"{TRADING}/v2/orders", status=case["status"], json=case["body"])
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=alpaca_order(client_order_id=ORDER_ID, status="new"),
              match=[matchers.query_param_matcher({"client_order_id": ORDER_ID})])
    ack = alpaca.submit_order(ticket())
    assert (ack.broker_order_id, ack.status) == ("7b08df51-c1ac-453c-99f9-323a5f075f0d", OrderStatus.OPEN)


def test_a_duplicate_client_id_for_a_different_order_is_rejected(venue, alpaca):
    case = error_case("duplicate_client_order_id")
    venue.post(f"{TRADING}/v2/orders", status=case["status"], json=case["body"])
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=alpaca_order(qty="99"))
    with pytest.raises(OrderRejected) as raised:
        alpaca.submit_order(ticket())
    assert raised.value.details["reject_code"] == "DUPLICATE_CLIENT_ORDER_ID"


def test_an_unknown_outcome_is_settled_by_looking_the_client_id_up(venue, alpaca, sleeps):
    for _ in range(3):
        venue.post(f"{TRADING}/v2/orders", status=500, json=error_case("internal")["body"])
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=alpaca_order(client_order_id=ORDER_ID))
    assert alpaca.submit_order(ticket()).broker_order_id == "7b08df51-c1ac-453c-99f9-323a5f075f0d"
    assert len(sleeps) == 2


def test_an_unknown_outcome_with_no_order_found_is_unavailable(venue, alpaca):
    for _ in range(3):
        venue.post(f"{TRADING}/v2/orders", status=502, body="bad gateway")
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
    with pytest.raises(ProviderUnavailable):
        alpaca.submit_order(ticket())


def test_a_bracket_is_one_request_and_acks_entry_and_held_legs(venue, alpaca):
    entry = ticket(symbol="SPY", order_type=OrderType.MARKET, limit_price=None, quantity=D("100"))
    legs = _legs()
    venue.post(f"{TRADING}/v2/orders", json=payload("orders_post_bracket"),
               match=[matchers.json_params_matcher(to_alpaca_bracket(entry, legs))])
    acks = alpaca.submit_bracket(entry, legs)
    assert [(a.broker_order_id, a.status) for a in acks] == [
        ("61e69015-8549-4bfd-b9c3-01e75843f47d", OrderStatus.OPEN),
        ("0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a", OrderStatus.PENDING),
        ("5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f", OrderStatus.PENDING)]


def test_a_bracket_reply_without_legs_is_completed_with_a_nested_lookup(venue, alpaca):
    bracket = payload("orders_post_bracket")
    venue.post(f"{TRADING}/v2/orders", json={**bracket, "legs": None})
    venue.get(f"{TRADING}/v2/orders/{bracket['id']}", json=bracket,
              match=[matchers.query_param_matcher({"nested": "true"})])
    entry = ticket(symbol="SPY", order_type=OrderType.MARKET, limit_price=None, quantity=D("100"))
    acks = alpaca.submit_bracket(entry, list(reversed(_legs())))
    assert [a.broker_order_id for a in acks[1:]] == ["5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f",
                                                     "0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a"]


def test_an_oto_with_a_stop_loss_acks_its_one_leg(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=payload("orders_post_oto"),
               match=[matchers.json_params_matcher({**to_alpaca_order(ticket(symbol="SPY", quantity=D("100"))),
                                                    "order_class": "oto", "stop_loss": {"stop_price": "299"}})])
    acks = alpaca.submit_bracket(ticket(symbol="SPY", quantity=D("100")), _legs(stop_limit=None)[1:])
    assert [a.broker_order_id for a in acks] == ["61e69015-8549-4bfd-b9c3-01e75843f47d",
                                                 "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f"]


def test_an_oco_acks_in_the_order_given(venue, alpaca):
    tp, sl = _legs(stop_limit=None)
    venue.post(f"{TRADING}/v2/orders", json=payload("orders_post_oco"),
               match=[matchers.json_params_matcher(to_alpaca_oco([tp, sl]))])
    acks = alpaca.submit_oco([sl, tp])
    assert [(a.broker_order_id, a.status) for a in acks] == [
        ("8e9f0a1b-2c3d-4e4f-9a5b-6c7d8e9f0a1b", OrderStatus.OPEN),
        ("7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a", OrderStatus.OPEN)]


def _found_by_client_id(venue, **changes) -> dict:
    order = alpaca_order(client_order_id=ORDER_ID, **changes)
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=order,
              match=[matchers.query_param_matcher({"client_order_id": ORDER_ID})])
    return order


def test_cancel_finds_the_order_by_our_id_and_deletes_it(venue, alpaca):
    order = _found_by_client_id(venue, status="new")
    venue.delete(f"{TRADING}/v2/orders/{order['id']}", status=204)
    alpaca.cancel_order(ticket())


def test_cancel_of_an_already_cancelled_order_sends_nothing_more(venue, alpaca):
    _found_by_client_id(venue, status="canceled")
    alpaca.cancel_order(ticket())


def test_cancel_of_a_filled_order_is_not_modifiable(venue, alpaca):
    _found_by_client_id(venue, status="filled", filled_qty="2", filled_avg_price="150")
    with pytest.raises(OrderNotModifiable):
        alpaca.cancel_order(ticket())


def test_cancel_refused_with_422_says_why(venue, alpaca):
    order = _found_by_client_id(venue, status="new")
    case = error_case("not_cancelable")
    venue.delete(f"{TRADING}/v2/orders/{order['id']}", status=case["status"], json=case["body"])
    venue.get(f"{TRADING}/v2/orders/{order['id']}", json={**order, "status": "filled"})
    with pytest.raises(OrderNotModifiable) as raised:
        alpaca.cancel_order(ticket())
    assert "filled" in raised.value.message


def test_cancel_of_an_order_alpaca_lost_between_lookup_and_delete_is_not_found(venue, alpaca):
    order = _found_by_client_id(venue, status="new")
    venue.delete(f"{TRADING}/v2/orders/{order['id']}", status=404, json=error_case("order_not_found")["body"])
    with pytest.raises(OrderNotFound) as raised:
        alpaca.cancel_order(ticket())
    assert raised.value.details["id"] == ORDER_ID


def test_cancel_of_an_unknown_order_is_not_found(venue, alpaca):
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
    venue.get(f"{TRADING}/v2/orders", json=[])
    with pytest.raises(OrderNotFound):
        alpaca.cancel_order(ticket())


def test_cancel_of_an_exit_leg_finds_it_by_shape_among_recent_orders(venue, alpaca):
    bracket = payload("orders_post_bracket")
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
    venue.get(f"{TRADING}/v2/orders", json=[bracket])
    venue.delete(f"{TRADING}/v2/orders/0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a", status=204)
    alpaca.cancel_order(_legs()[0])


def test_modify_replaces_and_acks_the_new_order_id(venue, alpaca):
    order = _found_by_client_id(venue, status="new")
    venue.patch(f"{TRADING}/v2/orders/{order['id']}", json=payload("orders_patch"),
                match=[matchers.json_params_matcher({"limit_price": "151"})])
    ack = alpaca.modify_order(ticket(), limit_price=D("151"))
    assert (ack.broker_order_id, ack.status) == ("d4f1c0a6-2e57-4f0b-9a1e-8c3b5e7d9f21", OrderStatus.OPEN)


def test_modify_of_a_partly_filled_order_sends_the_remainder(venue, alpaca):
    order = _found_by_client_id(venue, status="partially_filled", qty="10", filled_qty="4", filled_avg_price="150")
    venue.patch(f"{TRADING}/v2/orders/{order['id']}", json=payload("orders_patch"),
                match=[matchers.json_params_matcher({"qty": "6", "limit_price": "151"})])
    ack = alpaca.modify_order(ticket(quantity=D("10")), quantity=D("10"), limit_price=D("151"))
    assert ack.status is OrderStatus.PARTIALLY_FILLED


def test_modify_follows_earlier_replacements_to_the_live_order(venue, alpaca):
    replacement = payload("orders_patch")
    _found_by_client_id(venue, status="replaced", replaced_by=replacement["id"])
    venue.get(f"{TRADING}/v2/orders/{replacement['id']}", json=replacement)
    venue.patch(f"{TRADING}/v2/orders/{replacement['id']}", json={**replacement, "id": "third-order"})
    assert alpaca.modify_order(ticket(), limit_price=D("152")).broker_order_id == "third-order"


@pytest.mark.parametrize("status", ["accepted", "pending_new", "pending_replace", "filled", "canceled"])
def test_modify_while_alpaca_cannot_replace_is_not_modifiable(venue, alpaca, status):
    _found_by_client_id(venue, status=status)
    with pytest.raises(OrderNotModifiable):
        alpaca.modify_order(ticket(), limit_price=D("151"))


# -- market data, instruments, status -----------------------------------------------------------------------------
def test_a_stock_quote_is_decimal_from_the_latest_quote(venue, alpaca):
    venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"),
              match=[matchers.query_param_matcher({"feed": "iex"})])
    quote = alpaca.quote("AAPL", now=NOW)
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (D("172.6"), D("172.7"), D("2"), D("1"))
    assert all(isinstance(v, Decimal) for v in (quote.bid, quote.ask, quote.last))
    assert quote.last == D("172.65") and quote.provider == "alpaca"
    assert quote.timestamp == datetime(2022, 8, 17, 10, 9, 34, 55031, tzinfo=UTC)


def test_a_crypto_quote_comes_from_the_crypto_endpoint(venue, alpaca):
    venue.get(f"{DATA}/v1beta3/crypto/us/latest/quotes", json=payload("marketdata_crypto_latest_quotes"),
              match=[matchers.query_param_matcher({"symbols": "BTC/USD"})])
    quote = alpaca.quote("BTCUSD", now=NOW)
    assert (quote.symbol, quote.bid, quote.ask) == ("BTCUSD", D("29058"), D("29059"))


def test_a_quote_for_an_unknown_symbol_is_symbol_not_found(venue, alpaca):
    venue.get(f"{DATA}/v2/stocks/ZZZZ/quotes/latest", status=404, json={"message": "not found"})
    with pytest.raises(SymbolNotFound):
        alpaca.quote("ZZZZ", now=NOW)


def test_stock_bars_ask_newest_first_and_come_back_oldest_first(venue, alpaca):
    page = payload("marketdata_stocks_bars")
    older = {**page["bars"][0], "t": "2022-01-03T08:59:00Z", "c": 178.2}
    venue.get(f"{DATA}/v2/stocks/AAPL/bars", json=page,
              match=[matchers.query_param_matcher({"timeframe": "1Min", "limit": "2", "sort": "desc", "feed": "iex",
                                                   "adjustment": "raw", "end": "2026-03-02T15:00:00Z",
                                                   "start": "2026-02-26T14:56:00Z"})])
    venue.get(f"{DATA}/v2/stocks/AAPL/bars", json={"bars": [older], "symbol": "AAPL", "next_page_token": None},
              match=[matchers.query_param_matcher({"page_token": page["next_page_token"]}, strict_match=False)])
    bars = alpaca.bars("AAPL", timeframe="1m", seconds=60, end=NOW, count=2)
    assert [b.close for b in bars] == [D("178.2"), D("178.21")]
    assert bars[1].volume == D("1118") and bars[1].timeframe == "1m"


def test_crypto_bars_come_from_the_crypto_endpoint(venue, alpaca):
    venue.get(f"{DATA}/v1beta3/crypto/us/bars", json=payload("marketdata_crypto_bars"),
              match=[matchers.query_param_matcher({"symbols": "BTC/USD", "timeframe": "1Hour"}, strict_match=False)])
    bars = alpaca.bars("BTCUSD", timeframe="1h", seconds=3600, end=NOW, count=1)
    assert [(b.open, b.close, b.volume) for b in bars] == [(D("28999"), D("29003"), D("0.01"))]


def test_an_instrument_is_read_once_and_cached(venue, alpaca):
    venue.get(f"{TRADING}/v2/assets/AAPL", json=payload("assets_get"))
    assert alpaca.instrument("AAPL").asset_class is AssetClass.STOCK
    assert alpaca.instrument("AAPL").tick_size == D("0.01")
    assert len(venue.calls) == 1


def test_a_crypto_instrument_is_asked_for_with_an_encoded_slash(venue, alpaca):
    venue.get(f"{TRADING}/v2/assets/BTC%2FUSD", json={**payload("assets_get"), "class": "crypto"})
    assert alpaca.instrument("BTCUSD").asset_class is AssetClass.CRYPTO


def test_an_unknown_asset_is_symbol_not_found(venue, alpaca):
    venue.get(f"{TRADING}/v2/assets/ZZZZ", status=404, json={"code": 40410000, "message": "asset not found"})
    with pytest.raises(SymbolNotFound):
        alpaca.instrument("ZZZZ")


def test_status_is_connected_when_the_clock_answers(venue, alpaca):
    venue.get(f"{TRADING}/v2/clock", json=payload("clock_get"))
    status = alpaca.status(now=NOW)
    assert status.connected and status.last_heartbeat == NOW


def test_status_is_disconnected_when_alpaca_is_down(venue, alpaca):
    for _ in range(3):
        venue.get(f"{TRADING}/v2/clock", status=503, body="down")
    assert not alpaca.status(now=NOW).connected


# -- pre-trade ---------------------------------------------------------------------------------------------------
def _quote(venue):
    venue.get(f"{DATA}/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"))


@pytest.mark.parametrize(("changes", "reference"), [
    ({"order_type": OrderType.MARKET, "limit_price": None}, D("172.7")),
    ({"order_type": OrderType.MARKET, "limit_price": None, "side": Side.SELL}, D("172.6")),
    ({"limit_price": D("150")}, D("150")),
    ({"limit_price": D("180")}, D("172.7")),
    ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("175")}, D("175")),
])
def test_check_order_returns_the_reference_price_from_the_quote(venue, alpaca, changes, reference):
    _quote(venue)
    assert alpaca.check_order(request(**changes), context=CONTEXT, now=NOW) == reference


@pytest.mark.parametrize(("changes", "error", "reason"), [
    ({"quantity": D("1.5")}, OrderRejected, "INVALID_QUANTITY"),
    ({"quantity": D("1.5"), "order_type": OrderType.MARKET, "limit_price": None}, OrderRejected,
     "INVALID_QUANTITY"),
    ({"limit_price": D("150.123")}, OrderRejected, "INVALID_PRICE"),
    ({"limit_price": D("0.12345")}, OrderRejected, "INVALID_PRICE"),
    ({"post_only": True}, Unsupported, None),
    ({"symbol": "BTCUSD", "order_type": OrderType.STOP, "limit_price": None, "stop_price": D("1")}, Unsupported,
     None),
    ({"symbol": "BTCUSD", "time_in_force": TimeInForce.DAY}, Unsupported, None),
    ({"symbol": "BTCUSD", "stop_loss": D("100")}, Unsupported, None),
    ({"order_type": OrderType.STOP, "limit_price": None, "stop_price": D("175"), "stop_loss": D("170")},
     Unsupported, None),
])
def test_check_order_refuses_what_alpaca_would(alpaca, changes, error, reason):
    with pytest.raises(error) as raised:
        alpaca.check_order(request(**changes), context=CONTEXT, now=NOW)
    if reason:
        assert raised.value.reason == reason


def test_fractional_market_day_orders_and_sub_dollar_prices_pass(venue, alpaca):
    _quote(venue)
    alpaca.check_order(request(quantity=D("0.5"), order_type=OrderType.MARKET, limit_price=None,
                               time_in_force=TimeInForce.DAY), context=CONTEXT, now=NOW)
    alpaca.check_order(request(limit_price=D("0.1234")), context=CONTEXT, now=NOW)


# -- sync --------------------------------------------------------------------------------------------------------
def _listing(venue, *orders):
    venue.get(f"{TRADING}/v2/orders", json=list(orders),
              match=[matchers.query_param_matcher({"status": "all", "limit": "500", "nested": "true",
                                                   "direction": "desc", "after": "2026-03-02T14:55:00Z"})])


def test_sync_of_nothing_sends_nothing(venue, alpaca):
    assert alpaca.sync([], now=NOW) == []


def test_a_partial_fill_is_the_growth_of_filled_qty(venue, alpaca):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="partially_filled", filled_qty="1",
                                 filled_avg_price="149.5", updated_at="2026-03-02T14:59:59Z"))
    [fill] = alpaca.sync([working(broker_order_id=ALPACA_ID)], now=NOW)
    assert (fill.kind, fill.quantity, fill.price) == (ReportKind.FILL, D("1"), D("149.5"))
    assert fill.fill_id == "7b08df51-c1ac-453c-99f9-323a5f075f0d:1"
    assert fill.timestamp == datetime(2026, 3, 2, 14, 59, 59, tzinfo=UTC)


def test_an_increment_is_priced_from_the_change_of_the_average(venue, alpaca):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="partially_filled", filled_qty="1",
                                 filled_avg_price="149"))
    alpaca.sync([working()], now=NOW)
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="filled", filled_qty="2", filled_avg_price="149.5"))
    [fill] = alpaca.sync([working(filled_quantity=D("1"))], now=NOW)
    assert (fill.quantity, fill.price, fill.fill_id) == (D("1"), D("150"), "7b08df51-c1ac-453c-99f9-323a5f075f0d:2")
    assert "price_estimated" not in fill.extra


def test_an_increment_without_history_uses_the_average_and_says_so(venue, alpaca):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="filled", filled_qty="2", filled_avg_price="149.5"))
    [fill] = alpaca.sync([working(filled_quantity=D("1"))], now=NOW)
    assert (fill.quantity, fill.price, fill.extra["price_estimated"]) == (D("1"), D("149.5"), True)


def test_a_fill_already_recorded_is_not_reported_again(venue, alpaca):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="filled", filled_qty="2", filled_avg_price="150"))
    assert alpaca.sync([working(filled_quantity=D("2"))], now=NOW) == []


@pytest.mark.parametrize(("status", "kind", "stamp"), [
    ("canceled", ReportKind.CANCELLED, "canceled_at"), ("expired", ReportKind.EXPIRED, "expired_at"),
    ("rejected", ReportKind.REJECTED, "failed_at")])
def test_a_finished_order_is_reported_after_its_fills(venue, alpaca, status, kind, stamp):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status=status, filled_qty="1", filled_avg_price="150",
                                 **{stamp: "2026-03-02T14:58:00Z"}))
    reports = alpaca.sync([working()], now=NOW)
    assert [r.kind for r in reports] == [ReportKind.FILL, kind]
    assert reports[1].timestamp == datetime(2026, 3, 2, 14, 58, tzinfo=UTC)


@pytest.mark.parametrize("status", ["new", "accepted", "held", "pending_new", "done_for_day", "pending_cancel",
                                    "pending_replace", "stopped", "suspended", "calculated", "accepted_for_bidding"])
def test_a_live_unfilled_order_reports_nothing(venue, alpaca, status):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status=status))
    assert alpaca.sync([working(broker_order_id=ALPACA_ID)], now=NOW) == []


def test_a_replaced_order_continues_in_its_replacement_and_fills_add_up(venue, alpaca):
    replacement = {**payload("orders_patch"), "status": "filled", "qty": "1", "filled_qty": "1",
                   "filled_avg_price": "151"}
    first = alpaca_order(client_order_id=ORDER_ID, status="replaced", filled_qty="1", filled_avg_price="150",
                         replaced_by=replacement["id"])
    _listing(venue, replacement, first)
    reports = alpaca.sync([working()], now=NOW)
    assert [(r.kind, r.quantity, r.price) for r in reports] == [(ReportKind.FILL, D("1"), D("150")),
                                                                (ReportKind.FILL, D("1"), D("151"))]
    assert len({r.fill_id for r in reports}) == 2


def test_a_replacement_outside_the_listing_is_fetched(venue, alpaca):
    replacement = {**payload("orders_patch"), "status": "canceled"}
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="replaced", replaced_by=replacement["id"]))
    venue.get(f"{TRADING}/v2/orders/{replacement['id']}", json=replacement)
    [report] = alpaca.sync([working()], now=NOW)
    assert report.kind is ReportKind.CANCELLED and report.extra["alpaca_order_id"] == replacement["id"]


def test_an_order_missing_from_the_listing_is_looked_up_by_client_id(venue, alpaca):
    _listing(venue)
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", json=alpaca_order(client_order_id=ORDER_ID, status="filled",
                                                                           filled_qty="2", filled_avg_price="150"))
    [fill] = alpaca.sync([working()], now=NOW)
    assert fill.quantity == D("2")


def test_an_order_alpaca_never_saw_is_rejected_after_a_grace_period(venue, alpaca):
    _listing(venue)
    for _ in range(2):
        venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
    assert alpaca.sync([working()], now=NOW + timedelta(seconds=30)) == []
    [report] = alpaca.sync([working()], now=NOW + timedelta(minutes=3))
    assert report.kind is ReportKind.REJECTED


def test_bracket_legs_are_found_under_their_entry(venue, alpaca):
    entry_id = "6a1f0e7c-0d4e-4c43-9a1b-2b8c3d4e5f60"
    bracket = payload("orders_post_bracket")
    bracket["client_order_id"] = entry_id
    bracket["status"] = "filled"
    bracket["legs"][0].update(status="filled", filled_qty="100", filled_avg_price="301.02")
    bracket["legs"][1].update(status="canceled")
    _listing(venue, bracket)
    group = f"bracket-{entry_id}"
    tp = working(order_id="tp-ours", symbol="SPY", side=Side.SELL, quantity=D("100"), limit_price=D("301"),
                 venue_oco_id=group)
    sl = working(order_id="sl-ours", symbol="SPY", side=Side.SELL, quantity=D("100"), order_type=OrderType.STOP,
                 limit_price=None, stop_price=D("299"), venue_oco_id=group)
    reports = alpaca.sync([tp, sl], now=NOW)
    assert [(r.order_id, r.kind) for r in reports] == [("tp-ours", ReportKind.FILL), ("sl-ours", ReportKind.CANCELLED)]
    assert reports[0].price == D("301.02")


def test_a_leg_nobody_can_find_reports_nothing(venue, alpaca):
    _listing(venue)
    venue.get(f"{TRADING}/v2/orders:by_client_order_id", status=404, json=error_case("order_not_found")["body"])
    leg = working(order_id="sl-ours", venue_oco_id="oco-somewhere")
    assert alpaca.sync([leg], now=NOW + timedelta(hours=1)) == []


def test_a_trailing_stop_reports_its_high_water_mark(venue, alpaca):
    _listing(venue, alpaca_order(client_order_id=ORDER_ID, status="new", type="trailing_stop", limit_price=None,
                                 trail_price="2", hwm="175.5", stop_price="173.5"))
    order = working(order_type=OrderType.TRAILING_STOP, limit_price=None, trailing_distance=D("2"),
                    trailing_type=TrailingType.ABSOLUTE, broker_order_id=ALPACA_ID)
    [state] = alpaca.sync([order], now=NOW)
    assert state.kind is ReportKind.STATE and state.trail_reference == D("175.5")


# -- trade_updates stream ------------------------------------------------------------------------------------------
FRAMES = payload("stream_trade_updates")


def test_a_fill_frame_is_a_fill_report_with_the_sync_fill_id():
    report = parse_alpaca_trade_update(FRAMES["fill"])
    assert (report.kind, report.order_id) == (ReportKind.FILL, "4642fd68-d59a-47d7-a9ac-e22f536828d1")
    assert (report.quantity, report.price) == (D("1790.86"), D("105.8988475"))
    assert report.fill_id == "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f:1790.86"
    assert report.timestamp == datetime(2022, 4, 19, 17, 45, 5, 24916, tzinfo=UTC)
    assert report.extra["execution_id"] == "2f63ea93-423d-4169-b3f6-3fdafc10c418"


def test_a_partial_fill_frame_reports_the_execution_not_the_total():
    report = parse_alpaca_trade_update(FRAMES["partial_fill"])
    assert (report.quantity, report.price, report.fill_id) == (
        D("1000"), D("105.9"), "a5be8f5e-fdfa-41f5-a644-7a74fe947a8f:1000")


def test_a_canceled_frame_is_a_cancel_and_other_events_are_nothing():
    assert parse_alpaca_trade_update(FRAMES["canceled"]).kind is ReportKind.CANCELLED
    assert parse_alpaca_trade_update(FRAMES["new"]) is None
    assert parse_alpaca_trade_update(FRAMES["listening"]) is None


def test_a_leg_frame_maps_to_our_order_through_the_broker(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=payload("orders_post_bracket"))
    entry = ticket(symbol="SPY", order_type=OrderType.MARKET, limit_price=None, quantity=D("100"))
    alpaca.submit_bracket(entry, _legs())
    leg = {**payload("orders_post_bracket")["legs"][0], "status": "filled", "filled_qty": "100",
           "filled_avg_price": "301"}
    frame = {"stream": "trade_updates", "data": {"event": "fill", "order": leg, "qty": "100", "price": "301",
                                                 "timestamp": "2026-03-02T15:00:00Z"}}
    assert parse_alpaca_trade_update(frame, order_id_for=alpaca.desk_order_id).order_id == "tp-1"


def test_binary_and_list_frames_are_read():
    assert parse_alpaca_frame(json.dumps(FRAMES["fill"]).encode()) == [json.loads(json.dumps(FRAMES["fill"]),
                                                                                  parse_float=Decimal)]
    assert len(parse_alpaca_frame(json.dumps([FRAMES["new"], FRAMES["fill"]]))) == 2
    assert parse_alpaca_frame(b"not json") == []


class FakeSocket:
    """A scripted trade stream: ``recv`` returns the frames in order, then raises what it is given."""

    def __init__(self, frames, then: BaseException | None = None):
        self.frames, self.then, self.sent = list(frames), then, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def send(self, text):
        self.sent.append(json.loads(text))

    def recv(self, timeout=None):
        if self.frames:
            frame = self.frames.pop(0)
            return json.dumps(frame).encode()
        raise self.then or TimeoutError()


def _stream(sockets, **kwargs):
    sleeps: list[float] = []
    connect = iter(sockets)
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET)
    updates = AlpacaTradeUpdates(config, connect=lambda url: next(connect), sleep=sleeps.append,
                                 jitter=lambda: 0.0, **kwargs)
    return updates, sleeps


def test_the_stream_authenticates_listens_and_yields_reports():
    stop = threading.Event()
    socket = FakeSocket([FRAMES["authorized"], FRAMES["listening"], FRAMES["new"], FRAMES["fill"]])
    updates, _ = _stream([socket])
    reports = updates.reports(stop)
    first = next(reports)
    stop.set()
    assert first.kind is ReportKind.FILL
    assert socket.sent == [{"action": "authenticate", "data": {"key_id": KEY, "secret_key": SECRET}},
                           {"action": "listen", "data": {"streams": ["trade_updates"]}}]


def test_the_stream_reconnects_with_backoff_and_asks_for_a_resync():
    stop = threading.Event()
    resyncs = []
    lost = FakeSocket([FRAMES["authorized"], FRAMES["listening"]], then=ConnectionClosedError(None, None))
    refused = FakeSocket([], then=OSError("connection refused"))
    back = FakeSocket([FRAMES["authorized"], FRAMES["listening"], FRAMES["fill"]])
    updates, sleeps = _stream([lost, refused, back], on_reconnect=lambda: resyncs.append(1))
    report = next(updates.reports(stop))
    stop.set()
    assert report.kind is ReportKind.FILL
    assert sleeps == [1.0, 2.0] and resyncs == [1]


def test_a_stream_error_message_reconnects():
    stop = threading.Event()
    failing = FakeSocket([FRAMES["authorized"], FRAMES["listening"], FRAMES["error"]])
    back = FakeSocket([FRAMES["authorized"], FRAMES["listening"], FRAMES["canceled"]])
    updates, sleeps = _stream([failing, back])
    assert next(updates.reports(stop)).kind is ReportKind.CANCELLED
    stop.set()
    assert sleeps == [1.0]


def test_refused_stream_credentials_end_the_stream_without_showing_them():
    updates, _ = _stream([FakeSocket([FRAMES["unauthorized"]])])
    with pytest.raises(Unauthorized) as raised:
        next(updates.reports())
    assert SECRET not in str(raised.value) and KEY not in str(raised.value)


def test_the_stream_gives_up_after_max_attempts():
    sockets = [FakeSocket([], then=OSError("down")) for _ in range(3)]
    updates, sleeps = _stream(sockets, max_attempts=2)
    with pytest.raises(ProviderUnavailable):
        next(updates.reports())
    assert sleeps == [1.0, 2.0]


def test_backoff_is_capped_and_jittered():
    updates = AlpacaTradeUpdates(AlpacaConfig(api_key=KEY, api_secret=SECRET), jitter=lambda: 1.0, max_backoff=60)
    assert updates.backoff(0) == 1.25 and updates.backoff(10) == 75.0


def test_modifying_a_held_bracket_leg_keeps_it_pending(venue, alpaca):
    bracket = payload("orders_post_bracket")
    venue.post(f"{TRADING}/v2/orders", json=bracket)
    entry = ticket(symbol="SPY", order_type=OrderType.MARKET, limit_price=None, quantity=D("100"))
    tp = _legs()[0]
    alpaca.submit_bracket(entry, _legs())
    leg = bracket["legs"][0]
    venue.get(f"{TRADING}/v2/orders/{leg['id']}", json=leg)
    venue.patch(f"{TRADING}/v2/orders/{leg['id']}", json={**leg, "id": "new-leg-id", "limit_price": "302"},
                match=[matchers.json_params_matcher({"limit_price": "302"})])
    ack = alpaca.modify_order(tp, limit_price=D("302"))
    assert (ack.broker_order_id, ack.status) == ("new-leg-id", OrderStatus.PENDING)


def test_an_order_this_process_placed_is_synced_by_its_remembered_id(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=alpaca_order(client_order_id=ORDER_ID))
    alpaca.submit_order(ticket())
    _listing(venue)
    venue.get(f"{TRADING}/v2/orders/7b08df51-c1ac-453c-99f9-323a5f075f0d",
              json=alpaca_order(client_order_id=ORDER_ID, status="filled", filled_qty="2", filled_avg_price="150"))
    [fill] = alpaca.sync([working()], now=NOW)
    assert fill.quantity == D("2")


def test_a_replacement_seen_on_the_stream_maps_to_the_order_it_replaces(venue, alpaca):
    venue.post(f"{TRADING}/v2/orders", json=alpaca_order(client_order_id=ORDER_ID))
    alpaca.submit_order(ticket())
    replacement = {**payload("orders_patch"), "status": "filled", "filled_qty": "2", "filled_avg_price": "151"}
    frame = {"stream": "trade_updates", "data": {"event": "fill", "order": replacement, "qty": "2", "price": "151",
                                                 "timestamp": "2026-03-02T15:00:01Z"}}
    assert parse_alpaca_trade_update(frame, order_id_for=alpaca.desk_order_id).order_id == ORDER_ID


def test_the_tickets_day_open_is_asked_of_the_venue_once_a_minute_however_fast_a_person_types(venue, alpaca):
    page = {**payload("marketdata_stocks_bars"), "next_page_token": None}
    day_bars = venue.get(f"{DATA}/v2/stocks/AAPL/bars", json=page,
                         match=[matchers.query_param_matcher({"timeframe": "1Day"}, strict_match=False)])

    opens = [_day_open(alpaca, "AAPL", NOW) for _ in range(5)]       # what each live preview shows the change from

    assert opens == [D("178.26")] * 5
    assert day_bars.call_count == 1
