"""Binance Spot ⇄ desk: pure mapping functions that name their direction.

``parse_binance_*()`` turns what the venue sends into our types; ``to_binance_*()`` turns ours into
request parameters. Nothing here does I/O, so every function is tested on recorded payloads.

Sources: binance-spot-api-docs ``rest-api.md``, ``errors.md``, ``enums.md``, ``user-data-stream.md``
and the saved ``spot_api.yaml`` (see shared/reference/brokers/NOTES.md §3).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Any
from urllib.parse import urlencode

from orders.brokers.types import Bar, BrokerAck, ExecutionReport, OrderTicket, Quote, ReportKind
from orders.domain.enums import OrderStatus, OrderType, RejectReason, Side, TimeInForce
from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    InvalidValue,
    OrderNotFound,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
    Unsupported,
)
from orders.domain.money import ZERO, format_decimal, to_decimal

log = logging.getLogger(__name__)

PROVIDER = "binance_spot"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CLIENT_ORDER_ID = 36          # newClientOrderId / listClientOrderId: ^[\.A-Z\:/a-z0-9_-]{1,36}$


# -- scalars ---------------------------------------------------------------------------------------------

def ms_to_datetime(ms: int | Decimal) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


def datetime_to_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def parse_binance_decimal(value: Any, *, name: str = "value") -> Decimal:
    """Binance sends prices and quantities as strings; anything else is a venue bug, not ours."""
    try:
        return to_decimal(value if isinstance(value, Decimal | str) else str(value))
    except ValueError:
        raise ProviderError(f"{PROVIDER} sent a {name} that is not a number: {value!r}", provider=PROVIDER) from None


def _wire(value: object) -> str:
    if isinstance(value, Decimal):
        return format_decimal(value)          # plain notation: never 1E-5
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


# -- signing ---------------------------------------------------------------------------------------------

def to_binance_query(params: Iterable[tuple[str, object]]) -> str:
    """The query string exactly as sent and signed (order kept, ``None`` dropped, decimals plain)."""
    return urlencode([(key, _wire(value)) for key, value in params if value is not None])


def binance_signature(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of the query string (+ body) with the API secret (rest-api.md "SIGNED endpoints")."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def to_binance_ws_subscribe(*, api_key: str, secret: str, timestamp: int, recv_window: int,
                            request_id: str) -> dict:
    """The WebSocket API request ``userDataStream.subscribe.signature``: params signed in alphabetical order."""
    params: dict[str, object] = {"apiKey": api_key, "recvWindow": recv_window, "timestamp": timestamp}
    payload = "&".join(f"{key}={_wire(params[key])}" for key in sorted(params))
    return {"id": request_id, "method": "userDataStream.subscribe.signature",
            "params": {**params, "signature": binance_signature(secret, payload)}}


# -- errors ----------------------------------------------------------------------------------------------

@dataclass
class BinanceApiError(Exception):
    """A non-2xx answer: HTTP status plus Binance's ``{"code", "msg"}``."""
    status: int
    code: int | None
    msg: str
    retry_after: float | None = None
    headers: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.msg}"

    @property
    def is_duplicate(self) -> bool:
        return self.code == -2010 and "duplicate order" in self.msg.lower()

    @property
    def unknown_outcome(self) -> bool:
        """5xx, -1006, -1007: "execution status unknown" — the order may exist; look before resending."""
        return self.status >= 500 or self.code in (-1006, -1007)

    @property
    def order_missing(self) -> bool:
        return self.code == -2013 or (self.code == -2011 and "unknown order" in self.msg.lower())


class ErrorContext(StrEnum):
    ORDER = "order"          # placing an order: every 4xx is a definite rejection
    LOOKUP = "lookup"        # query / cancel of a known order
    MARKET = "market"        # quotes, bars, symbol rules


_AUTH_CODES = frozenset({-1002, -1022, -2014, -2015})
_UNAVAILABLE_CODES = frozenset({-1001, -1006, -1007, -1008, -1016})
_RATE_CODES = frozenset({-1003, -1015})
_OCO_PRICE_CODES = frozenset({-1165, -1166, -1196, -1197, -1198, -1199})
_FILTER_REASONS = {
    "PRICE_FILTER": RejectReason.INVALID_PRICE,
    "PERCENT_PRICE": RejectReason.INVALID_PRICE,
    "PERCENT_PRICE_BY_SIDE": RejectReason.INVALID_PRICE,
    "TRAILING_DELTA": RejectReason.INVALID_PRICE,
    "LOT_SIZE": RejectReason.INVALID_QUANTITY,
    "MARKET_LOT_SIZE": RejectReason.INVALID_QUANTITY,
    "MIN_NOTIONAL": RejectReason.INVALID_QUANTITY,
    "NOTIONAL": RejectReason.INVALID_QUANTITY,
    "ICEBERG_PARTS": RejectReason.INVALID_QUANTITY,
    "MAX_POSITION": RejectReason.INVALID_QUANTITY,
}
# messages of -1010 / -2010 / -2011 (errors.md "Messages for -1010, -2010 and -2011"), matched lower-case
_MESSAGE_REASONS = (
    ("insufficient balance", RejectReason.INSUFFICIENT_BALANCE),
    ("market is closed", RejectReason.MARKET_CLOSED),
    ("would immediately match and take", RejectReason.POST_ONLY_VIOLATED),
    ("would trigger immediately", RejectReason.INVALID_PRICE),
    ("relationship of the prices", RejectReason.INVALID_PRICE),
    ("price * qty is zero or less", RejectReason.INVALID_QUANTITY),
    ("icebergqty exceeds qty", RejectReason.INVALID_QUANTITY),
    ("not permitted for this account", RejectReason.SYMBOL_NOT_TRADEABLE),
    ("restricted for this account", RejectReason.SYMBOL_NOT_TRADEABLE),
)
_FILTER = re.compile(r"Filter failure: ([A-Z_]+)")
_BANNED_UNTIL = re.compile(r"banned until (\d{13})")


def binance_ban_until_ms(error: BinanceApiError) -> int | None:
    """The end of an IP ban from a 418 message ("IP banned until 1700000000000"), when it says."""
    match = _BANNED_UNTIL.search(error.msg)
    return int(match.group(1)) if match else None


def parse_binance_error(error: BinanceApiError, *, context: ErrorContext, symbol: str | None = None,
                        order_id: str | None = None) -> DeskError:
    """Binance's answer → our error (NOTES §3.9, errors.md)."""
    code, msg, status = error.code, error.msg, error.status
    if status in (418, 429) or code in _RATE_CODES:
        wait = int(error.retry_after) if error.retry_after is not None else None
        return RateLimited(retry_after_seconds=wait, reset_at=None, provider=PROVIDER, code=code,
                           banned=status == 418)
    if code in _AUTH_CODES or status == 401:
        return Unauthorized(f"{PROVIDER} refused the API key or signature ({code}: {msg})",
                            detail_code=str(code if code is not None else status))
    if code in _UNAVAILABLE_CODES or status == 503:
        return ProviderUnavailable(f"{PROVIDER}: {msg or f'HTTP {status}'}")
    if status >= 500:
        return ProviderError(f"HTTP {status}: {msg}", provider=PROVIDER)
    if code == -1121:
        if context is ErrorContext.ORDER:
            return OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE, f"Order rejected: {symbol} is not a Binance "
                                 "spot symbol", symbol=symbol, code=code, msg=msg)
        return SymbolNotFound(symbol or "?")
    if error.order_missing or code == -2026:
        return OrderNotFound(order_id or "?")
    if code == -1020:
        return Unsupported(msg.rstrip("."), PROVIDER)
    if code == -1021:
        return ProviderError("the request timestamp stayed outside recvWindow after resynchronising the clock",
                             provider=PROVIDER)
    reason = _rejection_reason(code, msg)
    if reason is not None or context is ErrorContext.ORDER:
        reason = reason or "ORDER_REJECTED"
        details: dict[str, Any] = {"code": code, "msg": msg}
        if (found := _FILTER.search(msg)) is not None:
            details["filter"] = found.group(1)
        return OrderRejected(reason, f"Order rejected: {msg}", **details)
    return ProviderError(f"{code}: {msg}", provider=PROVIDER)


def _rejection_reason(code: int | None, msg: str) -> str | None:
    lower = msg.lower()
    if code == -1013 and (found := _FILTER.search(msg)):
        return _FILTER_REASONS.get(found.group(1), "ORDER_REJECTED")
    if code in (-1010, -2010, -2011):
        for needle, reason in _MESSAGE_REASONS:
            if needle in lower:
                return reason
    if code in _OCO_PRICE_CODES:
        return RejectReason.INVALID_PRICE
    if code == -1111:
        return RejectReason.INVALID_PRICE if "price" in lower else RejectReason.INVALID_QUANTITY
    return None


# -- order status ----------------------------------------------------------------------------------------

_STATUS = {
    "PENDING_NEW": OrderStatus.PENDING,
    "NEW": OrderStatus.OPEN,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELLED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,     # self-trade prevention
}


def parse_binance_status(status: str, *, executed: Decimal = ZERO) -> OrderStatus:
    """Binance order status → ours. ``PENDING_CANCEL`` ("currently unused") and statuses we do not know keep
    the order working rather than crash (NOTES §0.4)."""
    mapped = _STATUS.get(status)
    if mapped is None:
        if status != "PENDING_CANCEL":
            log.warning("%s: unknown order status %r treated as working", PROVIDER, status)
        return OrderStatus.PARTIALLY_FILLED if executed > 0 else OrderStatus.OPEN
    if mapped is OrderStatus.OPEN and executed > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def parse_binance_ending(status: str, *, order_list_id: int = -1,
                         expiry_reason: str | None = None) -> tuple[ReportKind, str] | None:
    """The terminal report an order status calls for, or ``None`` while it works (or when it FILLED: fills
    say that). An OCO leg its sibling killed ends EXPIRED with ``expiryReason`` OCO_TRIGGER; older answers
    carry no reason, so an expired leg of an order list counts as cancelled by its sibling (NOTES §3.5)."""
    if status == "CANCELED":
        return ReportKind.CANCELLED, "cancelled at the venue"
    if status == "REJECTED":
        return ReportKind.REJECTED, "rejected by the venue"
    if status in ("EXPIRED", "EXPIRED_IN_MATCH"):
        if expiry_reason == "OCO_TRIGGER" or (expiry_reason is None and order_list_id != -1):
            return ReportKind.CANCELLED, "OCO sibling filled"
        if status == "EXPIRED_IN_MATCH":
            return ReportKind.EXPIRED, "expired by self-trade prevention"
        return ReportKind.EXPIRED, f"expired at the venue ({expiry_reason or 'time in force'})"
    return None


def parse_binance_ack(body: dict) -> BrokerAck:
    """The answer to a new order. It never claims a fill: fills and terminal states reach the desk through
    ``sync`` as reports, which is what records trades, positions and exits."""
    status = OrderStatus.PENDING if body.get("status") == "PENDING_NEW" else OrderStatus.OPEN
    if body.get("status") == "REJECTED":
        raise OrderRejected("ORDER_REJECTED", "Order rejected by the venue", code=None, msg="REJECTED")
    return BrokerAck(broker_order_id=str(body["orderId"]), status=status)


# -- orders ----------------------------------------------------------------------------------------------

_TIME_IN_FORCE = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK"}


def to_binance_time_in_force(tif: TimeInForce) -> str:
    try:
        return _TIME_IN_FORCE[tif]
    except KeyError:
        raise InvalidValue("time_in_force", "Binance spot accepts GTC, IOC or FOK", provided=tif) from None


def to_binance_order_type(order_type: OrderType, *, post_only: bool = False) -> str:
    if order_type is OrderType.MARKET:
        return "MARKET"
    if order_type is OrderType.LIMIT:
        return "LIMIT_MAKER" if post_only else "LIMIT"
    if order_type is OrderType.STOP:
        return "STOP_LOSS"                       # executes as MARKET once the stop price trades
    if order_type is OrderType.STOP_LIMIT:
        return "STOP_LOSS_LIMIT"
    raise Unsupported(f"{order_type} orders", PROVIDER)


def to_binance_client_order_id(order_id: str) -> str:
    if not 1 <= len(order_id) <= MAX_CLIENT_ORDER_ID:
        raise InvalidValue("client_order_id", f"Binance client order ids have at most {MAX_CLIENT_ORDER_ID} "
                           "characters", provided=order_id)
    return order_id


def to_binance_order(ticket: OrderTicket) -> list[tuple[str, object]]:
    """``POST /api/v3/order`` parameters; ``newClientOrderId`` is our order id, so the order can always be
    found again by ``origClientOrderId`` (the venue's own id may never have reached us)."""
    kind = to_binance_order_type(ticket.order_type, post_only=ticket.post_only)
    params: list[tuple[str, object]] = [("symbol", ticket.symbol), ("side", ticket.side.value), ("type", kind)]
    if kind in ("LIMIT", "STOP_LOSS_LIMIT"):
        params.append(("timeInForce", to_binance_time_in_force(ticket.time_in_force)))
    params.append(("quantity", ticket.quantity))
    if kind in ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT"):
        params.append(("price", _required(ticket.limit_price, "limit_price", kind)))
    if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
        params.append(("stopPrice", _required(ticket.stop_price, "stop_price", kind)))
    params += [("newClientOrderId", to_binance_client_order_id(ticket.order_id)), ("newOrderRespType", "RESULT")]
    return params


def _required(value: Decimal | None, name: str, kind: str) -> Decimal:
    if value is None:
        raise InvalidRequest(f"a Binance {kind} order needs {name}", field=name)
    return value


def binance_list_client_order_id(tickets: Sequence[OrderTicket]) -> str:
    """A stable ``listClientOrderId`` for an OCO pair (36 characters), so a retry can look the list up."""
    digest = hashlib.sha256("|".join(sorted(t.order_id for t in tickets)).encode()).hexdigest()
    return f"oco-{digest[:32]}"


def split_oco_pair(tickets: Sequence[OrderTicket]) -> tuple[OrderTicket, OrderTicket]:
    """(stop-loss, take-profit) of an exit pair, or InvalidRequest when it is not one Binance can link."""
    stops = [t for t in tickets if t.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)]
    limits = [t for t in tickets if t.order_type is OrderType.LIMIT]
    if len(tickets) != 2 or len(stops) != 1 or len(limits) != 1:
        raise InvalidRequest("a Binance OCO is one STOP or STOP_LIMIT order and one LIMIT order")
    stop, take = stops[0], limits[0]
    if (stop.symbol, stop.side, stop.quantity) != (take.symbol, take.side, take.quantity):
        raise InvalidRequest("both orders of a Binance OCO need the same symbol, side and quantity")
    return stop, take


def to_binance_oco(tickets: Sequence[OrderTicket], *, list_client_order_id: str) -> list[tuple[str, object]]:
    """``POST /api/v3/orderList/oco`` for an exit pair. The take-profit is a LIMIT_MAKER, the stop-loss a
    STOP_LOSS (STOP_LOSS_LIMIT when it has a limit price). Closing a long (SELL) puts the take-profit above
    the market and the stop below; closing a short (BUY) the other way round (NOTES §3.6, pitfall 7)."""
    stop, take = split_oco_pair(tickets)
    stop_type = "STOP_LOSS_LIMIT" if stop.order_type is OrderType.STOP_LIMIT else "STOP_LOSS"
    stop_leg: list[tuple[str, object]] = [("Type", stop_type), ("ClientOrderId", to_binance_client_order_id(
        stop.order_id))]
    if stop_type == "STOP_LOSS_LIMIT":
        stop_leg += [("Price", _required(stop.limit_price, "limit_price", stop_type)),
                     ("TimeInForce", to_binance_time_in_force(stop.time_in_force))]
    stop_leg.append(("StopPrice", _required(stop.stop_price, "stop_price", stop_type)))
    take_leg: list[tuple[str, object]] = [("Type", "LIMIT_MAKER"),
                                          ("ClientOrderId", to_binance_client_order_id(take.order_id)),
                                          ("Price", _required(take.limit_price, "limit_price", "LIMIT_MAKER"))]
    above, below = (take_leg, stop_leg) if stop.side is Side.SELL else (stop_leg, take_leg)
    return [("symbol", stop.symbol), ("listClientOrderId", list_client_order_id), ("side", stop.side.value),
            ("quantity", stop.quantity),
            *((f"above{key}", value) for key, value in above),
            *((f"below{key}", value) for key, value in below),
            ("newOrderRespType", "RESULT")]


def parse_binance_oco_acks(body: dict, tickets: Sequence[OrderTicket]) -> list[BrokerAck]:
    """One ack per ticket, in the tickets' order, matched by client order id (= our order id)."""
    ids = {o["clientOrderId"]: str(o["orderId"]) for o in body.get("orders", [])}
    reports = {r["clientOrderId"]: r for r in body.get("orderReports", [])}
    acks = []
    for ticket in tickets:
        if ticket.order_id not in ids:
            raise ProviderError(f"the OCO answer has no order {ticket.order_id}", provider=PROVIDER)
        report = reports.get(ticket.order_id, {})
        acks.append(parse_binance_ack({"orderId": ids[ticket.order_id], "status": report.get("status", "NEW")}))
    return acks


# -- market data -----------------------------------------------------------------------------------------

def parse_binance_quote(body: dict, *, now: datetime) -> Quote:
    """``/api/v3/ticker/bookTicker`` has no last trade and no time: ``last`` is the mid, stamped ``now``."""
    bid = parse_binance_decimal(body["bidPrice"], name="bidPrice")
    ask = parse_binance_decimal(body["askPrice"], name="askPrice")
    return Quote(symbol=body["symbol"], provider=PROVIDER, bid=bid, ask=ask, last=(bid + ask) / 2,
                 bid_size=parse_binance_decimal(body["bidQty"], name="bidQty"),
                 ask_size=parse_binance_decimal(body["askQty"], name="askQty"), volume=ZERO, timestamp=now)


_INTERVALS = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1h": "1h", "2h": "2h", "4h": "4h",
              "6h": "6h", "8h": "8h", "12h": "12h", "1d": "1d", "3d": "3d", "1w": "1w"}
# our timeframes Binance has no interval for: built from a finer one
_COMPOSED = {"2m": ("1m", 2), "10m": ("5m", 2)}


def to_binance_interval(timeframe: str) -> tuple[str, int]:
    """(Binance interval, how many of its bars make one of ours)."""
    if timeframe in _INTERVALS:
        return _INTERVALS[timeframe], 1
    if timeframe in _COMPOSED:
        return _COMPOSED[timeframe]
    raise InvalidValue("timeframe", f"Binance has no {timeframe} bars", provided=timeframe)


def parse_binance_klines(rows: Iterable[Sequence[Any]], *, symbol: str, timeframe: str) -> list[Bar]:
    """Kline rows ``[openTime, open, high, low, close, volume, closeTime, …]`` → bars, oldest first."""
    bars = [Bar(symbol=symbol, provider=PROVIDER, timeframe=timeframe, timestamp=ms_to_datetime(row[0]),
                open=parse_binance_decimal(row[1], name="open"), high=parse_binance_decimal(row[2], name="high"),
                low=parse_binance_decimal(row[3], name="low"), close=parse_binance_decimal(row[4], name="close"),
                volume=parse_binance_decimal(row[5], name="volume")) for row in rows]
    return sorted(bars, key=lambda b: b.timestamp)


def combine_bars(bars: Sequence[Bar], *, seconds: int, timeframe: str) -> list[Bar]:
    """Finer bars → bars of ``seconds`` (aligned to the epoch), oldest first."""
    groups: dict[datetime, list[Bar]] = {}
    for bar in bars:
        start = ms_to_datetime(datetime_to_ms(bar.timestamp) // (seconds * 1000) * seconds * 1000)
        groups.setdefault(start, []).append(bar)
    return [Bar(symbol=group[0].symbol, provider=PROVIDER, timeframe=timeframe, timestamp=start,
                open=group[0].open, high=max(b.high for b in group), low=min(b.low for b in group),
                close=group[-1].close, volume=sum((b.volume for b in group), ZERO))
            for start, group in sorted(groups.items())]


# -- executions ------------------------------------------------------------------------------------------

def binance_fill_id(symbol: str, trade_id: int | str) -> str:
    """Trade ids are unique per symbol only, so the symbol is part of the fill id."""
    return f"{symbol}:{trade_id}"


def parse_binance_trade(trade: dict, *, order_id: str) -> ExecutionReport:
    """One ``/api/v3/myTrades`` row → a FILL report."""
    return ExecutionReport(
        order_id=order_id, kind=ReportKind.FILL, timestamp=ms_to_datetime(trade["time"]),
        fill_id=binance_fill_id(trade["symbol"], trade["id"]),
        quantity=parse_binance_decimal(trade["qty"], name="qty"),
        price=parse_binance_decimal(trade["price"], name="price"),
        commission=parse_binance_decimal(trade["commission"], name="commission"),
        commission_currency=trade.get("commissionAsset") or "", is_maker=bool(trade.get("isMaker")),
        extra={"venue_order_id": str(trade["orderId"])})


def parse_binance_execution_report(frame: dict) -> list[ExecutionReport]:
    """A user-data ``executionReport`` (bare, or wrapped as ``{"subscriptionId", "event"}`` by the WebSocket
    API) → our reports: TRADE → FILL; CANCELED / EXPIRED / REJECTED → the terminal report; NEW → none."""
    event = frame.get("event", frame)
    if event.get("e") != "executionReport":
        return []
    kind, status = event["x"], event["X"]
    # on a cancel "c" is the cancel request's own id and "C" the order's
    order_id = (event.get("C") or event["c"]) if kind == "CANCELED" else event["c"]
    at = ms_to_datetime(event["T"])
    reports = []
    if kind == "TRADE":
        reports.append(ExecutionReport(
            order_id=order_id, kind=ReportKind.FILL, timestamp=at, fill_id=binance_fill_id(event["s"], event["t"]),
            quantity=parse_binance_decimal(event["l"], name="l"), price=parse_binance_decimal(event["L"], name="L"),
            commission=parse_binance_decimal(event.get("n") or "0", name="n"),
            commission_currency=event.get("N") or "", is_maker=bool(event.get("m")),
            extra={"venue_order_id": str(event["i"])}))
    ending = parse_binance_ending(status, order_list_id=int(event.get("g", -1)), expiry_reason=event.get("eR"))
    if ending is not None and kind in ("CANCELED", "EXPIRED", "REJECTED", "TRADE_PREVENTION"):
        report_kind, reason = ending
        if kind == "REJECTED" and event.get("r") not in (None, "NONE"):
            reason = f"rejected by the venue: {event['r']}"
        reports.append(ExecutionReport(order_id=order_id, kind=report_kind, timestamp=at, reason=reason))
    return reports
