"""The Kraken adapter against a fake Kraken Spot running as its own process (``tests/fakes/kraken.py``): a venue
the adapter did not write, that checks every signature and nonce, holds balances for resting orders, takes fees,
fires its dead man's switch on a real timer, and fails or drops connections when told to.

One fake serves the module; each test starts from ``/_fake/reset`` (a fresh account) with a fresh broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from orders.brokers.http import HttpClient, RetryPolicy
from orders.brokers.kraken import KrakenBroker, KrakenConfig, build_kraken_broker
from orders.brokers.types import OrderTicket, VenuePosition
from orders.domain.enums import OrderType, Side
from orders.domain.errors import OrderRejected, ProviderError, ProviderUnavailable, Unauthorized
from tests.fakes import FakeVenue
from tests.fakes.kraken import API_KEY, API_SECRET


@pytest.fixture(scope="module")
def fake():
    with FakeVenue("kraken") as venue:
        yield venue


@pytest.fixture
def venue(fake):
    fake.control("reset")
    return fake


def state(venue) -> dict:
    return requests.get(f"{venue.url}/_fake/state", timeout=5).json()


def venue_requests(venue) -> list[dict]:
    return requests.get(f"{venue.url}/_fake/requests", timeout=5).json()


def calls_to(venue, method: str) -> list[dict]:
    return [r for r in venue_requests(venue) if r["path"].endswith(f"/{method}")]


def make_broker(venue, *, secret: str = API_SECRET, clock=time.time) -> KrakenBroker:
    http = HttpClient(base_url=venue.url, provider="kraken", sleep=lambda s: None, retry=RetryPolicy(attempts=3),
                      timeout=(2.0, 5.0))
    return KrakenBroker(KrakenConfig(api_key=API_KEY, api_secret=secret, base_url=venue.url,
                                     ws_auth_url=f"{venue.ws_url}/v2"), http=http, clock=clock)


@pytest.fixture
def kraken(venue) -> KrakenBroker:
    return make_broker(venue)


def now() -> datetime:
    return datetime.now(UTC)


def order(side: Side, order_type: OrderType, quantity: str = "0.01", **prices: str) -> OrderTicket:
    return OrderTicket(order_id=str(uuid.uuid4()), client_order_id=None, symbol="XBTUSD", side=side,
                       order_type=order_type, quantity=Decimal(quantity),
                       **{name: Decimal(value) for name, value in prices.items()})


def buy_at_market(kraken, quantity: str = "0.01") -> OrderTicket:
    ticket = order(Side.BUY, OrderType.MARKET, quantity)
    kraken.submit_order(ticket)
    return ticket


# -- the account's figures ---------------------------------------------------------------------------------

def test_the_account_is_the_fakes_figures(venue, kraken):
    account = kraken.account_state(now=now())
    figures = state(venue)["account"]
    assert (account.cash, account.equity, account.buying_power, account.currency) == (
        Decimal(figures["cash"]), Decimal(figures["equity"]), Decimal(figures["buying_power"]), "USD")
    assert account.cash == Decimal("100000")


def test_after_a_buy_and_a_resting_order_the_figures_still_match_the_venue(venue, kraken):
    buy_at_market(kraken)
    kraken.submit_order(order(Side.BUY, OrderType.LIMIT, "0.01", limit_price="20000.0"))
    venue.control("price", pair="XBTUSD", price="31000.0")
    account = kraken.account_state(now=now())
    figures = state(venue)["account"]
    assert (account.cash, account.equity, account.buying_power) == (
        Decimal(figures["cash"]), Decimal(figures["equity"]), Decimal(figures["buying_power"]))
    # 0.01 bought at 30000 with a 0.26 % fee in USD, then priced at 31000; the resting buy holds 200 + fee
    assert account.cash == Decimal("99699.2200")
    assert account.equity == Decimal("100009.2200")
    assert account.buying_power == Decimal("99498.7000")


def test_the_fee_is_taken_in_usd_so_the_whole_quantity_is_held(venue, kraken):
    buy_at_market(kraken)
    assert state(venue)["balances"]["XXBT"] == "0.0100000000"
    assert kraken.positions(now=now()) == [VenuePosition(symbol="XBTUSD", quantity=Decimal("0.0100000000"),
                                                         mark=Decimal("30000.0"))]


def test_a_balance_from_outside_the_desk_is_a_position(venue, kraken):
    venue.control("balance", asset="XBT", amount="0.5")
    venue.control("balance", asset="SOL", amount="12.5")
    venue.control("balance", asset="KFEE", amount="100")
    assert kraken.positions(now=now()) == [
        VenuePosition(symbol="SOLUSD", quantity=Decimal("12.5000000000"), mark=Decimal("100.00")),
        VenuePosition(symbol="XBTUSD", quantity=Decimal("0.5000000000"), mark=Decimal("30000.0"))]


def test_an_order_from_another_app_is_listed_with_its_userref(venue, kraken):
    venue.control("external_order", pair="XBTUSD", type="buy", ordertype="limit", volume="0.002", price="25000.0",
                  userref=4242)
    (listed,) = kraken.open_orders(now=now())
    assert (listed.client_order_id, listed.symbol, listed.side, listed.limit_price, listed.quantity) == (
        "4242", "XBTUSD", Side.BUY, Decimal("25000.0"), Decimal("0.002"))


# -- one balance, one resting sell ----------------------------------------------------------------------------

def test_a_second_full_size_resting_sell_is_refused_because_the_stop_holds_the_balance(venue, kraken):
    buy_at_market(kraken)
    stop = order(Side.SELL, OrderType.STOP, stop_price="29000.0")
    kraken.submit_order(stop)
    assert state(venue)["held"]["XXBT"] == "0.0100000000"
    with pytest.raises(OrderRejected) as refused:
        kraken.submit_order(order(Side.SELL, OrderType.LIMIT, limit_price="31000.0"))
    assert (refused.value.code, refused.value.details["kraken_error"]) == (
        "INSUFFICIENT_BALANCE", "EOrder:Insufficient funds")
    assert [o.client_order_id for o in kraken.open_orders(now=now())] == [stop.order_id]


def test_the_take_profit_fired_by_the_desk_cancels_the_stop_then_sells(venue, kraken):
    buy_at_market(kraken)
    stop = order(Side.SELL, OrderType.STOP, stop_price="29000.0")
    kraken.submit_order(stop)
    venue.control("price", pair="XBTUSD", price="31000.0")
    assert kraken.quote("XBTUSD", now=now()).bid == Decimal("31000.0")
    kraken.cancel_order(stop)
    kraken.submit_order(order(Side.SELL, OrderType.MARKET))
    assert kraken.positions(now=now()) == []
    assert kraken.open_orders(now=now()) == []
    assert state(venue)["balances"]["ZUSD"] == "100008.4140"      # 310 less 0.806 in fees, 300.78 paid


def test_a_stop_that_triggers_at_the_venue_sells_the_balance(venue, kraken):
    buy_at_market(kraken)
    kraken.submit_order(order(Side.SELL, OrderType.STOP, stop_price="29000.0"))
    closed = venue.control("price", pair="XBTUSD", price="28950.0")["closed"]
    assert len(closed) == 1
    assert kraken.positions(now=now()) == []


# -- the dead man's switch -----------------------------------------------------------------------------------

def test_the_switch_cancels_every_order_at_its_timeout_when_not_armed_again(venue, kraken):
    buy_at_market(kraken)
    kraken.submit_order(order(Side.SELL, OrderType.STOP, stop_price="29000.0"))
    kraken.submit_order(order(Side.BUY, OrderType.LIMIT, limit_price="20000.0"))
    kraken.arm_deadman(seconds=2)
    assert kraken.deadman_trigger_at is not None
    time.sleep(1.0)
    assert len(kraken.open_orders(now=now())) == 2, "not before its time"
    time.sleep(1.8)
    assert kraken.open_orders(now=now()) == []
    deadman = state(venue)["deadman"]
    assert len(deadman["fired"]) == 1 and len(deadman["fired"][0]["cancelled"]) == 2
    assert deadman["armed"] is False, "once fired the switch stays off until armed again"


def test_armed_again_within_the_timeout_the_orders_stay(venue, kraken):
    kraken.submit_order(order(Side.BUY, OrderType.LIMIT, limit_price="20000.0"))
    for _ in range(4):
        kraken.arm_deadman(seconds=2)
        time.sleep(0.8)
    assert len(kraken.open_orders(now=now())) == 1
    kraken.arm_deadman(seconds=0)
    time.sleep(2.3)
    assert len(kraken.open_orders(now=now())) == 1, "disarmed: nothing is cancelled"
    assert state(venue)["deadman"]["fired"] == []


# -- failures --------------------------------------------------------------------------------------------------

def test_a_read_that_meets_two_5xx_answers_is_retried_and_answers(venue, kraken):
    venue.control("fail", count=2, method="BalanceEx", status=502)
    assert kraken.account_state(now=now()).cash == Decimal("100000")
    assert len(calls_to(venue, "BalanceEx")) == 3


def test_a_read_that_keeps_failing_is_a_clear_provider_error(venue, kraken):
    venue.control("fail", count=5, method="BalanceEx", status=503)
    with pytest.raises(ProviderUnavailable):
        kraken.account_state(now=now())


def test_krakens_own_unavailable_answer_is_provider_unavailable(venue, kraken):
    venue.control("fail", count=1, method="OpenOrders", kind="unavailable")
    with pytest.raises(ProviderUnavailable, match="EService:Unavailable"):
        kraken.open_orders(now=now())


def test_a_dropped_connection_on_a_read_is_retried(venue, kraken):
    venue.control("drop", count=1, method="OpenOrders")
    assert kraken.open_orders(now=now()) == []
    assert len(calls_to(venue, "OpenOrders")) == 2


def test_an_order_refused_with_a_5xx_is_not_sent_again(venue, kraken):
    venue.control("fail", count=1, method="AddOrder", status=503)
    ticket = order(Side.BUY, OrderType.LIMIT, limit_price="20000.0")
    with pytest.raises(ProviderUnavailable):
        kraken.submit_order(ticket)
    assert len(calls_to(venue, "AddOrder")) == 1
    assert state(venue)["open_orders"] == []
    assert kraken.lookup_order(ticket) is None


def test_an_order_whose_answer_was_lost_is_placed_once_and_found_by_its_client_id(venue, kraken):
    venue.control("fail", count=1, method="AddOrder", status=502, after=True)
    ticket = order(Side.BUY, OrderType.LIMIT, limit_price="20000.0")
    with pytest.raises(ProviderError):
        kraken.submit_order(ticket)
    assert len(calls_to(venue, "AddOrder")) == 1, "an order is never blindly resent"
    (placed,) = state(venue)["open_orders"]
    assert placed["cl_ord_id"] == ticket.order_id
    assert make_broker(venue).lookup_order(ticket).broker_order_id == placed["txid"]


def test_a_connection_dropped_after_the_order_was_placed_gives_one_order(venue, kraken):
    venue.control("drop", count=1, method="AddOrder", after=True)
    ticket = order(Side.BUY, OrderType.LIMIT, limit_price="20000.0")
    with pytest.raises(ProviderUnavailable):
        kraken.submit_order(ticket)
    assert len(calls_to(venue, "AddOrder")) == 1
    assert [o["cl_ord_id"] for o in state(venue)["open_orders"]] == [ticket.order_id]


def test_a_wrong_secret_is_refused_by_the_fake(venue):
    with pytest.raises(Unauthorized):
        make_broker(venue, secret="a2V5" * 16).account_state(now=now())


def test_a_nonce_below_the_last_one_seen_is_refused(venue, kraken):
    kraken.open_orders(now=now())
    behind = make_broker(venue, clock=lambda: time.time() - 60)     # a second process whose clock is behind
    with pytest.raises(Unauthorized) as refused:
        behind.open_orders(now=now())
    assert refused.value.details["code"] == "KRAKEN_INVALID_NONCE"
    assert len(calls_to(venue, "OpenOrders")) == 3, "refused, retried once with a fresh nonce, refused again"


# -- configuration and endpoints -----------------------------------------------------------------------------

def test_the_desks_factory_reaches_the_fake_through_its_settings(venue, monkeypatch):
    monkeypatch.setenv("KRAKEN_API_KEY", API_KEY)
    monkeypatch.setenv("KRAKEN_API_SECRET", API_SECRET)
    monkeypatch.setenv("KRAKEN_BASE_URL", venue.url)
    monkeypatch.setenv("KRAKEN_WS_AUTH_URL", f"{venue.ws_url}/v2")
    monkeypatch.setenv("KRAKEN_DEADMAN_SECONDS", "30")
    broker = build_kraken_broker()
    broker.arm_deadman(seconds=broker.deadman_seconds)
    assert state(venue)["deadman"]["timeout"] == 30
    host = venue.url.removeprefix("http://")
    assert {(r["host"], r["api_key"]) for r in venue_requests(venue)} == {(host, True)}


def test_the_executions_stream_wakes_on_every_order_event(venue, kraken):
    woken: list[list[dict]] = []

    async def scenario():
        stream = kraken.executions_stream()
        stop = asyncio.Event()
        task = asyncio.create_task(stream.run(woken.append, stop=stop))
        for _ in range(50):
            if stream.subscribed:
                break
            await asyncio.sleep(0.1)
        await asyncio.to_thread(buy_at_market, kraken)
        for _ in range(50):
            if any(e.get("exec_type") == "filled" for batch in woken for e in batch):
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.to_thread(venue.control, "drop_stream")
        await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
    events = [e["exec_type"] for batch in woken for e in batch]
    assert events[-3:] == ["new", "trade", "filled"]
    ws = [r for r in venue_requests(venue) if r["method"] == "WS"]
    assert [(r["path"], r["host"]) for r in ws] == [("/v2", venue.ws_url.removeprefix("ws://"))]


def test_the_ticket_is_offered_every_pair_against_the_quote_asset_by_its_short_name(kraken):
    assert kraken.symbols() == ["ETHUSD", "SOLUSD", "XBTUSD"]          # not ETHXBT: it trades against XBT
