"""``manage.py rundesk`` with real processes (on SQLite): it serves on ``--port``, restarts an engine that
exits, and stops the whole desk, saying why, when the web server exits."""

from __future__ import annotations

import os
import re
import signal

import pytest
import requests

from orders.management.commands.rundesk import Child
from tests.e2e.desk_process import free_port, running_desk, wait_for

pytestmark = pytest.mark.slow


def _pid(desk, name: str) -> int:
    found = wait_for(lambda: re.search(rf"{name} pid (\d+)", desk.log("desk")), what=f"the {name}'s pid")
    return int(found.group(1))


def test_it_serves_on_the_port_given_and_restarts_an_engine_that_dies(tmp_path):
    with running_desk(tmp_path / "desk") as desk:
        desk.port = free_port()                             # not GATEWAY_PORT, which the desk's env names
        desk.start("rundesk", "--port", str(desk.port), log_name="desk")
        desk.wait_ready()
        wait_for(lambda: "running for" in desk.log("desk"), what="the engine to start")

        os.kill(_pid(desk, "engine"), signal.SIGKILL)

        wait_for(lambda: "the engine exited with -9; restarting it in 1 s" in desk.log("desk"),
                 what="rundesk to see the engine die")
        wait_for(lambda: desk.log("desk").count("running for") == 2, timeout=30, what="the engine to run again")
        response = requests.post(f"{desk.url}/v1/orders", timeout=5, json={
            "symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"})
        assert response.status_code == 201
        order_id = response.json()["id"]
        wait_for(lambda: requests.get(f"{desk.url}/v1/orders/{order_id}", timeout=5).json()["status"] == "FILLED",
                 what="the order to fill")


def test_an_engine_run_alone_is_supervised_too(tmp_path):
    """``rundesk --no-web``: how the scale-out recipe runs its leader and standby engines."""
    with running_desk(tmp_path / "desk") as desk:
        desk.start("rundesk", "--no-web", log_name="engine")
        wait_for(lambda: "running for" in desk.log("engine"), what="the engine to start")
        pid = int(wait_for(lambda: re.search(r"engine pid (\d+)", desk.log("engine")), what="its pid").group(1))

        os.kill(pid, signal.SIGKILL)

        wait_for(lambda: desk.log("engine").count("running for") == 2, timeout=30, what="the engine to run again")
        assert "the engine exited with -9; restarting it in 1 s" in desk.log("engine")
        assert "desk running on" not in desk.log("engine")


def test_the_desk_stops_with_a_clear_message_when_the_web_server_dies(tmp_path):
    with running_desk(tmp_path / "desk") as desk:
        rundesk = desk.start("rundesk", log_name="desk")
        desk.wait_ready()
        wait_for(lambda: "running for" in desk.log("desk"), what="the engine to start")

        os.kill(_pid(desk, "web server"), signal.SIGKILL)

        assert rundesk.wait(timeout=20) == 128 + signal.SIGKILL
        said = desk.log("desk")
        assert "the web server exited with -9; stopping the desk and its engine" in said
        assert "engine stopped" in said
        assert said.rstrip().endswith("desk stopped")


def test_an_engine_that_keeps_exiting_waits_longer_each_time_up_to_30_seconds(monkeypatch):
    engine = Child("engine", ["true"], {})
    now = 1000.0
    delays = []
    for _ in range(7):
        engine.started_at = now
        delays.append(engine.schedule_restart(now + 1))
        now += 2
    assert delays == [1, 2, 4, 8, 16, 30, 30]

    engine.started_at = now
    assert engine.schedule_restart(now + 61) == 1              # it ran for a minute: quick again
