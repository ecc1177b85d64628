"""Kraken Spot wire format: signing, nonces, client ids, the error and status tables, and the mapping
functions that name their direction (``parse_kraken_*`` from Kraken, ``to_kraken_*`` to Kraken), the account's
(balances, trade balance, holdings, open orders) included.
Pure: no HTTP, no Django. The tables are documented in ``orders/brokers/kraken/__init__.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from orders.brokers.types import (
    Bar,
    ExecutionReport,
    Instrument,
    OrderTicket,
    Quote,
    ReportKind,
    VenueAccount,
    VenueOrder,
)
from orders.domain.enums import (
    AssetClass,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    TimeInForce,
    TrailingType,
)
from orders.domain.errors import (
    DeskError,
    InvalidRequest,
    OrderNotFound,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unauthorized,
    Unsupported,
)
from orders.domain.money import ZERO, format_decimal
from orders.domain.redact import redact_text

log = logging.getLogger(__name__)

PROVIDER = "kraken"
OHLC_MINUTES = frozenset({1, 5, 15, 30, 60, 240, 1440, 10080, 21600})

_REJECT, _INVALID, _SYMBOL, _NOT_FOUND, _RATE, _AUTH, _UNAVAILABLE, _UNKNOWN = (
    "reject", "invalid", "symbol", "not_found", "rate", "auth", "unavailable", "unknown")
# (prefix, kind, reject reason or auth detail code): first match wins, so specific prefixes come first
KRAKEN_ERRORS: tuple[tuple[str, str, str | None], ...] = (
    ("EOrder:Insufficient funds", _REJECT, RejectReason.INSUFFICIENT_BALANCE),
    ("EOrder:Margin allowance exceeded", _REJECT, RejectReason.INSUFFICIENT_MARGIN),
    ("EOrder:Order minimum not met", _REJECT, RejectReason.INVALID_QUANTITY),
    ("EOrder:Invalid price", _REJECT, RejectReason.INVALID_PRICE),
    ("EGeneral:Invalid arguments:price", _REJECT, RejectReason.INVALID_PRICE),        # price and price2
    ("EGeneral:Invalid arguments:limit_price", _REJECT, RejectReason.INVALID_PRICE),
    ("EGeneral:Invalid arguments:trigger_price", _REJECT, RejectReason.INVALID_PRICE),
    ("EGeneral:Invalid arguments:volume", _REJECT, RejectReason.INVALID_QUANTITY),
    ("EGeneral:Invalid arguments:order_qty", _REJECT, RejectReason.INVALID_QUANTITY),
    ("EGeneral:Invalid arguments", _INVALID, None),
    ("EQuery:Unknown asset pair", _SYMBOL, RejectReason.SYMBOL_NOT_TRADEABLE),
    ("EOrder:Unknown order", _NOT_FOUND, None),
    ("EOrder:Orders limit exceeded", _RATE, None),
    ("EOrder:Rate limit exceeded", _RATE, None),
    ("EAPI:Rate limit exceeded", _RATE, None),
    ("EService:Throttled", _RATE, None),
    ("EAPI:Invalid key", _AUTH, "KRAKEN_INVALID_KEY"),
    ("EAPI:Invalid signature", _AUTH, "KRAKEN_INVALID_SIGNATURE"),
    ("EAPI:Invalid nonce", _AUTH, "KRAKEN_INVALID_NONCE"),
    ("EGeneral:Permission denied", _AUTH, "KRAKEN_PERMISSION_DENIED"),
    ("EGeneral:Temporary lockout", _UNAVAILABLE, None),
    ("EService:Unavailable", _UNAVAILABLE, None),
    ("EService:Busy", _UNAVAILABLE, None),
    ("EService:", _UNAVAILABLE, None),
    ("EGeneral:Internal error", _UNKNOWN, None),      # outcome unknown: never read as a rejection
)

KRAKEN_STATUSES = {"pending": OrderStatus.PENDING, "open": OrderStatus.OPEN, "closed": OrderStatus.FILLED,
                   "canceled": OrderStatus.CANCELLED, "expired": OrderStatus.EXPIRED}
_ORDER_TYPES = {OrderType.MARKET: "market", OrderType.LIMIT: "limit", OrderType.STOP: "stop-loss",
                OrderType.STOP_LIMIT: "stop-loss-limit", OrderType.TRAILING_STOP: "trailing-stop"}
_LEGACY_ASSETS = {"XXBT": "XBT", "XETH": "ETH", "XLTC": "LTC", "XXRP": "XRP", "XXLM": "XLM", "XXMR": "XMR",
                  "XZEC": "ZEC", "XETC": "ETC", "XMLN": "MLN", "XREP": "REP", "XXDG": "XDG", "ZUSD": "USD",
                  "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY", "ZAUD": "AUD", "ZCHF": "CHF"}
_KRAKEN_CODES = {**{name: code for code, name in _LEGACY_ASSETS.items()}, "BTC": "XXBT", "DOGE": "XXDG"}
# Kraken's order types as the desk's: a take-profit is a sell (buy) that waits for a better price, as a limit
# does; iceberg, settle-position and the *-limit trailing stop have no closer counterpart
_DESK_ORDER_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "iceberg": OrderType.LIMIT,
                     "stop-loss": OrderType.STOP, "stop-loss-limit": OrderType.STOP_LIMIT,
                     "take-profit": OrderType.LIMIT, "take-profit-limit": OrderType.LIMIT,
                     "trailing-stop": OrderType.TRAILING_STOP, "trailing-stop-limit": OrderType.TRAILING_STOP,
                     "settle-position": OrderType.MARKET}


# -- signing -----------------------------------------------------------------------------------------------

def kraken_signature(*, path: str, nonce: int | str, postdata: str, secret: str) -> str:
    """``API-Sign``: base64(HMAC-SHA512(path + SHA256(nonce + postdata), base64decode(secret)))."""
    digest = hashlib.sha256((str(nonce) + postdata).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class NonceSource:
    """Strictly increasing nonces: milliseconds since the epoch, or the last nonce + 1 if that is larger."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock, self._last, self._lock = clock, 0, threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(int(self._clock() * 1000), self._last + 1)
            return self._last


def kraken_client_id(order_id: str) -> str:
    """Our order id as Kraken's ``cl_ord_id``: a UUID as is, short text as is, anything else as a stable UUID."""
    try:
        return str(uuid.UUID(order_id))
    except ValueError:
        if len(order_id) <= 18 and order_id.isascii() and order_id.isprintable():
            return order_id
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tradingdesk:{order_id}"))


# -- mapping: Kraken -> desk -----------------------------------------------------------------------------------

def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else ZERO


def _at(seconds: Any) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def parse_kraken_error(text: str, *, placing: bool = False, symbol: str | None = None,
                       order_id: str | None = None, now: float | None = None) -> DeskError:
    """The desk error for one Kraken error string (table in the module docstring)."""
    safe = redact_text(str(text))[:200]
    kind, extra = next(((k, x) for prefix, k, x in KRAKEN_ERRORS if safe.startswith(prefix)), (None, None))
    if kind is None and placing and safe.startswith(("EOrder:", "EGeneral:", "ETrade:")):
        kind, extra = _REJECT, "ORDER_REJECTED"
    if kind == _INVALID and placing:
        kind, extra = _REJECT, "ORDER_REJECTED"
    if kind == _SYMBOL and placing:
        kind = _REJECT
    if kind == _REJECT:
        return OrderRejected(str(extra), f"Order rejected: {safe}", kraken_error=safe)
    if kind == _INVALID:
        return InvalidRequest(f"{PROVIDER}: {safe}")
    if kind == _SYMBOL:
        return SymbolNotFound(symbol or "")
    if kind == _NOT_FOUND:
        return OrderNotFound(order_id or "")
    if kind == _RATE:
        return RateLimited(retry_after_seconds=_throttled_for(safe, now), reset_at=None, provider=PROVIDER,
                           kraken_error=safe)
    if kind == _AUTH:
        return Unauthorized(f"{PROVIDER} refused the request ({safe})", detail_code=str(extra))
    if kind == _UNAVAILABLE:
        return ProviderUnavailable(f"{PROVIDER}: {safe}")
    return ProviderError(safe, provider=PROVIDER)


def _throttled_for(text: str, now: float | None) -> int | None:
    if not text.startswith("EService:Throttled:") or now is None:
        return None
    try:
        return max(1, int(Decimal(text.rsplit(":", 1)[1].strip()) - Decimal(str(now))))
    except ArithmeticError:
        return None


def parse_kraken_status(status: str, *, volume: Decimal, executed: Decimal) -> OrderStatus:
    mapped = KRAKEN_STATUSES.get(status)
    if mapped is None:
        log.warning("kraken: unknown order status %r treated as open", status)
        mapped = OrderStatus.OPEN
    if mapped is OrderStatus.OPEN and executed > 0:
        return OrderStatus.PARTIALLY_FILLED
    if mapped is OrderStatus.FILLED and executed < volume:
        return OrderStatus.CANCELLED           # closed with a remainder (IOC): what traded stays traded
    return mapped


@dataclass(frozen=True)
class KrakenOrder:
    txid: str
    cl_ord_id: str | None
    status: str
    volume: Decimal
    executed: Decimal
    opened_at: Decimal
    closed_at: datetime | None
    reason: str | None
    trade_ids: tuple[str, ...]


def parse_kraken_order(txid: str, raw: dict) -> KrakenOrder:
    return KrakenOrder(txid=txid, cl_ord_id=raw.get("cl_ord_id") or None, status=str(raw.get("status", "")),
                       volume=_dec(raw.get("vol")), executed=_dec(raw.get("vol_exec")),
                       opened_at=_dec(raw.get("opentm")), closed_at=_at(raw["closetm"]) if raw.get("closetm") else None,
                       reason=raw.get("reason") or None, trade_ids=tuple(raw.get("trades") or ()))


def parse_kraken_fill(trade_id: str, raw: dict, *, order_id: str, commission_currency: str) -> ExecutionReport:
    return ExecutionReport(order_id=order_id, kind=ReportKind.FILL, timestamp=_at(raw["time"]), fill_id=trade_id,
                           quantity=_dec(raw["vol"]), price=_dec(raw["price"]), commission=_dec(raw.get("fee")),
                           commission_currency=commission_currency, is_maker=bool(raw.get("maker", False)),
                           extra={"kraken_txid": raw.get("ordertxid"), "kraken_trade_id": raw.get("trade_id")})


def parse_kraken_pair(symbol: str, raw: dict) -> Instrument:
    lot_step = Decimal(1).scaleb(-int(raw.get("lot_decimals", 8)))
    tick = _dec(raw["tick_size"]) if raw.get("tick_size") else Decimal(1).scaleb(-int(raw.get("pair_decimals", 8)))
    fees = raw.get("fees") or []
    quote = str(raw.get("wsname") or "").rpartition("/")[2] or "USD"
    return Instrument(symbol=symbol, asset_class=AssetClass.CRYPTO, tick_size=tick, quantity_step=lot_step,
                      min_quantity=_dec(raw.get("ordermin")) or lot_step, base_price=ZERO, quote_currency=quote,
                      min_notional=_dec(raw.get("costmin")), can_short=False,
                      commission_bps=_dec(fees[0][1]) * 100 if fees else ZERO, price_band_pct=Decimal("100"),
                      halted=raw.get("status", "online") != "online")


def parse_kraken_ticker(symbol: str, raw: dict, *, now: datetime) -> Quote:
    return Quote(symbol=symbol, provider=PROVIDER, bid=_dec(raw["b"][0]), ask=_dec(raw["a"][0]),
                 last=_dec(raw["c"][0]), bid_size=_dec(raw["b"][2]), ask_size=_dec(raw["a"][2]),
                 volume=_dec(raw["v"][1]), timestamp=now)


def parse_kraken_bar(symbol: str, row: Sequence, *, timeframe: str) -> Bar:
    return Bar(symbol=symbol, provider=PROVIDER, timeframe=timeframe, timestamp=_at(row[0]), open=_dec(row[1]),
               high=_dec(row[2]), low=_dec(row[3]), close=_dec(row[4]), volume=_dec(row[6]))


def parse_kraken_balance(result: dict) -> dict[str, Decimal]:
    return {_LEGACY_ASSETS.get(asset, asset): _dec(amount) for asset, amount in result.items()}


def kraken_asset_code(asset: str) -> str:
    """Kraken's code for an asset the desk names (``USD`` → ``ZUSD``, ``XBT``/``BTC`` → ``XXBT``); a code Kraken
    already uses, or an asset without a legacy code (``SOL``, ``USDT``), as given."""
    name = asset.strip().upper()
    return name if name in _LEGACY_ASSETS else _KRAKEN_CODES.get(name, name)


@dataclass(frozen=True)
class KrakenBalance:
    """One asset of ``BalanceEx``: the total, and what open orders hold of it (``hold_trade``)."""
    asset: str
    balance: Decimal
    hold_trade: Decimal = ZERO
    credit: Decimal = ZERO
    credit_used: Decimal = ZERO

    @property
    def available(self) -> Decimal:
        """Free to trade, by Kraken's formula: balance + credit - credit_used - hold_trade."""
        return self.balance + self.credit - self.credit_used - self.hold_trade


def parse_kraken_balance_ex(result: dict) -> dict[str, KrakenBalance]:
    """``BalanceEx`` by Kraken's asset code (``ZUSD``, ``XXBT``, ``SOL``, ``USDT.F`` ...)."""
    return {asset: KrakenBalance(asset=asset, balance=_dec(raw.get("balance")), hold_trade=_dec(raw.get("hold_trade")),
                                 credit=_dec(raw.get("credit")), credit_used=_dec(raw.get("credit_used")))
            for asset, raw in result.items() if isinstance(raw, dict)}


@dataclass(frozen=True)
class KrakenTradeBalance:
    """``TradeBalance`` in the asset it was asked for: ``eb`` every balance valued together, ``m`` the margin of
    open margin positions (none on a spot desk), ``mf`` the margin still free."""
    equivalent: Decimal
    margin: Decimal
    free_margin: Decimal


def parse_kraken_trade_balance(result: dict) -> KrakenTradeBalance:
    return KrakenTradeBalance(equivalent=_dec(result.get("eb")), margin=_dec(result.get("m")),
                              free_margin=_dec(result.get("mf")))


def parse_kraken_account(quote: KrakenBalance | None, trade: KrakenTradeBalance, *, currency: str) -> VenueAccount:
    """The account as the desk shows it (the mapping is in the package docstring). Spot buys are paid in the quote
    currency, so what is free of it is the buying power; Kraken keeps no cost basis for spot holdings, hence no
    unrealised P&L (``TradeBalance.n`` covers margin positions only)."""
    quote = quote or KrakenBalance(asset=currency, balance=ZERO)
    free = max(ZERO, quote.available)
    return VenueAccount(cash=quote.balance, equity=trade.equivalent, buying_power=free, margin_used=trade.margin,
                        margin_available=free, currency=currency, unrealized_pnl=None)


def kraken_holdings(balances: dict[str, KrakenBalance], pairs: dict[str, dict], *,
                    quote: str) -> list[tuple[str, str, Decimal]]:
    """(desk symbol, Kraken pair name, quantity) of every non-zero balance that trades against ``quote``: the
    pair's ``altname`` is the symbol the desk uses (``XBTUSD``). The quote itself, assets with no such pair
    (``KFEE``, a currency without a USD pair) and Kraken's read-only earn balances (``ETH2.S``, ``USDT.F``)
    are no positions; a dark-pool pair (``.d``) never names one."""
    by_base: dict[str, tuple[str, str]] = {}
    for name, raw in sorted(pairs.items()):
        altname = str(raw.get("altname") or name)
        if raw.get("quote") == quote and not altname.endswith(".d"):
            by_base.setdefault(str(raw.get("base")), (altname, name))
    held = []
    for asset, entry in sorted(balances.items()):
        if asset == quote or "." in asset or entry.balance == 0 or asset not in by_base:
            continue
        altname, name = by_base[asset]
        held.append((altname, name, entry.balance))
    return held


def _absolute_price(text: Any) -> Decimal | None:
    """A price of an order's description, or None when it is absent or relative (``+100``, ``-5%``, ``#2``)."""
    value = str(text or "").strip()
    if not value or value[0] in "+-#" or value.endswith("%"):
        return None
    price = _dec(value)
    return price if price > 0 else None


def parse_kraken_open_order(txid: str, raw: dict) -> VenueOrder:
    """An ``OpenOrders`` entry as the desk lists a venue's working order; ``cl_ord_id`` (or the ``userref`` another
    app set) is its client id."""
    descr = raw.get("descr") or {}
    kind = str(descr.get("ordertype", "limit"))
    order_type = _DESK_ORDER_TYPES.get(kind, OrderType.LIMIT)
    price, price2 = _absolute_price(descr.get("price")), _absolute_price(descr.get("price2"))
    limit_price = stop_price = None
    if kind in ("limit", "iceberg", "take-profit"):
        limit_price = price
    elif kind == "take-profit-limit":
        limit_price = price2
    elif kind in ("stop-loss", "stop-loss-limit"):
        stop_price, limit_price = price, (price2 if kind == "stop-loss-limit" else None)
    volume, executed = _dec(raw.get("vol")), _dec(raw.get("vol_exec"))
    client_id = raw.get("cl_ord_id") or (str(raw["userref"]) if raw.get("userref") else None)
    return VenueOrder(broker_order_id=txid, client_order_id=client_id, symbol=str(descr.get("pair", "")),
                      side=Side(str(descr.get("type", "buy")).upper()), order_type=order_type, quantity=volume,
                      filled_quantity=executed,
                      status=parse_kraken_status(str(raw.get("status", "open")), volume=volume, executed=executed),
                      created_at=_at(raw.get("opentm") or 0), limit_price=limit_price, stop_price=stop_price,
                      time_in_force=TimeInForce.DAY if _dec(raw.get("expiretm")) else TimeInForce.GTC)


# -- mapping: desk -> Kraken -----------------------------------------------------------------------------------

def to_kraken_order(ticket: OrderTicket, *, now: datetime) -> list[tuple[str, str]]:
    """The ``AddOrder`` fields (without the nonce), in ccxt's order: pair, type, ordertype, volume, prices."""
    fields = [("pair", ticket.symbol), ("type", ticket.side.lower()), ("ordertype", _ORDER_TYPES[ticket.order_type]),
              ("volume", format_decimal(ticket.quantity))]
    kind = ticket.order_type
    if kind is OrderType.LIMIT:
        fields.append(("price", format_decimal(ticket.limit_price)))
    elif kind is OrderType.STOP:
        fields.append(("price", format_decimal(ticket.stop_price)))
    elif kind is OrderType.STOP_LIMIT:
        fields += [("price", format_decimal(ticket.stop_price)), ("price2", format_decimal(ticket.limit_price))]
    elif kind is OrderType.TRAILING_STOP:
        suffix = "%" if ticket.trailing_type is TrailingType.PERCENT else ""
        fields.append(("price", f"+{format_decimal(ticket.trailing_distance)}{suffix}"))
    fields += to_kraken_time_in_force(ticket.time_in_force, now=now)
    post = ticket.post_only and kind is OrderType.LIMIT
    fields += [("oflags", "post,fciq" if post else "fciq"), ("cl_ord_id", kraken_client_id(ticket.order_id))]
    return fields


def to_kraken_time_in_force(tif: TimeInForce, *, now: datetime) -> list[tuple[str, str]]:
    if tif is TimeInForce.GTC:
        return []                                   # Kraken's default
    if tif is TimeInForce.IOC:
        return [("timeinforce", "IOC")]
    if tif is TimeInForce.DAY:
        midnight = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return [("timeinforce", "GTD"), ("expiretm", str(int(midnight.timestamp())))]
    raise Unsupported(f"time_in_force {tif}", PROVIDER)


def pair_entry(result: Any, symbol: str) -> Any:
    """Kraken keys answers by its canonical pair name (``XXBTZUSD`` for ``XBTUSD``): the one entry, or the one
    whose name or ``altname`` is the symbol."""
    if not isinstance(result, dict) or not result:
        return None
    if len(result) == 1:
        return next(iter(result.values()))
    for name, value in result.items():
        if name == symbol or (isinstance(value, dict) and value.get("altname") == symbol):
            return value
    return None

