"""Defects found while testing, kept fixed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Order
from tests.api.support import J, quote, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db


def test_closing_a_position_twice_while_the_first_close_is_working_does_not_flip_it(client, account, broker, clock):
    account.cash = Decimal("1000000")
    account.save()
    submit(client, quantity="3000")
    for _ in range(10):
        run_engine(account, broker, seconds=1, clock=clock)
    first = client.delete("/v1/positions/AAPL", content_type=J).json()
    second = client.delete("/v1/positions/AAPL", content_type=J).json()
    for _ in range(10):
        run_engine(account, broker, seconds=1, clock=clock)
    assert client.get("/v1/positions").json() == []
    if first["status"] != "FILLED":
        assert second["id"] == first["id"]
    closes = Order.objects.filter(leg_role=Order.LegRole.CLOSE)
    assert sum(o.filled_quantity for o in closes) == Decimal("3000")


def test_growing_an_order_beyond_the_buying_power_is_refused(client, account, broker, clock):
    limit = (quote(client)["bid"] * Decimal("0.9")).quantize(Decimal("0.01"))
    order_id = submit(client, order_type="LIMIT", limit_price=str(limit), quantity="1").json()["id"]
    response = client.patch(f"/v1/orders/{order_id}", {"quantity": "1000000"}, content_type=J)
    assert response.status_code == 422
    assert response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert client.get(f"/v1/orders/{order_id}").json()["quantity"] == "1"


def test_a_position_id_longer_than_64_characters_is_a_validation_error(client, account):
    response = submit(client, expect=400, position_id="p" * 65)
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert "position_id" in response.json()["details"]


def test_an_unknown_v1_path_answers_in_the_error_envelope(client, account, settings):
    settings.DEBUG = False
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json()["code"] == "INVALID_REQUEST"
