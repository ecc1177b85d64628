"""PATCH /v1/positions/{id}: move the stop-loss and take-profit protecting a position (PROTOCOL §8.5)."""

from __future__ import annotations

import pytest

from orders.models import AuditEvent, ExitLeg, Fill, Order
from tests.exits.conftest import (
    PROFILES,
    D,
    J,
    exit_leg,
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


def _patch(client, position_id: str, body: dict):
    return client.patch(f"/v1/positions/{position_id}", body, content_type=J)


@pytest.mark.parametrize("position_id", ["AAPL", "paper-pos-AAPL"])
@pytest.mark.parametrize("profile_name", PROFILES)
def test_moving_exits_re_prices_the_resting_legs(client, account, settings, clock, profile_name, position_id):
    broker = use_profile(settings, profile_name)
    entry_id = fill_entry(client, account, broker, clock)["id"]
    old_stop = legs(entry_id)["stop_loss"][0].stop_price
    q = quote(client)
    new_stop, new_target = q["bid"] - 1, q["ask"] + 1
    assert new_stop > old_stop

    response = _patch(client, position_id, {"stop_loss": str(new_stop), "take_profit": str(new_target)})

    assert response.status_code == 200, response.content
    body = response.json()
    resting = legs(entry_id)
    [stop], [target] = resting["stop_loss"], resting["take_profit"]
    assert body["stop_loss"] == {"order_ids": [str(stop.id)], "trigger_price": str(new_stop)}
    assert body["take_profit"] == {"order_ids": [str(target.id)], "trigger_price": str(new_target)}
    assert (stop.stop_price, stop.status) == (new_stop, "OPEN")
    assert (target.limit_price, target.status) == (new_target, "OPEN")
    assert exit_leg(entry_id, "stop_loss").trigger_price == new_stop
    assert exit_leg(entry_id, "take_profit").trigger_price == new_target
    wire = client.get(f"/v1/orders/{stop.id}").json()
    assert D(wire["stop_price"]) == new_stop
    assert AuditEvent.objects.filter(action="position.move_exit", actor="keyless").count() == 2

    # the moved stop is the one that trades
    shock(broker, "-1", after=1)             # ~1.50 down: through the new stop, above the old one
    for _ in range(3):
        tick(account, broker, clock, 1)
    stop.refresh_from_db()
    assert stop.status == "FILLED" and position_quantity(account) == 0
    assert Fill.objects.get(order=stop).price > old_stop, "the old stop would not have traded yet"


def test_moving_only_the_stop_leaves_the_take_profit_alone(client, account, settings, clock):
    broker = use_profile(settings, "none")
    entry_id = fill_entry(client, account, broker, clock)["id"]
    target_before = legs(entry_id)["take_profit"][0].limit_price
    new_stop = quote(client)["bid"] - D("1.5")

    response = _patch(client, "AAPL", {"stop_loss": str(new_stop)})

    assert response.status_code == 200
    assert "take_profit" not in response.json() or response.json()["take_profit"] is None
    assert legs(entry_id)["stop_loss"][0].stop_price == new_stop
    assert legs(entry_id)["take_profit"][0].limit_price == target_before
    assert exit_leg(entry_id, "take_profit").trigger_price == target_before


def test_moving_exits_needs_a_price(client, account, settings, clock):
    broker = use_profile(settings, "none")
    fill_entry(client, account, broker, clock)
    response = _patch(client, "AAPL", {})
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


def test_a_position_without_legs_cannot_have_them_moved(client, account, settings, clock):
    broker = use_profile(settings, "none")
    submit(client)
    tick(account, broker, clock, 1)
    assert position_quantity(account) == 10
    response = _patch(client, "AAPL", {"stop_loss": str(quote(client)["bid"] - 1)})
    assert response.status_code == 409
    assert response.json()["code"] == "ORDER_NOT_MODIFIABLE"


def test_moving_exits_of_an_unknown_position_is_not_found(client, account, settings, clock):
    use_profile(settings, "none")
    response = _patch(client, "paper-pos-MSFT", {"stop_loss": "390"})
    assert response.status_code == 404
    assert response.json()["code"] == "POSITION_NOT_FOUND"


def test_the_bracket_of_an_entry_still_waiting_to_fill_is_not_moved_with_the_position(
        client, account, settings, clock):
    """Only legs protecting the open position move; a resting entry's held bracket keeps its own prices."""
    broker = use_profile(settings, "native_bracket")
    position_entry = fill_entry(client, account, broker, clock)["id"]
    limit = quote(client)["bid"] - D("3")
    waiting = submit(client, order_type="LIMIT", limit_price=limit, stop_loss=limit - 2, take_profit=limit + 2)["id"]
    new_stop = quote(client)["bid"] - 1

    response = _patch(client, "AAPL", {"stop_loss": str(new_stop)})

    assert response.status_code == 200
    assert response.json()["stop_loss"]["order_ids"] == [str(legs(position_entry)["stop_loss"][0].id)]
    [held] = legs(waiting)["stop_loss"]
    assert (held.status, held.stop_price) == ("PENDING", limit - 2)
    assert ExitLeg.objects.get(entry_id=waiting, role="stop_loss").trigger_price == limit - 2
    assert Order.objects.get(pk=waiting).status == "OPEN"
