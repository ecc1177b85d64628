"""One exit wins: a filled stop-loss cancels the take-profit and vice versa, whoever links them (the engine
for pending legs, the venue for native OCO / bracket legs); closing the position cancels both; if both
fill anyway the desk raises OCO_DOUBLE_EXIT once (PROTOCOL §8.4, §8.6)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers.types import ExecutionReport, ReportKind
from orders.models import Alert, Event, ExitLeg, Fill, Order
from orders.services.fills import reports_apply
from tests.exits.conftest import (
    PROFILES,
    D,
    fill_entry,
    legs,
    position_quantity,
    quote,
    shock,
    submit,
    tick,
    use_profile,
)

pytestmark = pytest.mark.django_db

# the shock that sends the market through each leg, by entry side
THROUGH = {("BUY", "stop_loss"): "-5", ("BUY", "take_profit"): "5",
           ("SELL", "stop_loss"): "5", ("SELL", "take_profit"): "-5"}
OTHER = {"stop_loss": "take_profit", "take_profit": "stop_loss"}


def _alerts(kind: str) -> list[Alert]:
    return list(Alert.objects.filter(kind=kind))


@pytest.mark.parametrize("winner", ["stop_loss", "take_profit"])
@pytest.mark.parametrize("side", ["BUY", "SELL"])
@pytest.mark.parametrize("profile_name", PROFILES)
def test_the_leg_that_fills_cancels_its_sibling(client, account, settings, clock, profile_name, side, winner):
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock, side=side)["id"]
    assert position_quantity(account) == (D(10) if side == "BUY" else D(-10))

    shock(broker, THROUGH[(side, winner)], after=1)
    for _ in range(3):
        tick(account, broker, clock, 2)

    resting = legs(entry_id)
    won, lost = resting[winner], resting[OTHER[winner]]
    assert [(o.status, o.filled_quantity) for o in won] == [("FILLED", D(10))]
    assert [(o.status, o.filled_quantity) for o in lost] == [("CANCELLED", D(0))]
    assert ExitLeg.objects.get(entry_id=entry_id, role=winner).status == "FILLED"
    loser = ExitLeg.objects.get(entry_id=entry_id, role=OTHER[winner])
    assert (loser.status, loser.end_reason) == ("CANCELLED", "sibling_filled")
    assert position_quantity(account) == 0
    assert Fill.objects.filter(order__parent_id=entry_id).count() == 1
    assert not Alert.objects.exists()


@pytest.mark.parametrize("profile_name", PROFILES)
def test_closing_the_position_cancels_both_legs(client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock)["id"]
    [position] = client.get("/v1/positions").json()

    response = client.delete(f"/v1/positions/{position['id']}")
    assert response.status_code == 200
    close = Order.objects.get(pk=response.json()["id"])
    assert (close.status, close.leg_role, close.reduce_only) == ("FILLED", "close", True)

    assert position_quantity(account) == 0
    assert client.get("/v1/positions").json() == []
    for leg in ExitLeg.objects.filter(entry_id=entry_id):
        assert (leg.status, leg.end_reason) == ("CANCELLED", "position_closed")
    resting = legs(entry_id)
    assert {o.status for o in resting["stop_loss"] + resting["take_profit"]} == {"CANCELLED"}
    shock(broker, "-5", after=1)
    tick(account, broker, clock, 5)
    assert position_quantity(account) == 0, "a cancelled leg must not trade afterwards"


def _stop_then_take_profit(client, account, broker, clock) -> str:
    """A long whose stop sits at the bid it was bought against (so it triggers at once) and whose take-profit a
    +5 % jump reaches ten seconds later; the engine then misses both by looking only half a minute later."""
    bid = quote(client)["bid"]
    entry_id = submit(client, side="BUY", stop_loss=bid, take_profit=quote(client)["ask"] + 1)["id"]
    tick(account, broker, clock, 0)                  # the entry fills; the legs rest from this second on
    assert position_quantity(account) == 10
    shock(broker, "5", after=10)
    tick(account, broker, clock, 30)
    tick(account, broker, clock, 1)
    return entry_id


def test_pending_legs_both_filled_while_the_engine_looked_away_raise_one_double_exit_alert(
        client, account, settings, clock):
    broker = use_profile(settings, "none")
    entry_id = _stop_then_take_profit(client, account, broker, clock)

    resting = legs(entry_id)
    assert [o.status for o in resting["stop_loss"]] == ["FILLED"]
    assert [o.status for o in resting["take_profit"]] == ["FILLED"]
    assert position_quantity(account) == -10, "both exits sold: the long became a short"
    [alert] = _alerts("OCO_DOUBLE_EXIT")
    assert alert.status == "OPEN" and alert.symbol == "AAPL"
    assert alert.details["total_exit_quantity"] == "20"
    filled_ids = {alert.details["first_fill"]["order_id"], alert.details["second_fill"]["order_id"]}
    assert filled_ids == {str(resting["stop_loss"][0].id), str(resting["take_profit"][0].id)}
    [event] = Event.objects.filter(kind="error")
    assert event.payload["code"] == "OCO_DOUBLE_EXIT"
    assert event.payload["details"]["alert_id"] == str(alert.id)

    for _ in range(3):
        tick(account, broker, clock, 1)
    assert len(_alerts("OCO_DOUBLE_EXIT")) == 1
    assert Event.objects.filter(kind="error").count() == 1


@pytest.mark.parametrize("profile_name", ["native_oco", "native_bracket"])
def test_venue_linked_legs_never_both_fill_even_when_the_engine_looked_away(client, account, settings, clock,
                                                                             profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = _stop_then_take_profit(client, account, broker, clock)

    resting = legs(entry_id)
    statuses = sorted(o.status for o in resting["stop_loss"] + resting["take_profit"])
    assert statuses == ["CANCELLED", "FILLED"]
    assert position_quantity(account) == 0
    assert Fill.objects.filter(order__parent_id=entry_id).count() == 1
    assert not _alerts("OCO_DOUBLE_EXIT")
    assert not Event.objects.filter(kind="error").exists()


@pytest.mark.parametrize("profile_name", PROFILES)
def test_a_sibling_fill_that_raced_its_cancel_raises_exactly_one_double_exit_alert(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock)["id"]
    shock(broker, "-5", after=1)
    tick(account, broker, clock, 3)
    resting = legs(entry_id)
    take_profit = resting["take_profit"][0]
    assert (resting["stop_loss"][0].status, take_profit.status) == ("FILLED", "CANCELLED")

    # the venue reports that the take-profit had traded before the cancel reached it
    take_profit.refresh_from_db()
    race = ExecutionReport(str(take_profit.id), ReportKind.FILL, take_profit.updated_at, fill_id="tp-race-1",
                           quantity=Decimal("10"), price=take_profit.limit_price)
    assert reports_apply(reports=[race], broker=broker) == 1
    assert reports_apply(reports=[race], broker=broker) == 0, "the same fill is recorded once"

    take_profit.refresh_from_db()
    assert (take_profit.status, take_profit.filled_quantity) == ("FILLED", D(10))
    assert position_quantity(account) == -10
    [alert] = _alerts("OCO_DOUBLE_EXIT")
    assert alert.entry_id is not None and str(alert.entry_id) == entry_id
    assert alert.details["first_fill"]["order_id"] == str(resting["stop_loss"][0].id)
    assert alert.details["second_fill"]["order_id"] == str(take_profit.id)
    assert Event.objects.filter(kind="error", payload__code="OCO_DOUBLE_EXIT").count() == 1


def test_a_fill_reported_after_the_cancel_was_confirmed_is_not_recorded(client, account, settings, clock):
    broker = use_profile(settings, "none")
    entry_id = fill_entry(client, account, broker, clock)["id"]
    shock(broker, "-5", after=1)
    tick(account, broker, clock, 3)
    take_profit = legs(entry_id)["take_profit"][0]
    late = ExecutionReport(str(take_profit.id), ReportKind.FILL, timezone.now() + timezone.timedelta(seconds=5),
                           fill_id="tp-late-1", quantity=Decimal("10"), price=take_profit.limit_price)
    assert reports_apply(reports=[late], broker=broker) == 0
    assert position_quantity(account) == 0
    assert not Alert.objects.exists()


@pytest.mark.parametrize("profile_name", PROFILES)
def test_a_stop_that_fills_in_parts_is_never_doubled_by_re_placing_its_cancelled_sibling(
        client, account, settings, clock, profile_name):
    """The venue's OCO cancels the take-profit on the stop's first partial fill; that is the OCO working,
    not a leg to re-place — re-placing the pair would put a second stop on the same shares."""
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock, quantity="3000")["id"]
    for _ in range(4):
        tick(account, broker, clock, 1)
    assert position_quantity(account) == 3000

    shock(broker, "-5", after=1)
    for _ in range(8):
        tick(account, broker, clock, 1)                 # the engine looks every second while the stop fills
        held = position_quantity(account)
        working_stop = sum((o.quantity - o.filled_quantity for o in Order.objects.filter(
            parent_id=entry_id, leg_role="stop_loss", status__in=("OPEN", "PARTIALLY_FILLED"))), D(0))
        assert working_stop <= held, f"{working_stop} of stops working against a position of {held}"

    assert position_quantity(account) == 0
    resting = legs(entry_id)
    assert [(o.status, o.filled_quantity) for o in resting["stop_loss"]] == [("FILLED", D(3000))]
    assert [o.client_order_id for o in resting["take_profit"]] == [f"{entry_id}-tp"], "never re-placed"
    assert {leg.role: leg.status for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {
        "stop_loss": "FILLED", "take_profit": "CANCELLED"}
    assert not Alert.objects.exists()
