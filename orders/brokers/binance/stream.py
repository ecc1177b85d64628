"""The user-data stream over Binance's WebSocket API.

REST listen keys are deprecated (NOTES §0.3): the stream is a ``userDataStream.subscribe.signature``
request on a WebSocket API connection; events then arrive wrapped as ``{"subscriptionId", "event"}``.
``executionReport`` events become ``ExecutionReport``s (``parse_binance_execution_report``) handed to a
callback; the desk applies them exactly like the reports of ``sync`` (fill ids are the same, so a fill
seen on both paths is recorded once).

The URL comes from the configuration only (``endpoints.ws_api_url``): the subscription carries the API key,
so it never goes to a host the configuration did not name.

The connection is re-opened with exponential backoff and jitter (PROTOCOL §7.7) whenever it drops, the
subscription is refused, or Binance ends it (``eventStreamTerminated``). After a reconnect, anything
missed is caught up by the next ``sync``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from orders.brokers.binance.endpoints import ws_api_url
from orders.brokers.binance.mapping import PROVIDER, parse_binance_execution_report, to_binance_ws_subscribe
from orders.brokers.streams import ReconnectingStream, deliver, frames_until, websocket_connect
from orders.brokers.types import ExecutionReport

log = logging.getLogger(__name__)

OnReports = Callable[[list[ExecutionReport]], Awaitable[None] | None]


class StreamRefused(Exception):
    """The venue answered the subscription with an error."""


class BinanceUserStream(ReconnectingStream):
    label = f"{PROVIDER}: user-data stream"

    def __init__(self, config: Any, *, timestamp: Callable[[], int], url: str | None = None,
                 connect: Callable[[str], Any] = websocket_connect,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 initial_delay: float = 1.0, max_delay: float = 60.0, answer_timeout: float = 10.0) -> None:
        super().__init__(sleep=sleep, initial_delay=initial_delay, max_delay=max_delay)
        self.config = config
        self.timestamp = timestamp
        self.url = url or ws_api_url(config.base_url, override=config.ws_api_url)
        self.connect = connect
        self.answer_timeout = answer_timeout
        self.subscription_id: int | None = None

    async def _session(self, on_reports: OnReports, stop: asyncio.Event, *,
                       subscribed: Callable[[], None]) -> None:
        async with self.connect(self.url) as ws:
            await self._subscribe(ws)
            subscribed()
            await self._listen(ws, on_reports, stop)

    def _ended(self) -> None:
        self.subscription_id = None

    async def _subscribe(self, ws: Any) -> None:
        request = to_binance_ws_subscribe(api_key=self.config.api_key, secret=self.config.api_secret,
                                          timestamp=self.timestamp(), recv_window=self.config.recv_window,
                                          request_id=str(uuid.uuid4()))
        await ws.send(json.dumps(request))
        while True:
            answer = json.loads(await asyncio.wait_for(ws.recv(), self.answer_timeout), parse_float=Decimal)
            if answer.get("id") != request["id"]:
                continue                                          # an event before the answer: replayed by sync
            if answer.get("status") != 200:
                error = answer.get("error") or {}
                raise StreamRefused(f"subscription refused: {error.get('code')} {error.get('msg')}")
            self.subscription_id = (answer.get("result") or {}).get("subscriptionId")
            return

    async def _listen(self, ws: Any, on_reports: OnReports, stop: asyncio.Event) -> None:
        async for raw in frames_until(ws, stop):
            frame = json.loads(raw, parse_float=Decimal)
            event = frame.get("event", frame)
            if event.get("e") == "eventStreamTerminated":
                log.info("%s: the venue ended the user-data stream; reconnecting", PROVIDER)
                return
            reports = parse_binance_execution_report(frame)
            if reports:
                await deliver(on_reports, reports)
