"""The Alpaca adapter against the fake Alpaca process (``tests/fakes/alpaca.py``) on 127.0.0.1: a venue that keeps
its own books, so what the adapter reads and sends is checked against what the venue did, not what a recording
says."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.brokers.alpaca import AlpacaBroker, AlpacaConfig, AlpacaTradeUpdates
from orders.brokers.http import RetryPolicy
from orders.brokers.types import OrderTicket, ReportKind, WorkingOrder
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.domain.errors import OrderRejected, ProviderError, ProviderUnavailable, SymbolNotFound, Unauthorized
from tests.fakes import FakeVenue

D = Decimal
KEY, SECRET = "FAKEALPACAKEY", "fake-alpaca-secret"


@pytest.fixture
def fake():
    with FakeVenue("alpaca", "--cash", "250000") as venue:
        yield venue


def make_broker(fake: FakeVenue, **changes) -> AlpacaBroker:
    config = AlpacaConfig(api_key=KEY, api_secret=SECRET, base_url=fake.url, stream_url=f"{fake.ws_url}/stream")
    options = {"retry": RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05), "venue_read_seconds": 0}
    return AlpacaBroker(config, **{**options, **changes})


@pytest.fixture
def alpaca(fake) -> AlpacaBroker:
    return make_broker(fake)


def now() -> datetime:
    return datetime.now(tz=UTC)


def ticket(order_id: str, **changes) -> OrderTicket:
    fields = {"order_id": order_id, "client_order_id": None, "symbol": "AAPL", "side": Side.BUY,
              "order_type": OrderType.MARKET, "quantity": D("10"), "time_in_force": TimeInForce.GTC}
    return OrderTicket(**{**fields, **changes})


def as_working(t: OrderTicket, *, broker_order_id: str | None, venue_oco_id: str | None = None,
               filled: Decimal = D("0")) -> WorkingOrder:
    return WorkingOrder(order_id=t.order_id, symbol=t.symbol, side=t.side, order_type=t.order_type,
                        quantity=t.quantity, filled_quantity=filled, time_in_force=t.time_in_force,
                        created_at=now(), limit_price=t.limit_price, stop_price=t.stop_price,
                        venue_oco_id=venue_oco_id, broker_order_id=broker_order_id)


def orders_with_client_id(fake: FakeVenue, client_id: str) -> list[dict]:
    return [o for o in fake.control("state")["orders"] if o["client_order_id"] == client_id]


# -- the account's truth ---------------------------------------------------------------------------------------
def test_the_account_is_the_venues_own_figures(fake, alpaca):
    alpaca.submit_order(ticket("buy-aapl"))
    fake.control("price", symbol="AAPL", price="175")
    venue = fake.control("state")["account"]
    figures = alpaca.account_state(now=now())
    assert (figures.cash, figures.equity, figures.buying_power, figures.margin_used) == (
        D(venue["cash"]), D(venue["equity"]), D(venue["buying_power"]), D(venue["initial_margin"]))
    assert (figures.cash, figures.equity) == (D("248300"), D("250050"))
    assert figures.margin_available == figures.equity - figures.margin_used and figures.currency == "USD"


def test_a_position_opened_elsewhere_is_among_the_positions(fake, alpaca):
    fake.control("external_position", symbol="MSFT", qty="7", avg_entry_price="400")
    fake.control("external_position", symbol="BTCUSD", qty="0.25", avg_entry_price="58000")
    held = {p.symbol: p for p in alpaca.positions(now=now())}
    assert (held["MSFT"].quantity, held["MSFT"].average_price, held["MSFT"].mark) == (D("7"), D("400"), D("410"))
    assert (held["BTCUSD"].quantity, held["BTCUSD"].average_price) == (D("0.25"), D("58000"))


def test_open_orders_list_another_apps_order_and_a_brackets_held_legs(fake, alpaca):
    fake.control("external_order", symbol="TSLA", qty="2", side="buy", type="limit", limit_price="200",
                 time_in_force="day", client_order_id="other-app-1")
    entry = ticket("entry-1", order_type=OrderType.LIMIT, limit_price=D("160"))
    legs = [ticket("tp-1", side=Side.SELL, order_type=OrderType.LIMIT, limit_price=D("180")),
            ticket("sl-1", side=Side.SELL, order_type=OrderType.STOP, stop_price=D("150"))]
    alpaca.submit_bracket(entry, legs)
    listed = alpaca.open_orders(now=now())
    assert sorted((o.client_order_id == "other-app-1", o.symbol, o.order_type, o.status) for o in listed) == sorted([
        (True, "TSLA", OrderType.LIMIT, OrderStatus.OPEN), (False, "AAPL", OrderType.LIMIT, OrderStatus.OPEN),
        (False, "AAPL", OrderType.LIMIT, OrderStatus.PENDING), (False, "AAPL", OrderType.STOP, OrderStatus.PENDING)])


# -- brackets: held, then released -----------------------------------------------------------------------------
def _bracket(alpaca: AlpacaBroker) -> tuple[OrderTicket, list[OrderTicket], list]:
    entry = ticket("entry-b", order_type=OrderType.LIMIT, limit_price=D("168"))
    legs = [ticket("tp-b", side=Side.SELL, order_type=OrderType.LIMIT, limit_price=D("180")),
            ticket("sl-b", side=Side.SELL, order_type=OrderType.STOP, stop_price=D("160"))]
    return entry, legs, alpaca.submit_bracket(entry, legs)


def _legs_working(legs, acks) -> list[WorkingOrder]:
    return [as_working(leg, broker_order_id=ack.broker_order_id, venue_oco_id="bracket-entry-b")
            for leg, ack in zip(legs, acks[1:], strict=True)]


def test_held_legs_report_nothing_until_released_then_accepted(fake, alpaca):
    fake.control("hold_legs", seconds=None)
    entry, legs, acks = _bracket(alpaca)
    assert [a.status for a in acks] == [OrderStatus.OPEN, OrderStatus.PENDING, OrderStatus.PENDING]
    fake.control("price", symbol="AAPL", price="167.5")
    entry_working = as_working(entry, broker_order_id=acks[0].broker_order_id)
    reports = alpaca.sync([entry_working, *_legs_working(legs, acks)], now=now())
    assert [(r.order_id, r.kind) for r in reports] == [("entry-b", ReportKind.FILL)], "legs still held"

    assert fake.control("release_legs") == {"released": 2}
    reports = alpaca.sync(_legs_working(legs, acks), now=now())
    assert [(r.order_id, r.kind, r.extra["broker_order_id"]) for r in reports] == [
        ("tp-b", ReportKind.ACCEPTED, acks[1].broker_order_id), ("sl-b", ReportKind.ACCEPTED, acks[2].broker_order_id)]


def test_legs_released_a_while_after_the_entry_fills(fake, alpaca):
    fake.control("hold_legs", seconds=0.5)
    _entry, legs, acks = _bracket(alpaca)
    fake.control("price", symbol="AAPL", price="167")
    assert alpaca.sync(_legs_working(legs, acks), now=now()) == []
    time.sleep(0.8)
    assert {r.kind for r in alpaca.sync(_legs_working(legs, acks), now=now())} == {ReportKind.ACCEPTED}


def test_a_take_profit_fill_cancels_the_stop_at_the_venue(fake, alpaca):
    _entry, legs, acks = _bracket(alpaca)
    fake.control("price", symbol="AAPL", price="167")
    alpaca.sync(_legs_working(legs, acks), now=now())
    fake.control("price", symbol="AAPL", price="181")
    reports = alpaca.sync(_legs_working(legs, acks), now=now())
    assert [(r.order_id, r.kind) for r in reports] == [("tp-b", ReportKind.FILL), ("sl-b", ReportKind.CANCELLED)]
    assert reports[0].price == D("181")
    assert alpaca.positions(now=now()) == []


def test_an_oco_rests_both_exits_and_one_filling_cancels_the_other(fake, alpaca):
    fake.control("external_position", symbol="AAPL", qty="10", avg_entry_price="170")
    exits = [ticket("tp-o", side=Side.SELL, order_type=OrderType.LIMIT, limit_price=D("180")),
             ticket("sl-o", side=Side.SELL, order_type=OrderType.STOP, stop_price=D("160"))]
    acks = alpaca.submit_oco(exits)
    assert [a.status for a in acks] == [OrderStatus.OPEN, OrderStatus.OPEN]
    fake.control("price", symbol="AAPL", price="159")
    working = [as_working(t, broker_order_id=a.broker_order_id, venue_oco_id="oco-x") for t, a in zip(exits, acks,
                                                                                                    strict=True)]
    assert [(r.order_id, r.kind) for r in alpaca.sync(working, now=now())] == [
        ("tp-o", ReportKind.CANCELLED), ("sl-o", ReportKind.FILL)]


# -- refusals, cancels, replaces ---------------------------------------------------------------------------------
def test_too_big_an_order_is_refused_for_buying_power_with_alpacas_numbers(fake, alpaca):
    with pytest.raises(OrderRejected) as raised:
        alpaca.submit_order(ticket("whale", quantity=D("10000")))
    assert raised.value.reason == "INSUFFICIENT_BALANCE" and raised.value.details["alpaca_code"] == 40310000
    assert (raised.value.details["required"], raised.value.details["available"]) == ("1700000", "500000")
    assert orders_with_client_id(fake, "whale") == []


def test_a_cancel_reaches_the_venue_and_sync_reports_it(fake, alpaca):
    resting = ticket("rest-1", order_type=OrderType.LIMIT, limit_price=D("100"))
    ack = alpaca.submit_order(resting)
    alpaca.cancel_order(resting)
    assert orders_with_client_id(fake, "rest-1")[0]["status"] == "canceled"
    [report] = alpaca.sync([as_working(resting, broker_order_id=ack.broker_order_id)], now=now())
    assert report.kind is ReportKind.CANCELLED


def test_a_modified_order_is_followed_to_its_replacement(fake, alpaca):
    resting = ticket("rest-2", order_type=OrderType.LIMIT, limit_price=D("150"))
    first = alpaca.submit_order(resting)
    replacement = alpaca.modify_order(resting, limit_price=D("169"))
    assert replacement.broker_order_id != first.broker_order_id
    fake.control("price", symbol="AAPL", price="168.5")
    [fill] = alpaca.sync([as_working(resting, broker_order_id=first.broker_order_id)], now=now())
    assert (fill.kind, fill.quantity, fill.extra["alpaca_order_id"]) == (ReportKind.FILL, D("10"),
                                                                        replacement.broker_order_id)


# -- outages ---------------------------------------------------------------------------------------------------
def test_a_503_is_retried_and_one_that_persists_is_unavailable(fake, alpaca):
    fake.control("fail", status=503, count=1)
    assert alpaca.account_state(now=now()).cash == D("250000")
    fake.control("fail", status=503, count=5)
    with pytest.raises(ProviderUnavailable):
        alpaca.account_state(now=now())


def test_a_500_that_persists_is_a_provider_error(fake, alpaca):
    fake.control("fail", status=500, count=5)
    with pytest.raises(ProviderError):
        alpaca.positions(now=now())


def test_a_dropped_connection_is_retried_and_one_that_persists_is_unavailable(fake, alpaca):
    fake.control("drop", count=1)
    assert alpaca.positions(now=now()) == []
    fake.control("drop", count=5)
    with pytest.raises(ProviderUnavailable) as raised:
        alpaca.open_orders(now=now())
    assert "did not answer" in raised.value.message


def test_a_lost_answer_to_an_order_never_places_it_twice(fake, alpaca):
    fake.control("drop", count=1, when="after", method="POST", path="/v2/orders")
    ack = alpaca.submit_order(ticket("lost-1"))
    placed = orders_with_client_id(fake, "lost-1")
    assert len(placed) == 1 and ack.broker_order_id == placed[0]["id"]
    assert alpaca.positions(now=now())[0].quantity == D("10")


def test_every_answer_lost_still_finds_the_one_order_placed(fake, alpaca):
    fake.control("drop", count=3, when="after", method="POST", path="/v2/orders")
    ack = alpaca.submit_order(ticket("lost-2"))
    assert [o["id"] for o in orders_with_client_id(fake, "lost-2")] == [ack.broker_order_id]


def test_a_503_before_the_order_arrived_is_sent_again_once(fake, alpaca):
    fake.control("fail", status=503, count=1, method="POST", path="/v2/orders")
    alpaca.submit_order(ticket("retry-1"))
    assert len(orders_with_client_id(fake, "retry-1")) == 1


def test_an_order_that_never_arrived_is_unavailable_and_safe_to_send_again(fake, alpaca):
    fake.control("fail", status=503, count=3, method="POST", path="/v2/orders")
    with pytest.raises(ProviderUnavailable):
        alpaca.submit_order(ticket("never-1"))
    assert orders_with_client_id(fake, "never-1") == []
    alpaca.submit_order(ticket("never-1"))
    assert len(orders_with_client_id(fake, "never-1")) == 1


# -- market data, the stream, the hosts ----------------------------------------------------------------------------
def test_market_data_and_reference_data_come_from_the_configured_host(fake, alpaca):
    fake.control("price", symbol="AAPL", price="171.25")
    assert alpaca.quote("AAPL", now=now()).bid == D("171.25")
    assert alpaca.quote("BTCUSD", now=now()).ask == D("60000")
    bars = alpaca.bars("AAPL", timeframe="1m", seconds=60, end=now(), count=5)
    assert len(bars) == 5 and bars[0].timestamp < bars[-1].timestamp
    assert alpaca.instrument("BTCUSD").quantity_step == D("0.000000001")
    assert alpaca.status(now=now()).connected
    with pytest.raises(SymbolNotFound):
        alpaca.instrument("ZZZZ")
    port = fake.url.rsplit(":", 1)[1]
    requests = fake.control("requests")["requests"]
    assert requests and {(r["host"], r["keyed"]) for r in requests} == {(f"127.0.0.1:{port}", True)}


def test_the_trade_stream_authenticates_and_reports_a_fill(fake, alpaca):
    stop = threading.Event()
    updates = AlpacaTradeUpdates(alpaca.config, order_id_for=alpaca.desk_order_id, poll_seconds=0.1)
    reports = updates.reports(stop)
    seen: list = []
    reader = threading.Thread(target=lambda: seen.append(next(reports)), daemon=True)
    reader.start()
    deadline = time.monotonic() + 5
    while not any(r["method"] == "WS" and r["keyed"] for r in fake.control("requests")["requests"]):
        assert time.monotonic() < deadline, "the stream never authenticated"
        time.sleep(0.05)
    time.sleep(0.2)                                          # listening
    alpaca.submit_order(ticket("streamed-1"))
    reader.join(timeout=5)
    stop.set()
    assert seen and (seen[0].order_id, seen[0].kind, seen[0].quantity) == ("streamed-1", ReportKind.FILL, D("10"))
    ws = [r for r in fake.control("requests")["requests"] if r["method"] == "WS"]
    assert ws[0]["host"] == fake.ws_url.removeprefix("ws://") and ws[0]["path"] == "/stream"


def test_wrong_keys_are_refused_everywhere(fake):
    wrong = AlpacaBroker(AlpacaConfig(api_key="NOPE", api_secret="nope", base_url=fake.url),
                         retry=RetryPolicy(attempts=1))
    with pytest.raises(Unauthorized):
        wrong.account_state(now=now())
