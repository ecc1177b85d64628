"""Kraken's ``executions`` channel (WebSocket v2, ``wss://ws-auth.kraken.com/v2``) as a wake-up for the engine.

Kraken streams an account's order acknowledgements, fills, cancels and amends on one authenticated channel.
The desk does not apply them from here: each message only wakes the engine, whose ``sync`` (``QueryOrders``)
stays the one place that records what happened. So a message that arrives twice, late or never changes
nothing but how soon a fill is seen, and nothing here depends on more of a message than its channel.

Each connection asks REST ``GetWebSocketsToken`` for a fresh token (a token must be used within 15 minutes and
then lives as long as its subscription), subscribes with ``snap_orders`` (so a reconnect wakes the engine to
catch up) and without past trades, and is re-opened with exponential backoff and jitter whenever it drops, the
token cannot be had or the subscription is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from orders.brokers.streams import ReconnectingStream, deliver, websocket_connect

WS_AUTH_URL = "wss://ws-auth.kraken.com/v2"
CHANNEL = "executions"

OnExecutions = Callable[[list[dict]], Awaitable[None] | None]


class StreamRefused(Exception):
    """Kraken answered the subscription with an error."""


def to_kraken_ws_subscribe(*, token: str, req_id: int) -> dict:
    return {"method": "subscribe", "req_id": req_id,
            "params": {"channel": CHANNEL, "token": token, "snap_orders": True, "snap_trades": False}}


def _connect(url: str) -> Any:
    return websocket_connect(url, max_size=2 ** 22)         # a snapshot lists every open order


class KrakenExecutions(ReconnectingStream):
    label = "kraken: executions stream"

    def __init__(self, *, token: Callable[[], str], url: str = WS_AUTH_URL,
                 connect: Callable[[str], Any] = _connect,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 initial_delay: float = 1.0, max_delay: float = 60.0, answer_timeout: float = 10.0) -> None:
        super().__init__(sleep=sleep, initial_delay=initial_delay, max_delay=max_delay)
        self.token = token
        self.url = url
        self.connect = connect
        self.answer_timeout = answer_timeout
        self.subscribed = False
        self._req_ids = itertools.count(1)

    async def _session(self, on_executions: OnExecutions, stop: asyncio.Event, *,
                       subscribed: Callable[[], None]) -> None:
        token = await asyncio.to_thread(self.token)        # a signed REST call: off the loop
        async with self.connect(self.url) as ws:
            await self._subscribe(ws, token)
            subscribed()
            await self._listen(ws, on_executions, stop)

    def _ended(self) -> None:
        self.subscribed = False

    async def _subscribe(self, ws: Any, token: str) -> None:
        request = to_kraken_ws_subscribe(token=token, req_id=next(self._req_ids))
        await ws.send(json.dumps(request))
        while True:
            answer = json.loads(await asyncio.wait_for(ws.recv(), self.answer_timeout))
            if answer.get("method") != "subscribe" or answer.get("req_id") != request["req_id"]:
                continue                              # status and heartbeats come first
            if not answer.get("success"):
                raise StreamRefused(f"subscription refused: {answer.get('error')}")
            self.subscribed = True
            return

    async def _listen(self, ws: Any, on_executions: OnExecutions, stop: asyncio.Event) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("channel") == CHANNEL and message.get("data"):
                await deliver(on_executions, message["data"])
            if stop.is_set():
                return
