"""Every server frame of /v1/ws in the protocol's exact shape (PROTOCOL §7.4): order, position, account,
trade, quote, candle, connection and data_staleness, produced the way the desk produces them — REST for
orders, the engine for fills and broker outages, the paper venue for market data. Error frames are in
test_stream_alerts.py, ping in test_strategy_stream.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.engine import BrokerLink
from tests.realtime.support import (
    connected_stream,
    describe,
    frames_until,
    is_order_event,
    next_frame,
    place,
    rest_get,
    tick,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_an_order_streams_order_created_then_order_filled_after_an_engine_tick(account, broker, client):
    communicator = await connected_stream()
    handle = await place(client, quantity="10")

    created = await next_frame(communicator, "order")
    assert set(created) == {"type", "event", "order", "timestamp", "event_id"}
    assert created["event"] == "ORDER_CREATED"
    order = created["order"]
    assert (order["id"], order["symbol"], order["side"], order["order_type"]) == (handle["id"], "AAPL", "BUY",
                                                                                 "MARKET")
    assert (order["quantity"], order["filled_quantity"], order["remaining_quantity"]) == ("10", "0", "10")
    assert order["status"] == "OPEN" and order["time_in_force"] == "GTC"
    assert "parent_order_id" not in order and "average_fill_price" not in order

    await tick(account, broker)
    filled = await next_frame(communicator, "order")
    assert filled["event"] == "ORDER_FILLED"
    order = filled["order"]
    assert (order["id"], order["status"]) == (handle["id"], "FILLED")
    assert (order["filled_quantity"], order["remaining_quantity"]) == ("10", "0")
    assert Decimal(order["average_fill_price"]) > 0
    assert order["updated_at"] >= created["order"]["updated_at"]
    await communicator.disconnect()


async def test_a_fill_streams_the_trade_the_opened_position_and_the_new_balance(account, broker, client):
    communicator = await connected_stream()
    handle = await place(client, quantity="10")
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "account")
    assert [f"{f['type']} {f['event']}" for f in frames] == [
        "order ORDER_CREATED", "order ORDER_FILLED", "trade TRADE_FILLED", "position POSITION_OPENED",
        "account BALANCE_UPDATED"]
    fill_price = frames[1]["order"]["average_fill_price"]

    trade = frames[2]
    assert set(trade) == {"type", "event", "trade", "timestamp", "event_id"}
    assert trade["trade"]["order_id"] == handle["id"]
    assert (trade["trade"]["symbol"], trade["trade"]["side"], trade["trade"]["quantity"]) == ("AAPL", "BUY", "10")
    assert Decimal(trade["trade"]["price"]) == Decimal(fill_price)
    assert isinstance(trade["trade"]["commission"], str) and trade["trade"]["commission_currency"] == "USD"

    position = frames[3]
    assert set(position) == {"type", "event", "position", "timestamp", "event_id"}
    body = position["position"]
    assert (body["symbol"], body["side"], body["quantity"]) == ("AAPL", "LONG", "10")
    assert Decimal(body["average_entry_price"]) == Decimal(fill_price)
    [listed] = await rest_get(client, "/v1/positions")
    assert body["id"] == listed["id"]

    balance = frames[4]
    assert set(balance) == {"type", "event", "account", "timestamp", "event_id"}
    assert set(balance["account"]) == {"balance", "equity", "margin_used", "margin_available", "unrealized_pnl",
                                       "currency"}
    assert balance["account"]["currency"] == "USD"
    expected = Decimal("100000") - 10 * Decimal(fill_price) - Decimal(trade["trade"]["commission"])
    assert Decimal(balance["account"]["balance"]) == expected
    await communicator.disconnect()


async def test_selling_what_was_bought_streams_position_closed(account, broker, client):
    communicator = await connected_stream()
    await place(client, side="BUY", quantity="10")
    await tick(account, broker)
    await next_frame(communicator, "position", "POSITION_OPENED")
    await place(client, side="SELL", quantity="10")
    await tick(account, broker)
    closed = await next_frame(communicator, "position")
    assert closed["event"] == "POSITION_CLOSED"
    assert (closed["position"]["symbol"], closed["position"]["quantity"]) == ("AAPL", "0")
    await communicator.disconnect()


async def test_exit_legs_are_created_after_the_entry_fill_and_name_their_parent_at_the_top_level(
        account, broker, client, clock):
    quote = await rest_get(client, "/v1/quotes/AAPL")
    ask = Decimal(quote["ask"])
    communicator = await connected_stream()
    entry = await place(client, quantity="10", stop_loss=ask - 3, take_profit=ask + 3)
    await tick(account, broker)

    leg_ids: list[str] = []

    def both_legs_created(frame: dict) -> bool:
        if frame["type"] == "order" and frame["event"] == "ORDER_CREATED" and frame["order"]["id"] != entry["id"]:
            leg_ids.append(frame["order"]["id"])
        return len(leg_ids) == 2

    frames = await frames_until(communicator, both_legs_created)
    entry_filled = next(i for i, f in enumerate(frames) if is_order_event("ORDER_FILLED", entry["id"])(f))
    legs = [(i, f) for i, f in enumerate(frames) if f["type"] == "order" and f["order"]["id"] in leg_ids]
    assert all(i > entry_filled for i, _ in legs), [describe(f) for f in frames]
    for _, leg in legs:
        assert set(leg) == {"type", "event", "order", "parent_order_id", "timestamp", "event_id"}
        assert leg["parent_order_id"] == leg["order"]["parent_order_id"] == entry["id"]
        assert leg["order"]["reduce_only"] is True
    types = sorted((f["order"]["order_type"], f["order"].get("stop_price") or f["order"].get("limit_price"))
                   for _, f in legs)
    assert types == [("LIMIT", str(ask + 3)), ("STOP", str(ask - 3))]
    await communicator.disconnect()


async def test_the_stream_sends_an_order_and_its_fill_in_the_very_bodies_rest_answers_with(account, broker, client,
                                                                                          clock):
    quote = await rest_get(client, "/v1/quotes/AAPL")
    communicator = await connected_stream()
    resting = await place(client, quantity="3", order_type="LIMIT", limit_price=Decimal(quote["bid"]) - 5,
                          client_order_id="resting-1", oco_group_id="g-1", time_in_force="DAY", post_only=True)
    created = await next_frame(communicator, "order")
    assert created["order"] == await rest_get(client, f"/v1/orders/{resting['id']}")

    entry = await place(client, quantity="10", stop_loss=Decimal(quote["bid"]) - 5)
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "account")
    filled = next(f for f in frames if is_order_event("ORDER_FILLED", entry["id"])(f))
    assert filled["order"] == await rest_get(client, f"/v1/orders/{entry['id']}")
    [trade] = [f["trade"] for f in frames if f["type"] == "trade"]
    assert [trade] == await rest_get(client, f"/v1/trades?order_id={entry['id']}")
    await communicator.disconnect()


async def test_events_of_one_order_arrive_in_the_order_they_happened(account, broker, client):
    communicator = await connected_stream()
    ids = [(await place(client, quantity=str(n)))["id"] for n in range(1, 6)]
    await tick(account, broker)
    frames = await frames_until(communicator, is_order_event("ORDER_FILLED", ids[-1]), timeout=10)
    history = {order_id: [f["event"] for f in frames if f["type"] == "order" and f["order"]["id"] == order_id]
               for order_id in ids}
    assert history == {order_id: ["ORDER_CREATED", "ORDER_FILLED"] for order_id in ids}
    stamps = [f["timestamp"] for f in frames]
    assert stamps == sorted(stamps), "frames leave in the order they were committed"
    await communicator.disconnect()


async def test_quotes_and_candles_stream_for_the_default_symbols_with_decimals_as_strings(account, settings):
    settings.STREAM_DEFAULT_SYMBOLS = "AAPL"
    settings.STREAM_MARKET_SECONDS = 0.05
    communicator = await connected_stream()

    quote = await next_frame(communicator, "quote")
    assert set(quote) == {"type", "quote", "timestamp"}
    body = quote["quote"]
    assert (body["symbol"], body["provider"]) == ("AAPL", "paper")
    assert all(isinstance(body[k], str) for k in ("bid", "ask", "last", "bid_size", "ask_size", "volume"))
    assert Decimal(body["bid"]) <= Decimal(body["ask"])

    candle = await next_frame(communicator, "candle")
    assert set(candle) == {"type", "bar", "timestamp"}
    bar = candle["bar"]
    assert (bar["symbol"], bar["provider"], bar["timeframe"]) == ("AAPL", "paper", "1m")
    assert all(isinstance(bar[k], str) for k in ("open", "high", "low", "close", "volume"))
    assert Decimal(bar["low"]) <= min(Decimal(bar["open"]), Decimal(bar["close"]))
    assert Decimal(bar["high"]) >= max(Decimal(bar["open"]), Decimal(bar["close"]))
    await communicator.disconnect()


async def test_a_broker_outage_streams_disconnected_and_stale_then_reconnected_and_fresh(
        account, broker, client, clock):
    quote = await rest_get(client, "/v1/quotes/AAPL")
    await place(client, order_type="LIMIT", limit_price=Decimal(quote["bid"]) - 20)    # rests: AAPL is watched
    link = BrokerLink()
    await tick(account, broker, link=link)
    communicator = await connected_stream()

    broker.faults.set_unavailable(True)
    await tick(account, broker, link=link)
    down = await frames_until(communicator, lambda f: f["type"] == "data_staleness")
    assert [describe(f) for f in down] == ["connection BROKER_DISCONNECTED", "data_staleness STALE"]
    disconnected, stale = down
    assert set(disconnected) == {"type", "event", "broker", "error", "timestamp", "event_id"}
    assert disconnected["broker"] == "paper" and "unavailable" in disconnected["error"]
    assert set(stale) == {"type", "event", "symbols", "stale_since", "broker", "timestamp", "event_id"}
    assert stale["symbols"] == ["AAPL"] and stale["broker"] == "paper"

    await tick(account, broker, link=link)                      # still down: nothing new is said
    clock.shift(5)
    broker.faults.set_unavailable(False)
    await tick(account, broker, link=link)
    back = await frames_until(communicator, lambda f: f["type"] == "data_staleness")
    assert [describe(f) for f in back] == ["connection BROKER_RECONNECTED", "data_staleness FRESH"]
    reconnected, fresh = back
    assert set(reconnected) == {"type", "event", "broker", "gap_duration_ms", "timestamp", "event_id"}
    assert reconnected["gap_duration_ms"] == 5000
    assert set(fresh) == {"type", "event", "symbols", "stale_since", "broker", "timestamp", "event_id"}
    assert fresh["stale_since"] == stale["stale_since"]
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()
