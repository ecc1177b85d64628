"""Kraken's ``executions`` channel wakes the engine: a fresh token from REST for every connection, a
subscription that is re-made with backoff whenever it fails, and a wake-up for every message that carries
executions (the snapshot after a reconnect included), none for heartbeats and status.

REST answers come from the spec's example (``GetWebSocketsToken``) through the signing ``KrakenVenue``; the
WebSocket frames (``payloads/kraken_stream_executions.json``) follow Kraken's WebSocket v2 ``executions``
documentation."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import responses

from orders.brokers.kraken.stream import WS_AUTH_URL, KrakenExecutions, to_kraken_ws_subscribe
from orders.domain.errors import DeskError, ProviderError
from tests.brokers.test_kraken import API_KEY, NOW, KrakenVenue, answer, envelope, make_kraken, payload

TOKEN = "1Dwc4lzSwNWOAwkMdqhssNNFhs1ed606d1WcF3XfEMw"


@pytest.fixture
def venue():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield KrakenVenue(mock)


def frames() -> dict:
    return payload("stream_executions")


class FakeSocket:
    """One scripted connection: status first, then the answer to the subscription, then ``events``."""

    def __init__(self, answer: str, events: list[str]) -> None:
        self.answer, self.events, self.sent = answer, events, []
        self._before = [frames()["status"]]

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))

    async def recv(self) -> str:
        if self._before:
            return json.dumps(self._before.pop(0))
        return json.dumps(dict(frames()[self.answer], req_id=self.sent[-1]["req_id"]))

    def __aiter__(self):
        return self._play()

    async def _play(self):
        for name in self.events:
            yield json.dumps(frames()[name])


def scripted(sockets: list) -> tuple[list, callable]:
    opened = []

    def connect(url):
        opened.append(url)
        socket = sockets[len(opened) - 1]
        if isinstance(socket, Exception):
            raise socket
        return socket

    return opened, connect


def test_a_token_is_asked_of_kraken_with_a_signed_call(venue):
    venue.stage("GetWebSocketsToken", payload("trading_getwebsocketstoken"))

    assert make_kraken().websocket_token() == TOKEN
    [call] = venue.calls_to("GetWebSocketsToken")
    assert call.headers["API-Key"] == API_KEY and set(call.fields) == {"nonce"}


def test_no_token_in_the_answer_is_a_provider_error(venue):
    venue.stage("GetWebSocketsToken", answer({}))

    with pytest.raises(ProviderError):
        make_kraken().websocket_token()


def test_a_key_without_websocket_permission_is_refused_with_krakens_reason(venue):
    venue.stage("GetWebSocketsToken", envelope("EGeneral:Permission denied"))

    with pytest.raises(DeskError):
        make_kraken().websocket_token()


def test_the_subscription_asks_for_open_orders_but_no_past_trades():
    assert to_kraken_ws_subscribe(token=TOKEN, req_id=7) == {
        "method": "subscribe", "req_id": 7,
        "params": {"channel": "executions", "token": TOKEN, "snap_orders": True, "snap_trades": False}}


def test_every_connection_gets_a_fresh_token_and_failures_reconnect_with_growing_backoff():
    tokens = iter(["t-1", "t-2", "t-3", "t-4"])
    sockets = [OSError("connection refused"),
               FakeSocket("subscribe_refused", []),
               FakeSocket("subscribe_ok", ["snapshot", "heartbeat", "trade", "status", "filled"]),
               FakeSocket("subscribe_ok", ["snapshot_empty"])]
    opened, connect = scripted(sockets)
    slept, woken = [], []

    async def sleep(seconds):
        slept.append(seconds)

    stream = KrakenExecutions(token=lambda: next(tokens), connect=connect, sleep=sleep)
    asyncio.run(stream.run(woken.append, max_connections=4))

    assert opened == [WS_AUTH_URL] * 4
    assert [s.sent[0]["params"]["token"] for s in sockets[1:]] == ["t-2", "t-3", "t-4"]
    assert [len(batch) for batch in woken] == [1, 1, 1]        # snapshot, trade, filled: no heartbeat, status, empty
    assert woken[1][0]["exec_type"] == "trade"
    assert 1 <= slept[0] <= 1.25 and 2 <= slept[1] <= 2.5      # backoff grows while failing…
    assert 1 <= slept[2] <= 1.25                                # …and starts again after a subscription


def test_a_token_that_cannot_be_had_is_retried_like_a_dropped_socket():
    def no_token():
        raise ProviderError("Kraken is down", provider="kraken")

    opened, connect = scripted([])
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    asyncio.run(KrakenExecutions(token=no_token, connect=connect, sleep=sleep).run(print, max_connections=2))

    assert opened == [] and len(slept) == 1


def test_the_engine_is_woken_by_executions_and_the_watch_ends_when_the_engine_stops(venue, monkeypatch):
    kraken = make_kraken()
    stop, woke = threading.Event(), threading.Event()
    socket = FakeSocket("subscribe_ok", ["heartbeat", "trade"])
    _, connect = scripted([socket, *[FakeSocket("subscribe_ok", []) for _ in range(50)]])

    async def pause(seconds):
        await asyncio.sleep(0.01)

    monkeypatch.setattr(kraken, "executions_stream", lambda: KrakenExecutions(token=lambda: TOKEN, connect=connect,
                                                                               sleep=pause))

    def wake():
        woke.set()
        stop.set()

    watcher = threading.Thread(target=kraken.watch, kwargs={"wake": wake, "stop": stop})
    watcher.start()
    watcher.join(timeout=10)

    assert woke.is_set() and not watcher.is_alive()
    assert socket.sent[0]["params"]["channel"] == "executions"


def test_an_execution_has_the_account_read_afresh_before_the_engine_wakes(venue, monkeypatch):
    """The account's balances are reused between refreshes (Kraken's counter); an execution on the stream means
    they changed, so the refresh that follows the wake-up reads them again."""
    kraken = make_kraken()
    venue.stage("BalanceEx", payload("user_balanceex"))
    venue.stage("TradeBalance", payload("user_tradebalance"))
    kraken.account_state(now=NOW)
    stop, read_before_wake = threading.Event(), []
    _, connect = scripted([FakeSocket("subscribe_ok", ["trade"]), *[FakeSocket("subscribe_ok", []) for _ in range(50)]])

    async def pause(seconds):
        await asyncio.sleep(0.01)

    monkeypatch.setattr(kraken, "executions_stream", lambda: KrakenExecutions(token=lambda: TOKEN, connect=connect,
                                                                               sleep=pause))

    def wake():
        kraken.account_state(now=NOW)
        read_before_wake.append(len(venue.calls_to("BalanceEx")))
        stop.set()

    watcher = threading.Thread(target=kraken.watch, kwargs={"wake": wake, "stop": stop})
    watcher.start()
    watcher.join(timeout=10)
    assert read_before_wake == [2]


class QuietSocket(FakeSocket):
    """Answers the subscription, then sends nothing, as a quiet account's stream does for hours."""

    async def _play(self):
        await asyncio.Event().wait()
        yield ""                                    # never reached


def test_a_quiet_stream_lets_go_as_soon_as_it_is_asked_to_stop():
    socket = QuietSocket("subscribe_ok", [])

    async def main():
        stop = asyncio.Event()
        stream = KrakenExecutions(token=lambda: TOKEN, connect=lambda url: socket)
        task = asyncio.create_task(stream.run(lambda events: None, stop=stop))
        while not socket.sent:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 2)          # before the change it waited for a frame that never came

    asyncio.run(main())
