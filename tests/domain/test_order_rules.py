from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import InvalidRequest, InvalidValue, ValidationFailed
from orders.domain.orders import check_exit_prices, validate_order_request
from tests.builders import make_order_request

D = Decimal


def _valid(order_type: OrderType, **overrides):
    """A request of ``order_type`` with every field its type needs."""
    needs = {
        OrderType.MARKET: {},
        OrderType.LIMIT: {"limit_price": "150"},
        OrderType.STOP: {"stop_price": "155"},
        OrderType.STOP_LIMIT: {"stop_price": "155", "limit_price": "156"},
        OrderType.TRAILING_STOP: {"trailing_distance": "2", "trailing_type": TrailingType.ABSOLUTE},
    }
    return make_order_request(order_type=order_type, **{**needs[order_type], **overrides})


# -- a well-formed request passes ------------------------------------------------------------------------


@pytest.mark.parametrize("order_type", list(OrderType))
@pytest.mark.parametrize("side", list(Side))
def test_it_accepts_every_order_type_with_the_fields_it_needs(order_type, side):
    validate_order_request(_valid(order_type, side=side))


# -- required fields per type (INVALID_REQUEST) ----------------------------------------------------------


@pytest.mark.parametrize(("order_type", "missing"), [
    (OrderType.LIMIT, "limit_price"),
    (OrderType.STOP, "stop_price"),
    (OrderType.STOP_LIMIT, "limit_price"),
    (OrderType.STOP_LIMIT, "stop_price"),
    (OrderType.TRAILING_STOP, "trailing_distance"),
    (OrderType.TRAILING_STOP, "trailing_type"),
])
def test_it_rejects_an_order_missing_a_field_its_type_needs(order_type, missing):
    request = _valid(order_type, **{missing: None})
    with pytest.raises(InvalidRequest) as caught:
        validate_order_request(request)
    error = caught.value
    assert error.code == "INVALID_REQUEST"
    assert error.status == 400
    assert error.field == missing
    assert error.details == {"field": missing}
    assert missing in error.message


def test_it_rejects_limit_order_without_limit_price():
    with pytest.raises(InvalidRequest, match="Limit orders require limit_price"):
        validate_order_request(make_order_request(order_type=OrderType.LIMIT))


def test_it_names_limit_price_first_when_a_stop_limit_order_has_neither_price():
    with pytest.raises(InvalidRequest) as caught:
        validate_order_request(make_order_request(order_type=OrderType.STOP_LIMIT))
    assert caught.value.field == "limit_price"


# -- fields a type must not carry (INVALID_VALUE) --------------------------------------------------------


@pytest.mark.parametrize(("order_type", "field", "value", "provided"), [
    (OrderType.MARKET, "limit_price", D("150"), "150"),
    (OrderType.MARKET, "stop_price", D("150"), "150"),
    (OrderType.MARKET, "trailing_distance", D("2"), "2"),
    (OrderType.MARKET, "trailing_type", TrailingType.PERCENT, "PERCENT"),
    (OrderType.LIMIT, "stop_price", D("149.5"), "149.5"),
    (OrderType.STOP, "limit_price", D("151"), "151"),
    (OrderType.STOP_LIMIT, "trailing_distance", D("1"), "1"),
    (OrderType.TRAILING_STOP, "limit_price", D("150"), "150"),
    (OrderType.TRAILING_STOP, "stop_price", D("150"), "150"),
])
def test_it_rejects_a_price_the_order_type_does_not_use(order_type, field, value, provided):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(order_type, **{field: value}))
    error = caught.value
    assert error.code == "INVALID_VALUE"
    assert error.status == 400
    assert error.field == field
    assert error.details["field"] == field
    assert error.details["provided"] == provided


@pytest.mark.parametrize("field", ["limit_price", "stop_price"])
@pytest.mark.parametrize("value", [D("0"), D("-1")])
def test_it_rejects_prices_that_are_not_positive(field, value):
    with pytest.raises(InvalidValue, match="must be positive") as caught:
        validate_order_request(_valid(OrderType.STOP_LIMIT, **{field: value}))
    assert caught.value.details["field"] == field
    assert caught.value.details["provided"] == str(value)


@pytest.mark.parametrize("field", ["stop_loss", "take_profit", "display_quantity"])
def test_it_rejects_exit_prices_and_display_quantity_that_are_not_positive(field):
    with pytest.raises(InvalidValue, match="must be positive") as caught:
        validate_order_request(make_order_request(**{field: D("-5")}))
    assert caught.value.field == field


def test_it_rejects_a_non_positive_trailing_distance():
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(OrderType.TRAILING_STOP, trailing_distance=D("0")))
    assert caught.value.field == "trailing_distance"


def test_it_reports_the_provided_value_without_an_exponent():
    # Decimal("0.00000000") is Decimal("0E-8"): the wire must still read as a plain number
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(make_order_request(stop_loss=Decimal("0.00000000")))
    assert caught.value.details["provided"] == "0"


# -- field validators (VALIDATION_ERROR) ------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [D("0"), D("-1"), D("-0.0001")])
def test_it_rejects_a_quantity_that_is_not_positive(quantity):
    with pytest.raises(ValidationFailed) as caught:
        validate_order_request(make_order_request(quantity=quantity))
    error = caught.value
    assert error.code == "VALIDATION_ERROR"
    assert error.status == 400
    assert error.details == {"quantity": [{"code": "must be positive", "message": None, "params": {}}]}


def test_it_accepts_a_client_order_id_of_64_characters():
    validate_order_request(make_order_request(client_order_id="x" * 64))


@pytest.mark.parametrize("length", [0, 65, 200])
def test_it_rejects_a_client_order_id_outside_1_to_64_characters(length):
    with pytest.raises(ValidationFailed) as caught:
        validate_order_request(make_order_request(client_order_id="x" * length))
    [failure] = caught.value.details["client_order_id"]
    assert failure["code"] == "length"
    assert failure["params"] == {"min": 1, "max": 64, "value": length}


def test_it_rejects_an_oco_group_id_longer_than_64_characters():
    with pytest.raises(ValidationFailed) as caught:
        validate_order_request(make_order_request(oco_group_id="g" * 65))
    assert list(caught.value.details) == ["oco_group_id"]


@pytest.mark.parametrize("symbol", ["", " AAPL", "AAPL ", "X" * 21])
def test_it_rejects_a_symbol_that_is_empty_padded_or_too_long(symbol):
    with pytest.raises(ValidationFailed) as caught:
        validate_order_request(make_order_request(symbol=symbol))
    assert caught.value.details["symbol"][0]["code"] == "length"


def test_it_accepts_a_symbol_of_20_characters():
    validate_order_request(make_order_request(symbol="X" * 20))


def test_it_reports_every_failing_field_at_once():
    with pytest.raises(ValidationFailed) as caught:
        validate_order_request(make_order_request(quantity=D("0"), client_order_id="c" * 65))
    assert set(caught.value.details) == {"quantity", "client_order_id"}
    assert "quantity: must be positive" in caught.value.message


def test_it_checks_field_validators_before_type_semantics():
    # both a missing limit price and a zero quantity: the field validator answers first, as the gateway does
    with pytest.raises(ValidationFailed):
        validate_order_request(make_order_request(order_type=OrderType.LIMIT, quantity=D("0")))


# -- trailing stops -------------------------------------------------------------------------------------


def test_it_accepts_a_percent_trailing_distance_of_99():
    validate_order_request(_valid(OrderType.TRAILING_STOP, trailing_type=TrailingType.PERCENT,
                                  trailing_distance=D("99")))


@pytest.mark.parametrize("distance", [D("100"), D("150")])
def test_it_rejects_a_percent_trailing_distance_of_100_or_more(distance):
    with pytest.raises(InvalidValue, match="less than 100") as caught:
        validate_order_request(_valid(OrderType.TRAILING_STOP, trailing_type=TrailingType.PERCENT,
                                      trailing_distance=distance))
    assert caught.value.field == "trailing_distance"
    assert caught.value.details["provided"] == str(distance)


def test_it_accepts_an_absolute_trailing_distance_of_100():
    validate_order_request(_valid(OrderType.TRAILING_STOP, trailing_type=TrailingType.ABSOLUTE,
                                  trailing_distance=D("100")))


# -- display quantity, time in force, post-only, reduce-only --------------------------------------------


def test_it_accepts_a_display_quantity_below_the_quantity():
    validate_order_request(_valid(OrderType.LIMIT, quantity=D("10"), display_quantity=D("9")))


@pytest.mark.parametrize("display", [D("10"), D("11")])
def test_it_rejects_a_display_quantity_not_below_the_quantity(display):
    with pytest.raises(InvalidValue, match="less than quantity") as caught:
        validate_order_request(_valid(OrderType.LIMIT, quantity=D("10"), display_quantity=display))
    assert caught.value.field == "display_quantity"


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.LIMIT])
def test_it_accepts_ioc_and_fok_on_market_and_limit_orders(tif, order_type):
    validate_order_request(_valid(order_type, time_in_force=tif))


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
@pytest.mark.parametrize("order_type", [OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP])
def test_it_rejects_ioc_and_fok_on_stop_and_trailing_orders(tif, order_type):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(order_type, time_in_force=tif))
    assert caught.value.field == "time_in_force"
    assert caught.value.details["provided"] == tif.value


@pytest.mark.parametrize("tif", [TimeInForce.GTC, TimeInForce.DAY])
@pytest.mark.parametrize("order_type", list(OrderType))
def test_it_accepts_gtc_and_day_on_every_order_type(tif, order_type):
    validate_order_request(_valid(order_type, time_in_force=tif))


def test_it_accepts_a_post_only_limit_order():
    validate_order_request(_valid(OrderType.LIMIT, post_only=True))


@pytest.mark.parametrize("order_type", [OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT])
def test_it_rejects_post_only_on_anything_but_a_limit_order(order_type):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(order_type, post_only=True))
    assert caught.value.field == "post_only"


def test_it_rejects_a_reduce_only_order_carrying_exits():
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(make_order_request(reduce_only=True, stop_loss=D("140")))
    assert caught.value.field == "reduce_only"


def test_it_accepts_a_plain_reduce_only_order():
    validate_order_request(make_order_request(side=Side.SELL, reduce_only=True))


# -- stop-loss and take-profit sides ---------------------------------------------------------------------


@pytest.mark.parametrize(("side", "stop_loss", "take_profit"), [
    (Side.BUY, "149.99", "150.01"),
    (Side.BUY, "140", None),
    (Side.BUY, None, "160"),
    (Side.SELL, "150.01", "149.99"),
    (Side.SELL, "160", None),
    (Side.SELL, None, "140"),
])
def test_it_accepts_exits_on_the_right_side_of_a_limit_entry_at_150(side, stop_loss, take_profit):
    validate_order_request(_valid(OrderType.LIMIT, side=side, limit_price=D("150"), stop_loss=stop_loss,
                                  take_profit=take_profit))


@pytest.mark.parametrize(("side", "stop_loss"), [
    (Side.BUY, "150"), (Side.BUY, "150.01"), (Side.BUY, "200"),
    (Side.SELL, "150"), (Side.SELL, "149.99"), (Side.SELL, "100"),
])
def test_it_rejects_a_stop_loss_on_the_winning_side_of_the_entry(side, stop_loss):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(OrderType.LIMIT, side=side, limit_price=D("150"), stop_loss=stop_loss))
    error = caught.value
    assert error.field == "stop_loss"
    assert error.details["provided"] == stop_loss
    assert error.details["entry_price"] == "150"
    assert ("below" if side is Side.BUY else "above") in error.message


@pytest.mark.parametrize(("side", "take_profit"), [
    (Side.BUY, "150"), (Side.BUY, "149.99"), (Side.BUY, "100"),
    (Side.SELL, "150"), (Side.SELL, "150.01"), (Side.SELL, "200"),
])
def test_it_rejects_a_take_profit_on_the_losing_side_of_the_entry(side, take_profit):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(OrderType.LIMIT, side=side, limit_price=D("150"), take_profit=take_profit))
    error = caught.value
    assert error.field == "take_profit"
    assert error.details["provided"] == take_profit
    assert error.details["entry_price"] == "150"
    assert ("above" if side is Side.BUY else "below") in error.message


def test_a_stop_order_is_judged_against_its_stop_price():
    validate_order_request(_valid(OrderType.STOP, stop_price=D("155"), stop_loss=D("154"), take_profit=D("160")))
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(_valid(OrderType.STOP, stop_price=D("155"), stop_loss=D("156")))
    assert caught.value.details["entry_price"] == "155"


def test_a_stop_limit_order_is_judged_against_its_limit_price():
    request = _valid(OrderType.STOP_LIMIT, stop_price=D("155"), limit_price=D("156"), stop_loss=D("155.5"))
    validate_order_request(request)
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(request.with_changes(stop_loss=D("156.5")))
    assert caught.value.details["entry_price"] == "156"


@pytest.mark.parametrize(("side", "stop_loss", "take_profit"), [
    (Side.BUY, "160", "140"),
    (Side.BUY, "150", "150"),
    (Side.SELL, "140", "160"),
    (Side.SELL, "150", "150"),
])
def test_it_rejects_a_market_bracket_whose_stop_loss_is_beyond_its_take_profit(side, stop_loss, take_profit):
    with pytest.raises(InvalidValue) as caught:
        validate_order_request(make_order_request(side=side, stop_loss=stop_loss, take_profit=take_profit))
    assert caught.value.field == "stop_loss"
    assert caught.value.details["take_profit"] == take_profit


def test_a_market_order_with_one_exit_is_not_judged_without_a_reference_price():
    validate_order_request(make_order_request(side=Side.BUY, stop_loss=D("500")))
    validate_order_request(make_order_request(side=Side.SELL, take_profit=D("500")))


def test_it_checks_market_exits_against_a_reference_price_when_one_is_given():
    request = make_order_request(side=Side.BUY, stop_loss=D("151"))
    check_exit_prices(request, reference_price=D("152"))
    with pytest.raises(InvalidValue) as caught:
        check_exit_prices(request, reference_price=D("150"))
    assert caught.value.details == {"field": "stop_loss", "provided": "151", "entry_price": "150"}


# -- fingerprint -----------------------------------------------------------------------------------------


def test_identical_requests_have_the_same_fingerprint():
    first = _valid(OrderType.LIMIT, client_order_id="abc", stop_loss=D("140"))
    second = _valid(OrderType.LIMIT, client_order_id="abc", stop_loss=D("140"))
    assert first is not second
    assert first.fingerprint() == second.fingerprint()


def test_the_fingerprint_ignores_how_a_number_was_written():
    assert (_valid(OrderType.LIMIT, limit_price=D("150")).fingerprint()
            == _valid(OrderType.LIMIT, limit_price=D("150.00")).fingerprint())


@pytest.mark.parametrize("change", [
    {"quantity": D("11")},
    {"side": Side.SELL},
    {"symbol": "MSFT"},
    {"limit_price": D("150.01")},
    {"time_in_force": TimeInForce.DAY},
    {"client_order_id": "other"},
    {"take_profit": D("170")},
    {"reduce_only": True},
    {"post_only": True},
])
def test_requests_that_differ_have_different_fingerprints(change):
    base = _valid(OrderType.LIMIT, client_order_id="abc")
    assert base.with_changes(**change).fingerprint() != base.fingerprint()


def test_a_fingerprint_is_a_sha256_hex_digest():
    fingerprint = make_order_request().fingerprint()
    assert len(fingerprint) == 64
    int(fingerprint, 16)
