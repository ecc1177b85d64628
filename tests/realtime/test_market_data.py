"""Market data for the sockets of one process: a real broker is asked off the event loop, each symbol at most
once per poll interval however many sockets want it, failures included; the paper venue is asked directly."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from orders.brokers import get_broker
from orders.brokers.paper import PaperBroker
from orders.domain.errors import DeskError
from orders.realtime.market import BAR_SECONDS, MarketData

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class RemotePaper(PaperBroker):
    """The paper venue dressed as a remote broker: counted, slow, and answering on a thread of its own."""
    answers_at_once = False
    poll_seconds = 2.0

    def __init__(self, config, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.asked: list[tuple[str, str, str]] = []

    def quote(self, symbol, *, now):
        self.asked.append(("quote", symbol, threading.current_thread().name))
        threading.Event().wait(0.05)                       # a network round trip
        return super().quote(symbol, now=now)

    def bars(self, symbol, **kwargs):
        self.asked.append(("bars", symbol, threading.current_thread().name))
        return super().bars(symbol, **kwargs)


@pytest.fixture
def remote() -> RemotePaper:
    return RemotePaper(get_broker().config)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_many_sockets_asking_at_once_cost_one_request(remote):
    market = MarketData(remote, clock=Clock())

    async def main():
        return await asyncio.gather(*(market.quote("AAPL", now=NOW) for _ in range(50)))

    quotes = asyncio.run(main())

    assert len(remote.asked) == 1 and len({q.ask for q in quotes}) == 1
    assert remote.asked[0][2] != threading.current_thread().name          # not on the event loop's thread


def test_a_symbol_is_asked_again_once_its_answer_is_older_than_the_poll_interval(remote):
    clock = Clock()
    market = MarketData(remote, clock=clock)

    async def main():
        await market.quote("AAPL", now=NOW)
        clock.now += 1.9
        await market.quote("AAPL", now=NOW)
        await market.quote("MSFT", now=NOW)
        clock.now += 0.2
        await market.quote("AAPL", now=NOW)

    asyncio.run(main())

    assert [(what, symbol) for what, symbol, _ in remote.asked] == [
        ("quote", "AAPL"), ("quote", "MSFT"), ("quote", "AAPL")]


def test_bars_are_asked_at_most_every_ten_seconds(remote):
    clock = Clock()
    market = MarketData(remote, clock=clock)

    async def main():
        first = await market.last_bar("AAPL", now=NOW)
        clock.now += BAR_SECONDS - 1
        again = await market.last_bar("AAPL", now=NOW)
        return first, again

    first, again = asyncio.run(main())

    assert first == again and first is not None
    assert [what for what, _, _ in remote.asked] == ["bars"]


def test_a_failure_is_remembered_like_an_answer(remote):
    market = MarketData(remote, clock=Clock())

    async def main():
        for _ in range(3):
            with pytest.raises(DeskError):
                await market.quote("NOPE", now=NOW)

    asyncio.run(main())

    assert len(remote.asked) == 1


def test_the_paper_venue_is_asked_directly_every_time(broker):
    market = MarketData(broker, clock=Clock())

    async def main():
        return [await market.quote("AAPL", now=NOW), await market.quote("AAPL", now=NOW)]

    first, second = asyncio.run(main())

    assert first == second == broker.quote("AAPL", now=NOW)
