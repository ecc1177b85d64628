"""The engine keeps DESK_OUTBOX_KEEP_HOURS of outbox events: older ones go, oldest first, per account;
orders, fills and the audit trail stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from orders.events import outbox_prune
from orders.models import AuditEvent, Event, Order
from orders.services.orders import order_submit
from tests.builders import make_account, make_order_request

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def events_at(account, *hours_ago: float) -> list[Event]:
    return [Event.objects.create(account=account, kind="order", payload={"n": i},
                                 created_at=NOW - timedelta(hours=h)) for i, h in enumerate(hours_ago)]


def test_events_older_than_the_cutoff_are_deleted_and_younger_ones_kept(account):
    events_at(account, 100, 80, 73, 71, 1)

    deleted = outbox_prune(account_ids=[account.pk], older_than=NOW - timedelta(hours=72))

    assert deleted == 3
    assert sorted(Event.objects.values_list("payload__n", flat=True)) == [3, 4]


def test_only_the_given_accounts_are_pruned(account):
    other = make_account(name="bob")
    events_at(account, 100)
    events_at(other, 100)

    outbox_prune(account_ids=[account.pk], older_than=NOW)

    assert list(Event.objects.values_list("account__name", flat=True)) == ["bob"]


def test_a_long_backlog_goes_in_batches(account):
    events_at(account, *[100] * 7, 1)

    assert outbox_prune(account_ids=[account.pk], older_than=NOW - timedelta(hours=72), batch=3) == 7
    assert Event.objects.count() == 1


def test_orders_and_their_audit_records_outlive_their_events(account, broker, clock):
    order = order_submit(account=account, request=make_order_request(quantity=1), broker=broker, actor="x").order

    outbox_prune(account_ids=[account.pk], older_than=datetime.now(UTC) + timedelta(hours=1))

    assert not Event.objects.exists()
    assert Order.objects.filter(pk=order.pk).exists()
    assert AuditEvent.objects.filter(action="order.submit", target=str(order.id)).exists()


@pytest.fixture
def engine_signals(monkeypatch):
    """The engine command installs SIGINT/SIGTERM handlers; keep pytest's."""
    monkeypatch.setattr("orders.management.commands.run_engine.signal.signal", lambda *args: None)


@pytest.mark.django_db(transaction=True)     # the engine's loop closes stale connections between ticks
def test_the_engine_prunes_when_it_starts(account, settings, engine_signals):
    settings.DESK_OUTBOX_KEEP_HOURS = 72
    old, recent = Event.objects.create(account=account, kind="order", payload={}, created_at=datetime.now(UTC)
                                       - timedelta(hours=80)), \
        Event.objects.create(account=account, kind="order", payload={}, created_at=datetime.now(UTC))

    call_command("run_engine", "--once", stdout=StringIO())

    assert not Event.objects.filter(pk=old.pk).exists()
    assert Event.objects.filter(pk=recent.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_keep_of_zero_hours_keeps_every_event(account, settings, engine_signals):
    settings.DESK_OUTBOX_KEEP_HOURS = 0
    old = Event.objects.create(account=account, kind="order", payload={},
                               created_at=datetime.now(UTC) - timedelta(days=365))

    call_command("run_engine", "--once", stdout=StringIO())

    assert Event.objects.filter(pk=old.pk).exists()
