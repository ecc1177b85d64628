"""services.tickets.ticket_submit: the one rule the desk's ticket and POST /v1/orders both follow.
Hard pre-trade limits refuse anyone's order; a soft warning stops a person until a reason is typed (kept in
the audit trail) and is advice for a script; a resubmitted ticket answers with the order it placed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.errors import InvalidRequest, OrderRejected
from orders.models import AuditEvent, Order
from orders.services.limits import limits_set
from orders.services.tickets import OverrideRequired, TicketBlocked, ticket_submit
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db

D = Decimal


def submit(account, broker, *, by_person, reason="", **fields):
    return ticket_submit(account=account, request=make_order_request(**fields), broker=broker, actor="user:tess",
                         by_person=by_person, override_reason=reason)


def test_a_soft_warning_stops_a_person_until_a_reason_is_typed(account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quantity_soft=D("5"))

    with pytest.raises(OverrideRequired) as refused:
        submit(account, broker, by_person=True, client_order_id="t-1")
    assert refused.value.details["reject_code"] == "OVERRIDE_REQUIRED"
    assert refused.value.details["field"] == "override_reason"
    assert refused.value.preview.soft_breaches and not Order.objects.exists()

    placed = submit(account, broker, by_person=True, reason="  client asked twice  ", client_order_id="t-1")
    assert placed.created and placed.order.quantity == D("10")
    override = AuditEvent.objects.get(action="order.override")
    assert override.target == str(placed.order.id) and override.details["reason"] == "client asked twice"


def test_a_soft_warning_is_advice_for_a_script(account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quantity_soft=D("5"))

    placed = submit(account, broker, by_person=False)

    assert placed.created and placed.preview is None
    assert not AuditEvent.objects.filter(action="order.override").exists()


@pytest.mark.parametrize("by_person", [True, False])
def test_a_hard_limit_refuses_a_person_and_a_script_alike(account, broker, clock, by_person):
    limits_set(account_id=account.pk, actor="risk", max_quantity_hard=D("5"))

    with pytest.raises(TicketBlocked if by_person else OrderRejected) as refused:
        submit(account, broker, by_person=by_person, reason="I insist")

    assert refused.value.code == "ORDER_REJECTED"
    assert refused.value.details["reject_code"] == "PRETRADE_LIMIT"
    assert refused.value.details["field"] == "quantity"
    assert not Order.objects.exists()


def test_a_resubmitted_ticket_answers_with_its_order_without_asking_again(account, broker, clock):
    first = submit(account, broker, by_person=True, client_order_id="t-2")
    limits_set(account_id=account.pk, actor="risk", max_quantity_soft=D("5"))     # a warning since

    again = submit(account, broker, by_person=True, client_order_id="t-2")

    assert not again.created and again.order.id == first.order.id
    assert Order.objects.count() == 1


# -- refused attempts are in the audit trail ------------------------------------------------------------

def rejections():
    return AuditEvent.objects.filter(action="order.rejected")


def test_a_hard_limit_refusal_is_audited_with_its_code_message_and_check(account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quantity_hard=D("5"))

    with pytest.raises(TicketBlocked) as refused:
        submit(account, broker, by_person=True, quantity="10", client_order_id="t-9")

    event = rejections().get()
    assert (event.actor, event.account_id, event.result) == ("user:tess", account.pk, "rejected")
    assert event.details == {"code": "ORDER_REJECTED", "message": refused.value.message, "symbol": "AAPL",
                             "side": "BUY", "quantity": "10", "order_type": "MARKET", "check": "max_quantity",
                             "client_order_id": "t-9"}


def test_an_override_asked_for_is_audited_as_a_refusal(account, broker, clock):
    limits_set(account_id=account.pk, actor="risk", max_quantity_soft=D("5"))

    with pytest.raises(OverrideRequired):
        submit(account, broker, by_person=True)

    assert rejections().get().details["check"] == "OVERRIDE_REQUIRED"


def test_a_refusal_of_the_rules_or_the_venue_is_audited(account, broker, clock):
    with pytest.raises(OrderRejected):
        submit(account, broker, by_person=False, quantity="100000")          # more than the account can pay
    with pytest.raises(InvalidRequest):
        submit(account, broker, by_person=False, order_type="LIMIT")         # no limit price

    assert [(e.details["code"], e.details["check"]) for e in rejections().order_by("at")] == [
        ("INSUFFICIENT_BALANCE", "INSUFFICIENT_BALANCE"), ("INVALID_REQUEST", "INVALID_REQUEST")]


def test_an_accepted_order_writes_no_refusal(account, broker, clock):
    submit(account, broker, by_person=True)

    assert not rejections().exists()
