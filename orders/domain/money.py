"""Decimal helpers: parsing, grid checks and the one wire formatter."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

ZERO = Decimal("0")
# Quantities below this are dust: too small to matter, never worth an order.
DUST = Decimal("0.000000001")


def to_decimal(value: object) -> Decimal:
    """Decimal from a string, int or Decimal; floats go through their shortest repr.

    Raises ValueError for anything that is not a finite number.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float):
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
    else:
        raise ValueError(f"{type(value).__name__} is not a decimal number")
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    return result


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent, no trailing zeros: Decimal('1E+2') -> '100'."""
    if value.is_zero():
        return "0"
    text = format(value.normalize(), "f")
    return text


def is_on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value % step) == 0


def round_to_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    if step <= 0:
        return value
    return (value / step).quantize(Decimal(1), rounding=rounding) * step


def floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    return round_to_step(value, step, ROUND_DOWN)


def quantize_money(value: Decimal, places: int = 8) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
