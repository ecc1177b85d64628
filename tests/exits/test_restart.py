"""Restart safety: whatever the venue did while no engine ran, a new engine (catch-up tick, then
``protection_reconcile``, then ticks, as ``manage.py run_engine`` does) fills each leg at most once, never
duplicates a leg order and protects entries that filled meanwhile."""

from __future__ import annotations

import pytest
from django.db.models import Count
from django.utils import timezone

from orders.engine import engine_tick
from orders.models import Alert, ExitLeg, Fill, Order
from orders.services.protection import protection_reconcile
from tests.exits.conftest import (
    PROFILES,
    D,
    exit_leg,
    fill_entry,
    legs,
    position_quantity,
    shock,
    submit_bracket,
    tick,
    use_profile,
)

pytestmark = pytest.mark.django_db


def _new_engine_starts(account, broker) -> None:
    engine_tick(accounts=[account], broker=broker, now=timezone.now())     # catch up with the venue
    protection_reconcile(accounts=[account], broker=broker)
    engine_tick(accounts=[account], broker=broker, now=timezone.now())


def _no_duplicate_client_ids() -> None:
    duplicated = (Order.objects.exclude(client_order_id=None).values("client_order_id")
                  .annotate(n=Count("id")).filter(n__gt=1))
    assert not duplicated.exists(), list(duplicated)


@pytest.mark.parametrize("quantity", [10, 3000])
@pytest.mark.parametrize("profile_name", PROFILES)
def test_a_stop_crossed_while_no_engine_ran_fills_once_and_cancels_the_take_profit(
        client, account, settings, clock, profile_name, quantity):
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock, client_order_id="r-1", quantity=quantity)["id"]
    for _ in range(5):
        tick(account, broker, clock, 1)
    assert position_quantity(account) == quantity
    assert set(ExitLeg.objects.values_list("status", flat=True)) == {"PLACED"}

    # the engine stops; the market falls through the stop; ten minutes pass
    shock(broker, "-5", after=30)
    clock.shift(600)
    _new_engine_starts(account, broker)
    _new_engine_starts(account, broker)          # …and a second restart changes nothing

    resting = legs(entry_id)
    [stop], [take_profit] = resting["stop_loss"], resting["take_profit"]
    assert (stop.status, stop.filled_quantity) == ("FILLED", D(quantity))
    assert sum(f.quantity for f in Fill.objects.filter(order=stop)) == quantity
    assert take_profit.status == "CANCELLED" and not Fill.objects.filter(order=take_profit).exists()
    assert position_quantity(account) == 0
    assert {leg.role: leg.status for leg in ExitLeg.objects.all()} == {"stop_loss": "FILLED",
                                                                       "take_profit": "CANCELLED"}
    _no_duplicate_client_ids()
    assert Order.objects.count() == 3
    assert not Alert.objects.exists()


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_that_filled_while_no_engine_ran_gets_its_legs_on_restart(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = submit_bracket(client, client_order_id="r-2", quantity="3000")["id"]
    clock.shift(120)                              # no engine: the venue filled it meanwhile

    _new_engine_starts(account, broker)

    entry = Order.objects.get(pk=entry_id)
    assert entry.status == "FILLED"
    resting = legs(entry_id)
    assert [(o.client_order_id, o.quantity, o.status) for o in resting["stop_loss"]] == [("r-2-sl", D(3000), "OPEN")]
    assert [(o.client_order_id, o.quantity, o.status) for o in resting["take_profit"]] == [
        ("r-2-tp", D(3000), "OPEN")]
    count = Order.objects.count()

    for _ in range(2):
        protection_reconcile(accounts=[account], broker=broker)
    tick(account, broker, clock, 1)
    assert Order.objects.count() == count, "a second reconcile places nothing new"
    _no_duplicate_client_ids()


def test_a_leg_left_unplaced_when_the_engine_stopped_is_placed_by_reconcile(client, account, settings, clock):
    broker = use_profile(settings, "none")
    broker.faults.reject_next(1, kind="STOP")
    entry_id = submit_bracket(client, client_order_id="r-3")["id"]
    tick(account, broker, clock, 0)
    assert exit_leg(entry_id, "stop_loss").status == "RETRYING"

    # the engine stops before the retry; the new one reconciles at once, before its retry would be due
    protection_reconcile(accounts=[account], broker=broker)

    assert exit_leg(entry_id, "stop_loss").status == "PLACED"
    assert [o.client_order_id for o in legs(entry_id)["stop_loss"]] == ["r-3-sl"]
    for _ in range(2):
        protection_reconcile(accounts=[account], broker=broker)
        tick(account, broker, clock, 1)
    _no_duplicate_client_ids()
    assert Order.objects.filter(parent_id=entry_id).count() == 2


def test_a_position_closed_while_the_legs_waited_is_cleaned_up_by_reconcile(client, account, settings, clock):
    broker = use_profile(settings, "none")
    broker.faults.reject_next(1000, kind="STOP")
    entry_id = submit_bracket(client, client_order_id="r-4")["id"]
    tick(account, broker, clock, 0)
    assert client.delete("/v1/positions/AAPL").status_code == 200
    broker.faults.clear()

    _new_engine_starts(account, broker)

    assert position_quantity(account) == 0
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {"CANCELLED"}
    assert not Order.objects.filter(parent_id=entry_id).exclude(status="CANCELLED").exists()
