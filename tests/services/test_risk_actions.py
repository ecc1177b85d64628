"""The risk view's one-click answers to an alert: re-placing an unprotected position's exit legs goes through
the engine's own protection (``protection.protect``), resolves the alert when every leg is placed, says what
the venue refused when it still refuses, and is audited either way."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from orders.domain.errors import AlertNotFound, DeskError, InvalidRequest
from orders.models import Alert, AuditEvent, ExitLeg, Order
from orders.services.orders import order_submit
from orders.services.positions import position_close
from orders.services.protection import protection_tick
from orders.services.risk import position_exits_replace
from tests.builders import make_order_request, run_engine

pytestmark = pytest.mark.django_db


def unprotected(account, broker, clock) -> Alert:
    """A filled AAPL long whose stop-loss the venue keeps refusing, until POSITION_UNPROTECTED is raised."""
    broker.faults.reject_next(100, kind="STOP")
    q = broker.quote("AAPL", now=timezone.now())
    order_submit(account=account, broker=broker, request=make_order_request(
        quantity=10, stop_loss=q.ask - Decimal("1"), take_profit=q.ask + Decimal("3")))
    run_engine(account, broker, seconds=1, clock=clock)
    for _ in range(4):
        run_engine(account, broker, seconds=5, clock=clock)
    return Alert.objects.get(account=account, kind="POSITION_UNPROTECTED", status="OPEN")


def stop_orders(alert) -> list[Order]:
    return list(Order.objects.filter(parent_id=alert.entry_id, leg_role="stop_loss", status="OPEN"))


def test_re_placing_the_stop_places_it_and_resolves_the_alert(account, broker, clock):
    alert = unprotected(account, broker, clock)
    broker.faults.clear()

    done = position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")

    assert (done.symbol, done.placed, done.failed) == ("AAPL", ["stop-loss"], [])
    assert len(stop_orders(alert)) == 1 and stop_orders(alert)[0].quantity == 10
    alert.refresh_from_db()
    assert alert.status == "RESOLVED"
    event = AuditEvent.objects.get(action="position.exits_replace")
    assert (event.actor, event.result, event.details["placed"]) == ("user:rita", "ok", ["stop-loss"])


def test_a_stop_the_venue_refuses_again_is_reported_with_its_error_and_the_alert_stays(account, broker, clock):
    alert = unprotected(account, broker, clock)

    done = position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")

    assert done.placed == []
    [(role, error)] = done.failed
    assert role == "stop-loss" and "rejected by injected fault" in error
    assert stop_orders(alert) == []
    alert.refresh_from_db()
    assert alert.status == "OPEN"
    event = AuditEvent.objects.get(action="position.exits_replace")
    assert event.result == "failed" and "rejected by injected fault" in event.details["failed"][0]["error"]


def test_re_placing_is_refused_once_the_position_is_flat(account, broker, clock):
    alert = unprotected(account, broker, clock)
    position_close(account=account, position_id="AAPL", broker=broker, actor="user:rita")
    run_engine(account, broker, seconds=1, clock=clock)
    Alert.objects.filter(pk=alert.pk).update(status="OPEN")        # as if the screen had not caught up

    with pytest.raises(DeskError, match="AAPL is flat"):
        position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")
    assert not AuditEvent.objects.filter(action="position.exits_replace").exists()


def test_re_placing_is_refused_when_every_leg_is_placed(account, broker, clock):
    alert = unprotected(account, broker, clock)
    broker.faults.clear()
    position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")

    with pytest.raises(DeskError, match="placed already"):
        position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")
    assert ExitLeg.objects.filter(entry_id=alert.entry_id, status="PLACED").count() == 2


def test_only_an_unprotected_position_s_alert_has_exits_to_re_place(account, broker):
    from orders.services.alerts import alert_raise
    alert = alert_raise(account_id=account.pk, kind="OCO_DOUBLE_EXIT", symbol="AAPL", dedupe_key="x",
                        message="both filled", details={})

    with pytest.raises(InvalidRequest):
        position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")
    with pytest.raises(AlertNotFound):
        position_exits_replace(account=account, alert_id="not-an-id", broker=broker, actor="user:rita")


@pytest.mark.django_db(transaction=True)
def test_an_engine_tick_during_a_re_place_waits_for_it_and_places_no_second_stop(account, broker, clock):
    # The click holds the entry's row while it places the stop; the engine's retry of the same leg (due by its
    # backoff) must wait for it and then find the stop placed, not find it missing and place another (without
    # the lock it collided with the click's order, and its tick failed; a moment later it placed a second). On
    # PostgreSQL the click's transaction is held open while the engine tries; SQLite runs one write transaction
    # at a time (IMMEDIATE), and its in-memory test database cannot even be read during one, so there the
    # engine comes right after the click.
    alert = unprotected(account, broker, clock)
    broker.faults.clear()
    clock.shift(60)
    row_locks = connection.vendor == "postgresql"
    replaced, release, errors = threading.Event(), threading.Event(), []

    def in_thread(work):
        def run() -> None:
            try:
                work()
            except Exception as e:      # noqa: BLE001 - reported by the assertion below
                errors.append(e)
            finally:
                connections.close_all()
        return threading.Thread(target=run)

    def re_place() -> None:
        with transaction.atomic():
            position_exits_replace(account=account, alert_id=str(alert.pk), broker=broker, actor="user:rita")
            if row_locks:
                replaced.set()
                release.wait(10)
        replaced.set()

    def engine_tick() -> None:
        replaced.wait(10)
        protection_tick(accounts=[account], broker=broker)

    click, engine = in_thread(re_place), in_thread(engine_tick)
    click.start()
    engine.start()
    engine.join(timeout=3)             # time enough to place a second stop, were it not waiting
    release.set()
    click.join(timeout=30)
    engine.join(timeout=30)

    assert errors == []
    assert len(stop_orders(alert)) == 1 and stop_orders(alert)[0].quantity == 10
    assert ExitLeg.objects.get(entry_id=alert.entry_id, role="stop_loss").status == "PLACED"
