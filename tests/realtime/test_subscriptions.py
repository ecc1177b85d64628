"""Which frames a stream client gets: the startup filter ``SUBSCRIPTIONS`` (PROTOCOL §7.5) and, beyond the
reference gateway, runtime ``subscribe`` / ``unsubscribe`` messages."""

from __future__ import annotations

import json

import pytest

from orders.engine import BrokerLink
from tests.realtime.support import connected_stream, frames_until, frames_within, next_frame, place, tick

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


def subscriptions(*items: tuple[str, list[str]]) -> str:
    return json.dumps([{"platform": "paper", "instrument": symbol, "events": events} for symbol, events in items])


def market_symbols(frames: list[dict], kind: str = "quote") -> set[str]:
    return {f["quote" if kind == "quote" else "bar"]["symbol"] for f in frames if f["type"] == kind}


async def test_the_startup_filter_drops_order_events_of_unsubscribed_symbols(account, broker, client, settings):
    settings.SUBSCRIPTIONS = subscriptions(("MSFT", ["order_update"]))
    communicator = await connected_stream()
    aapl = await place(client, symbol="AAPL", quantity="1")
    msft = await place(client, symbol="MSFT", quantity="1")
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "order" and f["event"] == "ORDER_FILLED")
    assert [(f["event"], f["order"]["id"]) for f in frames] == [("ORDER_CREATED", msft["id"]),
                                                               ("ORDER_FILLED", msft["id"])]
    later = await frames_within(communicator, 0.3)
    assert not [f for f in later if f["type"] == "order" and f["order"]["id"] == aapl["id"]]
    assert not [f for f in frames + later if f["type"] in ("trade", "position", "account")], \
        "trades, positions and the account were not subscribed"
    await communicator.disconnect()


async def test_the_startup_filter_lets_system_frames_through(account, broker, settings):
    settings.SUBSCRIPTIONS = subscriptions(("MSFT", ["quote"]))
    link = BrokerLink()
    communicator = await connected_stream()
    broker.faults.set_unavailable(True)
    await tick(account, broker, link=link)
    disconnected = await next_frame(communicator, "connection")
    assert disconnected["event"] == "BROKER_DISCONNECTED"
    assert (await next_frame(communicator, "data_staleness"))["event"] == "STALE"
    await communicator.disconnect()


async def test_a_wildcard_instrument_subscribes_every_symbol(account, broker, client, settings):
    settings.SUBSCRIPTIONS = subscriptions(("*", ["orders", "trades"]))
    communicator = await connected_stream()
    await place(client, symbol="AAPL", quantity="1")
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "trade")
    assert [f"{f['type']} {f['event']}" for f in frames] == ["order ORDER_CREATED", "order ORDER_FILLED",
                                                             "trade TRADE_FILLED"]
    await communicator.disconnect()


async def test_subscribing_at_runtime_starts_quotes_for_the_new_symbol(account, settings):
    settings.STREAM_DEFAULT_SYMBOLS = "AAPL"
    settings.STREAM_MARKET_SECONDS = 0.05
    communicator = await connected_stream()
    assert market_symbols(await frames_within(communicator, 0.3)) == {"AAPL"}

    await communicator.send_to(text_data=json.dumps({"type": "subscribe", "symbols": ["MSFT"], "events": ["quote"]}))
    await frames_within(communicator, 0.1)
    after = await frames_within(communicator, 0.4)
    assert "MSFT" in market_symbols(after)
    assert not market_symbols(after, "candle") - {"AAPL"}, "only quotes were asked for MSFT"
    await communicator.disconnect()


async def test_subscribing_to_more_quotes_at_runtime_keeps_the_order_events_flowing(account, broker, client,
                                                                                  settings):
    settings.STREAM_DEFAULT_SYMBOLS = "AAPL"
    settings.STREAM_MARKET_SECONDS = 0.05
    communicator = await connected_stream()
    await communicator.send_to(text_data=json.dumps({"type": "subscribe", "symbols": ["MSFT"], "events": ["quote"]}))
    await frames_within(communicator, 0.2)
    handle = await place(client, symbol="AAPL", quantity="1")
    await tick(account, broker)
    frames = await frames_until(communicator, lambda f: f["type"] == "account")
    assert [f["event"] for f in frames if f["type"] == "order"] == ["ORDER_CREATED", "ORDER_FILLED"]
    assert {f["order"]["id"] for f in frames if f["type"] == "order"} == {handle["id"]}
    assert "AAPL" in market_symbols(await frames_within(communicator, 0.3)), "the default quotes continue"
    await communicator.disconnect()


async def test_unsubscribing_at_runtime_stops_that_symbols_quotes(account, settings):
    settings.STREAM_DEFAULT_SYMBOLS = "AAPL"
    settings.STREAM_MARKET_SECONDS = 0.05
    communicator = await connected_stream()
    await communicator.send_to(text_data=json.dumps({"type": "subscribe", "symbols": ["MSFT"], "events": ["quote"]}))
    assert "MSFT" in market_symbols(await frames_within(communicator, 0.3))
    await communicator.send_to(text_data=json.dumps({"type": "unsubscribe", "symbols": ["MSFT"]}))
    await frames_within(communicator, 0.1)
    assert "MSFT" not in market_symbols(await frames_within(communicator, 0.4))
    await communicator.disconnect()
