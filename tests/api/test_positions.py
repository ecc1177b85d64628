"""/v1/positions: one netted position per symbol, looked up by ``paper-pos-<SYMBOL>`` or the bare symbol,
closed whole or in part with a reduce-only order, and its stop-loss / take-profit legs moved."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from tests.api.support import J, assert_error, get_order, quote, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db

POSITION_DECIMALS = ("quantity", "average_entry_price", "current_price", "unrealized_pnl", "realized_pnl")


def hold(client, account, broker, clock, *, side: str = "BUY", quantity: str = "10", symbol: str = "AAPL",
         **fields) -> dict:
    """Trade into a position and return the filled order."""
    handle = submit(client, side=side, quantity=quantity, symbol=symbol, **fields).json()
    run_engine(account, broker, seconds=1, clock=clock)
    order = get_order(client, handle["id"])
    assert order["status"] == "FILLED"
    return order


def positions(client, query: str = "") -> list[dict]:
    response = client.get(f"/v1/positions{query}")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_filled_buy_shows_as_one_long_position(client, account, broker, clock):
    order = hold(client, account, broker, clock)
    [position] = positions(client)
    assert position["id"] == "paper-pos-AAPL"
    assert (position["symbol"], position["side"], position["quantity"]) == ("AAPL", "LONG", "10")
    assert position["average_entry_price"] == order["average_fill_price"]
    assert Decimal(position["current_price"]) == quote(client)["last"]
    expected_pnl = (Decimal(position["current_price"]) - Decimal(position["average_entry_price"])) * 10
    assert Decimal(position["unrealized_pnl"]) == expected_pnl
    assert position["realized_pnl"] == "0"
    for name in POSITION_DECIMALS:
        assert isinstance(position[name], str), name
    for name in ("opened_at", "updated_at"):
        assert position[name].endswith("Z")
        datetime.fromisoformat(position[name])


def test_a_sell_from_flat_shows_as_a_short_with_a_positive_quantity(client, account, broker, clock):
    hold(client, account, broker, clock, side="SELL", quantity="5")
    [position] = positions(client)
    assert (position["side"], position["quantity"]) == ("SHORT", "5")


def test_buys_in_one_symbol_net_into_one_position_at_the_average_price(client, account, broker, clock):
    first = hold(client, account, broker, clock, quantity="10")
    clock.shift(120)
    second = hold(client, account, broker, clock, quantity="30")
    [position] = positions(client)
    assert position["quantity"] == "40"
    expected = (Decimal(first["average_fill_price"]) * 10 + Decimal(second["average_fill_price"]) * 30) / 40
    assert Decimal(position["average_entry_price"]) == expected


def test_the_list_filters_by_symbol(client, account, broker, clock):
    hold(client, account, broker, clock)
    hold(client, account, broker, clock, symbol="MSFT", quantity="1")
    assert [p["symbol"] for p in positions(client)] == ["AAPL", "MSFT"]
    assert [p["id"] for p in positions(client, "?symbol=MSFT")] == ["paper-pos-MSFT"]
    assert positions(client, "?symbol=TSLA") == []


def test_an_account_without_trades_has_no_positions(client, account):
    assert positions(client) == []


def test_a_position_is_found_by_its_id_or_its_bare_symbol(client, account, broker, clock):
    hold(client, account, broker, clock)
    by_id = client.get("/v1/positions/paper-pos-AAPL")
    by_symbol = client.get("/v1/positions/AAPL")
    assert by_id.status_code == by_symbol.status_code == 200
    assert by_id.json() == by_symbol.json()
    assert by_id.json()["id"] == "paper-pos-AAPL"


def test_an_unknown_position_is_404_position_not_found(client, account):
    body = assert_error(client.get("/v1/positions/paper-pos-TSLA"), 404, "POSITION_NOT_FOUND")
    assert body["details"] == {"resource": "position", "id": "paper-pos-TSLA"}


@pytest.mark.parametrize("body", [None, "{}", "null"], ids=["no-body", "empty-object", "null"])
def test_closing_a_position_fills_a_reduce_only_order_at_once(client, account, broker, clock, body):
    hold(client, account, broker, clock)
    if body is None:
        response = client.delete("/v1/positions/paper-pos-AAPL")
    else:
        response = client.delete("/v1/positions/paper-pos-AAPL", body, content_type=J)
    assert response.status_code == 200, response.content
    handle = response.json()
    assert handle["status"] == "FILLED"
    close = get_order(client, handle["id"])
    assert (close["side"], close["quantity"], close["reduce_only"]) == ("SELL", "10", True)
    assert positions(client) == []
    assert_error(client.get("/v1/positions/paper-pos-AAPL"), 404, "POSITION_NOT_FOUND")


def test_closing_part_of_a_position_leaves_the_rest_and_realises_pnl(client, account, broker, clock):
    order = hold(client, account, broker, clock)
    clock.shift(60)
    response = client.delete("/v1/positions/AAPL", {"quantity": "4"}, content_type=J)
    assert response.status_code == 200, response.content
    close = get_order(client, response.json()["id"])
    assert close["filled_quantity"] == "4"
    [position] = positions(client)
    assert position["quantity"] == "6"
    realised = (Decimal(close["average_fill_price"]) - Decimal(order["average_fill_price"])) * 4
    assert Decimal(position["realized_pnl"]) == realised


def test_closing_a_short_buys_it_back(client, account, broker, clock):
    hold(client, account, broker, clock, side="SELL", quantity="5")
    handle = client.delete("/v1/positions/paper-pos-AAPL").json()
    assert get_order(client, handle["id"])["side"] == "BUY"
    assert positions(client) == []


def test_closing_more_than_is_held_closes_only_what_is_held(client, account, broker, clock):
    hold(client, account, broker, clock)
    handle = client.delete("/v1/positions/AAPL", {"quantity": "25"}, content_type=J).json()
    assert get_order(client, handle["id"])["quantity"] == "10"
    assert positions(client) == []


@pytest.mark.parametrize("quantity", ["0", "-3"])
def test_closing_a_quantity_that_is_not_positive_is_refused(client, account, broker, clock, quantity):
    hold(client, account, broker, clock)
    body = assert_error(client.delete("/v1/positions/AAPL", {"quantity": quantity}, content_type=J), 400,
                        "INVALID_VALUE")
    assert body["details"]["field"] == "quantity"
    assert positions(client)[0]["quantity"] == "10"


def test_closing_an_unknown_position_is_404(client, account):
    assert_error(client.delete("/v1/positions/paper-pos-AAPL", "{}", content_type=J), 404, "POSITION_NOT_FOUND")


def test_closing_all_positions_answers_one_handle_per_position(client, account, broker, clock):
    hold(client, account, broker, clock)
    hold(client, account, broker, clock, symbol="MSFT", quantity="2")
    response = client.delete("/v1/positions")
    assert response.status_code == 200, response.content
    handles = response.json()
    assert len(handles) == 2
    assert {h["status"] for h in handles} == {"FILLED"}
    assert positions(client) == []


def test_closing_all_with_nothing_open_answers_an_empty_list(client, account):
    response = client.delete("/v1/positions")
    assert response.status_code == 200
    assert response.json() == []


def test_closing_all_can_be_limited_to_one_symbol(client, account, broker, clock):
    hold(client, account, broker, clock)
    hold(client, account, broker, clock, symbol="MSFT", quantity="2")
    assert len(client.delete("/v1/positions?symbol=MSFT").json()) == 1
    assert [p["symbol"] for p in positions(client)] == ["AAPL"]


# -- moving the exit legs --------------------------------------------------------------------------------------

def bracketed_position(client, account, broker, clock) -> dict:
    q = quote(client)
    entry = submit(client, stop_loss=str(q["ask"] - 5), take_profit=str(q["ask"] + 5)).json()
    run_engine(account, broker, seconds=1, clock=clock)
    return entry


def leg_of(client, entry_id: str, suffix: str) -> dict:
    [leg] = client.get(f"/v1/orders?client_order_id={entry_id}-{suffix}").json()
    return leg


def test_moving_the_stop_loss_reprices_the_resting_leg(client, account, broker, clock):
    entry = bracketed_position(client, account, broker, clock)
    new_stop = quote(client)["bid"] - 3
    response = client.patch("/v1/positions/paper-pos-AAPL", {"stop_loss": str(new_stop)}, content_type=J)
    assert response.status_code == 200, response.content
    body = response.json()
    sl = leg_of(client, entry["id"], "sl")
    assert body["position_id"] == "paper-pos-AAPL"
    assert body["stop_loss"]["order_ids"] == [sl["id"]]
    assert isinstance(body["stop_loss"]["trigger_price"], str)
    assert Decimal(body["stop_loss"]["trigger_price"]) == new_stop
    assert "take_profit" not in body
    assert Decimal(sl["stop_price"]) == new_stop


def test_moving_both_legs_reprices_both(client, account, broker, clock):
    entry = bracketed_position(client, account, broker, clock)
    q = quote(client)
    response = client.patch("/v1/positions/AAPL", {"stop_loss": str(q["bid"] - 2), "take_profit":
                                                   str(q["ask"] + 2)}, content_type=J)
    assert response.status_code == 200, response.content
    assert Decimal(leg_of(client, entry["id"], "tp")["limit_price"]) == q["ask"] + 2
    assert Decimal(leg_of(client, entry["id"], "sl")["stop_price"]) == q["bid"] - 2


def test_moving_exits_needs_at_least_one_leg(client, account, broker, clock):
    bracketed_position(client, account, broker, clock)
    body = assert_error(client.patch("/v1/positions/paper-pos-AAPL", {}, content_type=J), 400, "VALIDATION_ERROR")
    assert "__all__" in body["details"]


def test_moving_exits_of_a_position_without_legs_is_409(client, account, broker, clock):
    hold(client, account, broker, clock)
    body = assert_error(client.patch("/v1/positions/paper-pos-AAPL", {"take_profit": "160"}, content_type=J), 409,
                        "ORDER_NOT_MODIFIABLE")
    assert body["details"] == {"order_id": "paper-pos-AAPL"}


def test_moving_exits_of_an_unknown_position_is_404(client, account):
    assert_error(client.patch("/v1/positions/paper-pos-AAPL", {"take_profit": "160"}, content_type=J), 404,
                 "POSITION_NOT_FOUND")
