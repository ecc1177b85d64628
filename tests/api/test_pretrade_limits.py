"""The account's hard pre-trade limits hold back scripts too: an entry over one is refused with
``ORDER_REJECTED`` / ``PRETRADE_LIMIT`` and nothing is recorded. Soft levels need a typed reason on the
desk's ticket; a script cannot give one, so for it they are advice. What only reduces exposure is never
held back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import AuditEvent, Order, PreTradeLimits
from orders.services.limits import limits_forget
from tests.api.support import assert_error, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(account):
    def set_limits(**levels):
        PreTradeLimits.objects.update_or_create(account=account, defaults=levels)
        limits_forget()
    return set_limits


def refused(response, check: str) -> dict:
    body = assert_error(response, 422, "ORDER_REJECTED")
    assert body["details"]["reject_code"] == "PRETRADE_LIMIT" and body["details"]["check"] == check, body
    return body


def test_an_order_over_the_hard_quantity_limit_is_refused_and_not_recorded(client, account, limits, clock):
    limits(max_quantity_hard=Decimal("100"))

    body = refused(submit(client, quantity="101", expect=None), "max_quantity")

    assert "above the hard limit 100" in body["message"]
    assert Order.objects.count() == 0
    submit(client, quantity="100")


def test_a_soft_limit_does_not_hold_a_script_back(client, account, limits, clock):
    limits(max_quantity_soft=Decimal("5"), max_notional_soft=Decimal("100"), daily_orders_soft=1)

    submit(client, quantity="10")
    submit(client, quantity="10")


def test_an_order_over_the_hard_notional_limit_is_refused(client, account, limits, clock):
    limits(max_notional_hard=Decimal("1000"))          # AAPL is about 149: 7 fit, 10 do not

    refused(submit(client, quantity="10", expect=None), "max_notional")
    submit(client, quantity="6")


def test_a_limit_price_beyond_the_hard_band_is_refused(client, account, limits, clock):
    limits(price_band_pct_hard=Decimal("5"))

    refused(submit(client, order_type="LIMIT", limit_price="120", expect=None), "price_band")
    submit(client, order_type="LIMIT", limit_price="145")


def test_the_days_order_cap_stops_a_runaway_script_but_not_its_way_out(client, account, broker, limits, clock):
    limits(daily_orders_hard=2)
    submit(client, quantity="1")
    submit(client, quantity="1")

    refused(submit(client, quantity="1", expect=None), "daily_orders")

    run_engine(account, broker, seconds=1, clock=clock)                  # the two buys fill
    submit(client, side="SELL", quantity="1", reduce_only=True)            # reducing is never held back
    assert client.delete("/v1/positions/AAPL").status_code == 200          # nor is closing


def test_exit_legs_of_a_bracket_do_not_count_against_the_cap(client, account, broker, limits, clock):
    limits(daily_orders_hard=1)
    submit(client, quantity="1", stop_loss="140", take_profit="160")
    run_engine(account, broker, seconds=1, clock=clock)                  # the entry fills, its legs are placed

    assert Order.objects.filter(parent__isnull=False).count() == 2
    refused(submit(client, quantity="1", expect=None), "daily_orders")


def test_a_refusal_on_the_api_is_in_the_audit_trail(client, account, limits, clock):
    limits(max_quantity_hard=Decimal("100"))

    refused(submit(client, quantity="101", side="SELL", expect=None), "max_quantity")

    event = AuditEvent.objects.get(action="order.rejected")
    assert (event.account_id, event.result) == (account.pk, "rejected")
    assert {k: event.details[k] for k in ("code", "check", "symbol", "side", "quantity")} == {
        "code": "ORDER_REJECTED", "check": "max_quantity", "symbol": "AAPL", "side": "SELL", "quantity": "101"}
    assert event.details["message"].startswith("Order rejected: Quantity 101 is above the hard limit 100")
