"""The kill switch and trading states: a halt cancels every working entry but never strips an open
position of its stop (unless asked to flatten), lists what it did, refuses new risk and is audited."""

from __future__ import annotations

import pytest

from orders.models import Account, AuditEvent, ExitLeg, Order
from tests.exits.conftest import (
    PROFILES,
    D,
    J,
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


def _book(client, account, broker, clock) -> dict:
    """A protected long, a resting entry with exits and a plain resting limit order."""
    protected = fill_entry(client, account, broker, clock, client_order_id="pos-1")["id"]
    limit = quote(client)["bid"] - D("3")
    resting_entry = submit(client, order_type="LIMIT", limit_price=limit, stop_loss=limit - 2,
                           take_profit=limit + 2, client_order_id="rest-1")["id"]
    plain = submit(client, side="SELL", quantity="5", order_type="LIMIT", limit_price=quote(client)["ask"] + 3,
                   client_order_id="plain-1")["id"]
    return {"protected": protected, "resting_entry": resting_entry, "plain": plain}


def _working_ids() -> set[str]:
    return {str(pk) for pk in Order.objects.filter(status__in=("PENDING", "OPEN", "PARTIALLY_FILLED"))
            .values_list("id", flat=True)}


@pytest.mark.parametrize("profile_name", PROFILES)
def test_the_kill_switch_halts_cancels_entries_and_keeps_the_stops_of_open_positions(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    book = _book(client, account, broker, clock)
    protective = legs(book["protected"])
    protective_ids = {str(o.id) for o in protective["stop_loss"] + protective["take_profit"]}
    held_ids = {str(o.id) for role in legs(book["resting_entry"]).values() for o in role}

    response = client.post("/v1/kill-switch", {}, content_type=J)

    assert response.status_code == 200
    receipt = response.json()
    assert receipt["trading_state"] == "HALTED"
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    assert set(receipt["kept_order_ids"]) == protective_ids
    assert set(receipt["cancelled_order_ids"]) == {book["resting_entry"], book["plain"], *held_ids}
    assert receipt["cancelled_count"] == len(receipt["cancelled_order_ids"])
    assert receipt["closing_order_ids"] == [] and receipt["failures"] == []
    assert _working_ids() == protective_ids, "only the open position's legs still work"
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=book["protected"])} == {"PLACED"}
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=book["resting_entry"])} == {"CANCELLED"}
    assert position_quantity(account) == 10

    # the kept stop still protects: the market falls through it during the halt
    shock(broker, "-5", after=1)
    tick(account, broker, clock, 3)
    assert position_quantity(account) == 0


def test_the_kill_switch_with_flatten_cancels_everything_and_closes_positions(client, account, settings, clock):
    broker = use_profile(settings, "none")
    book = _book(client, account, broker, clock)
    working_before = _working_ids()

    response = client.post("/v1/kill-switch", {"flatten": True}, content_type=J)

    assert response.status_code == 200
    receipt = response.json()
    assert receipt["kept_order_ids"] == []
    assert set(receipt["cancelled_order_ids"]) == working_before
    [closing_id] = receipt["closing_order_ids"]
    closing = Order.objects.get(pk=closing_id)
    assert (closing.side, closing.quantity, closing.reduce_only) == ("SELL", D(10), True)
    tick(account, broker, clock, 1)
    assert client.get("/v1/positions").json() == []
    assert _working_ids() == set()
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=book["protected"])} == {"CANCELLED"}


def test_after_the_kill_switch_new_orders_are_refused_as_trading_halted(client, account, settings, clock):
    broker = use_profile(settings, "none")
    fill_entry(client, account, broker, clock)
    client.post("/v1/kill-switch", {}, content_type=J)

    for side in ("BUY", "SELL"):
        response = client.post("/v1/orders", {"symbol": "AAPL", "side": side, "quantity": "1",
                                              "order_type": "MARKET"}, content_type=J)
        assert response.status_code == 422
        assert response.json()["details"]["reject_code"] == "TRADING_HALTED"
    # getting out still works: a halt never blocks closing a position
    assert client.delete("/v1/positions/AAPL").status_code == 200
    assert position_quantity(account) == 0


def test_reducing_allows_orders_that_shrink_the_position_and_refuses_the_rest(client, account, settings, clock):
    broker = use_profile(settings, "none")
    fill_entry(client, account, broker, clock)
    response = client.put("/v1/trading-state", {"state": "REDUCING", "reason": "risk review"}, content_type=J)
    assert response.status_code == 200 and response.json()["trading_state"] == "REDUCING"

    more = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"},
                       content_type=J)
    assert more.status_code == 422 and more.json()["details"]["reject_code"] == "TRADING_REDUCING"
    flip = client.post("/v1/orders", {"symbol": "AAPL", "side": "SELL", "quantity": "15", "order_type": "MARKET"},
                       content_type=J)
    assert flip.status_code == 422, "selling past flat opens a short: that is new exposure"
    less = client.post("/v1/orders", {"symbol": "AAPL", "side": "SELL", "quantity": "4", "order_type": "MARKET"},
                       content_type=J)
    assert less.status_code == 201
    tick(account, broker, clock, 1)
    assert position_quantity(account) == 6

    back = client.put("/v1/trading-state", {"state": "ACTIVE"}, content_type=J)
    assert back.status_code == 200
    again = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET"},
                        content_type=J)
    assert again.status_code == 201
    changes = [(a.actor, a.details["previous"], a.details["state"], a.details["reason"])
               for a in AuditEvent.objects.filter(action="account.trading_state").order_by("at", "id")]
    assert changes == [("keyless", "ACTIVE", "REDUCING", "risk review"), ("keyless", "REDUCING", "ACTIVE", "")]


def test_every_kill_switch_action_is_audited(client, account, settings, clock):
    broker = use_profile(settings, "none")
    book = _book(client, account, broker, clock)
    receipt = client.post("/v1/kill-switch", {"flatten": True}, content_type=J).json()

    audit = AuditEvent.objects.filter(account=account)
    state = audit.get(action="account.trading_state")
    assert (state.actor, state.details["state"], state.details["previous"]) == ("keyless", "HALTED", "ACTIVE")
    switch = audit.get(action="account.kill_switch")
    assert switch.actor == "keyless" and switch.details["flatten"] is True
    assert switch.details["cancelled"] == len(receipt["cancelled_order_ids"])
    assert switch.details["closing"] == 1 and switch.result == "ok"
    cancels = {a.target for a in audit.filter(action="order.cancel", actor="keyless")}
    assert {book["resting_entry"], book["plain"]} <= cancels
    closes = audit.filter(action="order.submit", actor="keyless", target__in=receipt["closing_order_ids"])
    assert closes.count() == 1
    assert all(a.at is not None for a in audit)
