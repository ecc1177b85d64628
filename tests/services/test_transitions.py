"""services.transitions: the one writer of an order's status. It follows domain/lifecycle.py's table, writes
only over the status it read (a door that moved the order first wins), and saves every step with its event."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.brokers.types import BrokerAck, ExecutionReport, ReportKind
from orders.domain.enums import OrderStatus
from orders.domain.lifecycle import IllegalTransition, OrderStep, order_event
from orders.models import Event, Order
from orders.services.fills import report_apply
from orders.services.orders import _record_acks, order_submit
from orders.services.transitions import order_transition
from tests.builders import make_order_request

pytestmark = pytest.mark.django_db

D = Decimal
AT = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)


def resting(account, broker) -> Order:
    return order_submit(account=account, broker=broker, request=make_order_request(
        order_type="LIMIT", limit_price=D("100"), quantity=D("10"))).order


def events_of(order) -> list[str]:
    return [e.payload["event"] for e in Event.objects.filter(kind="order").order_by("id")
            if e.payload["order"]["id"] == str(order.id)]


def test_the_table_names_each_step_and_refuses_what_cannot_follow():
    assert order_event(OrderStatus.PENDING, OrderStatus.OPEN, OrderStep.CREATED) == "ORDER_CREATED"
    assert order_event(OrderStatus.OPEN, OrderStatus.OPEN, OrderStep.MODIFIED) == "ORDER_MODIFIED"
    assert order_event(OrderStatus.OPEN, OrderStatus.FILLED, OrderStep.MODIFIED) == "ORDER_FILLED"
    assert order_event(OrderStatus.PENDING, OrderStatus.PENDING, OrderStep.HELD) == "BRACKET_ORDER_CREATED"
    assert order_event(OrderStatus.CANCELLED, OrderStatus.FILLED, OrderStep.FILLED) == "ORDER_FILLED"
    for before in (OrderStatus.REJECTED, OrderStatus.EXPIRED):
        with pytest.raises(IllegalTransition):
            order_event(before, OrderStatus.OPEN, OrderStep.ACCEPTED)
    with pytest.raises(IllegalTransition) as refused:
        order_event(OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStep.ENDED)
    assert refused.value.status == 409 and refused.value.details["status"] == "FILLED"


def test_a_step_is_saved_with_its_event(account, broker, clock):
    order = resting(account, broker)

    order.quantity = D("4")
    assert order_transition(order, order.status, step=OrderStep.MODIFIED, changed=("quantity",))

    assert Order.objects.get(pk=order.pk).quantity == D("4")
    assert events_of(order) == ["ORDER_CREATED", "ORDER_MODIFIED"]


def test_a_write_over_a_status_that_moved_on_writes_nothing(account, broker, clock):
    order = resting(account, broker)
    stale = Order.objects.get(pk=order.pk)
    assert order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED, message="by the first door")

    assert not order_transition(stale, OrderStatus.EXPIRED, step=OrderStep.ENDED, message="by the second")

    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.status, fresh.status_message) == (OrderStatus.CANCELLED, "by the first door")
    assert stale.status == OrderStatus.OPEN                   # the loser's copy is left as it was read
    assert events_of(order) == ["ORDER_CREATED", "ORDER_CANCELLED"]


def test_a_venue_answer_recorded_after_the_engine_moved_the_order_keeps_its_id_and_tells_the_truth(
        account, broker, clock):
    """A remote venue's report (applied by the engine) can reach a PENDING order before its submission's
    answer is recorded: the answer then keeps the venue's id, and the caller sees the order as it now is."""
    order = Order.objects.get(pk=resting(account, broker).pk)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PENDING, broker_order_id="")
    order.refresh_from_db()
    answered = Order.objects.get(pk=order.pk)                 # the submitting request's copy: PENDING
    report_apply(report=ExecutionReport(str(order.id), ReportKind.ACCEPTED, AT), broker=broker)

    _record_acks(answered, [], [BrokerAck("venue-77", OrderStatus.OPEN)])

    assert answered.status == OrderStatus.OPEN and answered.broker_order_id == "venue-77"
    assert Order.objects.get(pk=order.pk).broker_order_id == "venue-77"


def test_a_venue_refusal_of_a_part_filled_order_keeps_what_traded(account, broker, clock):
    order = resting(account, broker)
    report_apply(report=ExecutionReport(str(order.id), ReportKind.FILL, AT, fill_id="f-1", quantity=D("3"),
                                        price=D("100")), broker=broker)

    assert report_apply(report=ExecutionReport(str(order.id), ReportKind.REJECTED, AT, reason="gone at the venue"),
                        broker=broker)

    fresh = Order.objects.get(pk=order.pk)
    assert (fresh.status, fresh.filled_quantity) == (OrderStatus.CANCELLED, D("3"))
    assert events_of(order)[-1] == "ORDER_CANCELLED"
