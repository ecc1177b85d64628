"""Resuming /v1/ws on another web process: two web processes and an engine on real PostgreSQL and Redis; one
web process is killed, and its clients, reconnecting to the other with ``?last_event_id=``, get every event
they missed while away, exactly what a client that never left got (``orders/realtime/resume.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
import requests
import websockets

from tests.e2e.desk_process import Desk, running_desk, wait_for

pytestmark = pytest.mark.slow


class Follower:
    """A /v1/ws client as a resuming script writes it: it answers the server's pings, remembers the last
    ``event_id`` and, after a cut, reconnects (to the next URL, once ``resume`` is set) with
    ``?last_event_id=``."""

    def __init__(self, *urls: str) -> None:
        self.urls = list(urls)
        self.frames: list[dict] = []            # outbox frames, in arrival order
        self.gaps: list[dict] = []
        self.cuts: list[str] = []
        self.connects = 0
        self.open = asyncio.Event()
        self.resume = asyncio.Event()
        self.resume.set()

    @property
    def last_id(self) -> str | None:
        return self.frames[-1]["event_id"] if self.frames else None

    async def run(self, stop: asyncio.Event) -> None:
        index = 0
        while not stop.is_set():
            await self.resume.wait()
            query = f"?last_event_id={self.last_id}" if self.last_id else ""
            try:
                async with websockets.connect(self.urls[index % len(self.urls)] + query, open_timeout=5) as socket:
                    self.connects += 1
                    self.open.set()
                    await self._read(socket, stop)
                    return
            except (OSError, TimeoutError, websockets.WebSocketException) as error:
                self.open.clear()
                self.cuts.append(repr(error))
                index += 1
                await asyncio.sleep(0.05)

    async def _read(self, socket, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=0.25))
            except TimeoutError:
                continue
            if frame["type"] == "ping":
                await socket.send(json.dumps({"type": "pong"}))
            elif "event_id" in frame:
                self.frames.append(frame)
            elif frame.get("details", {}).get("reason") == "resume_gap":
                self.gaps.append(frame)

    def order_events(self) -> set[tuple[str, str]]:
        return {(f["order"]["id"], f["event"]) for f in self.frames if f["type"] == "order"}

    def ids(self) -> list[int]:
        return [int(f["event_id"]) for f in self.frames]


def place(desk: Desk, quantity: str = "1") -> str:
    response = requests.post(f"{desk.url}/v1/orders", timeout=10, json={
        "symbol": "AAPL", "side": "BUY", "quantity": quantity, "order_type": "MARKET"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def filled(desk: Desk, order_id: str) -> bool:
    return requests.get(f"{desk.url}/v1/orders/{order_id}", timeout=5).json()["status"] == "FILLED"


def test_clients_of_a_killed_web_process_resume_on_the_other_with_every_event_they_missed(
        tmp_path, backing_services):
    with running_desk(tmp_path / "desk", **backing_services) as first:
        second = Desk(first.var_dir, **backing_services)
        try:
            doomed = first.start("rundesk", "--no-engine", log_name="web-1")
            second.start("rundesk", "--no-engine", log_name="web-2")
            first.start("run_engine", log_name="engine")
            first.wait_ready()
            second.wait_ready()
            ws = "ws://127.0.0.1:{}/v1/ws"
            movers = [Follower(ws.format(first.port), ws.format(second.port)) for _ in range(5)]
            stayer = Follower(ws.format(second.port))

            async def scenario():
                stop = asyncio.Event()
                tasks = [asyncio.create_task(f.run(stop)) for f in (*movers, stayer)]
                await asyncio.wait_for(asyncio.gather(*(f.open.wait() for f in (*movers, stayer))), 15)
                before = await asyncio.to_thread(place, second)
                await until(lambda: all((before, "ORDER_FILLED") in f.order_events() for f in (*movers, stayer)))
                for mover in movers:
                    mover.resume.clear()                     # they come back once what they miss has happened
                os.killpg(doomed.pid, signal.SIGKILL)
                await until(lambda: all(not m.open.is_set() for m in movers))
                cut_at = [m.last_id for m in movers]
                away = [await asyncio.to_thread(place, second) for _ in range(3)]
                await asyncio.to_thread(wait_for, lambda: all(filled(second, o) for o in away), what="the fills")
                await until(lambda: all((o, "ORDER_FILLED") in stayer.order_events() for o in away))
                for mover in movers:
                    mover.resume.set()
                after = await asyncio.to_thread(place, second)
                await until(lambda: all((after, "ORDER_FILLED") in f.order_events() for f in (*movers, stayer)))
                stop.set()
                await asyncio.gather(*tasks)
                return before, away, after, cut_at

            before, away, after, cut_at = asyncio.run(scenario())
        finally:
            second.stop_all()          # not inside running_desk: its web process would outlive the test
        for mover, cut in zip(movers, cut_at, strict=True):
            assert mover.connects == 2 and not mover.gaps, (mover.cuts, mover.gaps)
            assert mover.ids() == sorted(set(mover.ids())), "no event twice, none out of order"
            missed = [f["event_id"] for f in stayer.frames if int(f["event_id"]) > int(cut)]
            got = [f["event_id"] for f in mover.frames if int(f["event_id"]) > int(cut)]
            assert got == missed, "exactly what a client that never left received"
            assert {(o, e) for o in away for e in ("ORDER_CREATED", "ORDER_FILLED")} <= mover.order_events()


async def until(predicate, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
