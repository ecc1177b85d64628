"""The Binance adapter against a venue it did not write: ``tests.fakes.binance`` in its own process on 127.0.0.1,
which checks signatures, holds balances, takes fees in the coin bought, refuses with Binance's codes, fails and
drops calls when told to, and records every request's Host."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from orders.brokers.binance import BinanceBroker, BinanceConfig
from orders.brokers.http import HttpClient
from orders.brokers.types import OrderTicket, ReportKind, VenueAccount, WorkingOrder
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import OrderNotFound, OrderRejected, ProviderUnavailable, Unauthorized
from tests.fakes import FakeVenue
from tests.fakes.binance import API_KEY, API_SECRET

pytestmark = pytest.mark.slow

D = Decimal
ENTRY = "0b8e8f4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
SL = "6a1f0c2e-3b4d-4c5e-9f60-718293a4b5c6"
TP = "7b2e1d3f-4c5e-4d6f-8a71-8293a4b5c6d7"


@pytest.fixture(scope="module")
def fake():
    with FakeVenue("binance") as venue:
        yield venue


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.control("reset", balances={"USDT": "10000"})


def make_broker(fake: FakeVenue, **config) -> BinanceBroker:
    settings = {"api_key": API_KEY, "api_secret": API_SECRET, "base_url": fake.url,
                "ws_api_url": f"{fake.ws_url}/ws-api/v3", **config}
    http = HttpClient(base_url=settings["base_url"], provider="binance_spot", sleep=lambda seconds: None)
    return BinanceBroker(BinanceConfig(**settings), http=http)


@pytest.fixture
def broker(fake) -> BinanceBroker:
    return make_broker(fake)


def now() -> datetime:
    return datetime.now(UTC)


def ticket(**changes) -> OrderTicket:
    fields = {"order_id": ENTRY, "client_order_id": "alice-1", "symbol": "BTCUSDT", "side": Side.BUY,
              "order_type": OrderType.MARKET, "quantity": D("0.01"), "time_in_force": TimeInForce.GTC}
    fields.update(changes)
    return OrderTicket(**fields)


def working(t: OrderTicket) -> WorkingOrder:
    return WorkingOrder(order_id=t.order_id, symbol=t.symbol, side=t.side, order_type=t.order_type,
                        quantity=t.quantity, filled_quantity=D("0"), time_in_force=t.time_in_force,
                        created_at=now(), limit_price=t.limit_price, stop_price=t.stop_price)


def exits(quantity: str, *, stop: str = "45000", take: str = "55000") -> list[OrderTicket]:
    return [ticket(order_id=SL, side=Side.SELL, order_type=OrderType.STOP, quantity=D(quantity), stop_price=D(stop),
                   reduce_only=True),
            ticket(order_id=TP, side=Side.SELL, order_type=OrderType.LIMIT, quantity=D(quantity),
                   limit_price=D(take), reduce_only=True)]


def balances(fake) -> dict[str, tuple[Decimal, Decimal]]:
    return {asset: (D(row["free"]), D(row["locked"])) for asset, row in fake.control("state")["balances"].items()}


def venue_orders(fake, path: str = "/api/v3/order", method: str = "POST") -> list[dict]:
    return [r for r in fake.control("requests")["requests"] if r["path"] == path and r["method"] == method]


# -- the account ---------------------------------------------------------------------------------------------

def test_the_account_equals_the_venues_figures(fake, broker):
    fake.control("balance", asset="BTC", free="0.02")
    fake.control("balance", asset="ETH", free="0.5")
    assert broker.account_state(now=now()) == VenueAccount(
        cash=D("10000"), equity=D("12500"), buying_power=D("10000"), margin_used=D("0"),
        margin_available=D("10000"), currency="USDT")             # 0.02 × 50,000 + 0.5 × 3,000 on top


def test_a_resting_buy_locks_cash_out_of_the_buying_power_but_not_out_of_the_cash(fake, broker):
    broker.submit_order(ticket(order_type=OrderType.LIMIT, limit_price=D("40000")))
    account = broker.account_state(now=now())
    assert (account.cash, account.buying_power, account.equity) == (D("10000"), D("9600"), D("10000"))
    assert balances(fake)["USDT"] == (D("9600"), D("400"))


def test_a_balance_put_there_from_outside_is_a_position(fake, broker):
    assert broker.positions(now=now()) == []
    fake.control("balance", asset="ETH", free="1.25")
    (position,) = broker.positions(now=now())
    assert (position.symbol, position.quantity, position.average_price, position.mark) == (
        "ETHUSDT", D("1.25"), None, D("3000"))


def test_open_orders_show_an_order_placed_elsewhere_and_both_legs_of_an_oco(fake, broker):
    fake.control("balance", asset="BTC", free="0.01")
    outsider = make_broker(fake)
    outsider.submit_order(ticket(order_id="web_8f2c0d7e1b9a4e56", side=Side.BUY, order_type=OrderType.LIMIT,
                                 symbol="ETHUSDT", quantity=D("0.1"), limit_price=D("2500")))
    broker.submit_oco(exits("0.01"))
    by_client = {o.client_order_id: o for o in broker.open_orders(now=now())}
    assert set(by_client) == {"web_8f2c0d7e1b9a4e56", SL, TP}
    assert (by_client[SL].order_type, by_client[SL].stop_price) == (OrderType.STOP, D("45000"))
    assert (by_client[TP].order_type, by_client[TP].limit_price) == (OrderType.LIMIT, D("55000"))
    assert by_client["web_8f2c0d7e1b9a4e56"].status is OrderStatus.OPEN


# -- fees in the coin bought -------------------------------------------------------------------------------

def test_a_market_buy_is_reported_with_its_fee_in_the_coin_bought(fake, broker):
    t = ticket()
    broker.submit_order(t)
    (fill,) = broker.sync([working(t)], now=now())
    assert (fill.kind, fill.quantity, fill.price) == (ReportKind.FILL, D("0.01"), D("50000"))
    assert (fill.commission, fill.commission_currency) == (D("0.00001"), "BTC")
    assert balances(fake)["BTC"] == (D("0.00999"), D("0"))
    assert [(p.symbol, p.quantity) for p in broker.positions(now=now())] == [("BTCUSDT", D("0.00999"))]
    assert broker.account_state(now=now()).cash == D("9500")


def test_a_sell_pays_its_fee_in_the_quote_asset(fake, broker):
    fake.control("balance", asset="BTC", free="0.01")
    t = ticket(side=Side.SELL)
    broker.submit_order(t)
    (fill,) = broker.sync([working(t)], now=now())
    assert (fill.commission, fill.commission_currency) == (D("0.5"), "USDT")
    assert balances(fake)["USDT"] == (D("10499.5"), D("0"))


def test_the_stream_reports_the_fill_with_its_fee_in_the_coin_bought(fake, broker):
    received = []

    async def main():
        stop = asyncio.Event()
        stream = broker.user_stream(sleep=lambda seconds: asyncio.sleep(0.05))

        async def on_reports(reports):
            received.extend(reports)
            if any(r.kind is ReportKind.FILL for r in received):
                stop.set()

        task = asyncio.create_task(stream.run(on_reports, stop=stop))
        for _ in range(100):
            if stream.subscription_id is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(broker.submit_order, ticket())
        await asyncio.wait_for(stop.wait(), 10)
        task.cancel()

    asyncio.run(main())
    (fill,) = [r for r in received if r.kind is ReportKind.FILL]
    assert (fill.order_id, fill.quantity, fill.commission, fill.commission_currency) == (
        ENTRY, D("0.01"), D("0.00001"), "BTC")
    (handshake,) = [r for r in fake.control("requests")["requests"] if r["ws"]]
    assert handshake["host"] == urlsplit(fake.ws_url).netloc and handshake["path"] == "/ws-api/v3"


# -- OCO against what is held ------------------------------------------------------------------------------

def test_an_oco_for_more_than_is_held_is_refused_for_balance(fake, broker):
    broker.submit_order(ticket())                                   # 0.01 bought, 0.00999 held
    with pytest.raises(OrderRejected) as raised:
        broker.submit_oco(exits("0.01"))
    assert raised.value.reason == "INSUFFICIENT_BALANCE" and raised.value.details["code"] == -2010
    assert broker.open_orders(now=now()) == []


def test_an_oco_for_what_is_held_rests_and_locks_it_once(fake, broker):
    broker.submit_order(ticket())
    acks = broker.submit_oco(exits("0.00999"))
    assert [a.status for a in acks] == [OrderStatus.OPEN, OrderStatus.OPEN]
    assert balances(fake)["BTC"] == (D("0"), D("0.00999"))


def test_when_the_take_profit_fills_the_stop_is_reported_cancelled_by_its_sibling(fake, broker):
    fake.control("balance", asset="BTC", free="0.01")
    legs = exits("0.01")
    broker.submit_oco(legs)
    fake.control("price", symbol="BTCUSDT", price="55000")
    reports = broker.sync([working(t) for t in legs], now=now())
    assert [(r.order_id, r.kind) for r in reports] == [(TP, ReportKind.FILL), (SL, ReportKind.CANCELLED)]
    assert (reports[0].price, reports[0].commission, reports[0].commission_currency) == (D("55000"), D("0.55"), "USDT")
    assert balances(fake)["BTC"] == (D("0"), D("0")) and balances(fake)["USDT"] == (D("10549.45"), D("0"))


def test_a_stop_triggers_when_the_price_falls_through_it(fake, broker):
    fake.control("balance", asset="BTC", free="0.01")
    legs = exits("0.01")
    broker.submit_oco(legs)
    fake.control("price", symbol="BTCUSDT", price="44000")
    reports = broker.sync([working(t) for t in legs], now=now())
    assert [(r.order_id, r.kind, r.price) for r in reports] == [
        (SL, ReportKind.FILL, D("44000")), (TP, ReportKind.CANCELLED, D("0"))]


# -- refusals ------------------------------------------------------------------------------------------------

def test_the_venue_refuses_a_quantity_off_its_step(fake, broker):
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(ticket(quantity=D("0.000015")))
    assert (raised.value.reason, raised.value.details["filter"]) == ("INVALID_QUANTITY", "LOT_SIZE")


def test_the_venue_refuses_a_limit_far_from_the_market(fake, broker):
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(ticket(order_type=OrderType.LIMIT, limit_price=D("1.00")))
    assert (raised.value.reason, raised.value.details["filter"]) == ("INVALID_PRICE", "PERCENT_PRICE_BY_SIDE")


def test_a_buy_beyond_the_cash_is_refused_for_balance(fake, broker):
    with pytest.raises(OrderRejected) as raised:
        broker.submit_order(ticket(quantity=D("0.5")))
    assert raised.value.reason == "INSUFFICIENT_BALANCE"


def test_cancelling_an_order_the_venue_does_not_have_is_not_found(fake, broker):
    with pytest.raises(OrderNotFound):
        broker.cancel_order(ticket(order_type=OrderType.LIMIT, limit_price=D("40000")))


def test_a_wrong_secret_or_key_is_unauthorized(fake):
    with pytest.raises(Unauthorized):
        make_broker(fake, api_secret="not-the-secret").account_state(now=now())
    with pytest.raises(Unauthorized):
        make_broker(fake, api_key="not-the-key").account_state(now=now())


def test_a_clock_that_drifted_is_measured_again_and_the_call_sent_once_more(fake, broker):
    broker.account_state(now=now())
    fake.control("clock", offset_ms=20_000)
    assert broker.account_state(now=now()).cash == D("10000")
    assert len(venue_orders(fake, "/api/v3/time", "GET")) == 2


# -- 5xx and dropped connections -----------------------------------------------------------------------------

def test_a_5xx_before_the_order_reached_the_book_sends_it_once_more_and_it_rests_once(fake, broker):
    fake.control("fail", status=503, count=1, path="/api/v3/order", method="POST")
    t = ticket(order_type=OrderType.LIMIT, limit_price=D("40000"))
    broker.submit_order(t)
    assert len(venue_orders(fake)) == 2
    assert [o.client_order_id for o in broker.open_orders(now=now())] == [ENTRY]


def test_a_5xx_after_the_order_was_placed_finds_it_and_never_sends_it_again(fake, broker):
    fake.control("fail", status=500, count=1, path="/api/v3/order", method="POST", after=True)
    ack = broker.submit_order(ticket())
    assert ack.broker_order_id
    assert len(venue_orders(fake)) == 1, "a MARKET order sent twice would fill twice"
    assert balances(fake)["BTC"] == (D("0.00999"), D("0"))


def test_a_dropped_answer_to_an_order_finds_it_instead_of_buying_twice(fake, broker):
    fake.control("drop", count=1, path="/api/v3/order", method="POST", after=True)
    broker.submit_order(ticket())
    assert len(venue_orders(fake)) == 1
    assert balances(fake)["BTC"] == (D("0.00999"), D("0"))


def test_a_connection_dropped_before_the_order_arrived_sends_it_once_more(fake, broker):
    fake.control("drop", count=1, path="/api/v3/order", method="POST")
    broker.submit_order(ticket())
    assert len(venue_orders(fake)) == 2
    assert balances(fake)["BTC"] == (D("0.00999"), D("0")), "bought once"


def test_a_read_that_keeps_failing_is_provider_unavailable_with_a_clear_message(fake, broker):
    fake.control("fail", status=503, count=5, path="/api/v3/account")
    with pytest.raises(ProviderUnavailable) as raised:
        broker.account_state(now=now())
    assert "overloaded" in raised.value.message


def test_a_read_dropped_twice_is_retried_and_answers(fake, broker):
    fake.control("drop", count=2, path="/api/v3/account")
    assert broker.account_state(now=now()).cash == D("10000")
    assert len(venue_orders(fake, "/api/v3/account", "GET")) == 3


def test_an_order_whose_outcome_cannot_be_learnt_is_not_sent_twice(fake, broker):
    fake.control("fail", status=503, count=1, path="/api/v3/order", method="POST", after=True)
    fake.control("fail", status=503, count=3, path="/api/v3/order", method="GET")
    with pytest.raises(ProviderUnavailable):
        broker.submit_order(ticket())
    assert len(venue_orders(fake)) == 1


# -- endpoints ----------------------------------------------------------------------------------------------

def test_every_request_goes_to_the_configured_host(fake, broker):
    broker.account_state(now=now())
    broker.submit_order(ticket())
    broker.quote("BTCUSDT", now=now())
    hosts = {r["host"] for r in fake.control("requests")["requests"]}
    assert hosts == {urlsplit(fake.url).netloc}


def test_without_an_override_the_stream_dials_the_rest_host_never_binance(fake):
    broker = make_broker(fake, ws_api_url="")
    assert broker.user_stream().url == f"ws://{urlsplit(fake.url).netloc}/ws-api/v3"

    async def main():
        await broker.user_stream(sleep=lambda seconds: asyncio.sleep(0)).run(lambda reports: None,
                                                                             max_connections=1)

    asyncio.run(main())
    (dialled,) = [r for r in fake.control("requests")["requests"] if r["path"] == "/ws-api/v3"]
    assert dialled["host"] == urlsplit(fake.url).netloc and not dialled["api_key"]


def test_the_ticket_is_offered_every_symbol_trading_against_the_quote_asset(broker):
    assert broker.symbols() == ["BNBUSDT", "BTCUSDT", "ETHUSDT"]
