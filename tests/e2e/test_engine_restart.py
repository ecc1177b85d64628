"""The engine is stopped hard with exit legs resting, the market moves through the stop, a new
engine process starts: the stop is enforced exactly once and the take-profit is cancelled."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest
import requests

from tests.e2e.desk_process import running_desk, wait_for


def _orders(desk, **params):
    return requests.get(f"{desk.url}/v1/orders", params=params, timeout=5).json()


def _by_client_id(desk, client_order_id):
    return _orders(desk, client_order_id=client_order_id)


@pytest.mark.slow
def test_a_new_engine_enforces_resting_legs_exactly_once_after_a_crash(tmp_path):
    with running_desk(tmp_path) as desk:
        desk.start("rundesk", "--no-engine", log_name="web")
        desk.wait_ready()
        first = desk.start("run_engine", log_name="engine-1")
        quote = requests.get(f"{desk.url}/v1/quotes/AAPL", timeout=5).json()
        bid = Decimal(quote["bid"])
        stop = (bid * Decimal("0.98")).quantize(Decimal("0.01"))
        target = (bid * Decimal("1.04")).quantize(Decimal("0.01"))
        response = requests.post(f"{desk.url}/v1/orders", timeout=5, json={
            "symbol": "AAPL", "side": "BUY", "quantity": "50", "order_type": "MARKET",
            "stop_loss": str(stop), "take_profit": str(target), "client_order_id": "restart-1"})
        assert response.status_code == 201, response.text
        wait_for(lambda: all(o and o[0]["status"] == "OPEN" for o in (
            _by_client_id(desk, "restart-1-sl"), _by_client_id(desk, "restart-1-tp"))),
            what="both legs resting")

        os.killpg(first.pid, signal.SIGKILL)            # no clean shutdown, the lease is left behind
        first.wait(timeout=5)
        desk.manage("paper_faults", "--shock", "AAPL", "-5")

        refused = desk.manage("run_engine", "--once", check=False)
        assert refused.returncode != 0
        assert "already run by engine" in refused.stderr

        desk.start("run_engine", "--wait", log_name="engine-2")
        stop_leg = wait_for(lambda: (o := _by_client_id(desk, "restart-1-sl")) and o[0]["status"] == "FILLED" and o,
                            timeout=30, what="the stop-loss leg to fill")[0]
        take_profit = wait_for(lambda: (o := _by_client_id(desk, "restart-1-tp")) and o[0]["status"] == "CANCELLED"
                               and o, what="the take-profit to be cancelled")[0]

        assert stop_leg["filled_quantity"] == "50"
        assert take_profit["filled_quantity"] == "0"
        trades = requests.get(f"{desk.url}/v1/trades", params={"order_id": stop_leg["id"]}, timeout=5).json()
        assert sum(Decimal(t["quantity"]) for t in trades) == Decimal("50")
        assert requests.get(f"{desk.url}/v1/positions", timeout=5).json() == []
        client_ids = [o.get("client_order_id") for o in _orders(desk)]
        assert client_ids.count("restart-1-sl") == 1
        assert client_ids.count("restart-1-tp") == 1
