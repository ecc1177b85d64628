"""Every failure answers with the protocol's envelope ``{code, message, details?}``, a 4xx for bad
input, and leaves nothing behind: no order row, no reserved buying power."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from orders.models import Order
from tests.api.support import J, assert_error, order_body, quote, submit
from tests.builders import run_engine

pytestmark = pytest.mark.django_db


def post_raw(client, raw, content_type=J):
    return client.post("/v1/orders", raw, content_type=content_type)


def without(field: str) -> dict:
    return order_body(**{field: None})


# -- 400 INVALID_REQUEST: the body could not be read as an order -------------------------------------------

@pytest.mark.parametrize("raw", [
    pytest.param("{not json", id="malformed-json"),
    pytest.param("", id="empty-body"),
    pytest.param("[]", id="array-body"),
    pytest.param("null", id="null-body"),
    pytest.param(json.dumps({**order_body(), "symbol": 5}), id="symbol-not-a-string"),
    pytest.param(json.dumps({**order_body(), "quantity": [1]}), id="quantity-a-list"),
    pytest.param(json.dumps({**order_body(), "quantity": True}), id="quantity-a-boolean"),
    pytest.param(json.dumps({**order_body(), "reduce_only": [1]}), id="reduce-only-a-list"),
    pytest.param(json.dumps({**order_body(), "quantity": "ten"}), id="non-numeric-decimal"),
    pytest.param(json.dumps({**order_body(), "quantity": "NaN"}), id="nan-decimal"),
    pytest.param(json.dumps({**order_body(), "limit_price": "Infinity", "order_type": "LIMIT"}), id="infinite"),
    pytest.param(json.dumps({**order_body(), "time_in_force": None}), id="null-time-in-force"),
    pytest.param(json.dumps({**order_body(), "reduce_only": None}), id="null-reduce-only"),
    pytest.param(json.dumps({**order_body(), "side": "LONG"}), id="unknown-side"),
    pytest.param(json.dumps(without("symbol")), id="missing-symbol"),
    pytest.param(json.dumps(without("side")), id="missing-side"),
    pytest.param(json.dumps(without("quantity")), id="missing-quantity"),
    pytest.param(json.dumps(without("order_type")), id="missing-order-type"),
])
def test_an_unreadable_order_is_400_invalid_request(client, account, clock, raw):
    assert_error(post_raw(client, raw), 400, "INVALID_REQUEST")
    assert Order.objects.count() == 0


def test_a_bad_field_is_named_in_the_details(client, account, clock):
    body = assert_error(submit(client, expect=None, quantity="ten"), 400, "INVALID_REQUEST")
    assert body["details"] == {"field": "quantity"}
    raw = json.dumps({**order_body(), "time_in_force": None})
    body = assert_error(post_raw(client, raw), 400, "INVALID_REQUEST")
    assert body["details"] == {"field": "time_in_force"}


def test_decimals_may_also_arrive_as_json_numbers(client, account, clock):
    handle = submit(client, quantity=3).json()
    assert Order.objects.get(pk=handle["id"]).quantity == Decimal("3")


# -- 400 VALIDATION_ERROR: field validators ----------------------------------------------------------------

@pytest.mark.parametrize("quantity", ["0", "-5"])
def test_a_quantity_that_is_not_positive_is_a_validation_error(client, account, clock, quantity):
    body = assert_error(submit(client, expect=None, quantity=quantity), 400, "VALIDATION_ERROR")
    assert body["details"]["quantity"][0]["code"] == "must be positive"
    assert Order.objects.count() == 0


def test_a_65_character_client_order_id_is_a_validation_error_and_64_is_fine(client, account, clock):
    body = assert_error(submit(client, expect=None, client_order_id="x" * 65), 400, "VALIDATION_ERROR")
    assert "client_order_id" in body["details"]
    assert Order.objects.count() == 0
    submit(client, client_order_id="x" * 64)


def test_a_symbol_longer_than_20_characters_is_a_validation_error(client, account, clock):
    body = assert_error(submit(client, expect=None, symbol="S" * 21), 400, "VALIDATION_ERROR")
    assert "symbol" in body["details"]


# -- 400 semantic checks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("order_type, missing", [("LIMIT", "limit_price"), ("STOP", "stop_price"),
                                                 ("STOP_LIMIT", "limit_price"), ("TRAILING_STOP",
                                                                                 "trailing_distance")])
def test_a_price_the_order_type_needs_is_invalid_request_naming_the_field(client, account, clock, order_type,
                                                                          missing):
    fields = {"order_type": order_type}
    if order_type == "STOP_LIMIT":
        fields["stop_price"] = "150"
    if order_type == "TRAILING_STOP":
        fields["trailing_type"] = "PERCENT"
    body = assert_error(submit(client, expect=None, **fields), 400, "INVALID_REQUEST")
    assert body["details"]["field"] == missing


def test_a_market_order_with_a_limit_price_is_invalid_value_with_what_was_provided(client, account, clock):
    body = assert_error(submit(client, expect=None, limit_price="150"), 400, "INVALID_VALUE")
    assert body["details"]["field"] == "limit_price"
    assert body["details"]["provided"] == "150"


def test_a_percent_trailing_distance_of_100_is_invalid_value(client, account, clock):
    body = assert_error(submit(client, expect=None, order_type="TRAILING_STOP", trailing_type="PERCENT",
                               trailing_distance="100"), 400, "INVALID_VALUE")
    assert body["details"]["field"] == "trailing_distance"


# -- 422: the venue refuses the order --------------------------------------------------------------------------

def test_an_unaffordable_buy_is_422_insufficient_balance_with_required_and_available(client, account, clock):
    ask = quote(client)["ask"]
    response = submit(client, expect=None, quantity="1000")
    body = assert_error(response, 422, "INSUFFICIENT_BALANCE")
    details = body["details"]
    assert details["reject_code"] == "INSUFFICIENT_BALANCE"
    assert isinstance(details["required"], str) and isinstance(details["available"], str)
    assert Decimal(details["required"]) == 1000 * ask
    assert Decimal(details["available"]) == Decimal("100000")
    assert Order.objects.count() == 0


@pytest.mark.parametrize("fields, code", [
    pytest.param({"side": "SELL", "quantity": "1000"}, "INSUFFICIENT_MARGIN", id="short-beyond-margin"),
    pytest.param({"symbol": "F:EURUSD", "quantity": "10000000"}, "INSUFFICIENT_MARGIN", id="leveraged-fx"),
    pytest.param({"quantity": "1.5"}, "INVALID_QUANTITY", id="off-the-share-step"),
    pytest.param({"symbol": "F:EURUSD", "quantity": "500"}, "INVALID_QUANTITY", id="below-the-minimum"),
    pytest.param({"order_type": "LIMIT", "limit_price": "150.005"}, "INVALID_PRICE", id="off-the-tick"),
    pytest.param({"symbol": "BTCUSDT", "quantity": "0.01", "order_type": "LIMIT", "limit_price": "1"}, "INVALID_PRICE",
                 id="outside-the-crypto-band"),
    pytest.param({"symbol": "ZZZZ"}, "SYMBOL_NOT_TRADEABLE", id="unknown-symbol"),
])
def test_each_venue_rejection_is_422_with_its_code_and_writes_no_order(client, account, clock, fields, code):
    body = assert_error(submit(client, expect=None, **fields), 422, code)
    assert body["details"]["reject_code"] == code
    assert Order.objects.count() == 0


def test_a_rejection_loses_nothing(client, account, clock):
    submit(client, quantity="1")
    before = client.get("/v1/account").json()
    assert_error(submit(client, expect=None, quantity="100000"), 422, "INSUFFICIENT_BALANCE")
    assert_error(submit(client, expect=None, symbol="ZZZZ"), 422, "SYMBOL_NOT_TRADEABLE")
    assert Order.objects.count() == 1
    assert client.get("/v1/account").json() == before
    submit(client, quantity="1")
    assert Order.objects.count() == 2


def test_an_unavailable_broker_is_503_provider_unavailable_and_writes_no_order(client, account, broker, clock):
    broker.faults.set_unavailable(True)
    body = assert_error(submit(client, expect=None), 503, "PROVIDER_UNAVAILABLE")
    assert body["message"].startswith("Provider unavailable")
    assert Order.objects.count() == 0
    broker.faults.set_unavailable(False)
    submit(client)


# -- never a 500 ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"quantity": "1e400"}, {"quantity": 1e308}, {"quantity": "123456789012345678901234567890"},
    {"quantity": "0.000000000000000000000000000001"}, {"quantity": " 1 "}, {"quantity": ""},
    {"order_type": "LIMIT", "limit_price": "1e30"}, {"order_type": "LIMIT", "limit_price": "-1"},
    {"order_type": "TRAILING_STOP", "trailing_type": "ABSOLUTE", "trailing_distance": "1e30"},
    {"order_type": "TRAILING_STOP", "trailing_type": "PERCENT", "trailing_distance": "1e-30"},
    {"display_quantity": "1e30"}, {"leverage": "1e40"}, {"stop_loss": "1e30"}, {"take_profit": "-3"},
    {"symbol": ""}, {"symbol": " AAPL"}, {"symbol": "BTC/USD"}, {"symbol": "ÄPPL"}, {"client_order_id": ""},
    {"oco_group_id": "g" * 65}, {"time_in_force": "ioc", "order_type": "STOP", "stop_price": "150"},
    {"post_only": True}, {"reduce_only": True}, {"margin_mode": "Cross"}, {"extra_field": {"nested": [1]}},
])
def test_no_bad_order_input_causes_a_server_error(client, account, clock, fields):
    response = submit(client, expect=None, **fields)
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()) <= {"code", "message", "details"}


@pytest.mark.parametrize("raw", ["{bad", "[1]", '{"quantity": "abc"}', '{"quantity": "1e400"}', '"text"'])
def test_no_bad_close_position_body_causes_a_server_error(client, account, broker, clock, raw):
    submit(client)
    run_engine(account, broker, seconds=1, clock=clock)
    response = client.delete("/v1/positions/paper-pos-AAPL", raw, content_type=J)
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["code"] in {"INVALID_REQUEST", "INVALID_VALUE"}


@pytest.mark.parametrize("raw", ["{bad", '{"limit_price": "1e400"}', '{"quantity": []}', '{"stop_price": "x"}'])
def test_no_bad_modify_body_causes_a_server_error(client, account, clock, raw):
    handle = submit(client, order_type="LIMIT", limit_price="140").json()
    response = client.patch(f"/v1/orders/{handle['id']}", raw, content_type=J)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST"


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "since=yesterday", "until=2026-13-01T00:00:00Z",
                                   "status=open", "side=Buy"])
def test_bad_list_queries_are_400(client, account, query):
    response = client.get(f"/v1/orders?{query}")
    assert response.status_code == 400, response.content
