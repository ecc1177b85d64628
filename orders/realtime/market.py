"""Quotes and last bars for the sockets of this process (the /v1/ws stream and the desk).

The paper venue computes a price in-process from the second asked about: its answer for a symbol and a
second is computed once and shared by every socket for up to ``LOCAL_SECONDS`` (so an injected fault shows
within that), instead of once per socket, each reading the fault file. A real broker is a
request over the network: it is asked on a worker thread, never on the event loop, and each symbol at most
once per ``broker.poll_seconds`` (bars: at most every ``BAR_SECONDS``) however many sockets want it, so a
room of clients costs the broker's request budget no more than one. A failure is remembered as long as an
answer would be, so a symbol the broker does not know is not asked again on every tick.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from orders.api.common import pool_executor
from orders.brokers.base import Broker
from orders.brokers.types import Bar, Quote
from orders.caches import Remembered
from orders.domain.errors import DeskError

BAR_SECONDS = 10.0
LOCAL_SECONDS = 1.0


class MarketData:
    def __init__(self, broker: Broker, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self._quotes: Remembered[Any] = Remembered(broker.poll_seconds, clock=clock)
        self._bars: Remembered[Any] = Remembered(max(BAR_SECONDS, broker.poll_seconds), clock=clock)
        self._asking: dict[tuple[int, str], asyncio.Future] = {}
        self._local: Remembered[Any] = Remembered(LOCAL_SECONDS, clock=clock)
        self._days: Remembered[Any] = Remembered(max(BAR_SECONDS, broker.poll_seconds), clock=clock)

    async def quote(self, symbol: str, *, now: datetime) -> Quote:
        """The latest quote; raises the broker's DeskError."""
        return await self._ask(self._quotes, symbol, lambda: self.broker.quote(symbol, now=now), now=now)

    async def last_bar(self, symbol: str, *, now: datetime) -> Bar | None:
        """The latest 1-minute bar, or None; raises the broker's DeskError."""
        bars = await self._ask(self._bars, symbol,
                               lambda: self.broker.bars(symbol, timeframe="1m", seconds=60, end=now, count=1),
                               now=now)
        return bars[-1] if bars else None

    async def day_open(self, symbol: str, *, now: datetime) -> Bar | None:
        """The day's bar (its open is what the ticket's quote change is measured from), or None when the venue
        gives none; asked like the last bar, at most every ``BAR_SECONDS``."""
        try:
            bars = await self._ask(self._days, symbol,
                                   lambda: self.broker.bars(symbol, timeframe="1d", seconds=86400, end=now, count=1),
                                   now=now)
        except DeskError:
            return None
        return bars[-1] if bars else None

    async def _ask(self, answers: Remembered[Any], symbol: str, call: Callable[[], Any], *, now: datetime) -> Any:
        if self.broker.answers_at_once:
            key = (id(answers), symbol, int(now.timestamp()))
            known = self._local.get(key)
            if known is None:
                try:
                    known = self._local.put(key, call())
                except DeskError as e:
                    known = self._local.put(key, e)
            return _answer(known)
        known = answers.get(symbol)
        if known is not None:
            return _answer(known)
        key = (id(answers), symbol)
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.get_running_loop().create_task(self._fetch(answers, symbol, call))
        return _answer(await asyncio.shield(asking))

    async def _fetch(self, answers: Remembered[Any], symbol: str, call: Callable[[], Any]) -> Any:
        try:
            try:
                answer = await sync_to_async(call, thread_sensitive=False, executor=pool_executor("market"))()
            except DeskError as e:
                answer = e
            return answers.put(symbol, answer)
        finally:
            del self._asking[(id(answers), symbol)]


def _answer(answer: Any) -> Any:
    if isinstance(answer, DeskError):
        raise answer.with_traceback(None)         # the same error for every asker, without piling up tracebacks
    return answer


_markets: dict[tuple[int, str], MarketData] = {}


def market_data(broker: Broker) -> MarketData:
    """The running event loop's market data for ``broker`` (one per process under daphne)."""
    key = (id(asyncio.get_running_loop()), broker.name)
    market = _markets.get(key)
    if market is None or market.broker is not broker:
        market = _markets[key] = MarketData(broker)
    return market
