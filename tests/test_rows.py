"""orders.rows.insert_row writes the row Model.save() would have written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.models import AuditEvent, Event, Order
from orders.rows import insert_row, read_row, update_rows
from tests.builders import make_account

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 2, 15, 0, 0, 123456, tzinfo=UTC)


def an_order(account, **fields) -> Order:
    values = dict(account=account, symbol="BTCUSDT", side="SELL", order_type="STOP_LIMIT",
                  quantity=Decimal("0.00012345"), limit_price=Decimal("64999.99"), stop_price=Decimal("65000.5"),
                  client_order_id="bot-7", correlation_id=uuid.uuid4(), reserved_price=Decimal("65000.5"),
                  status="OPEN", time_in_force="DAY", reduce_only=True, created_at=AT, updated_at=AT)
    values.update(fields)
    return Order(**values)


def stored(model, pk) -> dict:
    row = model.objects.filter(pk=pk).values().get()
    row.pop("id")
    return row


def test_an_order_row_is_the_one_save_writes():
    account = make_account()
    by_save, by_insert = an_order(account), an_order(account, client_order_id="bot-8")
    by_save.save(force_insert=True)

    insert_row(by_insert)

    expected = stored(Order, by_save.pk) | {"client_order_id": "bot-8", "correlation_id": by_insert.correlation_id}
    assert stored(Order, by_insert.pk) == expected
    assert Order.objects.get(pk=by_insert.pk).quantity == Decimal("0.00012345")


def test_an_outbox_event_gets_its_id_from_the_database_and_keeps_its_payload():
    account = make_account()
    first = insert_row(Event(account=account, kind="order", payload={"price": "1.5", "n": [1, None]}, created_at=AT))
    second = insert_row(Event(account=account, kind="trade", payload={}, created_at=AT))

    assert second.id == first.id + 1
    event = Event.objects.get(pk=first.id)
    assert (event.payload, event.created_at, event.kind) == ({"price": "1.5", "n": [1, None]}, AT, "order")


def test_an_audit_record_keeps_its_details_and_time():
    account = make_account()
    record = insert_row(AuditEvent(at=AT, account=account, actor="key:ab12", action="order.submit",
                                   details={"quantity": "2"}))

    assert AuditEvent.objects.filter(pk=record.pk, at=AT, details={"quantity": "2"}).exists()


@pytest.mark.parametrize("cash", ["1234.56", "0.0000000001", "1000000000000", "-17.5"])
def test_a_row_read_gives_the_values_a_queryset_gives(cash):
    account = make_account(cash=Decimal(cash))

    values = read_row(type(account), account.pk, ("cash", "trading_state", "name"), for_update=True)

    assert values == type(account).objects.values_list("cash", "trading_state", "name").get(pk=account.pk)
    assert values[0] == Decimal(cash)


def test_reading_a_missing_row_gives_none():
    assert read_row(Order, uuid.uuid4(), ("status",)) is None


def test_a_batched_update_writes_what_the_orm_writes_and_spares_finished_rows():
    account = make_account()
    by_orm, by_batch = an_order(account), an_order(account, client_order_id="bot-8")
    finished = an_order(account, client_order_id="bot-9", status="FILLED")
    for order in (by_orm, by_batch, finished):
        order.save(force_insert=True)
    later = datetime(2026, 3, 2, 15, 0, 7, 654321, tzinfo=UTC)
    Order.objects.filter(pk=by_orm.pk).update(trail_reference=Decimal("65123.45678901"), triggered=True,
                                              checked_until=later)

    changed = update_rows(Order, ("trail_reference", "triggered", "checked_until"), [
        (by_batch.pk, Decimal("65123.45678901"), True, later), (finished.pk, Decimal("1"), True, later)],
        unless=("status", ("FILLED", "CANCELLED")))

    assert changed == 1
    fields = ("trail_reference", "triggered", "checked_until")
    assert Order.objects.values_list(*fields).get(pk=by_batch.pk) == \
        Order.objects.values_list(*fields).get(pk=by_orm.pk)
    assert Order.objects.values_list(*fields).get(pk=finished.pk) == (None, False, None)
