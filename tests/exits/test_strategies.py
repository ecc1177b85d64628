"""How an entry's stop-loss and take-profit legs come to rest, for each way the venue can hold them
(placing-orders "Atomicity"; PROTOCOL §8.1-8.3): pending (separate orders once the entry fills),
native OCO (one linked pair once it fills) and native bracket (sent with the entry, held until it fills)."""

from __future__ import annotations

import pytest

from orders.models import ExitLeg, Fill, Order
from tests.exits.conftest import (
    PROFILES,
    STRATEGY_OF,
    D,
    exits_around,
    legs,
    position_quantity,
    quote,
    shock,
    submit,
    submit_bracket,
    tick,
    use_profile,
)

pytestmark = pytest.mark.django_db

LEG_SETS = {"sl_only": (True, False), "tp_only": (False, True), "both": (True, True)}


def _expected_strategy(profile: str, sl: bool, tp: bool) -> str:
    if profile == "native_oco" and not (sl and tp):
        return "pending"                      # a single leg has nothing to pair with
    return STRATEGY_OF[profile]


def _wire(client, order_id) -> dict:
    response = client.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("side", ["BUY", "SELL"])
@pytest.mark.parametrize("leg_set", list(LEG_SETS))
@pytest.mark.parametrize("profile_name", PROFILES)
def test_after_the_entry_fills_the_requested_legs_rest_on_the_opposite_side(
        client, account, settings, clock, profile_name, leg_set, side):
    broker = use_profile(settings, profile_name)
    sl, tp = LEG_SETS[leg_set]
    stop_loss, take_profit = exits_around(client, side)
    handle = submit(client, side=side, client_order_id="entry-7", stop_loss=stop_loss if sl else None,
                    take_profit=take_profit if tp else None)
    entry_id = handle["id"]
    strategy = _expected_strategy(profile_name, sl, tp)
    assert {leg.strategy for leg in ExitLeg.objects.filter(entry_id=entry_id)} == {strategy}

    held = legs(entry_id)
    if strategy == "native_bracket":
        # sent with the entry as one unit, held by the venue until the entry fills
        assert [o.status for o in held["stop_loss"] + held["take_profit"]] == ["PENDING"] * (sl + tp)
    else:
        assert held == {"stop_loss": [], "take_profit": []}, "nothing may rest before the entry fills"

    tick(account, broker, clock, 1)
    assert _wire(client, entry_id)["status"] == "FILLED"
    resting = legs(entry_id)
    opposite = "SELL" if side == "BUY" else "BUY"
    assert len(resting["stop_loss"]) == int(sl) and len(resting["take_profit"]) == int(tp)
    if sl:
        body = _wire(client, resting["stop_loss"][0].id)
        assert (body["order_type"], body["side"], D(body["stop_price"])) == ("STOP", opposite, stop_loss)
        assert body["client_order_id"] == "entry-7-sl"
    if tp:
        body = _wire(client, resting["take_profit"][0].id)
        assert (body["order_type"], body["side"], D(body["limit_price"])) == ("LIMIT", opposite, take_profit)
        assert body["client_order_id"] == "entry-7-tp"
    for order in resting["stop_loss"] + resting["take_profit"]:
        body = _wire(client, order.id)
        assert body["status"] == "OPEN"
        assert body["reduce_only"] is True
        assert body["parent_order_id"] == entry_id
        assert D(body["quantity"]) == D("10")
    assert set(ExitLeg.objects.filter(entry_id=entry_id).values_list("status", flat=True)) == {"PLACED"}

    venue_links = {o.venue_oco_id for o in resting["stop_loss"] + resting["take_profit"]}
    if strategy == "pending":
        assert venue_links == {None}, "pending legs are separate orders; the engine cancels the survivor"
    else:
        assert len(venue_links) == 1 and None not in venue_links, "the venue links the legs one-cancels-other"


@pytest.mark.parametrize("profile_name", PROFILES)
def test_a_leg_is_named_after_the_entry_id_when_the_entry_has_no_client_order_id(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = submit_bracket(client)["id"]
    tick(account, broker, clock, 1)
    resting = legs(entry_id)
    assert resting["stop_loss"][0].client_order_id == f"{entry_id}-sl"
    assert resting["take_profit"][0].client_order_id == f"{entry_id}-tp"


def _live_leg_quantity(orders: list[Order]) -> D:
    return sum((o.quantity for o in orders if o.status not in ("CANCELLED", "REJECTED", "EXPIRED")), D(0))


@pytest.mark.parametrize("side", ["BUY", "SELL"])
@pytest.mark.parametrize("profile_name", PROFILES)
def test_partial_entry_fills_size_the_legs_to_the_filled_quantity_and_grow_them_with_each_fill(
        client, account, settings, clock, profile_name, side):
    broker = use_profile(settings, profile_name)
    entry_id = submit_bracket(client, side=side, quantity="3000")["id"]   # more than the venue shows at once

    tick(account, broker, clock, 0)          # the entry's first second only: a partial fill
    entry = Order.objects.get(pk=entry_id)
    assert 0 < entry.filled_quantity < 3000
    sizes_seen = []
    while True:
        held = abs(position_quantity(account))
        assert held == entry.filled_quantity
        resting = legs(entry_id)
        for role in ("stop_loss", "take_profit"):
            covered = _live_leg_quantity(resting[role])
            assert covered == held, f"{role} covers {covered} of a {held} position"
        sizes_seen.append(held)
        if entry.status == "FILLED":
            break
        tick(account, broker, clock, 1)
        entry.refresh_from_db()
    assert len(sizes_seen) >= 2 and sizes_seen[-1] == D("3000")
    assert sizes_seen == sorted(sizes_seen)
    # grown in place: one order per leg, never a second one
    resting = legs(entry_id)
    assert len(resting["stop_loss"]) == 1 and len(resting["take_profit"]) == 1


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_cancelled_before_any_fill_cancels_its_legs(client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    limit = quote(client)["bid"] - D("3")                 # rests well below the market
    entry_id = submit(client, order_type="LIMIT", limit_price=limit, stop_loss=limit - 2,
                      take_profit=limit + 2)["id"]
    tick(account, broker, clock, 1)
    assert Order.objects.get(pk=entry_id).status == "OPEN"

    response = client.delete(f"/v1/orders/{entry_id}")
    assert response.status_code == 200

    for leg in ExitLeg.objects.filter(entry_id=entry_id):
        assert (leg.status, leg.end_reason) == ("CANCELLED", "primary_cancelled")
    held = legs(entry_id)
    assert all(o.status == "CANCELLED" for o in held["stop_loss"] + held["take_profit"])
    if profile_name == "native_bracket":
        assert len(held["stop_loss"]) == 1 and len(held["take_profit"]) == 1
    tick(account, broker, clock, 5)
    assert not Order.objects.filter(parent_id=entry_id).exclude(status="CANCELLED").exists()
    assert position_quantity(account) == 0


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_cancelled_after_a_partial_fill_keeps_legs_for_what_filled(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    ask = quote(client)["ask"]
    entry_id = submit(client, quantity="3000", order_type="LIMIT", limit_price=ask, stop_loss=ask - 2,
                      take_profit=ask + 2)["id"]
    tick(account, broker, clock, 0)
    entry = Order.objects.get(pk=entry_id)
    assert 0 < entry.filled_quantity < 3000

    assert client.delete(f"/v1/orders/{entry_id}").status_code == 200

    assert set(ExitLeg.objects.filter(entry_id=entry_id).values_list("status", flat=True)) == {"PLACED"}
    resting = legs(entry_id)
    for role in ("stop_loss", "take_profit"):
        assert _live_leg_quantity(resting[role]) == entry.filled_quantity == position_quantity(account)
        assert all(o.status == "OPEN" for o in resting[role])


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_the_venue_rejects_places_no_legs_and_stores_nothing(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    broker.faults.reject_next(1, kind="MARKET", reason="SYMBOL_NOT_TRADEABLE", message="venue says no")
    stop_loss, take_profit = exits_around(client, "BUY")
    response = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET",
                                          "stop_loss": str(stop_loss), "take_profit": str(take_profit)},
                           content_type="application/json")
    assert response.status_code == 422
    assert response.json()["details"]["reject_code"] == "SYMBOL_NOT_TRADEABLE"
    tick(account, broker, clock, 5)
    assert not ExitLeg.objects.exists()
    assert not Order.objects.exists()
    assert position_quantity(account) == 0


def test_a_native_bracket_with_an_off_tick_stop_loss_is_refused_whole(client, account, settings, clock):
    use_profile(settings, "native_bracket")
    stop_loss, take_profit = exits_around(client, "BUY")
    response = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET",
                                          "stop_loss": str(stop_loss - D("0.005")),
                                          "take_profit": str(take_profit)},
                           content_type="application/json")
    assert response.status_code == 422
    assert response.json()["details"]["field"] == "stop_loss"
    assert not Order.objects.exists() and not ExitLeg.objects.exists()


def test_a_native_bracket_whose_stop_leg_the_venue_refuses_is_refused_whole(client, account, settings, clock):
    broker = use_profile(settings, "native_bracket")
    broker.faults.reject_next(1, kind="STOP", reason="INVALID_PRICE", message="stop leg refused")
    stop_loss, take_profit = exits_around(client, "BUY")
    response = client.post("/v1/orders", {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET",
                                          "stop_loss": str(stop_loss), "take_profit": str(take_profit)},
                           content_type="application/json")
    assert response.status_code == 422
    assert not Order.objects.exists() and not ExitLeg.objects.exists()
    tick(account, broker, clock, 2)
    assert position_quantity(account) == 0


def test_native_bracket_legs_only_trade_from_the_entry_fill_on(client, account, settings, clock):
    """A held leg is not live while the venue holds it: once the entry fills, the leg must not be matched
    against the prices of the seconds before the fill (when no position existed)."""
    broker = use_profile(settings, "native_bracket")
    limit = quote(client)["bid"] - D("3")
    # the take-profit sits between the entry limit and today's market: the market was above it all along
    entry_id = submit(client, order_type="LIMIT", limit_price=limit, stop_loss=limit - 2,
                      take_profit=limit + D("0.5"))["id"]
    tick(account, broker, clock, 1)
    shock(broker, "-3", after=30)             # the market falls onto the entry's limit half a minute later
    tick(account, broker, clock, 60)
    entry = Order.objects.get(pk=entry_id)
    assert entry.status == "FILLED"
    tick(account, broker, clock, 1)
    tick(account, broker, clock, 1)
    entry_fill = Fill.objects.get(order_id=entry_id)
    for fill in Fill.objects.filter(order__parent_id=entry_id):
        assert fill.timestamp >= entry_fill.timestamp, "an exit leg traded before its entry filled"
    assert position_quantity(account) == D("10"), "after the fall the take-profit is out of reach"
    assert {o.status for o in Order.objects.filter(parent_id=entry_id)} == {"OPEN"}


def _working_cover(account, side: str) -> D:
    """How much the working exit-leg orders on ``side`` would trade if they all went off."""
    return sum((o.quantity - o.filled_quantity for o in Order.objects.filter(
        account=account, symbol="AAPL", exit_leg__isnull=False, side=side, status__in=("OPEN", "PARTIALLY_FILLED"))),
        D(0))


@pytest.mark.parametrize("profile_name", PROFILES)
def test_a_partial_close_shrinks_the_legs_to_what_is_still_held(client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    entry_id = submit_bracket(client)["id"]
    tick(account, broker, clock, 1)

    response = client.delete("/v1/positions/AAPL", {"quantity": "4"}, content_type="application/json")

    assert response.status_code == 200
    assert position_quantity(account) == 6
    resting = legs(entry_id)
    for role in ("stop_loss", "take_profit"):
        assert _live_leg_quantity(resting[role]) == 6, f"the {role} would sell more than is held"
    assert set(ExitLeg.objects.filter(entry_id=entry_id).values_list("status", flat=True)) == {"PLACED"}


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_that_flips_the_position_retires_the_legs_of_the_old_one(client, account, settings, clock,
                                                                          profile_name):
    broker = use_profile(settings, profile_name)
    long_entry = submit_bracket(client, client_order_id="long-1")["id"]
    tick(account, broker, clock, 1)
    short_entry = submit_bracket(client, side="SELL", quantity="20", client_order_id="flip-1")["id"]
    tick(account, broker, clock, 1)
    assert position_quantity(account) == -10

    for leg in ExitLeg.objects.filter(entry_id=long_entry):
        assert (leg.status, leg.end_reason) == ("CANCELLED", "position_closed")
    assert _working_cover(account, "SELL") == 0, "a SELL stop left over from the long would add to the short"
    resting = legs(short_entry)
    for role in ("stop_loss", "take_profit"):
        assert [(o.side, o.quantity, o.status) for o in resting[role]] == [("BUY", D(10), "OPEN")]


@pytest.mark.parametrize("profile_name", PROFILES)
def test_an_entry_with_exits_that_only_reduces_a_position_gets_no_legs_that_would_grow_it(
        client, account, settings, clock, profile_name):
    broker = use_profile(settings, profile_name)
    submit_bracket(client, quantity="10", client_order_id="long-1")
    tick(account, broker, clock, 1)
    reducing = submit_bracket(client, side="SELL", quantity="4", client_order_id="trim-1")["id"]
    tick(account, broker, clock, 1)
    assert position_quantity(account) == 6

    assert _working_cover(account, "BUY") == 0, "a BUY leg of the trim would add to the long"
    assert {leg.status for leg in ExitLeg.objects.filter(entry_id=reducing)} == {"CANCELLED"}
    assert _working_cover(account, "SELL") <= 6 * 2, "the long's own stop and take-profit, sized to 6"
    long_legs = legs(Order.objects.get(client_order_id="long-1").id)
    for role in ("stop_loss", "take_profit"):
        assert _live_leg_quantity(long_legs[role]) == 6
