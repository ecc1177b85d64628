"""One /metrics scrape covers the whole desk on a machine: two web processes and the engine, on real PostgreSQL
and Redis, sharing one metrics directory (orders/metrics.py)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
import requests
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.desk_process import Desk, running_desk, wait_for

pytestmark = pytest.mark.slow


def scrape(desk: Desk) -> dict[tuple[str, frozenset], float]:
    response = requests.get(f"{desk.url}/metrics", timeout=10)
    assert response.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: dict, name: str) -> dict[frozenset, float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


ACCOUNT_READS = {"method": "GET", "route": "/v1/account", "status": "200"}


def test_one_scrape_shows_the_requests_of_both_web_processes_the_engine_and_only_live_sockets(
        tmp_path, backing_services):
    with running_desk(tmp_path / "desk", **backing_services) as first:
        second = Desk(first.var_dir, **backing_services)        # the same var/ (so metrics directory), own port
        first.start("rundesk", log_name="web-1")                # web + engine
        second.start("rundesk", "--no-engine", log_name="web-2")
        first.wait_ready()
        second.wait_ready()
        try:
            for desk, times in ((first, 3), (second, 4)):
                for _ in range(times):
                    assert requests.get(f"{desk.url}/v1/account", timeout=10).status_code == 200
            both = scrape(first)
            assert value(both, "desk_http_requests_total", **ACCOUNT_READS) == 7
            assert value(scrape(second), "desk_http_requests_total", **ACCOUNT_READS) == 7

            # the engine, a third process: its lease, its ticks and how long ago the last one was
            engine = wait_for(lambda: (s := scrape(first)) and series(s, "desk_engine_lease_held") and s,
                              what="the engine's lease in the scrape")
            held = series(engine, "desk_engine_lease_held")
            assert [dict(labels)["account"] for labels, v in held.items() if v == 1] == ["demo"]
            assert value(engine, "desk_engine_tick_duration_seconds_count", platform="paper") > 0
            assert time.time() - value(engine, "desk_engine_last_tick_timestamp_seconds", account="demo") < 10

            # a socket open on the second process counts in the first one's scrape, until that process dies
            async def open_socket_then_kill_its_process():
                async with websockets.connect(f"ws://127.0.0.1:{second.port}/v1/ws", open_timeout=10):
                    wait_for(lambda: value(scrape(first), "gateway_ws_connections_active") == 1,
                             what="the second process's socket in the first one's scrape")
                    os.killpg(second.processes[0].pid, signal.SIGKILL)
                    second.processes[0].wait(timeout=10)

            asyncio.run(_ignoring_the_lost_socket(open_socket_then_kill_its_process()))
            after = wait_for(lambda: (s := scrape(first)) and value(s, "gateway_ws_connections_active") == 0 and s,
                             what="the dead process's socket to drop out")
            assert value(after, "desk_http_requests_total", **ACCOUNT_READS) == 7     # what it served still counts
        finally:
            second.stop_all()


async def _ignoring_the_lost_socket(coroutine) -> None:
    try:
        await coroutine
    except websockets.ConnectionClosed:        # the server died under it: the close handshake fails
        pass
