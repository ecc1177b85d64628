"""Alpaca wire <-> desk types. ``parse_alpaca_*`` go venue -> ours, ``to_alpaca_*`` go ours -> venue.

Pure functions: no HTTP, no clock. Decimals travel as strings both ways (the trading API sends strings;
the market-data API sends JSON numbers, which ``brokers.http`` already parses as ``Decimal``).

Order status (NOTES.md §2.5; ``held`` and ``pending_review`` are not in the OpenAPI enum but are sent):

======================================================  ============================================
Alpaca                                                  desk
======================================================  ============================================
accepted, pending_new, accepted_for_bidding,            PENDING (not live at the venue yet)
pending_review, held (bracket/OTO/OCO child leg)
new, stopped, suspended, done_for_day, pending_replace  OPEN, or PARTIALLY_FILLED once filled_qty > 0
partially_filled                                        PARTIALLY_FILLED
filled                                                  FILLED
calculated                                              FILLED if filled_qty == qty, else as ``new``
pending_cancel                                          PENDING_CANCEL
canceled                                                CANCELLED
replaced                                                CANCELLED (superseded: follow ``replaced_by``)
rejected                                                REJECTED
expired                                                 EXPIRED
anything else                                           as ``new`` (logged; never a crash)
======================================================  ============================================
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orders.brokers.types import Bar, Instrument, OrderTicket, Quote
from orders.domain.enums import AssetClass, OrderStatus, OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import InvalidValue, ProviderError, Unsupported
from orders.domain.money import ZERO, format_decimal, to_decimal

log = logging.getLogger(__name__)
PROVIDER = "alpaca"

ALPACA_ORDER_TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP: "stop",
                      OrderType.STOP_LIMIT: "stop_limit", OrderType.TRAILING_STOP: "trailing_stop"}
_ORDER_TYPES_BACK = {v: k for k, v in ALPACA_ORDER_TYPES.items()}
ALPACA_TIME_IN_FORCE = {TimeInForce.GTC: "gtc", TimeInForce.DAY: "day", TimeInForce.IOC: "ioc",
                        TimeInForce.FOK: "fok"}
# opg / cls are auction orders that live for one session: the nearest desk value is DAY
_TIME_IN_FORCE_BACK = {**{v: k for k, v in ALPACA_TIME_IN_FORCE.items()}, "opg": TimeInForce.DAY,
                       "cls": TimeInForce.DAY}

_PENDING = frozenset({"accepted", "pending_new", "accepted_for_bidding", "pending_review", "held"})
_LIVE = frozenset({"new", "stopped", "suspended", "done_for_day", "pending_replace", "partially_filled"})
_FINAL = {"filled": OrderStatus.FILLED, "canceled": OrderStatus.CANCELLED, "replaced": OrderStatus.CANCELLED,
          "rejected": OrderStatus.REJECTED, "expired": OrderStatus.EXPIRED,
          "pending_cancel": OrderStatus.PENDING_CANCEL}
KNOWN_STATUSES = _PENDING | _LIVE | frozenset(_FINAL) | {"calculated"}

# crypto pairs (PROTOCOL.md §6): the upper-cased symbol ends with one of these or has a "/"
_CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")
CRYPTO_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP_LIMIT})
CRYPTO_TIME_IN_FORCE = frozenset({TimeInForce.GTC, TimeInForce.IOC})


# -- scalars -------------------------------------------------------------------------------------------
def parse_alpaca_decimal(value: Any) -> Decimal | None:
    """A price or quantity: strings (trading API), ints or Decimals (market data). Never a float."""
    if value is None or value == "":
        return None
    try:
        return to_decimal(value)
    except ValueError:
        raise ProviderError(f"Alpaca sent {value!r} where a number belongs", provider=PROVIDER) from None


def parse_alpaca_time(value: str | None) -> datetime | None:
    """RFC 3339 with up to nanoseconds and any offset -> aware UTC (3.11's fromisoformat keeps microseconds)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise ProviderError(f"Alpaca sent an unreadable timestamp {value!r}", provider=PROVIDER) from None


def to_alpaca_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_alpaca_crypto(symbol: str) -> bool:
    upper = symbol.upper()
    return "/" in upper or any(upper.endswith(q) and len(upper) > len(q) for q in _CRYPTO_QUOTES)


def to_alpaca_symbol(symbol: str) -> str:
    """``AAPL`` stays; a crypto pair gets Alpaca's slash: ``BTCUSD`` -> ``BTC/USD``, ``ETHUSDT`` -> ``ETH/USDT``."""
    upper = symbol.upper()
    if "/" in upper or not is_alpaca_crypto(upper):
        return upper
    quote = next(q for q in _CRYPTO_QUOTES if upper.endswith(q))
    return f"{upper[: -len(quote)]}/{quote}"


def to_alpaca_side(side: Side) -> str:
    return side.value.lower()


def parse_alpaca_side(value: str) -> Side:
    return Side(value.upper())


def to_alpaca_order_type(order_type: OrderType) -> str:
    return ALPACA_ORDER_TYPES[order_type]


def parse_alpaca_order_type(value: str | None) -> OrderType | None:
    """None for what the desk has no word for (Alpaca's multi-leg option legs send ``""``)."""
    return _ORDER_TYPES_BACK.get(value or "")


def to_alpaca_time_in_force(time_in_force: TimeInForce) -> str:
    return ALPACA_TIME_IN_FORCE[TimeInForce(time_in_force)]


def parse_alpaca_time_in_force(value: str) -> TimeInForce:
    return _TIME_IN_FORCE_BACK.get(value, TimeInForce.GTC)


def parse_alpaca_status(status: str, *, filled: Decimal = ZERO, quantity: Decimal | None = None) -> OrderStatus:
    """The desk status of an Alpaca order status (table in the module docstring)."""
    if status in _PENDING:
        return OrderStatus.PENDING
    if status in _FINAL:
        return _FINAL[status]
    if status == "calculated" and quantity is not None and filled >= quantity > 0:
        return OrderStatus.FILLED
    if status not in KNOWN_STATUSES:
        log.warning("alpaca: unknown order status %r treated as live", status)
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.OPEN


# -- orders: venue -> ours ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlpacaOrder:
    """The fields of Alpaca's ``Order`` the adapter uses, parsed once."""
    id: str
    client_order_id: str
    symbol: str
    side: Side
    order_type: OrderType | None
    order_class: str
    status: str
    quantity: Decimal
    filled_quantity: Decimal
    filled_avg_price: Decimal | None
    time_in_force: TimeInForce
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    hwm: Decimal | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    legs: tuple[AlpacaOrder, ...] = ()

    @property
    def desk_status(self) -> OrderStatus:
        return parse_alpaca_status(self.status, filled=self.filled_quantity, quantity=self.quantity)


def parse_alpaca_order(body: dict[str, Any]) -> AlpacaOrder:
    """An ``Order`` object (REST reply, list item, nested leg or trade_updates ``order``)."""
    try:
        dec = parse_alpaca_decimal
        return AlpacaOrder(
            id=body["id"], client_order_id=body.get("client_order_id") or "", symbol=body.get("symbol") or "",
            side=parse_alpaca_side(body["side"]), order_type=parse_alpaca_order_type(body.get("type")),
            order_class=body.get("order_class") or "", status=body["status"],
            quantity=dec(body.get("qty")) or ZERO, filled_quantity=dec(body.get("filled_qty")) or ZERO,
            filled_avg_price=dec(body.get("filled_avg_price")),
            time_in_force=parse_alpaca_time_in_force(body.get("time_in_force") or "gtc"),
            limit_price=dec(body.get("limit_price")), stop_price=dec(body.get("stop_price")),
            trail_price=dec(body.get("trail_price")), trail_percent=dec(body.get("trail_percent")),
            hwm=dec(body.get("hwm")), replaced_by=body.get("replaced_by"), replaces=body.get("replaces"),
            created_at=parse_alpaca_time(body.get("submitted_at") or body.get("created_at")),
            updated_at=parse_alpaca_time(body.get("updated_at")), filled_at=parse_alpaca_time(body.get("filled_at")),
            canceled_at=parse_alpaca_time(body.get("canceled_at")),
            expired_at=parse_alpaca_time(body.get("expired_at")), failed_at=parse_alpaca_time(body.get("failed_at")),
            legs=tuple(parse_alpaca_order(leg) for leg in body.get("legs") or ()),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ProviderError(f"Alpaca sent an order the desk cannot read ({type(e).__name__}: {e})",
                            provider=PROVIDER) from None


# -- orders: ours -> venue ---------------------------------------------------------------------------
def to_alpaca_order(ticket: OrderTicket) -> dict[str, Any]:
    """``POST /v2/orders`` body of a simple order. Our order id is Alpaca's ``client_order_id``."""
    if ticket.post_only:
        raise Unsupported("post-only orders", PROVIDER)
    body: dict[str, Any] = {
        "symbol": to_alpaca_symbol(ticket.symbol), "qty": format_decimal(ticket.quantity),
        "side": to_alpaca_side(ticket.side), "type": to_alpaca_order_type(ticket.order_type),
        "time_in_force": to_alpaca_time_in_force(ticket.time_in_force),
    }
    if ticket.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        body["limit_price"] = format_decimal(ticket.limit_price)
    if ticket.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
        body["stop_price"] = format_decimal(ticket.stop_price)
    if ticket.order_type is OrderType.TRAILING_STOP:
        key = "trail_percent" if ticket.trailing_type is TrailingType.PERCENT else "trail_price"
        body[key] = format_decimal(ticket.trailing_distance)
    body["client_order_id"] = ticket.order_id
    return body


def to_alpaca_exit_legs(legs: Sequence[OrderTicket]) -> dict[str, Any]:
    """``take_profit`` / ``stop_loss`` objects of a bracket, OTO or OCO from the desk's leg tickets."""
    out: dict[str, Any] = {}
    for leg in legs:
        if leg.order_type is OrderType.LIMIT and "take_profit" not in out:
            out["take_profit"] = {"limit_price": format_decimal(leg.limit_price)}
        elif leg.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and "stop_loss" not in out:
            out["stop_loss"] = {"stop_price": format_decimal(leg.stop_price)}
            if leg.order_type is OrderType.STOP_LIMIT:
                out["stop_loss"]["limit_price"] = format_decimal(leg.limit_price)
        elif leg.order_type is OrderType.TRAILING_STOP:
            raise Unsupported("a trailing stop as a bracket leg", PROVIDER)      # Alpaca-API#233
        else:
            raise Unsupported(f"a {leg.order_type} bracket leg next to another of its kind", PROVIDER)
    return out


def to_alpaca_bracket(entry: OrderTicket, legs: Sequence[OrderTicket]) -> dict[str, Any]:
    """Entry + both exits -> ``order_class=bracket``; entry + one exit -> ``oto`` (a one-leg bracket is refused)."""
    if is_alpaca_crypto(entry.symbol):
        raise Unsupported("bracket orders on crypto (Alpaca takes simple crypto orders only)", PROVIDER)
    if entry.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        raise Unsupported(f"a bracket with a {entry.order_type} entry (Alpaca: market or limit only)", PROVIDER)
    exits = to_alpaca_exit_legs(legs)
    if not exits:
        return to_alpaca_order(entry)
    order_class = "bracket" if len(exits) == 2 else "oto"
    return {**to_alpaca_order(entry), "order_class": order_class, **exits}


def to_alpaca_oco(tickets: Sequence[OrderTicket]) -> dict[str, Any]:
    """Two exits for one position -> ``order_class=oco``: the take-profit limit is the parent, the stop its leg."""
    take_profit = next((t for t in tickets if t.order_type is OrderType.LIMIT), None)
    stop = next((t for t in tickets if t.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)), None)
    if len(tickets) != 2 or take_profit is None or stop is None:
        raise Unsupported("an OCO other than one LIMIT take-profit and one STOP/STOP_LIMIT stop-loss", PROVIDER)
    if is_alpaca_crypto(take_profit.symbol):
        raise Unsupported("OCO orders on crypto", PROVIDER)
    if (take_profit.symbol, take_profit.side, take_profit.quantity) != (stop.symbol, stop.side, stop.quantity):
        raise Unsupported("an OCO whose two orders differ in symbol, side or quantity", PROVIDER)
    body = to_alpaca_order(take_profit)
    del body["limit_price"]
    return {**body, "order_class": "oco", **to_alpaca_exit_legs([take_profit, stop])}


def to_alpaca_replace(live: AlpacaOrder, *, already_filled: Decimal, quantity: Decimal | None,
                      limit_price: Decimal | None, stop_price: Decimal | None,
                      trailing_distance: Decimal | None) -> dict[str, Any]:
    """``PATCH /v2/orders/{id}`` body. The replacement is a fresh order, so ``qty`` is what is still to trade:
    our new total minus everything filled along the replace chain. It is sent whenever something has filled,
    because Alpaca otherwise re-uses the original qty (Alpaca-API#165)."""
    body: dict[str, Any] = {}
    if quantity is not None or already_filled > 0:
        total = quantity if quantity is not None else already_filled - live.filled_quantity + live.quantity
        remaining = total - already_filled
        if remaining <= 0:
            raise InvalidValue("quantity", "must exceed the quantity already filled",
                               provided=total, filled=format_decimal(already_filled))
        body["qty"] = format_decimal(remaining)
    if limit_price is not None:
        body["limit_price"] = format_decimal(limit_price)
    if stop_price is not None:
        body["stop_price"] = format_decimal(stop_price)
    if trailing_distance is not None:
        body["trail"] = format_decimal(trailing_distance)
    return body


def is_same_order(order: AlpacaOrder, body: dict[str, Any]) -> bool:
    """Is ``order`` (found under our client id) the one ``body`` asked for? Tells our own earlier
    attempt from a foreign order after a duplicate-id refusal."""
    return (order.symbol.replace("/", "") == body["symbol"].replace("/", "") and order.side.value.lower() ==
            body["side"] and order.quantity == Decimal(body["qty"]))


# -- market data -------------------------------------------------------------------------------------
def parse_alpaca_quote(symbol: str, raw: dict[str, Any]) -> Quote:
    """A latest quote ``{"t", "bp", "bs", "ap", "as", ...}``. Alpaca's quote has no last trade: ``last`` is the
    mid (or the one side quoted) and ``volume`` is 0."""
    try:
        bid, ask = parse_alpaca_decimal(raw["bp"]), parse_alpaca_decimal(raw["ap"])
        bid_size, ask_size = parse_alpaca_decimal(raw.get("bs")), parse_alpaca_decimal(raw.get("as"))
        timestamp = parse_alpaca_time(raw["t"])
    except (KeyError, TypeError):
        raise ProviderError(f"Alpaca sent an incomplete quote for {symbol}", provider=PROVIDER) from None
    last = (bid + ask) / 2 if bid > 0 and ask > 0 else max(bid, ask)
    return Quote(symbol=symbol, provider=PROVIDER, bid=bid, ask=ask, last=last, bid_size=bid_size or ZERO,
                 ask_size=ask_size or ZERO, volume=ZERO, timestamp=timestamp)


def parse_alpaca_bar(symbol: str, timeframe: str, raw: dict[str, Any]) -> Bar:
    dec = parse_alpaca_decimal
    try:
        return Bar(symbol=symbol, provider=PROVIDER, timeframe=timeframe, timestamp=parse_alpaca_time(raw["t"]),
                   open=dec(raw["o"]), high=dec(raw["h"]), low=dec(raw["l"]), close=dec(raw["c"]),
                   volume=dec(raw.get("v")) or ZERO)
    except (KeyError, TypeError):
        raise ProviderError(f"Alpaca sent an incomplete bar for {symbol}", provider=PROVIDER) from None


def to_alpaca_timeframe(seconds: int) -> str:
    """Bar size in seconds -> Alpaca's ``timeframe``: ``[1-59]Min``, ``[1-23]Hour``, ``1Day``, ``1Week``."""
    if seconds == 604800:
        return "1Week"
    if seconds == 86400:
        return "1Day"
    if seconds % 3600 == 0 and 1 <= seconds // 3600 <= 23:
        return f"{seconds // 3600}Hour"
    if seconds % 60 == 0 and 1 <= seconds // 60 <= 59:
        return f"{seconds // 60}Min"
    raise InvalidValue("timeframe", "Alpaca has no bars of this size", provided=seconds)


def parse_alpaca_asset(symbol: str, raw: dict[str, Any]) -> Instrument:
    """An ``Assets`` object -> Instrument. Equities: cent ticks, whole shares unless ``fractionable``.
    Crypto: ``price_increment`` / ``min_trade_increment`` / ``min_order_size`` when Alpaca sends them
    (they are not in the published schema), else 9-decimal grids. ``margin_rate`` is 1 (fully funded:
    the desk does not model Alpaca's margin) and ``base_price`` is 0 (only the paper venue uses it)."""
    dec = parse_alpaca_decimal
    crypto = raw.get("class") == "crypto"
    nano = Decimal("0.000000001")
    if crypto:
        tick, step = dec(raw.get("price_increment")) or nano, dec(raw.get("min_trade_increment")) or nano
        minimum = dec(raw.get("min_order_size")) or step
    else:
        tick, step = Decimal("0.01"), nano if raw.get("fractionable") else Decimal("1")
        minimum = step
    tradeable = bool(raw.get("tradable")) and raw.get("status", "active") == "active"
    return Instrument(symbol=symbol, asset_class=AssetClass.CRYPTO if crypto else AssetClass.STOCK,
                      tick_size=tick, quantity_step=step, min_quantity=minimum, base_price=ZERO,
                      min_notional=Decimal("1") if not crypto and raw.get("fractionable") else ZERO,
                      can_short=bool(raw.get("shortable")) and not crypto,
                      session="always" if crypto else "exchange", halted=not tradeable)
