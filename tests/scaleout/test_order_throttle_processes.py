"""The account's order-rate throttle holds across processes (issue #16, point 2): two web processes on one
PostgreSQL, a burst sent to both at once, and exactly the minute's allowance is placed; every other order gets
429 with ``Retry-After``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.desk_process import running_desk

pytestmark = pytest.mark.slow

PER_MINUTE, BURST = 6, 24
LIMITS = ("from orders.models import Account; from orders.services.limits import limits_set; "
          f"limits_set(account_id=Account.objects.get(is_default=True).pk, actor='test', "
          f"orders_per_minute={PER_MINUTE})")


def test_a_burst_across_two_web_processes_places_exactly_the_minutes_allowance(tmp_path, backing_services):
    with running_desk(tmp_path / "desk", **backing_services) as first:
        first.manage("shell", "-c", LIMITS)
        second = first.__class__(first.var_dir, **backing_services)          # same database, own port
        first.start("rundesk", log_name="web-1")
        second.start("rundesk", "--no-engine", log_name="web-2")
        try:
            first.wait_ready()
            second.wait_ready()

            def send(n: int) -> requests.Response:
                desk = (first, second)[n % 2]
                return requests.post(f"{desk.url}/v1/orders", timeout=20, json={
                    "symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "LIMIT", "limit_price": "1"})

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(send, range(BURST)))
        finally:
            second.stop_all()

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * PER_MINUTE + [429] * (BURST - PER_MINUTE), (
        f"{statuses.count(201)} placed, {statuses.count(429)} refused")
    for refused in (a for a in answers if a.status_code == 429):
        body = refused.json()
        assert body["code"] == "RATE_LIMITED" and body["details"]["window"] == "minute", body
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
