"""What the brokers' own event streams share: the reconnect loop and its backoff, how to connect, how to
hand events on, and how the engine's stream thread runs one until the engine stops."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

log = logging.getLogger(__name__)


def reconnect_delay(attempt: int, *, initial: float = 1.0, maximum: float = 60.0,
                    jitter: Callable[[], float] = random.random) -> float:
    """``min(initial × 2^min(attempt, 6), maximum)`` plus 0-25 % jitter (PROTOCOL §7.7)."""
    return min(initial * 2 ** min(attempt, 6), maximum) * (1 + 0.25 * jitter())


def websocket_connect(url: str, *, max_size: int = 2 ** 20) -> Any:
    """A client connection with pings every 20 s (a silent peer is dropped after 20 s more)."""
    # imported here: only the streams need the library
    from websockets.asyncio.client import connect

    return connect(url, ping_interval=20, ping_timeout=20, close_timeout=5, max_size=max_size)


def follow_until(stop: threading.Event, run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a stream (``run(halt)``) on an event loop of its own, in the engine's stream thread, until the
    engine sets ``stop``."""
    async def main() -> None:
        halt = asyncio.Event()

        async def watch_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.5)
            halt.set()

        watcher = asyncio.create_task(watch_stop())
        try:
            await run(halt)
        finally:
            watcher.cancel()

    asyncio.run(main())


class ReconnectingStream:
    """A venue's event stream, re-opened with exponential backoff and jitter whenever a session ends: the socket
    dropped, the subscription was refused, the venue closed it. A subclass opens one session (``_session``) and
    calls ``subscribed()`` once its subscription is accepted, which starts the backoff again from the bottom.
    Whatever was missed meanwhile is caught up by the engine's next ``sync``."""

    label = "stream"

    def __init__(self, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, initial_delay: float = 1.0,
                 max_delay: float = 60.0) -> None:
        self.sleep = sleep
        self.initial_delay, self.max_delay = initial_delay, max_delay
        self.connections = 0

    async def run(self, on_events: Callable[[list], Any], *, stop: asyncio.Event | None = None,
                  max_connections: int | None = None) -> None:
        """Stream until ``stop`` is set (or after ``max_connections`` connection attempts)."""
        stop = stop or asyncio.Event()
        attempt = 0
        while not stop.is_set():
            self.connections += 1
            accepted: list[bool] = []
            try:
                await self._session(on_events, stop, subscribed=partial(accepted.append, True))
            except asyncio.CancelledError:
                raise
            except Exception as e:       # the socket, the subscription or what it needed failed: reconnect
                log.warning("%s dropped: %s", self.label, e)
            if accepted:
                attempt = 0
            self._ended()
            if stop.is_set() or (max_connections is not None and self.connections >= max_connections):
                return
            delay = reconnect_delay(attempt, initial=self.initial_delay, maximum=self.max_delay)
            attempt += 1
            await self.sleep(delay)

    async def _session(self, on_events: Callable[[list], Any], stop: asyncio.Event, *,
                       subscribed: Callable[[], None]) -> None:
        raise NotImplementedError

    def _ended(self) -> None:
        """A session is over (forget what belonged to it)."""


async def deliver(on_events: Callable[[list], Any], events: list) -> None:
    """Hand ``events`` to a callback that may be a coroutine function."""
    result = on_events(events)
    if inspect.isawaitable(result):
        await result


async def frames_until(ws: Any, stop: asyncio.Event) -> AsyncIterator[Any]:
    """The socket's frames until it closes or ``stop`` is set, whichever comes first: a quiet account sends
    nothing for hours, and an engine that stops must not wait for its next frame to let the stream go."""
    frames = aiter(ws)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            receiving = asyncio.ensure_future(anext(frames))
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                return
            try:
                raw = receiving.result()
            except StopAsyncIteration:
                return
            yield raw
    finally:
        stopping.cancel()
