"""Issue #16, points 2 and 3 on /v1: an account's order-rate throttle (429 ``RATE_LIMITED`` with
``Retry-After``) and its stale-quote guard (422 ``STALE_QUOTE`` with the quote's age). Neither ever holds back
an order that only reduces a position."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command

from orders.models import AuditEvent, Order
from orders.services.limits import limits_set
from orders.services.tickets import ticket_submit
from tests.api.support import assert_error, submit
from tests.builders import make_order_request, run_engine

pytestmark = pytest.mark.django_db


def entries():
    return Order.objects.filter(parent__isnull=True)


# -- the throttle ------------------------------------------------------------------------------------------

def test_a_burst_over_the_rate_a_second_gets_429_with_retry_after(client, account, clock):
    limits_set(account_id=account.pk, actor="risk", orders_per_second=3)
    for _ in range(3):
        submit(client, quantity="1")

    response = submit(client, quantity="1", expect=None)

    body = assert_error(response, 429, "RATE_LIMITED")
    assert response["Retry-After"] == "1"
    assert body["details"] | {"reset_at": None} == {
        "retry_after_seconds": 1, "reset_at": None, "scope": "account", "limit": 3, "window": "second",
        "window_seconds": 1}
    assert "at most 3 new orders a second" in body["message"]
    assert entries().count() == 3
    clock.shift(1)
    submit(client, quantity="1")


def test_the_rate_a_minute_says_when_the_oldest_order_leaves_it(client, account, clock):
    limits_set(account_id=account.pk, actor="risk", orders_per_minute=2)
    submit(client, quantity="1")
    clock.shift(20)
    submit(client, quantity="1")
    clock.shift(5)

    response = submit(client, quantity="1", expect=None)

    body = assert_error(response, 429, "RATE_LIMITED")
    assert response["Retry-After"] == "35"                # the first order leaves the minute 60 s after it
    assert (body["details"]["limit"], body["details"]["window"]) == (2, "minute")
    clock.shift(35)
    submit(client, quantity="1")


def test_reducing_orders_in_a_burst_are_never_throttled(client, account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", orders_per_second=2)
    submit(client, quantity="10")
    submit(client, quantity="10")
    run_engine(account, broker)                        # long 20; the account's second is spent
    assert_error(submit(client, quantity="1", expect=None), 429, "RATE_LIMITED")

    submit(client, side="SELL", quantity="5")                              # only reduces the long position
    submit(client, side="SELL", quantity="5", reduce_only=True)            # reduce-only
    run_engine(account, broker)
    response = client.delete("/v1/positions/AAPL")               # a close
    assert response.status_code == 200, response.content

    assert_error(submit(client, side="SELL", quantity="1", expect=None), 429, "RATE_LIMITED")  # opens a short


def test_an_account_without_a_rate_is_not_throttled(client, account, clock):
    for _ in range(5):
        submit(client, quantity="1")


# -- the stale-quote guard -----------------------------------------------------------------------------------

def freeze_feed(clock, seconds: int) -> None:
    call_command("paper_faults", "--freeze-quotes", "on", stdout=open("/dev/null", "w"))
    clock.shift(seconds)


def test_a_frozen_feed_refuses_orders_priced_from_the_market_with_stale_quote(client, account, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 12)

    for kind in ({"order_type": "MARKET"}, {"order_type": "STOP", "stop_price": "200"},
                 {"order_type": "TRAILING_STOP", "trailing_distance": "1", "trailing_type": "ABSOLUTE"}):
        body = assert_error(submit(client, expect=None, **kind), 422, "STALE_QUOTE")
        assert body["details"] == {"reject_code": "STALE_QUOTE", "symbol": "AAPL", "quote_age_seconds": "12",
                                   "max_quote_age_seconds": "5"}, body
    assert "12 s old" in body["message"]
    assert entries().count() == 0
    submit(client, order_type="LIMIT", limit_price="100")                 # priced by the trader: not held back

    call_command("paper_faults", "--freeze-quotes", "off", stdout=open("/dev/null", "w"))
    submit(client)


def test_a_live_quote_within_the_limit_passes(client, account, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 4)
    submit(client)


def test_a_reducing_order_goes_through_a_frozen_feed(client, account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    submit(client, quantity="10")
    run_engine(account, broker)
    freeze_feed(clock, 30)

    submit(client, side="SELL", quantity="4")
    submit(client, side="SELL", quantity="3", reduce_only=True)
    run_engine(account, broker)
    assert client.delete("/v1/positions/AAPL").status_code == 200
    assert_error(submit(client, side="SELL", quantity="1", expect=None), 422, "STALE_QUOTE")


def test_a_person_sends_past_a_stale_quote_with_a_reason_and_it_is_audited(client, account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 12)

    with pytest.raises(Exception) as refused:
        ticket_submit(account=account, request=make_order_request(), broker=broker, actor="user:tom",
                      by_person=True)
    assert refused.value.code == "STALE_QUOTE"
    result = ticket_submit(account=account, request=make_order_request(), broker=broker, actor="user:tom",
                           by_person=True, override_reason="feed down, price confirmed by phone")

    assert result.created
    override = AuditEvent.objects.get(action="order.override", target=str(result.order.id))
    assert override.actor == "user:tom"
    assert override.details["reason"] == "feed down, price confirmed by phone"
    assert override.details["check"] == "STALE_QUOTE" and override.details["quote_age_seconds"] == "12"
    assert AuditEvent.objects.filter(action="order.rejected", details__code="STALE_QUOTE").count() == 1


def test_a_script_cannot_override_a_stale_quote(client, account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quote_age_seconds=Decimal("5"))
    freeze_feed(clock, 12)

    with pytest.raises(Exception) as refused:
        ticket_submit(account=account, request=make_order_request(), broker=broker, actor="key:bot",
                      override_reason="a script's words")
    assert refused.value.code == "STALE_QUOTE"
