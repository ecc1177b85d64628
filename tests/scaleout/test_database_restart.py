"""The desk survives a PostgreSQL restart (issue #15): while the database is down every request answers
503 in the protocol's envelope (never 500), orders are accepted again within seconds of its return, and
the engine, which never exits, keeps its lease and fills the next order."""

from __future__ import annotations

import functools
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.desk_process import running_desk, wait_for
from tests.e2e.second_factor import pass_second_step_http
from tests.scaleout.servers import _as_postgres_user, _pg_bin, postgres_server

pytestmark = pytest.mark.slow

DEMO_PASSWORD = "restart-test-demo-password"


def _data_directory(database_url: str) -> Path:
    answer = subprocess.run([_pg_bin("psql"), database_url, "-Atc", "SHOW data_directory"], check=True,
                            capture_output=True, text=True, timeout=30)
    return Path(answer.stdout.strip())


def _pg_ctl(data: Path, *args: str) -> None:
    """pg_ctl as the user the cluster belongs to; the restarted server logs beside its data directory."""
    prefix, _, _ = _as_postgres_user()
    subprocess.run([*prefix, _pg_bin("pg_ctl"), "-D", str(data), "-l", str(data.parent / "restarted.log"),
                    "-w", "-t", "60", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=90)


class Traffic(threading.Thread):
    """A script placing orders and a person on the desk page, both without pause, noting every answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.answers: list[tuple[float, str, int, dict | None]] = []
        self.stopping = threading.Event()
        self.page = requests.Session()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            order = {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET",
                     "client_order_id": f"restart-{n}"}
            self._note("POST /v1/orders",
                       functools.partial(requests.post, f"{self.url}/v1/orders", timeout=5, json=order))
            self._note("GET /v1/orders", lambda: requests.get(f"{self.url}/v1/orders", params={"limit": 5},
                                                              timeout=5))
            self._note("GET /", lambda: self.page.get(f"{self.url}/", timeout=5, allow_redirects=False))
            time.sleep(0.05)

    def _note(self, what: str, call) -> None:
        try:
            response = call()
        except requests.RequestException:
            self.answers.append((time.monotonic(), what, 0, None))
            return
        try:
            body = response.json() if response.headers.get("Content-Type", "").startswith("application/json") \
                else None
        except ValueError:
            body = None
        self.answers.append((time.monotonic(), what, response.status_code, body))

    def log_in(self) -> None:
        self.page.get(f"{self.url}/login/", timeout=5)
        response = self.page.post(f"{self.url}/login/", timeout=5, allow_redirects=False, data={
            "username": "demo", "password": DEMO_PASSWORD, "csrfmiddlewaretoken": self.page.cookies["csrftoken"]},
            headers={"Referer": f"{self.url}/login/"})
        assert response.status_code == 302, response.text
        pass_second_step_http(self.page, self.url, {}, "demo", response)    # demo is an admin: it sets up its code


def _order_fills(url: str, client_order_id: str) -> None:
    response = requests.post(f"{url}/v1/orders", timeout=5, json={
        "symbol": "MSFT", "side": "BUY", "quantity": "2", "order_type": "MARKET", "client_order_id": client_order_id})
    assert response.status_code == 201, response.text
    order_id = response.json()["id"]
    wait_for(lambda: requests.get(f"{url}/v1/orders/{order_id}", timeout=5).json()["status"] == "FILLED",
             timeout=20, what=f"{client_order_id} to fill")


def test_the_desk_answers_503_while_postgres_restarts_and_recovers_by_itself(tmp_path):
    with postgres_server(tmp_path / "pg") as database_url:
        data = _data_directory(database_url)
        try:
            with running_desk(tmp_path / "desk", DATABASE_URL=database_url,
                              DESK_DEMO_PASSWORD=DEMO_PASSWORD) as desk:
                desk.start("rundesk", "--no-engine", log_name="web")
                engine = desk.start("run_engine", log_name="engine")
                desk.wait_ready()
                wait_for(lambda: "running for" in desk.log("engine"), what="the engine to start")
                _order_fills(desk.url, "before-restart")
                traffic = Traffic(desk.url)
                traffic.log_in()
                traffic.start()
                time.sleep(1.5)

                _pg_ctl(data, "restart", "-m", "fast")
                restarted_at = time.monotonic()
                wait_for(lambda: any(at > restarted_at and what == "POST /v1/orders" and status == 201
                                     for at, what, status, _ in list(traffic.answers)),
                         timeout=10, interval=0.1, what="an order accepted after the restart")
                accepted_after = min(at for at, what, status, _ in traffic.answers
                                     if at > restarted_at and what == "POST /v1/orders" and status == 201)
                time.sleep(2)
                traffic.stopping.set()
                traffic.join(timeout=15)
                _order_fills(desk.url, "after-restart")

                failures = [(what, status, body) for _, what, status, body in traffic.answers
                            if status >= 500 and status != 503 or status == 0]
                assert failures == [], f"{failures[:5]}\n--- web log ---\n{desk.log('web')[-4000:]}"
                unavailable = [body for _, what, status, body in traffic.answers
                               if status == 503 and what != "GET /"]
                assert all(body and body["code"] == "DATABASE_UNAVAILABLE" and body["message"]
                           for body in unavailable), unavailable[:3]
                assert accepted_after - restarted_at < 10
                assert engine.poll() is None, desk.log("engine")[-4000:]     # the same engine, still running
                engine_log = desk.log("engine")
                if "lost the database" in engine_log:   # else a health check replaced its connection in time
                    assert "reconnected to the database" in engine_log, engine_log[-4000:]
                    assert re.search(r"lease on demo (kept|retaken)", engine_log), engine_log[-4000:]
                assert "lost the lease" not in engine_log
        finally:
            _pg_ctl(data, "stop", "-m", "fast")
