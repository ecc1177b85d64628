from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from orders.domain.money import (
    ZERO,
    floor_to_step,
    format_decimal,
    is_on_grid,
    quantize_money,
    round_to_step,
    to_decimal,
)

D = Decimal


# -- to_decimal ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("150.25", D("150.25")),
    ("  42 ", D("42")),
    ("-0.001", D("-0.001")),
    ("1e2", D("100")),
    (7, D("7")),
    (D("3.14"), D("3.14")),
])
def test_it_parses_strings_ints_and_decimals(value, expected):
    result = to_decimal(value)
    assert isinstance(result, Decimal)
    assert result == expected


def test_it_keeps_the_decimal_passed_in_unchanged():
    value = D("1.2300")
    assert to_decimal(value) is value


def test_it_reads_a_float_through_its_shortest_repr_not_its_binary_expansion():
    assert to_decimal(0.1) == D("0.1")
    assert str(to_decimal(0.1)) == "0.1"
    assert to_decimal(1.1) + to_decimal(2.2) == D("3.3")


def test_it_keeps_the_trailing_zeros_a_string_was_written_with():
    assert str(to_decimal("10.50")) == "10.50"


@pytest.mark.parametrize("value", [True, False])
def test_it_rejects_booleans_although_they_are_ints(value):
    with pytest.raises(ValueError, match="boolean"):
        to_decimal(value)


@pytest.mark.parametrize("value", ["abc", "", "   ", "1,5", "12.3.4"])
def test_it_rejects_text_that_is_not_a_number(value):
    with pytest.raises(ValueError, match="not a decimal number"):
        to_decimal(value)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity", float("nan"), float("inf"), D("NaN")])
def test_it_rejects_values_that_are_not_finite(value):
    with pytest.raises(ValueError, match="finite"):
        to_decimal(value)


@pytest.mark.parametrize("value", [None, [1], {"a": 1}, object()])
def test_it_rejects_other_types_naming_the_type(value):
    with pytest.raises(ValueError, match=type(value).__name__):
        to_decimal(value)


# -- format_decimal --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (D("1E+2"), "100"),
    (D("1.5E+3"), "1500"),
    (D("1.23E+20"), "123000000000000000000"),
    (D("1E-10"), "0.0000000001"),
    (D("5E-7"), "0.0000005"),
    (D("-2.5E+1"), "-25"),
])
def test_it_never_emits_an_exponent(value, expected):
    text = format_decimal(value)
    assert text == expected
    assert "E" not in text.upper()


@pytest.mark.parametrize(("value", "expected"), [
    (D("1.500"), "1.5"),
    (D("100.00"), "100"),
    (D("-12.340"), "-12.34"),
    (D("0.00010"), "0.0001"),
    (D("150.25"), "150.25"),
    (D("42"), "42"),
])
def test_it_drops_trailing_zeros_but_keeps_significant_digits(value, expected):
    assert format_decimal(value) == expected


@pytest.mark.parametrize("value", [D("0"), D("0.000"), D("0E-8"), D("-0"), D("0E+3")])
def test_it_writes_every_zero_as_a_plain_0(value):
    assert format_decimal(value) == "0"


def test_it_round_trips_through_to_decimal():
    for value in (D("1E+2"), D("0.00000001"), D("-123.456"), D("98765.4321000")):
        assert to_decimal(format_decimal(value)) == value


# -- grid helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "step", "expected"), [
    (D("150.01"), D("0.01"), True),
    (D("150.005"), D("0.01"), False),
    (D("150"), D("0.01"), True),
    (D("1.08123"), D("0.00001"), True),
    (D("1.081234"), D("0.00001"), False),
    (D("3"), D("1"), True),
    (D("1.5"), D("1"), False),
    (D("0.00003"), D("0.00001"), True),
    (D("-0.02"), D("0.01"), True),
    (D("0.3"), D("0.1"), True),
])
def test_it_tells_whether_a_value_sits_on_the_grid(value, step, expected):
    assert is_on_grid(value, step) is expected


@pytest.mark.parametrize("step", [D("0"), D("-1")])
def test_a_missing_or_negative_step_puts_every_value_on_the_grid(step):
    assert is_on_grid(D("1.23456789"), step)


@pytest.mark.parametrize(("value", "step", "expected"), [
    (D("150.004"), D("0.01"), D("150.00")),
    (D("150.006"), D("0.01"), D("150.01")),
    (D("0.125"), D("0.01"), D("0.12")),   # half to even
    (D("0.135"), D("0.01"), D("0.14")),   # half to even
    (D("7"), D("5"), D("5")),
    (D("8"), D("5"), D("10")),
    (D("1.2345"), D("0.25"), D("1.25")),
])
def test_it_rounds_to_the_nearest_step_half_to_even(value, step, expected):
    result = round_to_step(value, step)
    assert result == expected
    assert is_on_grid(result, step)


def test_it_rounds_in_the_direction_asked_for():
    assert round_to_step(D("150.001"), D("0.01"), ROUND_CEILING) == D("150.01")
    assert round_to_step(D("150.009"), D("0.01"), ROUND_FLOOR) == D("150.00")


def test_it_leaves_a_value_alone_when_there_is_no_step():
    assert round_to_step(D("1.23456"), ZERO) == D("1.23456")


@pytest.mark.parametrize(("value", "step", "expected"), [
    (D("1.999"), D("0.01"), D("1.99")),
    (D("0.0000199"), D("0.00001"), D("0.00001")),
    (D("2.5"), D("1"), D("2")),
    (D("3"), D("1"), D("3")),
    (D("-1.001"), D("0.01"), D("-1.00")),   # towards zero, never past it
])
def test_it_floors_towards_zero_to_the_step(value, step, expected):
    assert floor_to_step(value, step) == expected


def test_floor_to_step_never_rounds_a_quantity_up_past_what_is_held():
    held = D("0.123456789")
    floored = floor_to_step(held, D("0.00001"))
    assert floored <= held
    assert held - floored < D("0.00001")


@pytest.mark.parametrize(("value", "places", "expected"), [
    (D("1.123456789"), 8, D("1.12345679")),
    (D("2.675"), 2, D("2.68")),
    (D("2.665"), 2, D("2.66")),   # half to even
    (D("10"), 2, D("10.00")),
])
def test_it_quantizes_money_to_the_given_places(value, places, expected):
    result = quantize_money(value, places)
    assert result == expected
    assert result.as_tuple().exponent == -places

