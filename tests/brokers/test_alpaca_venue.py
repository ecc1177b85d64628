"""Alpaca's truth as the adapter reads it: the account, its positions and working orders (recorded payloads served
by ``responses``), the legs Alpaca releases or replaces, and the hosts the keys may go to."""

from __future__ import annotations

import copy
from datetime import timedelta
from decimal import Decimal

import pytest
import responses
from django.core.exceptions import ImproperlyConfigured
from responses import matchers

from orders.brokers.alpaca import AlpacaBroker, AlpacaConfig, AlpacaTradeUpdates, build_alpaca_broker
from orders.brokers.alpaca.account import parse_alpaca_account, parse_alpaca_positions
from orders.brokers.alpaca.broker import ACCEPTED_REPEAT
from orders.brokers.alpaca.config import default_data_url, is_alpaca_host
from orders.brokers.http import RetryPolicy
from orders.brokers.types import ReportKind, VenueAccount, VenuePosition
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import DeskError, ProviderError, ProviderUnavailable
from tests.brokers.test_alpaca import DATA, KEY, NOW, SECRET, TRADING, payload, working

D = Decimal
OPEN_ORDERS = {"status": "open", "nested": "true", "limit": "500", "direction": "desc"}


@pytest.fixture
def venue():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def alpaca() -> AlpacaBroker:
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET, base_url=TRADING, data_url=DATA)
    return AlpacaBroker(config, sleep=lambda seconds: None, retry=RetryPolicy(attempts=2),
                        clock=lambda: NOW.timestamp())


# -- the account -------------------------------------------------------------------------------------------------
def test_the_spec_account_reads_as_the_venues_figures_in_decimals(venue, alpaca):
    venue.get(f"{TRADING}/v2/account", json=payload("account_get"),
              match=[matchers.header_matcher({"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})])
    assert alpaca.account_state(now=NOW) == VenueAccount(
        cash=D("122086.5"), equity=D("123346.11"), buying_power=D("245432.61"), margin_used=D("629.8"),
        margin_available=D("122716.31"), currency="USD", unrealized_pnl=None)


def test_margin_used_is_the_initial_margin_and_what_is_left_never_goes_below_zero():
    body = {**payload("account_get"), "equity": "500", "initial_margin": "800", "maintenance_margin": "400"}
    figures = parse_alpaca_account(body)
    assert (figures.margin_used, figures.margin_available) == (D("800"), D("0"))


def test_an_account_without_initial_margin_uses_nothing():
    body = {k: v for k, v in payload("account_get").items() if k != "initial_margin"}
    figures = parse_alpaca_account(body)
    assert (figures.margin_used, figures.margin_available) == (D("0"), D("123346.11"))


@pytest.mark.parametrize("body", [[], None, {"cash": "1", "equity": "2"}, {"cash": None, "equity": "1",
                                                                            "buying_power": "1"}])
def test_an_account_the_desk_cannot_read_is_a_provider_error(body):
    with pytest.raises(ProviderError):
        parse_alpaca_account(body)


def test_a_failing_account_read_is_unavailable_after_the_retries(venue, alpaca):
    for _ in range(2):
        venue.get(f"{TRADING}/v2/account", status=503, json={"code": 50310000, "message": "service unavailable"})
    with pytest.raises(ProviderUnavailable):
        alpaca.account_state(now=NOW)


# -- positions ---------------------------------------------------------------------------------------------------
def test_positions_are_signed_by_side_and_crypto_reads_as_the_desks_symbol(venue, alpaca):
    venue.get(f"{TRADING}/v2/positions", json=payload("positions_get"))
    assert alpaca.positions(now=NOW) == [
        VenuePosition(symbol="AAPL", quantity=D("2"), average_price=D("174.78"), mark=D("174.29")),
        VenuePosition(symbol="TSLA", quantity=D("-3"), average_price=D("251.4"), mark=D("248.4")),
        VenuePosition(symbol="BTCUSD", quantity=D("0.012345678"), average_price=D("61820.5"), mark=D("62408.7"))]


def test_a_short_written_without_its_sign_is_still_short_and_a_slash_symbol_reads_without_it():
    short = {**payload("positions_get")[1], "qty": "3"}
    crypto = {**payload("positions_get")[2], "symbol": "ETH/USD", "qty": "0.5"}
    assert [(p.symbol, p.quantity) for p in parse_alpaca_positions([short, crypto])] == [
        ("TSLA", D("-3")), ("ETHUSD", D("0.5"))]


def test_a_position_of_nothing_is_left_out_and_a_broken_one_is_a_provider_error():
    assert parse_alpaca_positions([{**payload("positions_get")[0], "qty": "0"}]) == []
    with pytest.raises(ProviderError):
        parse_alpaca_positions([{"side": "long"}])
    with pytest.raises(ProviderError):
        parse_alpaca_positions({"positions": []})


# -- working orders ----------------------------------------------------------------------------------------------
def test_open_orders_take_the_legs_out_of_their_parents(venue, alpaca):
    venue.get(f"{TRADING}/v2/orders", json=payload("orders_get_open"),
              match=[matchers.query_param_matcher(OPEN_ORDERS)])
    found = {o.broker_order_id: o for o in alpaca.open_orders(now=NOW)}
    assert {oid: (o.client_order_id, o.symbol, o.side, o.order_type, o.status) for oid, o in found.items()} == {
        "c4d5e6f7-0819-4a2b-bc3d-4e5f60718293": ("my-other-app-42", "AAPL", Side.BUY, OrderType.LIMIT,
                                                 OrderStatus.OPEN),
        "38e482f3-79a8-4f75-a057-f07a1ec6a397": ("5b5d3d67-06ad-4ffa-af65-a117d0fc5a59", "ETHUSD", Side.BUY,
                                                 OrderType.LIMIT, OrderStatus.OPEN),
        "61e69015-8549-4bfd-b9c3-01e75843f47d": ("eb9e2aaa-f71a-4f51-b5b4-52a6c565dad4", "SPY", Side.BUY,
                                                 OrderType.LIMIT, OrderStatus.OPEN),
        "0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a": ("9b2f8d1e-7c6a-4b5d-8e9f-0a1b2c3d4e5f", "SPY", Side.SELL,
                                                 OrderType.LIMIT, OrderStatus.PENDING),
        "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f": ("1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b", "SPY", Side.SELL,
                                                 OrderType.STOP_LIMIT, OrderStatus.PENDING),
        "8e7d6c5b-4a39-4281-9f0e-d1c2b3a4f5e6": ("0f9e8d7c-6b5a-4493-8271-605f4e3d2c1b", "SPY", Side.SELL,
                                                 OrderType.LIMIT, OrderStatus.OPEN),
        "a1b2c3d4-e5f6-4789-8abc-def012345678": ("b2c3d4e5-f6a7-4890-9bcd-ef0123456789", "SPY", Side.SELL,
                                                 OrderType.STOP_LIMIT, OrderStatus.OPEN)}
    stop = found["a1b2c3d4-e5f6-4789-8abc-def012345678"]
    assert (stop.quantity, stop.filled_quantity, stop.stop_price, stop.limit_price, stop.time_in_force) == (
        D("100"), D("0"), D("299"), D("298.5"), TimeInForce.GTC)
    assert found["c4d5e6f7-0819-4a2b-bc3d-4e5f60718293"].created_at.isoformat().startswith("2023-12-12T22:31:24")


def test_a_full_page_of_open_orders_is_followed_by_the_next(venue, alpaca):
    template = payload("orders_get_open")[0]
    page = [{**template, "id": f"00000000-0000-4000-8000-{n:012d}"} for n in range(500)]
    venue.get(f"{TRADING}/v2/orders", json=page, match=[matchers.query_param_matcher(OPEN_ORDERS)])
    venue.get(f"{TRADING}/v2/orders", json=[{**template, "id": "ffffffff-0000-4000-8000-000000000000"}],
              match=[matchers.query_param_matcher({**OPEN_ORDERS, "before_order_id": page[-1]["id"]})])
    assert len(alpaca.open_orders(now=NOW)) == 501


def test_an_option_leg_the_desk_has_no_word_for_is_left_out(venue, alpaca):
    option = {**payload("orders_get_open")[0], "type": "", "order_type": ""}
    venue.get(f"{TRADING}/v2/orders", json=[option])
    assert alpaca.open_orders(now=NOW) == []


# -- the request budget ------------------------------------------------------------------------------------------
def test_the_reads_of_one_moment_share_one_request(venue, alpaca):
    venue.get(f"{TRADING}/v2/account", json=payload("account_get"))
    venue.get(f"{TRADING}/v2/positions", json=payload("positions_get"))
    for millis in (0, 300, 900):
        alpaca.account_state(now=NOW + timedelta(milliseconds=millis))
        alpaca.positions(now=NOW + timedelta(milliseconds=millis))
    assert len(venue.calls) == 2
    alpaca.account_state(now=NOW + timedelta(seconds=1))
    assert len(venue.calls) == 3


def test_an_order_sent_forgets_what_was_read(venue, alpaca):
    venue.get(f"{TRADING}/v2/account", json=payload("account_get"))
    venue.delete(f"{TRADING}/v2/orders/7b08df51-c1ac-453c-99f9-323a5f075f0d", status=204)
    venue.get(f"{TRADING}/v2/orders/7b08df51-c1ac-453c-99f9-323a5f075f0d",
              json={**payload("orders_post"), "status": "new"})
    alpaca.account_state(now=NOW)
    ticket = working(broker_order_id="7b08df51-c1ac-453c-99f9-323a5f075f0d")
    alpaca.cancel_order(ticket)
    alpaca.account_state(now=NOW)
    assert [c.request.method for c in venue.calls].count("GET") == 3      # account, the order, account again


# -- released and replaced legs ----------------------------------------------------------------------------------
ENTRY_OURS = "6a1f0e7c-0d4e-4c43-9a1b-2b8c3d4e5f60"
TP_ALPACA = "0a3b7b8c-3b5e-4f5e-9b0e-6f1e2d3c4b5a"


def _bracket(entry_status: str, *leg_statuses: str) -> dict:
    bracket = payload("orders_post_bracket")
    bracket.update(client_order_id=ENTRY_OURS, status=entry_status)
    for leg, status in zip(bracket["legs"], leg_statuses, strict=True):
        leg.update(status=status, updated_at="2026-03-02T14:59:30Z")
    return bracket


def _take_profit(**changes):
    fields = {"order_id": "tp-ours", "symbol": "SPY", "side": Side.SELL, "quantity": D("100"),
              "limit_price": D("301"), "venue_oco_id": f"bracket-{ENTRY_OURS}", "broker_order_id": TP_ALPACA}
    return working(**{**fields, **changes})


def _listing(venue, *orders):
    venue.get(f"{TRADING}/v2/orders", json=[copy.deepcopy(o) for o in orders])


def test_a_held_leg_reports_nothing(venue, alpaca):
    _listing(venue, _bracket("new", "held", "held"))
    assert alpaca.sync([_take_profit()], now=NOW) == []


@pytest.mark.parametrize("status", ["new", "accepted", "pending_new", "partially_filled", "done_for_day"])
def test_a_released_leg_is_reported_accepted_with_its_alpaca_id(venue, alpaca, status):
    leg_fill = {"filled_qty": "40", "filled_avg_price": "301.05"} if status == "partially_filled" else {}
    bracket = _bracket("filled", status, "new")
    bracket["legs"][0].update(leg_fill)
    _listing(venue, bracket)
    reports = alpaca.sync([_take_profit()], now=NOW)
    assert reports[0].kind is ReportKind.ACCEPTED and reports[0].order_id == "tp-ours"
    assert reports[0].extra["broker_order_id"] == TP_ALPACA and reports[0].extra["alpaca_status"] == status
    assert [r.kind for r in reports[1:]] == ([ReportKind.FILL] if leg_fill else [])


def test_a_released_leg_is_said_once_not_on_every_poll(venue, alpaca):
    for _ in range(3):
        _listing(venue, _bracket("filled", "new", "new"))
    assert [r.kind for r in alpaca.sync([_take_profit()], now=NOW)] == [ReportKind.ACCEPTED]
    assert alpaca.sync([_take_profit()], now=NOW + timedelta(seconds=2)) == []
    later = NOW + ACCEPTED_REPEAT
    assert [r.kind for r in alpaca.sync([_take_profit()], now=later)] == [ReportKind.ACCEPTED], \
        "said again after a while, in case the desk could not apply it"


@pytest.mark.parametrize("status", ["held", "pending_cancel", "canceled", "filled"])
def test_a_leg_that_is_not_working_is_never_said_accepted(venue, alpaca, status):
    bracket = _bracket("filled", status, "new")
    if status == "filled":
        bracket["legs"][0].update(filled_qty="100", filled_avg_price="301")
    _listing(venue, bracket)
    assert ReportKind.ACCEPTED not in [r.kind for r in alpaca.sync([_take_profit()], now=NOW)]


def test_an_ordinary_open_order_is_never_said_accepted(venue, alpaca):
    _listing(venue, {**payload("orders_post"), "client_order_id": "mine", "status": "new"})
    order = working(order_id="mine", broker_order_id="7b08df51-c1ac-453c-99f9-323a5f075f0d")
    assert alpaca.sync([order], now=NOW) == []


def test_an_order_whose_answer_was_lost_is_accepted_with_the_id_alpaca_gave_it(venue, alpaca):
    _listing(venue, {**payload("orders_post"), "client_order_id": "lost-answer", "status": "new"})
    [report] = alpaca.sync([working(order_id="lost-answer")], now=NOW)
    assert (report.kind, report.extra["broker_order_id"]) == (ReportKind.ACCEPTED,
                                                              "7b08df51-c1ac-453c-99f9-323a5f075f0d")


def test_a_replaced_leg_is_followed_to_its_working_replacement(venue, alpaca):
    bracket = _bracket("filled", "replaced", "new")
    replacement = {**bracket["legs"][0], "id": "9d9d9d9d-1111-4222-8333-444455556666", "status": "new",
                   "limit_price": "305", "replaces": TP_ALPACA, "client_order_id": "alpaca-made-this"}
    bracket["legs"][0]["replaced_by"] = replacement["id"]
    _listing(venue, bracket, replacement)
    [report] = alpaca.sync([_take_profit()], now=NOW)
    assert report.kind is ReportKind.ACCEPTED
    assert report.extra == {"broker_order_id": TP_ALPACA, "alpaca_order_id": replacement["id"],
                            "alpaca_status": "new", "replaced": True}


def test_a_replaced_leg_whose_replacement_is_held_stays_quiet_and_a_lost_one_ends(venue, alpaca):
    bracket = _bracket("new", "replaced", "held")
    replacement = {**bracket["legs"][0], "id": "9d9d9d9d-1111-4222-8333-444455556666", "status": "held"}
    bracket["legs"][0]["replaced_by"] = replacement["id"]
    _listing(venue, bracket, replacement)
    assert alpaca.sync([_take_profit()], now=NOW) == []
    _listing(venue, bracket)
    venue.get(f"{TRADING}/v2/orders/{replacement['id']}", status=404,
              json={"code": 40410000, "message": "order not found"})
    [report] = alpaca.sync([_take_profit()], now=NOW + timedelta(seconds=5))
    assert report.kind is ReportKind.CANCELLED and "replaced" in report.reason


# -- hosts -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("base", "alpacas"), [
    ("https://paper-api.alpaca.markets", True), ("https://api.alpaca.markets/", True),
    ("http://paper-api.alpaca.markets", False), ("https://alpaca.markets.example.com", False),
    ("https://notalpaca.markets", False), ("http://127.0.0.1:8999", False), ("https://gateway.internal", False)])
def test_only_alpacas_own_https_hosts_count_as_alpaca(base, alpacas):
    assert is_alpaca_host(base) is alpacas
    assert default_data_url(base) == (DATA if alpacas else base.rstrip("/"))


def _env(monkeypatch, **values):
    monkeypatch.setenv("ALPACA_API_KEY", KEY)
    monkeypatch.setenv("ALPACA_API_SECRET", SECRET)
    for name in ("ALPACA_BASE_URL", "ALPACA_DATA_URL", "ALPACA_STREAM_URL", "ALPACA_FEED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_a_local_base_url_carries_market_data_and_the_stream_too(monkeypatch):
    _env(monkeypatch, ALPACA_BASE_URL="http://127.0.0.1:8999")
    config = build_alpaca_broker().config
    assert (config.base_url, config.data_url, config.stream_url) == (
        "http://127.0.0.1:8999", "http://127.0.0.1:8999", "ws://127.0.0.1:8999/stream")
    assert config.hosts == {"127.0.0.1:8999"}


def test_the_paper_host_keeps_alpacas_data_host(monkeypatch):
    _env(monkeypatch)
    config = build_alpaca_broker().config
    assert (config.data_url, config.stream_url) == (DATA, "wss://paper-api.alpaca.markets/stream")
    assert config.hosts == {"paper-api.alpaca.markets:443", "data.alpaca.markets:443"}


def test_data_and_stream_overrides_are_used_as_given(monkeypatch):
    _env(monkeypatch, ALPACA_BASE_URL="http://127.0.0.1:8999", ALPACA_DATA_URL="http://127.0.0.1:9001",
         ALPACA_STREAM_URL="ws://127.0.0.1:9002/stream")
    config = build_alpaca_broker().config
    assert (config.data_url, config.stream_url) == ("http://127.0.0.1:9001", "ws://127.0.0.1:9002/stream")


@pytest.mark.parametrize(("name", "value"), [("ALPACA_BASE_URL", "paper-api.alpaca.markets"),
                                             ("ALPACA_DATA_URL", "ftp://data.example"),
                                             ("ALPACA_STREAM_URL", "https://127.0.0.1:9002/stream")])
def test_a_url_that_is_not_one_stops_start_up_naming_the_variable(monkeypatch, name, value):
    _env(monkeypatch, **{name: value})
    with pytest.raises(ImproperlyConfigured) as raised:
        build_alpaca_broker()
    assert name in str(raised.value) and KEY not in str(raised.value)


def test_market_data_of_a_local_base_goes_to_that_base_and_nowhere_else(venue, monkeypatch):
    _env(monkeypatch, ALPACA_BASE_URL="http://127.0.0.1:8999")
    broker = build_alpaca_broker()
    venue.get("http://127.0.0.1:8999/v2/stocks/AAPL/quotes/latest", json=payload("marketdata_stocks_quotes_latest"))
    venue.get("http://127.0.0.1:8999/v1beta3/crypto/us/latest/quotes", json=payload("marketdata_crypto_latest_quotes"))
    broker.quote("AAPL", now=NOW)
    broker.quote("BTCUSD", now=NOW)
    assert {c.request.url.split("/v")[0] for c in venue.calls} == {"http://127.0.0.1:8999"}


def test_the_trade_stream_dials_the_configured_url():
    dialled: list[str] = []

    def refuse(url):
        dialled.append(url)
        raise OSError("refused")

    config = AlpacaConfig(api_key=KEY, api_secret=SECRET, base_url="http://127.0.0.1:8999")
    updates = AlpacaTradeUpdates(config, connect=refuse, sleep=lambda s: None, max_attempts=1)
    with pytest.raises(ProviderUnavailable):
        list(updates.reports())
    assert set(dialled) == {"ws://127.0.0.1:8999/stream"}


def test_a_redirect_is_not_followed_to_a_host_nobody_named(venue, alpaca):
    venue.get(f"{TRADING}/v2/account", status=302, headers={"Location": "https://elsewhere.example/v2/account"})
    with pytest.raises(DeskError):
        alpaca.account_state(now=NOW)
    assert [c.request.url for c in venue.calls] == [f"{TRADING}/v2/account"]
