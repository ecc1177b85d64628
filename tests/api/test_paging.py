"""Lists come a page at a time: a script that asks for its orders without parameters gets the newest page,
never the whole book, and walks the rest with the cursor the page hands out (``X-Next-Cursor`` and a
``Link: rel="next"``), without missing or repeating a row while new orders arrive."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from orders.domain.paging import DEFAULT_PAGE, MAX_PAGE
from orders.models import Fill, Order
from tests.api.support import assert_error

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 1, tzinfo=UTC)


def book(account, count: int, *, status: str = "CANCELLED", same_time: bool = False,
         start: datetime = START) -> list[str]:
    """``count`` orders, one a second from ``start`` (or all at one instant); their ids newest first."""
    orders = [Order(id=uuid.uuid4(), account=account, symbol="AAPL", side="BUY", order_type="LIMIT",
                    quantity=Decimal("1"), limit_price=Decimal("100"), status=status,
                    created_at=start if same_time else start + timedelta(seconds=i),
                    updated_at=start if same_time else start + timedelta(seconds=i)) for i in range(count)]
    Order.objects.bulk_create(orders, batch_size=2000)
    newest_first = sorted(orders, key=lambda o: (o.created_at, str(o.id)), reverse=True)
    return [str(o.id) for o in newest_first]


def walk(client, url: str) -> tuple[list[str], int]:
    """Every id from following the Link headers from ``url``; and how many pages that took."""
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += [row["id"] for row in response.json()]
        pages += 1
        link = response.headers.get("Link")
        if link:
            assert response["X-Next-Cursor"] in link
            url = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1)
        else:
            assert "X-Next-Cursor" not in response
            url = None
    return seen, pages


def test_with_10000_orders_a_bare_list_answers_the_newest_default_page(client, account):
    ids = book(account, 10_000)

    response = client.get("/v1/orders")

    assert response.status_code == 200
    assert [o["id"] for o in response.json()] == ids[:DEFAULT_PAGE]
    assert response["X-Next-Cursor"]


def test_a_limit_above_the_maximum_is_served_as_the_maximum(client, account):
    book(account, MAX_PAGE + 5)

    assert len(client.get(f"/v1/orders?limit={MAX_PAGE * 10}").json()) == MAX_PAGE
    assert len(client.get("/v1/orders/history?limit=4294967295").json()) == MAX_PAGE


def test_following_the_cursor_visits_every_order_once_newest_first(client, account):
    ids = book(account, 250)

    seen, pages = walk(client, "/v1/orders?limit=100")

    assert seen == ids
    assert pages == 3


def test_orders_created_at_the_same_instant_are_neither_lost_nor_repeated_across_pages(client, account):
    ids = book(account, 30, same_time=True)

    seen, _ = walk(client, "/v1/orders?limit=7")

    assert seen == ids


def test_new_orders_arriving_while_paging_do_not_shift_the_pages(client, account):
    ids = book(account, 20)
    first = client.get("/v1/orders?limit=10")
    book(account, 5, start=START + timedelta(days=1))

    second = client.get(f"/v1/orders?limit=10&cursor={first['X-Next-Cursor']}")

    assert [o["id"] for o in second.json()] == ids[10:20]


def test_the_cursor_keeps_the_filters_of_the_query(client, account):
    book(account, 40)
    book(account, 40, status="FILLED")

    seen, pages = walk(client, "/v1/orders?status=FILLED&limit=15&since=2026-03-01T00:00:05Z")

    assert len(seen) == 35 and pages == 3
    assert {Order.objects.get(pk=i).status for i in seen} == {"FILLED"}


def test_history_and_trades_are_paged_too(client, account):
    ids = book(account, 120, status="FILLED")
    Fill.objects.bulk_create([
        Fill(account=account, order_id=order_id, broker_fill_id=f"f{n}", symbol="AAPL", side="BUY",
             quantity=Decimal("1"), price=Decimal("100"), timestamp=START + timedelta(seconds=n))
        for n, order_id in enumerate(reversed(ids))])

    history = client.get("/v1/orders/history")
    trades = client.get("/v1/trades")

    assert [o["id"] for o in history.json()] == ids[:DEFAULT_PAGE]
    assert [t["order_id"] for t in trades.json()] == ids[:DEFAULT_PAGE]
    assert walk(client, "/v1/orders/history?limit=50")[0] == ids
    assert [Fill.objects.get(pk=t).order_id.hex for t in walk(client, "/v1/trades?limit=50")[0]] == [
        uuid.UUID(i).hex for i in ids]


def test_the_last_page_carries_no_cursor(client, account):
    book(account, 10)

    response = client.get("/v1/orders?limit=10")

    assert len(response.json()) == 10
    assert "X-Next-Cursor" not in response and "Link" not in response


@pytest.mark.parametrize("cursor", ["garbage", "Zm9vYmFy", "MjAyNi0wMy0wMVQwMDowMDowMCswMDowMHxub3QtYS11dWlk"])
def test_a_cursor_the_server_did_not_give_is_a_400_in_the_envelope(client, account, cursor):
    body = assert_error(client.get(f"/v1/orders?cursor={cursor}"), 400, "INVALID_VALUE")

    assert body["details"]["field"] == "cursor"


def test_a_zero_limit_answers_nothing_and_offers_no_next_page(client, account):
    book(account, 5)

    response = client.get("/v1/orders?limit=0")

    assert response.json() == []
    assert "X-Next-Cursor" not in response and "Link" not in response
