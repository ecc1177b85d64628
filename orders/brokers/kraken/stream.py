"""Kraken's ``executions`` channel (WebSocket v2) as a wake-up for the engine.

Kraken streams an account's order acknowledgements, fills, cancels and amends on one authenticated channel.
The desk does not apply them from here: each message only wakes the engine, whose ``sync`` (``QueryOrders``)
stays the one place that records what happened. So a message that arrives twice, late or never changes
nothing but how soon a fill is seen, and nothing here depends on more of a message than its channel.

Each connection asks REST ``GetWebSocketsToken`` for a fresh token (a token must be used within 15 minutes and
then lives as long as its subscription), subscribes with ``snap_orders`` (so a reconnect wakes the engine to
catch up) and without past trades, and is re-opened with exponential backoff and jitter whenever it drops, the
token cannot be had or the subscription is refused.

The address is the one ``endpoints.kraken_ws_auth_url`` derives from ``KRAKEN_BASE_URL`` (``wss://ws-auth.kraken.com/v2``
for Kraken itself), handed in by the broker. The connection follows no redirect to another origin: the token
it is about to send belongs to the configured host only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

from orders.brokers.kraken.endpoints import KRAKEN_WS_AUTH_URL
from orders.brokers.streams import ReconnectingStream, deliver, frames_until

WS_AUTH_URL = KRAKEN_WS_AUTH_URL
CHANNEL = "executions"

OnExecutions = Callable[[list[dict]], Awaitable[None] | None]


class StreamRefused(Exception):
    """Kraken answered the subscription with an error."""


def to_kraken_ws_subscribe(*, token: str, req_id: int) -> dict:
    return {"method": "subscribe", "req_id": req_id,
            "params": {"channel": CHANNEL, "token": token, "snap_orders": True, "snap_trades": False}}


@cache
def _same_origin_connect() -> type:
    """``websockets``' client ``connect``, refusing a redirect to another scheme, host or port (the library
    follows those and would let the subscription carry the token there). Imported here: only streams need it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import SecurityError
    from websockets.uri import parse_uri

    class SameOriginConnect(connect):
        def process_redirect(self, exc: Exception) -> Exception | str:
            target = super().process_redirect(exc)
            if isinstance(target, str):
                old, new = parse_uri(self.uri), parse_uri(target)
                if (old.secure, old.host, old.port) != (new.secure, new.host, new.port):
                    return SecurityError(f"refused a redirect from {self.uri} to another origin ({target})")
            return target

    return SameOriginConnect


def _connect(url: str) -> Any:
    # pings every 20 s, as streams.websocket_connect; a snapshot lists every open order, hence the larger frames
    return _same_origin_connect()(url, ping_interval=20, ping_timeout=20, close_timeout=5, max_size=2 ** 22)


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
        async for raw in frames_until(ws, stop):
            message = json.loads(raw)
            if message.get("channel") == CHANNEL and message.get("data"):
                await deliver(on_executions, message["data"])
