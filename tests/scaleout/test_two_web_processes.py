"""Scale-out on real PostgreSQL and Redis: two web server processes and standby engines."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from decimal import Decimal

import pytest
import requests
import websockets

from tests.e2e.desk_process import running_desk, wait_for

pytestmark = pytest.mark.slow


async def _wait_for_fill(url: str, order_ready: asyncio.Event, order_ids: list[str], timeout: float = 20):
    async with websockets.connect(url, open_timeout=10) as socket:
        order_ready.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=timeout))
            if frame["type"] == "order" and frame["order"]["id"] in order_ids and frame["event"] == "ORDER_FILLED":
                return frame
    raise TimeoutError("no fill arrived")


def test_a_client_on_the_second_process_receives_the_fill_of_an_order_placed_on_the_first(
        tmp_path, backing_services):
    with running_desk(tmp_path / "desk", **backing_services) as first:
        second_port_desk = first.__class__(first.var_dir, **backing_services)   # same database, own port
        first.start("rundesk", log_name="web-1")               # web + engine
        second_port_desk.start("rundesk", "--no-engine", log_name="web-2")
        first.wait_ready()
        second_port_desk.wait_ready()
        order_ids: list[str] = []

        async def scenario():
            ready = asyncio.Event()
            listener = asyncio.create_task(_wait_for_fill(f"ws://127.0.0.1:{second_port_desk.port}/v1/ws", ready,
                                                          order_ids))
            await ready.wait()
            response = await asyncio.to_thread(requests.post, f"{first.url}/v1/orders", timeout=10, json={
                "symbol": "AAPL", "side": "BUY", "quantity": "5", "order_type": "MARKET"})
            assert response.status_code == 201, response.text
            order_ids.append(response.json()["id"])
            return await listener

        try:
            frame = asyncio.run(scenario())
        finally:
            second_port_desk.stop_all()
        assert frame["order"]["filled_quantity"] == "5"
        assert frame["order"]["status"] == "FILLED"


def test_a_standby_engine_takes_over_within_seconds_without_placing_a_leg_twice(tmp_path, backing_services):
    with running_desk(tmp_path / "desk", **backing_services) as desk:
        desk.manage("paper_faults", "--clear")
        desk.start("rundesk", "--no-engine", log_name="web")
        desk.wait_ready()
        active = desk.start("run_engine", log_name="engine-a")
        wait_for(lambda: "running for" in desk.log("engine-a"), what="engine A to start")
        standby = desk.start("run_engine", "--wait", log_name="engine-b")
        bid = Decimal(requests.get(f"{desk.url}/v1/quotes/AAPL", timeout=5).json()["bid"])
        response = requests.post(f"{desk.url}/v1/orders", timeout=5, json={
            "symbol": "AAPL", "side": "BUY", "quantity": "20", "order_type": "MARKET", "client_order_id": "ha-1",
            "stop_loss": str((bid * Decimal("0.98")).quantize(Decimal("0.01"))),
            "take_profit": str((bid * Decimal("1.04")).quantize(Decimal("0.01")))})
        assert response.status_code == 201
        wait_for(lambda: len(requests.get(f"{desk.url}/v1/orders", params={"status": "OPEN"}, timeout=5).json()) == 2,
                 what="both legs resting")

        os.killpg(active.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        desk.manage("paper_faults", "--shock", "AAPL", "-5")
        wait_for(lambda: "running for" in desk.log("engine-b"), timeout=30, what="the standby to take over")
        took_over_after = time.monotonic() - killed_at
        stop_leg = wait_for(lambda: (o := requests.get(f"{desk.url}/v1/orders", timeout=5,
                                                       params={"client_order_id": "ha-1-sl"}).json())
                            and o[0]["status"] == "FILLED" and o[0], timeout=30, what="the stop to fill")
        assert standby.poll() is None
        assert took_over_after < 15
        orders = requests.get(f"{desk.url}/v1/orders", timeout=5).json()
        assert [o.get("client_order_id") for o in orders].count("ha-1-sl") == 1
        assert [o.get("client_order_id") for o in orders].count("ha-1-tp") == 1
        assert stop_leg["filled_quantity"] == "20"
