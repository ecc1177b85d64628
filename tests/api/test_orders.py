"""/v1/orders as a client sees it: submit, list and filter, history, get, modify, cancel one, cancel all."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import pytest

from orders.models import Order
from orders.services.limits import limits_set
from tests.api.support import J, assert_error, get_order, leaves, quote, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db

DECIMAL_FIELDS = {"quantity", "filled_quantity", "remaining_quantity", "limit_price", "stop_price", "stop_loss",
                  "take_profit", "trailing_distance", "average_fill_price", "display_quantity"}


def resting_limit(client, *, side: str = "BUY", quantity: str = "10", symbol: str = "AAPL", **fields):
    """A limit order far enough from the market that it rests."""
    q = quote(client, symbol)
    price = q["bid"] - 5 if side == "BUY" else q["ask"] + 5
    return submit(client, symbol=symbol, side=side, quantity=quantity, order_type="LIMIT", limit_price=str(price),
                  **fields).json()


def filled_market(client, account, broker, clock, **fields) -> dict:
    handle = submit(client, **fields).json()
    run_engine(account, broker, seconds=1, clock=clock)
    order = get_order(client, handle["id"])
    assert order["status"] == "FILLED"
    return order


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [o["id"] for o in response.json()]


# -- submit ------------------------------------------------------------------------------------------------

def test_it_accepts_a_market_order_with_201_and_an_open_handle(client, account, clock):
    response = submit(client)
    body = response.json()
    assert set(body) == {"id", "status", "correlation_id"}
    assert body["status"] == "OPEN"
    uuid.UUID(body["correlation_id"])
    assert Order.objects.filter(pk=body["id"], status="OPEN").exists()


def test_the_handle_echoes_the_client_order_id(client, account, clock):
    body = submit(client, client_order_id="strategy-7-entry-1").json()
    assert body["client_order_id"] == "strategy-7-entry-1"


def _limit(q):
    return {"order_type": "LIMIT", "limit_price": str(q["ask"])}


def _stop(q):
    return {"order_type": "STOP", "stop_price": str(q["ask"])}


def _stop_limit(q):
    return {"order_type": "STOP_LIMIT", "stop_price": str(q["ask"]), "limit_price": str(q["ask"] + Decimal("0.10"))}


def _trailing_absolute(q):
    return {"order_type": "TRAILING_STOP", "trailing_distance": "0.05", "trailing_type": "ABSOLUTE"}


def _trailing_percent(q):
    return {"order_type": "TRAILING_STOP", "trailing_distance": "0.03", "trailing_type": "PERCENT"}


@pytest.mark.parametrize("fields_at", [lambda q: {"order_type": "MARKET"}, _limit, _stop, _stop_limit,
                                       _trailing_absolute, _trailing_percent],
                         ids=["market", "limit", "stop", "stop_limit", "trailing_absolute", "trailing_percent"])
def test_every_order_type_is_accepted_and_fills_once_the_market_reaches_it(client, account, broker, clock,
                                                                           fields_at):
    handle = submit(client, quantity="5", **fields_at(quote(client))).json()
    assert handle["status"] == "OPEN"
    for _ in range(10):
        run_engine(account, broker, seconds=15, clock=clock)
        if get_order(client, handle["id"])["status"] == "FILLED":
            break
    order = get_order(client, handle["id"])
    assert order["status"] == "FILLED"
    assert order["filled_quantity"] == "5"
    assert order["remaining_quantity"] == "0"
    assert Decimal(order["average_fill_price"]) > 0


def test_a_limit_order_away_from_the_market_keeps_resting(client, account, broker, clock):
    handle = resting_limit(client)
    run_engine(account, broker, seconds=60, clock=clock)
    order = get_order(client, handle["id"])
    assert order["status"] == "OPEN"
    assert order["filled_quantity"] == "0"
    assert order["remaining_quantity"] == "10"


def test_decimals_are_json_strings_in_plain_notation(client, account, broker, clock):
    q = quote(client)
    filled = filled_market(client, account, broker, clock, quantity="10.000")
    resting = submit(client, order_type="LIMIT", limit_price="140.50").json()
    bracket = submit(client, stop_loss=str(q["bid"] - 5), take_profit=str(q["ask"] + 5)).json()
    for order in client.get("/v1/orders").json():
        present = DECIMAL_FIELDS & set(order)
        assert {"quantity", "filled_quantity", "remaining_quantity"} <= present
        for name in present:
            assert isinstance(order[name], str), (name, order[name])
            assert "E" not in order[name].upper(), order[name]
            Decimal(order[name])
    assert get_order(client, resting["id"])["limit_price"] == "140.5"
    assert get_order(client, filled["id"])["quantity"] == "10"
    assert isinstance(get_order(client, bracket["id"])["stop_loss"], str)


def test_timestamps_are_rfc3339_utc_with_a_z_suffix(client, account, broker, clock):
    order = filled_market(client, account, broker, clock)
    for name in ("created_at", "updated_at"):
        assert order[name].endswith("Z"), order[name]
        parsed = datetime.fromisoformat(order[name])
        assert parsed.utcoffset().total_seconds() == 0
    assert order["created_at"].startswith("2026-03-02T15:00:00")


def test_absent_optional_fields_are_omitted_rather_than_null(client, account, clock):
    handle = submit(client).json()
    order = get_order(client, handle["id"])
    for name in ("client_order_id", "limit_price", "stop_price", "stop_loss", "take_profit", "trailing_distance",
                 "trailing_type", "average_fill_price", "reject_reason", "parent_order_id", "display_quantity",
                 "oco_group_id", "position_id"):
        assert name not in order, name
    assert [path for path, value in leaves(order) if value is None] == []
    assert [path for path, value in leaves(client.get("/v1/orders").json()) if value is None] == []


def test_lowercase_enums_are_accepted_and_come_back_canonical(client, account, clock):
    q = quote(client)
    handle = submit(client, side="sell", order_type="limit", time_in_force="day", quantity="1",
                    limit_price=str(q["ask"] + 5)).json()
    order = get_order(client, handle["id"])
    assert (order["side"], order["order_type"], order["time_in_force"]) == ("SELL", "LIMIT", "DAY")
    trailing = submit(client, order_type="trailing_stop", trailing_distance="1", trailing_type="percent").json()
    assert get_order(client, trailing["id"])["trailing_type"] == "PERCENT"


@pytest.mark.parametrize("field, value", [("side", "Buy"), ("order_type", "Market"), ("time_in_force", "Gtc"),
                                          ("trailing_type", "Percent")])
def test_mixed_case_enums_are_refused_with_400(client, account, clock, field, value):
    fields = {field: value}
    if field == "trailing_type":
        fields.update(order_type="TRAILING_STOP", trailing_distance="1")
    body = assert_error(submit(client, expect=None, **fields), 400, "INVALID_REQUEST")
    assert body["details"]["field"] == field
    assert Order.objects.count() == 0


# -- list, filters, history, get --------------------------------------------------------------------------

def test_the_list_holds_orders_in_every_status_newest_first(client, account, broker, clock):
    first = filled_market(client, account, broker, clock)
    clock.shift(5)
    second = resting_limit(client)
    clock.shift(5)
    third = resting_limit(client)
    client.delete(f"/v1/orders/{third['id']}")
    listed = client.get("/v1/orders").json()
    assert [o["id"] for o in listed] == [third["id"], second["id"], first["id"]]
    assert [o["status"] for o in listed] == ["CANCELLED", "OPEN", "FILLED"]


def test_the_list_filters_by_symbol(client, account, clock):
    aapl = resting_limit(client)
    msft = resting_limit(client, symbol="MSFT", quantity="1")
    assert ids(client.get("/v1/orders?symbol=MSFT")) == [msft["id"]]
    assert ids(client.get("/v1/orders?symbol=AAPL")) == [aapl["id"]]
    assert ids(client.get("/v1/orders?symbol=TSLA")) == []


def test_the_list_filters_by_side(client, account, clock):
    buy = resting_limit(client)
    sell = resting_limit(client, side="SELL", quantity="1")
    assert ids(client.get("/v1/orders?side=SELL")) == [sell["id"]]
    assert ids(client.get("/v1/orders?side=BUY")) == [buy["id"]]


def test_the_list_filters_by_status_repeated_or_comma_separated_alike(client, account, broker, clock):
    filled = filled_market(client, account, broker, clock)
    resting = resting_limit(client)
    cancelled = resting_limit(client)
    client.delete(f"/v1/orders/{cancelled['id']}")
    comma = ids(client.get("/v1/orders?status=OPEN,CANCELLED"))
    repeated = ids(client.get("/v1/orders?status=OPEN&status=CANCELLED"))
    assert comma == repeated
    assert set(comma) == {resting["id"], cancelled["id"]}
    assert ids(client.get("/v1/orders?status=FILLED")) == [filled["id"]]
    assert ids(client.get("/v1/orders?status=")) == ids(client.get("/v1/orders"))


def test_a_lowercase_status_filter_is_refused_with_400(client, account, clock):
    resting_limit(client)
    response = client.get("/v1/orders?status=open")
    assert response.status_code == 400
    assert response.json()["code"] in {"INVALID_REQUEST", "INVALID_VALUE"}


def test_the_list_filters_by_client_order_id(client, account, clock):
    resting_limit(client, client_order_id="a-1")
    wanted = resting_limit(client, client_order_id="a-2")
    assert ids(client.get("/v1/orders?client_order_id=a-2")) == [wanted["id"]]
    assert ids(client.get("/v1/orders?client_order_id=a-3")) == []


def test_the_list_filters_by_oco_group_id(client, account, clock):
    resting_limit(client)
    in_group = resting_limit(client, oco_group_id="grp-1")
    assert ids(client.get("/v1/orders?oco_group_id=grp-1")) == [in_group["id"]]


def test_the_list_filters_by_since_inclusive_and_until_exclusive(client, account, clock):
    early = resting_limit(client)
    clock.shift(10)
    middle = resting_limit(client)
    clock.shift(10)
    late = resting_limit(client)
    assert ids(client.get("/v1/orders?since=2026-03-02T15:00:10Z")) == [late["id"], middle["id"]]
    assert ids(client.get("/v1/orders?until=2026-03-02T15:00:20Z")) == [middle["id"], early["id"]]
    assert ids(client.get("/v1/orders?since=2026-03-02T15:00:10%2B00:00&until=2026-03-02T15:00:20Z")) == [
        middle["id"]]


def test_the_list_limit_keeps_the_newest(client, account, clock):
    resting_limit(client)
    clock.shift(1)
    second = resting_limit(client)
    clock.shift(1)
    third = resting_limit(client)
    assert ids(client.get("/v1/orders?limit=2")) == [third["id"], second["id"]]


def test_history_holds_only_finished_orders_most_recently_finished_first(client, account, broker, clock):
    cancelled = resting_limit(client)
    resting = resting_limit(client)
    filled = filled_market(client, account, broker, clock)
    clock.shift(5)
    client.delete(f"/v1/orders/{cancelled['id']}")
    history = client.get("/v1/orders/history").json()
    assert [o["id"] for o in history] == [cancelled["id"], filled["id"]]
    assert resting["id"] not in {o["id"] for o in history}
    assert {o["status"] for o in history} <= {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


def test_get_by_id_returns_the_full_order(client, account, clock):
    handle = submit(client, client_order_id="by-id").json()
    order = get_order(client, handle["id"])
    assert order["id"] == handle["id"]
    assert order["client_order_id"] == "by-id"
    assert (order["symbol"], order["side"], order["order_type"], order["quantity"]) == ("AAPL", "BUY", "MARKET",
                                                                                         "10")
    assert order["time_in_force"] == "GTC"
    assert order["correlation_id"] == handle["correlation_id"]


@pytest.mark.parametrize("unknown", ["00000000-0000-0000-0000-000000000000", "not-an-order-id"])
def test_an_unknown_order_id_is_404_order_not_found_naming_the_resource(client, account, unknown):
    body = assert_error(client.get(f"/v1/orders/{unknown}"), 404, "ORDER_NOT_FOUND")
    assert body["details"] == {"resource": "order", "id": unknown}


# -- modify -------------------------------------------------------------------------------------------------

def test_patch_moves_the_limit_price_of_a_resting_order(client, account, clock):
    handle = resting_limit(client)
    new_price = quote(client)["bid"] - 4
    response = client.patch(f"/v1/orders/{handle['id']}", {"limit_price": str(new_price)}, content_type=J)
    assert response.status_code == 200, response.content
    assert Decimal(response.json()["order"]["limit_price"]) == new_price
    assert "previous_order_id" not in response.json()
    assert Decimal(get_order(client, handle["id"])["limit_price"]) == new_price


def test_patch_changes_the_quantity_of_a_resting_order(client, account, clock):
    handle = resting_limit(client)
    response = client.patch(f"/v1/orders/{handle['id']}", {"quantity": "4"}, content_type=J)
    assert response.status_code == 200, response.content
    assert response.json()["order"]["quantity"] == "4"
    assert response.json()["order"]["remaining_quantity"] == "4"
    assert get_order(client, handle["id"])["quantity"] == "4"


def test_patch_cannot_grow_an_order_past_the_accounts_hard_quantity_limit(client, account, clock):
    limits_set(account_id=account.pk, actor="rita", max_quantity_hard=Decimal("20"))
    handle = resting_limit(client)
    response = client.patch(f"/v1/orders/{handle['id']}", {"quantity": "50"}, content_type=J)
    body = assert_error(response, 422, "ORDER_REJECTED")
    assert "pre-trade limit" in body["message"]
    assert get_order(client, handle["id"])["quantity"] == "10"
    assert client.patch(f"/v1/orders/{handle['id']}", {"quantity": "15"}, content_type=J).status_code == 200


def test_patch_cannot_grow_an_order_past_the_approval_notional_without_a_second_person(client, account, clock):
    handle = resting_limit(client)                        # 10 a little under the market: about 1,450
    limits_set(account_id=account.pk, actor="rita", approval_notional_above=Decimal("5000"))
    response = client.patch(f"/v1/orders/{handle['id']}", {"quantity": "100"}, content_type=J)
    body = assert_error(response, 422, "ORDER_REJECTED")
    assert body["details"]["reject_code"] == "APPROVAL_REQUIRED"
    assert get_order(client, handle["id"])["quantity"] == "10"
    smaller = client.patch(f"/v1/orders/{handle['id']}", {"quantity": "5"}, content_type=J)
    assert smaller.status_code == 200, smaller.content             # making it smaller never waits


def test_patch_on_a_filled_order_is_409_order_not_modifiable(client, account, broker, clock):
    order = filled_market(client, account, broker, clock)
    response = client.patch(f"/v1/orders/{order['id']}", {"quantity": "20"}, content_type=J)
    body = assert_error(response, 409, "ORDER_NOT_MODIFIABLE")
    assert body["details"] == {"order_id": order["id"]}
    assert get_order(client, order["id"])["quantity"] == "10"


def test_patch_with_an_empty_object_is_400(client, account, clock):
    handle = resting_limit(client)
    assert_error(client.patch(f"/v1/orders/{handle['id']}", {}, content_type=J), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("raw", ["{not json", "", '{"limit_price": "cheap"}'])
def test_patch_with_a_malformed_body_is_400(client, account, clock, raw):
    handle = resting_limit(client)
    before = get_order(client, handle["id"])
    assert_error(client.patch(f"/v1/orders/{handle['id']}", raw, content_type=J), 400, "INVALID_REQUEST")
    assert get_order(client, handle["id"])["limit_price"] == before["limit_price"]


def test_patch_on_an_unknown_order_is_404(client, account):
    assert_error(client.patch(f"/v1/orders/{uuid.uuid4()}", {"quantity": "1"}, content_type=J), 404,
                 "ORDER_NOT_FOUND")


# -- cancel -------------------------------------------------------------------------------------------------

def test_delete_cancels_a_resting_order(client, account, clock):
    handle = resting_limit(client)
    response = client.delete(f"/v1/orders/{handle['id']}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["order"]["id"] == handle["id"]
    assert body["order"]["status"] == "CANCELLED"
    assert get_order(client, handle["id"])["status"] == "CANCELLED"


def test_delete_of_a_filled_order_is_409_and_leaves_it_filled(client, account, broker, clock):
    order = filled_market(client, account, broker, clock)
    assert_error(client.delete(f"/v1/orders/{order['id']}"), 409, "ORDER_NOT_MODIFIABLE")
    assert get_order(client, order["id"])["status"] == "FILLED"


def test_delete_of_an_unknown_order_is_404(client, account):
    assert_error(client.delete(f"/v1/orders/{uuid.uuid4()}"), 404, "ORDER_NOT_FOUND")


def test_delete_all_cancels_every_working_order_and_counts_them(client, account, broker, clock):
    filled = filled_market(client, account, broker, clock)
    first, second = resting_limit(client), resting_limit(client, symbol="MSFT", quantity="1")
    response = client.delete("/v1/orders")
    assert response.status_code == 200, response.content
    assert response.json() == {"cancelled_count": 2, "failed_count": 0}
    assert {get_order(client, o["id"])["status"] for o in (first, second)} == {"CANCELLED"}
    assert get_order(client, filled["id"])["status"] == "FILLED"


def test_delete_all_can_be_limited_to_one_symbol(client, account, clock):
    aapl, msft = resting_limit(client), resting_limit(client, symbol="MSFT", quantity="1")
    assert client.delete("/v1/orders?symbol=MSFT").json() == {"cancelled_count": 1, "failed_count": 0}
    assert get_order(client, msft["id"])["status"] == "CANCELLED"
    assert get_order(client, aapl["id"])["status"] == "OPEN"


def test_delete_all_names_the_orders_it_could_not_cancel(client, account, broker, clock):
    first, second = resting_limit(client), resting_limit(client)
    broker.faults.set_unavailable(True)
    response = client.delete("/v1/orders")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cancelled_count"], body["failed_count"]) == (0, 2)
    assert sorted(body["failed_order_ids"]) == sorted([first["id"], second["id"]])
    broker.faults.set_unavailable(False)
    assert {get_order(client, o["id"])["status"] for o in (first, second)} == {"OPEN"}


def test_delete_all_with_nothing_working_reports_zero_and_no_failure_list(client, account):
    assert client.delete("/v1/orders").json() == {"cancelled_count": 0, "failed_count": 0}
