"""A client_order_id names at most one order: an identical retry answers with that order, a different
order under the same id is refused, and concurrent identical submissions still make one order."""

from __future__ import annotations

import threading

import pytest
from django.db import connections
from django.test import Client

from orders.models import Order
from tests.api.support import J, assert_error, order_body, submit
from tests.builders import run_engine


@pytest.mark.django_db
def test_an_identical_retry_returns_the_same_order_marked_as_replayed(client, account, clock):
    first = submit(client, client_order_id="entry-1")
    assert "Idempotent-Replayed" not in first
    retry = submit(client, client_order_id="entry-1")
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_a_retry_after_the_fill_answers_with_the_filled_order(client, account, broker, clock):
    first = submit(client, client_order_id="entry-1").json()
    run_engine(account, broker, seconds=1, clock=clock)
    retry = submit(client, client_order_id="entry-1")
    assert retry.json()["id"] == first["id"]
    assert retry.json()["status"] == "FILLED"
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_a_retry_spelling_enums_in_lowercase_is_the_same_order(client, account, clock):
    first = submit(client, client_order_id="entry-1", side="BUY", order_type="MARKET").json()
    retry = submit(client, client_order_id="entry-1", side="buy", order_type="market")
    assert retry.json()["id"] == first["id"]
    assert Order.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"quantity": "11"}, {"side": "SELL"}, {"symbol": "MSFT"},
                                    {"order_type": "LIMIT", "limit_price": "140"}, {"stop_loss": "140"}])
def test_a_different_order_under_a_used_client_order_id_is_refused(client, account, clock, change):
    first = submit(client, client_order_id="entry-1").json()
    body = assert_error(submit(client, expect=None, client_order_id="entry-1", **change), 422, "ORDER_REJECTED")
    assert body["details"]["reject_code"] == "DUPLICATE_CLIENT_ORDER_ID"
    assert Order.objects.count() == 1
    assert Order.objects.get().id.hex == first["id"].replace("-", "")


@pytest.mark.django_db
def test_an_order_can_be_found_by_its_client_order_id(client, account, clock):
    submit(client, client_order_id="other")
    wanted = submit(client, client_order_id="strategy-7-entry-2025-01-15").json()
    found = client.get("/v1/orders?client_order_id=strategy-7-entry-2025-01-15")
    assert found.status_code == 200
    assert [o["id"] for o in found.json()] == [wanted["id"]]
    assert found.json()[0]["client_order_id"] == "strategy-7-entry-2025-01-15"
    assert client.get("/v1/orders?client_order_id=never-used").json() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_submissions_create_exactly_one_order(account, clock):
    body = order_body(client_order_id="race-1")
    workers = 6
    barrier = threading.Barrier(workers)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def submit_once() -> None:
        try:
            own_client = Client(REMOTE_ADDR="127.0.0.1")
            barrier.wait(timeout=10)
            response = own_client.post("/v1/orders", body, content_type=J)
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit_once) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == workers
    assert {status for status, _ in answers} == {201}
    assert len({answer["id"] for _, answer in answers}) == 1
    assert Order.objects.filter(client_order_id="race-1").count() == 1
