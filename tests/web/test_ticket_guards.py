"""The desk's ticket and issue #16's order guards: the order-rate throttle's 429 and the stale-quote guard's
STALE_QUOTE in the API's words, beside the field they are about, and the quote's age beside the quote."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command

from orders.models import AuditEvent, Order
from orders.services.limits import limits_set
from tests.web.page import parse

pytestmark = pytest.mark.django_db

PREVIEW = "/ticket/preview/"
SUBMIT = "/ticket/submit/"


def ticket(**fields) -> dict[str, str]:
    data = {"token": str(uuid.uuid4()), "symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "1",
            "time_in_force": "GTC", "limit_price": "", "stop_price": "", "trailing_distance": "",
            "trailing_type": "", "stop_loss": "", "take_profit": "", "override_reason": ""}
    data.update({k: str(v) for k, v in fields.items()})
    return data


def freeze_feed(clock, seconds: int) -> None:
    call_command("paper_faults", "--freeze-quotes", "on", stdout=open("/dev/null", "w"))
    clock.shift(seconds)


def test_the_ticket_shows_the_throttles_429_in_the_apis_words(trader_client, account, clock):
    limits_set(account_id=account.pk, actor="risk", orders_per_second=2)
    for _ in range(2):
        assert trader_client.post(SUBMIT, ticket()).status_code == 200

    response = trader_client.post(SUBMIT, ticket())

    assert response.status_code == 429
    assert response["X-Desk-Fragment"] == "ticket"        # refusals.js swaps it in like a 200
    said = parse(response.content).by_id("ticket-form").find(class_="error", role="alert")
    assert said.text == ("RATE_LIMITED: Rate limit exceeded: the account sends at most 2 new orders a second; "
                         "send again in 1 s")
    assert response.content.decode().count("new orders a second") == 1           # above the form, once
    assert Order.objects.filter(parent__isnull=True).count() == 2


def test_the_preview_shows_the_quotes_age_and_warns_when_it_is_stale(trader_client, account, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 2)
    fresh = parse(trader_client.post(PREVIEW, ticket()).content)
    assert fresh.by_id("quote-age").text == "2.0 s old"
    assert "stale" not in fresh.by_id("quote-age").attrs["class"]
    assert fresh.find(data_check="quote_age") is None

    clock.shift(10)
    stale = parse(trader_client.post(PREVIEW, ticket()).content)

    assert stale.by_id("quote-age").text == "12 s old"
    assert "stale" in stale.by_id("quote-age").attrs["class"].split()
    assert "needs a reason (STALE_QUOTE)" in stale.find(data_check="quote_age").text
    limit_order = parse(trader_client.post(PREVIEW, ticket(order_type="LIMIT", limit_price="100")).content)
    assert limit_order.find(data_check="quote_age") is None          # its own price: not held back


def test_the_ticket_refuses_a_stale_quote_beside_the_reason_then_sends_it_with_one(trader_client, account, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 12)
    data = ticket()

    response = trader_client.post(SUBMIT, data)

    assert response.status_code == 422
    page = parse(response.content)
    assert page.field_errors("override_reason") == [
        "STALE_QUOTE: Order rejected: the quote of AAPL is 12 s old, over the account's limit of 5 s; wait for a "
        "live quote (or type a reason on the desk's ticket)"]
    assert page.by_id("quote-age").text == "12 s old"
    assert Order.objects.count() == 0

    response = trader_client.post(SUBMIT, {**data, "override_reason": "feed frozen; price checked by phone"})

    assert response.status_code == 200
    order = Order.objects.get()
    override = AuditEvent.objects.get(action="order.override")
    assert (override.actor, override.target) == ("user:tina", str(order.id))
    assert override.details["reason"] == "feed frozen; price checked by phone"
    assert override.details["check"] == "STALE_QUOTE"
