"""What the brokers' own event streams share: how long to wait before reconnecting, and how to connect."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable
from typing import Any


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
