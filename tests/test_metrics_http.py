"""orders/api/observe.py: every HTTP answer counted and timed by method, route pattern and status."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db
REQUESTS, SECONDS = "desk_http_requests_total", "desk_http_request_duration_seconds_count"


def test_requests_are_counted_by_route_pattern_not_by_path(client, account):
    before = scrape(client)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for order_id in ids:
        assert client.get(f"/v1/orders/{order_id}").status_code == 404
    after = scrape(client)
    route = {"method": "GET", "route": "/v1/orders/<order_id>"}
    assert value(after, REQUESTS, **route, status="404") == value(before, REQUESTS, **route, status="404") + 3
    assert value(after, SECONDS, **route) == value(before, SECONDS, **route) + 3
    assert not any(order_id in str(labels) for _, labels in after for order_id in ids)


def test_each_status_of_a_route_has_its_own_count(client, account):
    before = scrape(client)
    assert client.get("/v1/account").status_code == 200
    assert client.post("/v1/account", "{}", content_type="application/json").status_code == 405
    after = scrape(client)
    assert (value(after, REQUESTS, method="GET", route="/v1/account", status="200")
            == value(before, REQUESTS, method="GET", route="/v1/account", status="200") + 1)
    assert (value(after, REQUESTS, method="POST", route="/v1/account", status="405")
            == value(before, REQUESTS, method="POST", route="/v1/account", status="405") + 1)


def test_a_refusal_at_the_edge_counts_under_the_route_it_was_aimed_at(client, account):
    before = scrape(client)
    assert client.post("/v1/orders", "symbol=AAPL", content_type="text/plain").status_code == 415
    after = scrape(client)
    route = {"method": "POST", "route": "/v1/orders", "status": "415"}
    assert value(after, REQUESTS, **route) == value(before, REQUESTS, **route) + 1


def test_a_path_no_route_matches_is_unmatched_and_odd_methods_are_other(client):
    before = scrape(client)
    assert client.get(f"/nowhere/{uuid.uuid4()}").status_code == 404
    assert client.generic("PROPFIND", "/metrics").status_code == 405
    after = scrape(client)
    assert (value(after, REQUESTS, method="GET", route="unmatched", status="404")
            == value(before, REQUESTS, method="GET", route="unmatched", status="404") + 1)
    assert (value(after, REQUESTS, method="other", route="/metrics", status="405")
            == value(before, REQUESTS, method="other", route="/metrics", status="405") + 1)


@pytest.mark.asyncio
async def test_requests_served_asynchronously_are_counted_too(async_client):
    sync_client = Client()
    before = await sync_to_async(scrape)(sync_client)
    assert (await async_client.get("/livez")).status_code == 200
    after = await sync_to_async(scrape)(sync_client)
    route = {"method": "GET", "route": "/livez", "status": "200"}
    assert value(after, REQUESTS, **route) == value(before, REQUESTS, **route) + 1
