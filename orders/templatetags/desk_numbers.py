"""How the desk shows numbers: money to the cent and prices with every digit, both with thousands
separators; averages to eight significant digits; which way a P&L points. The wire (and the API) keeps
every digit; only the page rounds."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django import template

register = template.Library()

CENT = Decimal("0.01")


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


@register.filter
def money(value) -> str:
    """``-1234.5`` → ``-1,234.50``; blank stays blank, and anything that is not a number is shown as it is."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    return f"{rounded + 0:,.2f}"          # + 0 turns -0.00 into 0.00


@register.filter
def price(value) -> str:
    """A venue price (limit, stop, fill, quote) as it is, every digit kept, never fewer than two decimals:
    ``153.6`` → ``153.60``, ``1.08345`` → ``1.08345``, ``48906.7`` → ``48,906.70``."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    return _grouped(number)


@register.filter
def average(value, decimals=None) -> str:
    """A computed average price: with the instrument's decimals (those of its tick) when they are given,
    ``average:2`` → ``187.20`` for 187.20333; else to eight significant digits: ``151.5766109102`` →
    ``151.57661``, ``1.0834512345`` → ``1.0834512``, ``0.000012345678`` → ``0.000012345678``."""
    number = _decimal(value)
    if number is None:
        return "" if value is None else str(value)
    if isinstance(decimals, int) and not isinstance(decimals, bool) and 0 <= decimals <= 18:
        return f"{number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN) + 0:,.{decimals}f}"
    if number:
        number = number.quantize(Decimal(1).scaleb(number.adjusted() - 7), rounding=ROUND_HALF_EVEN)
    return _grouped(number)


def tick_decimals(tick) -> int | None:
    """How many decimals an instrument's prices have: those of its tick (``0.01`` → 2, ``0.00001`` → 5, ``0.5`` → 1,
    ``1`` → 0); None for no usable tick."""
    number = _decimal(tick)
    if number is None or number <= 0:
        return None
    return max(0, -number.normalize().as_tuple().exponent)


def _grouped(number: Decimal) -> str:
    decimals = max(2, -number.normalize().as_tuple().exponent)
    return f"{number:,.{decimals}f}"


@register.filter
def direction(value) -> str:
    """``up``, ``down`` or ``flat``, as the amount shows to the cent: for colouring a P&L."""
    number = _decimal(value)
    cents = number.quantize(CENT, rounding=ROUND_HALF_EVEN) if number is not None else 0
    return "flat" if not cents else "up" if cents > 0 else "down"
