"""Alpaca's ``trade_updates`` WebSocket as a stream of ExecutionReports (websockets' sync client).

Handshake (NOTES.md §2.2): send ``{"action": "authenticate", "data": {"key_id", "secret_key"}}``, expect
``{"stream": "authorization", "data": {"status": "authorized"}}``; send
``{"action": "listen", "data": {"streams": ["trade_updates"]}}``, expect ``{"stream": "listening"}``. The paper
host sends binary frames (JSON in bytes). A lost connection is retried with
``min(initial * 2**min(attempt, 6), max)`` plus 0-25 % jitter (PROTOCOL.md §7.7); refused credentials end the
stream with Unauthorized. Events missed while disconnected are not replayed by Alpaca: run ``broker.sync``
after every reconnect (``on_reconnect``).

Usage in a long-running worker::

    updates = AlpacaTradeUpdates(broker.config, order_id_for=broker.desk_order_id, on_reconnect=resync)
    for report in updates.reports(stop_event):
        reports_apply(reports=[report], broker=broker)
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from orders.brokers.alpaca.config import AlpacaConfig
from orders.brokers.alpaca.mapping import AlpacaOrder
from orders.brokers.alpaca.reports import parse_alpaca_trade_update
from orders.brokers.types import ExecutionReport
from orders.domain.errors import ProviderUnavailable, Unauthorized

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT = 10.0


def parse_alpaca_frame(raw: str | bytes) -> list[dict[str, Any]]:
    """One WebSocket frame (text or binary JSON; an object or a list of them) -> messages."""
    text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    try:
        decoded = json.loads(text, parse_float=Decimal)
    except ValueError:
        log.warning("alpaca stream: unreadable frame ignored")
        return []
    items = decoded if isinstance(decoded, list) else [decoded]
    return [item for item in items if isinstance(item, dict)]


class AlpacaTradeUpdates:
    def __init__(self, config: AlpacaConfig, *, order_id_for: Callable[[AlpacaOrder], str | None] | None = None,
                 connect: Callable[[str], Any] | None = None, sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = random.random, on_reconnect: Callable[[], None] | None = None,
                 initial_backoff: float = 1.0, max_backoff: float = 60.0, max_attempts: int | None = None,
                 poll_seconds: float = 1.0) -> None:
        self.config = config
        self.order_id_for = order_id_for
        self._connect = connect
        self.sleep, self.jitter, self.on_reconnect = sleep, jitter, on_reconnect
        self.initial_backoff, self.max_backoff, self.max_attempts = initial_backoff, max_backoff, max_attempts
        self.poll_seconds = poll_seconds

    def backoff(self, attempt: int) -> float:
        delay = min(self.initial_backoff * 2 ** min(attempt, 6), self.max_backoff)
        return delay * (1 + 0.25 * self.jitter())

    def reports(self, stop: threading.Event | None = None) -> Iterator[ExecutionReport]:
        """Reports as they arrive, reconnecting until ``stop`` is set (or ``max_attempts`` failures in a row)."""
        from websockets.exceptions import WebSocketException

        stop = stop or threading.Event()
        attempt, connected_before = 0, False
        while not stop.is_set():
            try:
                with self._open() as ws:
                    self._handshake(ws)
                    if connected_before and self.on_reconnect is not None:
                        self.on_reconnect()
                    attempt, connected_before = 0, True
                    yield from self._listen(ws, stop)
            except (OSError, TimeoutError, WebSocketException, ProviderUnavailable) as e:
                log.warning("alpaca stream: connection lost (%s)", type(e).__name__)
            if stop.is_set():
                return
            attempt += 1
            if self.max_attempts is not None and attempt > self.max_attempts:
                raise ProviderUnavailable(f"alpaca trade stream: gave up after {self.max_attempts} attempts")
            self.sleep(self.backoff(attempt - 1))

    def _open(self) -> Any:
        if self._connect is not None:
            return self._connect(self.config.stream_url)
        from websockets.sync.client import connect

        return connect(self.config.stream_url, open_timeout=HANDSHAKE_TIMEOUT)

    def _handshake(self, ws: Any) -> None:
        ws.send(json.dumps({"action": "authenticate",
                            "data": {"key_id": self.config.api_key, "secret_key": self.config.api_secret}}))
        reply = self._expect(ws, "authorization")
        if reply.get("data", {}).get("status") != "authorized":
            raise Unauthorized("alpaca refused the trade stream credentials", detail_code="BROKER_AUTH")
        ws.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        listening = self._expect(ws, "listening")
        if "trade_updates" not in (listening.get("data", {}).get("streams") or []):
            raise ProviderUnavailable("alpaca did not subscribe the connection to trade_updates")

    def _expect(self, ws: Any, stream: str) -> dict[str, Any]:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while time.monotonic() < deadline:
            for message in parse_alpaca_frame(ws.recv(timeout=HANDSHAKE_TIMEOUT)):
                self._raise_on_error(message)
                if message.get("stream") == stream:
                    return message
        raise ProviderUnavailable(f"alpaca stream: no {stream} reply")

    @staticmethod
    def _raise_on_error(message: dict[str, Any]) -> None:
        if message.get("action") == "error":
            text = str((message.get("data") or {}).get("error_message") or "error")[:200]
            raise ProviderUnavailable(f"alpaca stream: {text}")

    def _listen(self, ws: Any, stop: threading.Event) -> Iterator[ExecutionReport]:
        while not stop.is_set():
            try:
                raw = ws.recv(timeout=self.poll_seconds)
            except TimeoutError:
                continue
            for message in parse_alpaca_frame(raw):
                self._raise_on_error(message)
                report = parse_alpaca_trade_update(message, order_id_for=self.order_id_for)
                if report is not None:
                    yield report
