"""orders/metrics.py and the /metrics scrape: one scrape adds up every process of the desk on the machine,
counts outlive their process, a dead process's open sockets and leases drop out, the protocol's names stay.
Other processes are real ones, writing into this test run's metrics directory; the web processes and the
engine together are in tests/scaleout/test_metrics_cluster.py."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orders import metrics
from orders.engine import engine_tick, lease_claim, lease_release

ROOT = Path(__file__).resolve().parents[1]


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of one GET /metrics, parsed the way Prometheus reads it: (name, labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.content.decode()) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def other_process(code: str, *, wait: bool = False, env: dict | None = None) -> subprocess.Popen:
    """Another process of the desk that records ``code`` (``metrics`` is orders.metrics) into this run's
    metrics directory; with ``wait`` it stays alive until killed."""
    script = "from orders import metrics\n" + code + "\nprint('recorded', flush=True)\n"
    if wait:
        script += "import sys; sys.stdin.read()\n"
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **(env or {})},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "recorded", process.stderr.read()
    if not wait:
        assert process.wait(timeout=30) == 0
    return process


def test_the_test_run_keeps_its_metrics_out_of_the_checkout():
    directory = Path(os.environ[metrics.MULTIPROC_ENV])
    assert directory.is_dir()
    assert not directory.resolve().is_relative_to(ROOT)


def test_one_scrape_adds_up_what_every_process_counted_even_after_it_ended(client):
    labels = {"method": "GET", "route": "/test/added-up", "status": "200"}
    metrics.HTTP_REQUESTS.inc(2, **labels)
    other_process('metrics.HTTP_REQUESTS.inc(3, method="GET", route="/test/added-up", status="200")')
    other_process('metrics.HTTP_REQUESTS.inc(4, method="GET", route="/test/added-up", status="200")')
    assert value(scrape(client), "desk_http_requests_total", **labels) == 9


def test_a_dead_process_takes_its_open_sockets_and_leases_with_it_however_it_ended(client):
    before = scrape(client)
    other = other_process('metrics.WS_CONNECTIONS.inc(6)\n'
                          'metrics.ENGINE_LEASE_HELD.set(1, account="alice", owner="killed-engine")', wait=True)
    try:
        running = scrape(client)
        assert value(running, "gateway_ws_connections_active") == value(before, "gateway_ws_connections_active") + 6
        assert value(running, "desk_engine_lease_held", account="alice", owner="killed-engine") == 1
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=10)
    after = scrape(client)
    assert value(after, "gateway_ws_connections_active") == value(before, "gateway_ws_connections_active")
    assert ("desk_engine_lease_held", frozenset({("account", "alice"), ("owner", "killed-engine")})) not in after
    assert not glob.glob(os.path.join(os.environ[metrics.MULTIPROC_ENV], f"gauge_live*_{other.pid}.db"))


def test_a_process_that_records_nothing_leaves_no_file_behind():
    other = other_process("")
    metrics.forget_dead_processes(os.environ[metrics.MULTIPROC_ENV])
    assert not glob.glob(os.path.join(os.environ[metrics.MULTIPROC_ENV], f"*_{other.pid}.db"))


def test_the_last_tick_is_the_newest_of_any_engine_and_outlives_it(client):
    other_process('metrics.ENGINE_LAST_TICK.set(2_000_000_000, account="last-tick")')
    metrics.ENGINE_LAST_TICK.set(1_000_000_000, account="last-tick")
    assert value(scrape(client), "desk_engine_last_tick_timestamp_seconds", account="last-tick") == 2_000_000_000


def test_the_protocols_slow_consumer_counter_keeps_its_name_and_sums_every_reason(client):
    before = scrape(client)
    metrics.WS_SLOW_CONSUMERS.inc(reason="slow_consumer")
    metrics.WS_SLOW_CONSUMERS.inc(reason="unresponsive")
    other_process('metrics.WS_SLOW_CONSUMERS.inc(reason="slow_consumer")')
    after = scrape(client)
    assert (value(after, "desk_ws_slow_client_cuts_total", reason="slow_consumer")
            == value(before, "desk_ws_slow_client_cuts_total", reason="slow_consumer") + 2)
    text = client.get("/metrics").content.decode()
    assert "# TYPE gateway_ws_slow_consumer_disconnects counter\n" in text
    protocol = re.search(r"^gateway_ws_slow_consumer_disconnects (\S+)$", text, re.MULTILINE)
    assert float(protocol.group(1)) == value(after, "desk_ws_slow_client_cuts_total", reason="slow_consumer") + value(
        after, "desk_ws_slow_client_cuts_total", reason="unresponsive")


def test_the_scrape_is_the_text_format_with_the_protocols_names_and_types(client):
    metrics.ORDERS_SUBMITTED.inc(platform="paper")
    metrics.ORDER_SUBMIT_SECONDS.observe(0.003, platform="paper")
    response = client.get("/metrics")
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    for line in ("# TYPE gateway_orders_submitted_total counter", "# TYPE gateway_order_submit_duration_seconds "
                 "histogram", "# TYPE gateway_ws_connections_active gauge"):
        assert line + "\n" in text
    assert 'gateway_order_submit_duration_seconds_bucket{le="0.005",platform="paper"}' in text
    assert not re.search(r"^\w+_created[ {]", text, re.MULTILINE)      # no *_created series (a label may say it)


def test_prometheus_client_imported_before_the_directory_is_set_stops_the_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != metrics.MULTIPROC_ENV}
    script = (f"import os, prometheus_client\nos.environ[{metrics.MULTIPROC_ENV!r}] = {str(tmp_path)!r}\n"
              "from orders import metrics\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    assert "imported before PROMETHEUS_MULTIPROC_DIR was set" in result.stderr


# -- the engine -----------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_tick_is_timed_and_stamped_per_account(client, account, broker):
    before = scrape(client)
    started = time.time()
    engine_tick(accounts=[account], broker=broker)
    after = scrape(client)
    count = "desk_engine_tick_duration_seconds_count"
    assert value(after, count, platform="paper") == value(before, count, platform="paper") + 1
    assert started <= value(after, "desk_engine_last_tick_timestamp_seconds", account="alice") <= time.time()


@pytest.mark.django_db
def test_the_lease_holder_shows_1_a_standby_0_and_a_released_lease_0(client, account):
    assert lease_claim(account=account, owner="engine-a")
    assert not lease_claim(account=account, owner="engine-b")
    samples = scrape(client)
    assert value(samples, "desk_engine_lease_held", account="alice", owner="engine-a") == 1
    assert value(samples, "desk_engine_lease_held", account="alice", owner="engine-b") == 0
    lease_release(account=account, owner="engine-a")
    assert lease_claim(account=account, owner="engine-b")
    samples = scrape(client)
    assert value(samples, "desk_engine_lease_held", account="alice", owner="engine-a") == 0
    assert value(samples, "desk_engine_lease_held", account="alice", owner="engine-b") == 1
