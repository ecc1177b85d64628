"""The venue's truth at Alpaca, venue -> ours: the account (``GET /v2/account``), its positions
(``GET /v2/positions``) and its working orders (``GET /v2/orders?status=open&nested=true``).

Account figures (every amount a string on the wire, a ``Decimal`` here):

================  ========================================================================================
desk              Alpaca
================  ========================================================================================
cash              ``cash`` (negative when a margin account borrows)
equity            ``equity`` (cash + long market value + short market value)
buying_power      ``buying_power`` (Alpaca's own figure: reg-T 2x, day-trading 4x, or cash for 1x accounts)
margin_used       ``initial_margin``: the reg-T requirement of what is held now. The desk's margin answers
                  "what do my positions tie up before I may open more", which is the initial requirement;
                  ``maintenance_margin`` only says how far equity may fall before a margin call.
margin_available  ``equity - initial_margin``, never below 0: Alpaca's excess equity, the quantity its
                  spec multiplies into ``buying_power`` for a 2x account
currency          ``currency`` (USD)
unrealized_pnl    None: the account object has none; the positions carry ``unrealized_pl`` each
================  ========================================================================================

Positions: ``qty`` is signed by ``side`` ("long" / "short"), whatever sign Alpaca writes. Crypto positions
come as ``BTCUSD`` and crypto orders as ``BTC/USD``; both read as the desk's ``BTCUSD``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from orders.brokers.alpaca.mapping import PROVIDER, AlpacaOrder, parse_alpaca_decimal, parse_alpaca_order
from orders.brokers.types import VenueAccount, VenueOrder, VenuePosition
from orders.domain.enums import OrderStatus
from orders.domain.errors import ProviderError
from orders.domain.money import ZERO

log = logging.getLogger(__name__)
# what a working order is to the desk, when Alpaca has it but it is not routed yet
_TAKEN = frozenset({"accepted", "pending_new", "accepted_for_bidding", "pending_review"})


def parse_alpaca_symbol(symbol: str) -> str:
    """Alpaca's spelling -> the desk's: ``BTC/USD`` and ``BTCUSD`` are ``BTCUSD``; ``AAPL`` stays."""
    return symbol.upper().replace("/", "")


def parse_alpaca_account(body: Any) -> VenueAccount:
    """``GET /v2/account`` -> the venue's figures (table in the module docstring)."""
    if not isinstance(body, dict):
        raise ProviderError("Alpaca answered the account request without an account", provider=PROVIDER)
    try:
        cash, equity = _amount(body, "cash"), _amount(body, "equity")
        buying_power = _amount(body, "buying_power")
    except KeyError as e:
        raise ProviderError(f"Alpaca's account has no {e.args[0]}", provider=PROVIDER) from None
    initial_margin = parse_alpaca_decimal(body.get("initial_margin")) or ZERO
    return VenueAccount(cash=cash, equity=equity, buying_power=buying_power, margin_used=initial_margin,
                        margin_available=max(ZERO, equity - initial_margin),
                        currency=str(body.get("currency") or "USD").upper())


def parse_alpaca_position(body: dict[str, Any]) -> VenuePosition:
    """One ``Position`` -> a signed quantity with its average entry price and Alpaca's current price."""
    try:
        quantity = abs(parse_alpaca_decimal(body["qty"]) or ZERO)
        symbol = parse_alpaca_symbol(body["symbol"])
    except (KeyError, TypeError, AttributeError):
        raise ProviderError("Alpaca sent a position without a symbol or qty", provider=PROVIDER) from None
    signed = -quantity if str(body.get("side", "long")).lower() == "short" else quantity
    return VenuePosition(symbol=symbol, quantity=signed,
                         average_price=parse_alpaca_decimal(body.get("avg_entry_price")),
                         mark=parse_alpaca_decimal(body.get("current_price")))


def parse_alpaca_positions(body: Any) -> list[VenuePosition]:
    """``GET /v2/positions`` -> every non-zero position."""
    if not isinstance(body, list):
        raise ProviderError("Alpaca answered the positions request without a list", provider=PROVIDER)
    positions = [parse_alpaca_position(raw) for raw in body if isinstance(raw, dict)]
    return [p for p in positions if p.quantity != 0]


def parse_alpaca_open_orders(body: Any) -> list[AlpacaOrder]:
    """``GET /v2/orders?status=open&nested=true`` -> every working order, legs taken out of their parents
    (a filled bracket entry may be listed for the sake of its working legs: it is left out)."""
    if not isinstance(body, list):
        raise ProviderError("Alpaca answered the orders request without a list", provider=PROVIDER)
    return [o for o in _flatten(parse_alpaca_order(raw) for raw in body if isinstance(raw, dict))
            if not o.desk_status.is_terminal]


def _flatten(orders: Iterable[AlpacaOrder]) -> list[AlpacaOrder]:
    out: dict[str, AlpacaOrder] = {}
    for order in orders:
        out.setdefault(order.id, order)
        for leg in _flatten(order.legs):
            out.setdefault(leg.id, leg)
    return list(out.values())


def parse_alpaca_venue_order(order: AlpacaOrder, *, now: datetime) -> VenueOrder | None:
    """A working Alpaca order as the desk lists it, or None for a kind the desk has no word for (an option
    leg). ``held`` (a bracket leg waiting for its entry) is PENDING; an order Alpaca has taken but not routed
    yet works for the desk (OPEN), as its acknowledgement does."""
    if order.order_type is None:
        log.warning("alpaca: working order %s of a type the desk cannot show is left out", order.id)
        return None
    status = order.desk_status
    if order.status in _TAKEN:
        status = OrderStatus.OPEN
    return VenueOrder(broker_order_id=order.id, client_order_id=order.client_order_id or None,
                      symbol=parse_alpaca_symbol(order.symbol), side=order.side, order_type=order.order_type,
                      quantity=order.quantity, filled_quantity=order.filled_quantity, status=status,
                      created_at=order.created_at or order.updated_at or now,
                      limit_price=order.limit_price, stop_price=order.stop_price, time_in_force=order.time_in_force,
                      replaces=order.replaces or None)


def _amount(body: dict[str, Any], name: str) -> Decimal:
    value = parse_alpaca_decimal(body[name])
    if value is None:
        raise KeyError(name)
    return value
