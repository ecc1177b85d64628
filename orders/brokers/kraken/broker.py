"""The Kraken Spot adapter: transport (signed form posts through ``brokers.http``), reference data,
pre-trade checks, order entry, ``sync``, the account as Kraken reports it and the dead man's switch. See the
package docstring for ids, errors, statuses, endpoints and the private-call budget."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured

from orders.brokers.base import Broker
from orders.brokers.config import require_env
from orders.brokers.http import RATE_LIMITED_STATUSES, HttpClient, HttpResponse, error_for_status
from orders.brokers.kraken.endpoints import (
    DEFAULT_BASE_URL,
    EndpointError,
    check_base_url,
    kraken_ws_auth_url,
)
from orders.brokers.kraken.stream import KrakenExecutions
from orders.brokers.kraken.wire import (
    OHLC_MINUTES,
    PROVIDER,
    KrakenBalance,
    KrakenOrder,
    NonceSource,
    kraken_asset_code,
    kraken_client_id,
    kraken_holdings,
    kraken_signature,
    pair_entry,
    parse_kraken_account,
    parse_kraken_balance,
    parse_kraken_balance_ex,
    parse_kraken_bar,
    parse_kraken_error,
    parse_kraken_fill,
    parse_kraken_open_order,
    parse_kraken_order,
    parse_kraken_pair,
    parse_kraken_status,
    parse_kraken_ticker,
    parse_kraken_trade_balance,
    to_kraken_order,
)
from orders.brokers.streams import follow_until
from orders.brokers.types import (
    AccountContext,
    Bar,
    BracketStrategy,
    BrokerAck,
    Capabilities,
    ConnectionStatus,
    ExecutionReport,
    Instrument,
    OrderTicket,
    Quote,
    ReportKind,
    VenueAccount,
    VenueOrder,
    VenuePosition,
    WorkingOrder,
)
from orders.domain.enums import (
    AssetClass,
    OrderStatus,
    OrderType,
    PositionMode,
    RejectReason,
    Side,
    TimeInForce,
    TrailingType,
)
from orders.domain.errors import (
    DeskError,
    OrderNotFound,
    OrderRejected,
    ProviderError,
    RateLimited,
    SymbolNotFound,
    Unsupported,
)
from orders.domain.money import ZERO, format_decimal, is_on_grid, quantize_money
from orders.domain.orders import OrderRequest
from orders.domain.positions import exposure_increase
from orders.metrics import RATE_LIMIT_EVENTS

log = logging.getLogger(__name__)

PUBLIC, PRIVATE = "/0/public/", "/0/private/"
QUERY_ORDERS_BATCH, QUERY_TRADES_BATCH = 50, 20
INSTRUMENT_TTL_SECONDS = 3600.0
# an order Kraken does not know is reported REJECTED only once it is older than this (its AddOrder may be in flight)
MISSING_GRACE = timedelta(minutes=2)
_HEADERS = {"User-Agent": "tradingdesk-kraken/1"}
_FORM = "application/x-www-form-urlencoded; charset=utf-8"


DEFAULT_QUOTE_ASSET = "USD"       # Kraken's ZUSD
DEFAULT_DEADMAN_SECONDS = 60      # Kraken's advice: a 60 s timeout, re-armed every 15 to 30 s
MAX_DEADMAN_SECONDS = 86399       # CancelAllOrdersAfter takes less than a day


@dataclass(frozen=True)
class KrakenConfig:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    ws_auth_url: str | None = None          # None: derived from base_url (endpoints.py)
    quote_asset: str = DEFAULT_QUOTE_ASSET  # the account's currency: cash, buying power, equity and positions
    deadman_seconds: int = DEFAULT_DEADMAN_SECONDS


def build_kraken_broker() -> KrakenBroker:
    env = require_env("kraken", ["KRAKEN_API_KEY", "KRAKEN_API_SECRET"],
                      {"KRAKEN_BASE_URL": DEFAULT_BASE_URL, "KRAKEN_WS_AUTH_URL": "",
                       "KRAKEN_QUOTE_ASSET": DEFAULT_QUOTE_ASSET,
                       "KRAKEN_DEADMAN_SECONDS": str(DEFAULT_DEADMAN_SECONDS)})
    try:
        base64.b64decode(env["KRAKEN_API_SECRET"], validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured("KRAKEN_API_SECRET must be the base64 private key Kraken issued") from None
    try:
        base_url = check_base_url(env["KRAKEN_BASE_URL"])
        ws_auth_url = kraken_ws_auth_url(base_url, env["KRAKEN_WS_AUTH_URL"] or None)
    except EndpointError as e:
        raise ImproperlyConfigured(str(e)) from None
    return KrakenBroker(KrakenConfig(api_key=env["KRAKEN_API_KEY"], api_secret=env["KRAKEN_API_SECRET"],
                                     base_url=base_url, ws_auth_url=ws_auth_url,
                                     quote_asset=env["KRAKEN_QUOTE_ASSET"].strip().upper() or DEFAULT_QUOTE_ASSET,
                                     deadman_seconds=_deadman_seconds(env["KRAKEN_DEADMAN_SECONDS"])))


def _deadman_seconds(text: str) -> int:
    try:
        seconds = int(text.strip())
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= MAX_DEADMAN_SECONDS:
        raise ImproperlyConfigured(f"KRAKEN_DEADMAN_SECONDS must be a whole number of seconds from 0 (off) to "
                                   f"{MAX_DEADMAN_SECONDS}, not {text!r}")
    return seconds


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _reject(reason: str, message: str, /, **details: Any) -> OrderRejected:
    return OrderRejected(reason, message, **{k: format_decimal(v) if isinstance(v, Decimal) else v
                                              for k, v in details.items()})


# -- the adapter -------------------------------------------------------------------------------------------------

class KrakenBroker(Broker):
    name = PROVIDER
    poll_seconds = 6.0          # a poll costs one QueryOrders point (two more for new fills) of ~20 a minute
    # the account's balances and trade balance are read at most this often (two points), unless an order was
    # sent, cancelled or amended, a poll saw one change or the stream woke the engine since: then at once
    account_read_seconds = 20.0
    # the resting stop holds the whole balance, so a take-profit for it is refused (EOrder:Insufficient funds):
    # the stop rests at Kraken and the engine fires the take-profit on the quote (cancel the stop, then sell)
    one_resting_exit = True

    def __init__(self, config: KrakenConfig, *, http: HttpClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.http = http or HttpClient(base_url=config.base_url, provider=PROVIDER)
        self.ws_auth_url = kraken_ws_auth_url(config.base_url, config.ws_auth_url)
        self.quote_asset = kraken_asset_code(config.quote_asset)
        self.deadman_seconds = config.deadman_seconds
        self.deadman_armed_at: datetime | None = None       # Kraken's currentTime / triggerTime of the last arming
        self.deadman_trigger_at: datetime | None = None
        self.clock = clock
        self.nonces = NonceSource(clock)
        self.capabilities = Capabilities(
            platform=PROVIDER, supported_asset_classes=(AssetClass.CRYPTO,), supported_order_types=tuple(OrderType),
            position_mode=PositionMode.NETTING, features=("trailing_stop", "post_only", "get_quote"),
            bracket_strategy=BracketStrategy.PENDING,
            # Starter tier: a counter of 15 decaying by 0.33/s ≈ 20 private calls a minute sustained
            rate_limits={"requests_per_minute": 20})
        self._instruments: dict[str, tuple[float, Instrument]] = {}
        self._txids: dict[str, str] = {}          # our order id -> Kraken txid, learnt at AddOrder and in lookups
        self._last_heartbeat: datetime | None = None
        self._pairs: tuple[float, dict[str, dict]] | None = None     # every AssetPairs entry, when fetched
        self._account_reads: dict[str, tuple[datetime, float, Any]] = {}     # method -> (now asked, clock, result)

    # -- transport ---------------------------------------------------------------------------------------------
    def _public(self, method: str, params: dict | None = None, *, symbol: str | None = None) -> Any:
        response = self.http.request("GET", PUBLIC + method, params=params, headers=_HEADERS)
        return self._result(response, symbol=symbol)

    def _private(self, method: str, fields: list[tuple[str, str]], *, idempotent: bool = True,
                 placing: bool = False, symbol: str | None = None, order_id: str | None = None) -> Any:
        path = PRIVATE + method
        for attempt in range(2):
            response = self.http.request("POST", path, data=fields, headers=_HEADERS, idempotent=idempotent,
                                         sign=self._signer(path))
            if attempt == 0 and any(str(e).startswith("EAPI:Invalid nonce") for e in _errors(response)):
                log.warning("kraken %s: invalid nonce; retrying once with a fresh one", method)
                continue
            break
        return self._result(response, placing=placing, symbol=symbol, order_id=order_id)

    def _signer(self, path: str) -> Callable[[dict], dict]:
        def sign(call: dict) -> dict:
            nonce = self.nonces.next()
            postdata = urlencode([("nonce", str(nonce)), *(call["data"] or [])])
            call["data"] = postdata
            call["headers"].update({"API-Key": self.config.api_key, "Content-Type": _FORM,
                                    "API-Sign": kraken_signature(path=path, nonce=nonce, postdata=postdata,
                                                                 secret=self.config.api_secret)})
            return call
        return sign

    def _result(self, response: HttpResponse, *, placing: bool = False, symbol: str | None = None,
                order_id: str | None = None) -> Any:
        errors = _errors(response)
        for warning in (e for e in errors if not str(e).startswith("E")):
            log.info("kraken warning: %s", warning)
        failures = [str(e) for e in errors if str(e).startswith("E")]
        if failures:
            error = parse_kraken_error(failures[0], placing=placing, symbol=symbol, order_id=order_id, now=self.clock())
            if isinstance(error, RateLimited) and response.status not in RATE_LIMITED_STATUSES:    # else counted
                RATE_LIMIT_EVENTS.inc(platform=PROVIDER, event_type="hit")
            raise error
        if response.status != 200:
            raise error_for_status(response, provider=PROVIDER)
        if not isinstance(response.body, dict) or "result" not in response.body:
            raise ProviderError("answer without a result", provider=PROVIDER)
        return response.body["result"]

    # -- reference data ----------------------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        """The pairs the ticket offers: every pair Kraken lists against the account's quote asset."""
        try:
            pairs = self._asset_pairs()
        except DeskError as e:
            log.warning("kraken: pairs not listed for the ticket: %s", e.message)
            return []
        return sorted({p["altname"] for p in pairs.values()
                       if isinstance(p, dict) and p.get("quote") == self.quote_asset and p.get("altname")})

    def instrument(self, symbol: str) -> Instrument:
        cached = self._instruments.get(symbol)
        if cached is not None and self.clock() - cached[0] < INSTRUMENT_TTL_SECONDS:
            return cached[1]
        result = self._public("AssetPairs", {"pair": symbol}, symbol=symbol)
        raw = pair_entry(result, symbol)
        if raw is None:
            raise SymbolNotFound(symbol)
        instrument = parse_kraken_pair(symbol, raw)
        self._instruments[symbol] = (self.clock(), instrument)
        return instrument

    def quote(self, symbol: str, *, now: datetime) -> Quote:
        raw = pair_entry(self._public("Ticker", {"pair": symbol}, symbol=symbol), symbol)
        if raw is None:
            raise SymbolNotFound(symbol)
        return parse_kraken_ticker(symbol, raw, now=now)

    def bars(self, symbol: str, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        minutes = seconds // 60
        if seconds % 60 or minutes not in OHLC_MINUTES:
            raise Unsupported(f"{timeframe} bars (Kraken serves 1m 5m 15m 30m 1h 4h 1d 1w 15d)", PROVIDER)
        since = int(end.timestamp()) - seconds * count - 1
        result = self._public("OHLC", {"pair": symbol, "interval": minutes, "since": since}, symbol=symbol)
        rows = pair_entry({k: v for k, v in result.items() if k != "last"}, symbol) or []
        bars = [parse_kraken_bar(symbol, row, timeframe=timeframe) for row in rows]
        return [b for b in bars if b.timestamp <= end][-count:]

    def status(self, *, now: datetime) -> ConnectionStatus:
        started = self.clock()
        try:
            result = self._public("SystemStatus")
        except DeskError as e:
            log.warning("kraken status: %s", e.message)
            return ConnectionStatus(connected=False, latency_ms=0, last_heartbeat=self._last_heartbeat or now)
        self._last_heartbeat = now
        return ConnectionStatus(connected=result.get("status") != "maintenance",
                                latency_ms=int((self.clock() - started) * 1000), last_heartbeat=now)

    def balances(self) -> dict[str, Decimal]:
        """Cash balances by asset (``XXBT`` → ``XBT``, ``ZUSD`` → ``USD``), net of pending withdrawals."""
        return parse_kraken_balance(self._private("Balance", []))

    # -- the venue's truth (costs in the package docstring) --------------------------------------------------
    def account_state(self, *, now: datetime, account_id: int | None = None) -> VenueAccount:
        """Cash and buying power from ``BalanceEx`` (the quote asset's total, and what is free of it), equity and
        margin from ``TradeBalance`` valued in the quote asset."""
        balances = self._balances_at(now)
        trade = parse_kraken_trade_balance(self._account_read("TradeBalance", [("asset", self.quote_asset)], now=now))
        return parse_kraken_account(balances.get(self.quote_asset), trade, currency=self.config.quote_asset)

    def positions(self, *, now: datetime, account_id: int | None = None) -> list[VenuePosition]:
        """Every non-zero balance of an asset that trades against the quote asset, named by its pair
        (``XBTUSD``), marked at the ticker's last trade. Kraken keeps no average price for spot holdings."""
        held = kraken_holdings(self._balances_at(now), self._asset_pairs(), quote=self.quote_asset)
        marks = self._marks({name: symbol for symbol, name, _ in held}, now=now)
        return [VenuePosition(symbol=symbol, quantity=quantity, average_price=None, mark=marks.get(symbol))
                for symbol, _, quantity in held]

    def open_orders(self, *, now: datetime, account_id: int | None = None) -> list[VenueOrder]:
        """``OpenOrders``: every working order of the account, placed by the desk or elsewhere."""
        result = self._private("OpenOrders", [])
        orders = [parse_kraken_open_order(txid, raw) for txid, raw in (result.get("open") or {}).items()]
        return sorted(orders, key=lambda o: o.created_at)

    def arm_deadman(self, *, seconds: int) -> None:
        """``CancelAllOrdersAfter``: Kraken cancels every order of the account ``seconds`` from now unless armed
        again before; 0 disarms. Once it has fired, the switch stays off until armed again."""
        if not 0 <= seconds <= MAX_DEADMAN_SECONDS:
            raise ValueError(f"a dead man's switch timeout is 0 to {MAX_DEADMAN_SECONDS} seconds, not {seconds}")
        result = self._private("CancelAllOrdersAfter", [("timeout", str(int(seconds)))]) or {}
        self.deadman_armed_at = _rfc3339(result.get("currentTime"))
        self.deadman_trigger_at = _rfc3339(result.get("triggerTime")) if seconds else None
        log.info("kraken dead man's switch %s", f"armed until {result.get('triggerTime')}" if seconds else "disarmed")

    def _balances_at(self, now: datetime) -> dict[str, KrakenBalance]:
        return parse_kraken_balance_ex(self._account_read("BalanceEx", [], now=now))

    def _account_read(self, method: str, fields: list[tuple[str, str]], *, now: datetime) -> Any:
        """A private account read, spared Kraken's counter: one refresh (the same ``now``) reads it once for
        ``account_state`` and ``positions``, and a read younger than ``account_read_seconds`` is reused unless
        the account may have changed since (``_forget_account``)."""
        kept = self._account_reads.get(method)
        if kept is not None and (kept[0] == now or self.clock() - kept[1] < self.account_read_seconds):
            return kept[2]
        result = self._private(method, fields)
        self._account_reads[method] = (now, self.clock(), result)
        return result

    def _forget_account(self) -> None:
        """The account may have changed (an order sent, cancelled, amended or seen to change): read it afresh."""
        self._account_reads.clear()

    def _asset_pairs(self) -> dict[str, dict]:
        """Every pair Kraken lists (one public call, kept for an hour as the instruments are)."""
        if self._pairs is None or self.clock() - self._pairs[0] >= INSTRUMENT_TTL_SECONDS:
            result = self._public("AssetPairs")
            self._pairs = (self.clock(), result if isinstance(result, dict) else {})
        return self._pairs[1]

    def _marks(self, symbols: dict[str, str], *, now: datetime) -> dict[str, Decimal]:
        """The last trade price per symbol, from one public ``Ticker`` call keyed by Kraken's pair names; a
        ticker Kraken will not give leaves the positions unmarked rather than unknown."""
        if not symbols:
            return {}
        try:
            result = self._public("Ticker", {"pair": ",".join(sorted(symbols.values()))})
        except DeskError as e:
            log.warning("kraken: no marks for %s: %s", ", ".join(sorted(symbols.values())), e.message)
            return {}
        names = {**{symbol: symbol for symbol in symbols.values()}, **symbols}     # keyed by either name
        return {names[name]: parse_kraken_ticker(names[name], raw, now=now).last
                for name, raw in (result or {}).items() if name in names}

    # -- pre-trade ---------------------------------------------------------------------------------------------
    def check_order(self, request: OrderRequest, *, context: AccountContext, now: datetime) -> Decimal:
        if request.time_in_force is TimeInForce.FOK:
            raise Unsupported("time_in_force FOK", PROVIDER)
        try:
            instrument = self.instrument(request.symbol)
        except SymbolNotFound:
            raise _reject(RejectReason.SYMBOL_NOT_TRADEABLE, f"Symbol {request.symbol} is not traded on Kraken",
                          symbol=request.symbol, reason="unknown asset pair") from None
        if instrument.halted:
            raise _reject(RejectReason.SYMBOL_NOT_TRADEABLE, f"Kraken is not trading {request.symbol} normally",
                          symbol=request.symbol, reason="pair status is not online")
        _check_quantity(instrument, request.quantity)
        _check_prices(instrument, request)
        reference = self._reference_price(request, now)
        notional = request.quantity * reference
        if notional < instrument.min_notional:
            raise _reject(RejectReason.INVALID_QUANTITY,
                          f"Order value {format_decimal(quantize_money(notional, 8))} is below Kraken's minimum "
                          f"cost {format_decimal(instrument.min_notional)} for {request.symbol}",
                          notional=quantize_money(notional, 8), min_notional=instrument.min_notional)
        _check_funding(instrument, request, context, reference)
        return reference

    def _reference_price(self, request: OrderRequest, now: datetime) -> Decimal:
        if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            return request.limit_price
        if request.order_type is OrderType.STOP:
            return request.stop_price
        quote = self.quote(request.symbol, now=now)
        return quote.ask if request.side is Side.BUY else quote.bid

    # -- order entry -------------------------------------------------------------------------------------------
    def submit_order(self, ticket: OrderTicket) -> BrokerAck:
        fields = to_kraken_order(ticket, now=datetime.fromtimestamp(self.clock(), UTC))
        self._forget_account()
        # never blindly repeated: cl_ord_id is unique among open orders only, so a filled market order would trade twice
        result = self._private("AddOrder", fields, idempotent=False, placing=True, symbol=ticket.symbol,
                               order_id=ticket.order_id)
        txids = result.get("txid") or []
        if not txids:
            raise ProviderError("AddOrder answered without a txid", provider=PROVIDER)
        self._txids[ticket.order_id] = str(txids[0])
        return BrokerAck(broker_order_id=str(txids[0]), status=OrderStatus.OPEN)

    def lookup_order(self, ticket: OrderTicket) -> BrokerAck | None:
        working = WorkingOrder(order_id=ticket.order_id, symbol=ticket.symbol, side=ticket.side,
                               order_type=ticket.order_type, quantity=ticket.quantity, filled_quantity=Decimal("0"),
                               time_in_force=ticket.time_in_force, created_at=datetime.now(UTC),
                               broker_order_id=ticket.broker_order_id)
        venue = self._find_orders([working]).get(ticket.order_id)
        return BrokerAck(broker_order_id=venue.txid, status=OrderStatus.OPEN) if venue is not None else None

    def cancel_order(self, ticket: OrderTicket) -> None:
        self._forget_account()
        result = self._private("CancelOrder", [("cl_ord_id", kraken_client_id(ticket.order_id))],
                               order_id=ticket.order_id, symbol=ticket.symbol)
        if not result.get("count") and not result.get("pending"):
            raise OrderNotFound(ticket.order_id)

    def modify_order(self, ticket: OrderTicket, *, quantity: Decimal | None = None,
                     limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                     trailing_distance: Decimal | None = None) -> BrokerAck:
        """``AmendOrder`` in place by ``cl_ord_id``: ids and (where possible) queue priority are kept."""
        if trailing_distance is not None:
            raise Unsupported("changing a trailing distance", PROVIDER)
        instrument = self.instrument(ticket.symbol)
        fields = [("cl_ord_id", kraken_client_id(ticket.order_id))]
        if quantity is not None:
            if not is_on_grid(quantity, instrument.quantity_step):
                raise _reject(RejectReason.INVALID_QUANTITY, f"Quantity {format_decimal(quantity)} is not a multiple "
                              f"of the step {format_decimal(instrument.quantity_step)}", quantity=quantity,
                              quantity_step=instrument.quantity_step)
            fields.append(("order_qty", format_decimal(quantity)))
        for name, wire, price in (("limit_price", "limit_price", limit_price),
                                  ("stop_price", "trigger_price", stop_price)):
            if price is None:
                continue
            _check_tick(instrument, name, price)
            fields.append((wire, format_decimal(price)))
        self._forget_account()
        self._private("AmendOrder", fields, placing=True, symbol=ticket.symbol, order_id=ticket.order_id)
        return BrokerAck(broker_order_id=self._txids.get(ticket.order_id, ticket.order_id), status=OrderStatus.OPEN)

    # -- what happened -----------------------------------------------------------------------------------------
    def watch(self, *, wake, stop) -> None:
        """Kraken's ``executions`` channel wakes the engine; the engine's sync records what happened."""
        stream = self.executions_stream()
        def woken(executions: list[dict]) -> None:
            self._forget_account()
            wake()

        follow_until(stop, lambda halt: stream.run(woken, stop=halt))

    def executions_stream(self, **options: Any) -> KrakenExecutions:
        """The ``executions`` channel at the configured address, each connection with a fresh token from
        ``websocket_token``."""
        return KrakenExecutions(token=self.websocket_token, **{"url": self.ws_auth_url, **options})

    def websocket_token(self) -> str:
        """A token for the authenticated WebSocket API (``GetWebSocketsToken``: use it within 15 minutes)."""
        token = (self._private("GetWebSocketsToken", []) or {}).get("token")
        if not token:
            raise ProviderError("GetWebSocketsToken answered without a token", provider=PROVIDER)
        return token

    def sync(self, working: Sequence[WorkingOrder], *, now: datetime) -> list[ExecutionReport]:
        if not working:
            return []
        found = self._find_orders(working)
        reports: list[ExecutionReport] = []
        for order in working:
            venue = found.get(order.order_id)
            if venue is None:
                reports.extend(self._missing(order, now=now))
                continue
            if order.broker_order_id is None:       # its AddOrder answer was lost: it did reach Kraken
                reports.append(ExecutionReport(order.order_id, ReportKind.ACCEPTED, _opened(venue, now),
                                               extra={"broker_order_id": venue.txid}))
            reports.extend(self._reports_for(order, venue, now=now))
        if reports:
            self._forget_account()
        return sorted(reports, key=lambda r: r.timestamp)

    def _missing(self, order: WorkingOrder, *, now: datetime) -> list[ExecutionReport]:
        """Neither open nor closed at Kraken. Only an order Kraken never acknowledged, old enough that its AddOrder
        cannot still be on the way, is declared never to have arrived; anything else is only logged."""
        acknowledged = order.broker_order_id is not None or order.order_id in self._txids
        if acknowledged or now - order.created_at < MISSING_GRACE:
            log.warning("kraken: order %s not found by txid or cl_ord_id", order.order_id)
            return []
        if order.filled_quantity > 0:
            return [ExecutionReport(order.order_id, ReportKind.CANCELLED, now,
                                    reason="Kraken no longer knows this order")]
        return [ExecutionReport(order.order_id, ReportKind.REJECTED, now,
                                reason=f"Kraken has no order with cl_ord_id {kraken_client_id(order.order_id)}: "
                                       "it never arrived")]

    def _find_orders(self, working: Sequence[WorkingOrder]) -> dict[str, KrakenOrder]:
        found: dict[str, KrakenOrder] = {}
        known = [(o.order_id, o.broker_order_id or self._txids[o.order_id]) for o in working
                 if o.broker_order_id or o.order_id in self._txids]
        for batch in _chunks(known, QUERY_ORDERS_BATCH):
            result = self._private("QueryOrders", [("trades", "true"), ("txid", ",".join(t for _, t in batch))])
            for order_id, txid in batch:
                if txid in result:
                    found[order_id] = parse_kraken_order(txid, result[txid])
        wanted = {kraken_client_id(o.order_id): o.order_id for o in working if o.order_id not in found}
        if wanted:
            for txid, raw in (self._private("OpenOrders", [("trades", "true")]).get("open") or {}).items():
                if raw.get("cl_ord_id") in wanted:
                    found[wanted.pop(raw["cl_ord_id"])] = parse_kraken_order(txid, raw)
        for client_id, order_id in wanted.items():
            closed = self._private("ClosedOrders", [("trades", "true"), ("cl_ord_id", client_id)]).get("closed") or {}
            for txid, raw in closed.items():
                if raw.get("cl_ord_id") == client_id:
                    found[order_id] = parse_kraken_order(txid, raw)
                    break
        self._txids.update({order_id: venue.txid for order_id, venue in found.items()})
        return found

    def _reports_for(self, order: WorkingOrder, venue: KrakenOrder, *, now: datetime) -> list[ExecutionReport]:
        reports: list[ExecutionReport] = []
        complete = True
        if venue.executed > order.filled_quantity:
            fills = self._fills(order, venue)
            complete = sum((f.quantity for f in fills), start=ZERO) >= venue.executed
            reports.extend(fills)
        status = parse_kraken_status(venue.status, volume=venue.volume, executed=venue.executed)
        if status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED) and complete:
            # only once every trade is in hand: the desk stops following an order it has seen end
            kind = ReportKind.CANCELLED if status is OrderStatus.CANCELLED else ReportKind.EXPIRED
            reason = venue.reason or (f"closed at Kraken with {format_decimal(venue.volume - venue.executed)} unfilled"
                                      if venue.status == "closed" else f"{venue.status} at Kraken")
            reports.append(ExecutionReport(order.order_id, kind, venue.closed_at or now, reason=reason))
        return reports

    def _fills(self, order: WorkingOrder, venue: KrakenOrder) -> list[ExecutionReport]:
        if venue.trade_ids:
            trades: dict[str, dict] = {}
            for batch in _chunks(list(venue.trade_ids), QUERY_TRADES_BATCH):
                trades.update(self._private("QueryTrades", [("txid", ",".join(batch))]))
        else:      # no trade ids on the order: look in the history since it opened
            start = str(int(venue.opened_at) - 1)
            trades = self._private("TradesHistory", [("start", start)]).get("trades") or {}
        try:
            currency = self.instrument(order.symbol).quote_currency
        except DeskError:
            currency = "USD"
        return sorted((parse_kraken_fill(trade_id, raw, order_id=order.order_id, commission_currency=currency)
                       for trade_id, raw in trades.items() if raw.get("ordertxid", venue.txid) == venue.txid),
                      key=lambda r: r.timestamp)


def _rfc3339(text: Any) -> datetime | None:
    """Kraken's ``currentTime``/``triggerTime`` (``2023-03-24T17:42:56Z``); ``0`` or nothing when off."""
    try:
        return datetime.fromisoformat(str(text)) if text and str(text) != "0" else None
    except ValueError:
        return None


def _opened(venue: KrakenOrder, now: datetime) -> datetime:
    return datetime.fromtimestamp(float(venue.opened_at), UTC) if venue.opened_at else now


def _errors(response: HttpResponse) -> list:
    body = response.body
    errors = body.get("error") if isinstance(body, dict) else None
    return list(errors) if isinstance(errors, list) else []


def _check_quantity(instrument: Instrument, quantity: Decimal) -> None:
    if quantity < instrument.min_quantity:
        raise _reject(RejectReason.INVALID_QUANTITY, f"Quantity {format_decimal(quantity)} is below Kraken's minimum "
                      f"{format_decimal(instrument.min_quantity)} for {instrument.symbol}",
                      quantity=quantity, min_quantity=instrument.min_quantity)
    if not is_on_grid(quantity, instrument.quantity_step):
        raise _reject(RejectReason.INVALID_QUANTITY, f"Quantity {format_decimal(quantity)} has more decimals than "
                      f"Kraken allows for {instrument.symbol} (step {format_decimal(instrument.quantity_step)})",
                      quantity=quantity, quantity_step=instrument.quantity_step)


def _check_tick(instrument: Instrument, name: str, price: Decimal) -> None:
    if not is_on_grid(price, instrument.tick_size):
        raise _reject(RejectReason.INVALID_PRICE, f"{name} {format_decimal(price)} is not a multiple of the tick "
                      f"size {format_decimal(instrument.tick_size)} for {instrument.symbol}",
                      field=name, price=price, tick_size=instrument.tick_size)


def _check_prices(instrument: Instrument, request: OrderRequest) -> None:
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit"):
        price = getattr(request, name)
        if price is not None:
            _check_tick(instrument, name, price)
    if request.trailing_type is TrailingType.ABSOLUTE and request.trailing_distance is not None:
        _check_tick(instrument, "trailing_distance", request.trailing_distance)


def _check_funding(instrument: Instrument, request: OrderRequest, context: AccountContext,
                   reference: Decimal) -> None:
    held = context.position_quantity
    added = exposure_increase(held, side=request.side, quantity=request.quantity)
    if request.reduce_only and added > 0:
        raise _reject(RejectReason.REDUCE_ONLY_VIOLATED, "A reduce-only order may not open or grow a position",
                      position_quantity=held, quantity=request.quantity)
    if added <= 0:
        return
    if held + request.quantity * request.side.sign < 0:
        raise _reject(RejectReason.INSUFFICIENT_BALANCE, f"Insufficient {instrument.base_asset} balance to sell "
                      f"{format_decimal(request.quantity)} (Kraken spot cannot sell short)",
                      asset=instrument.base_asset, required=request.quantity, available=max(held, ZERO))
    fee = added * reference * instrument.commission_bps / 10000
    required = quantize_money(added * reference + fee, 2)
    available = quantize_money(context.figures.buying_power, 2)
    if required > available:
        raise _reject(RejectReason.INSUFFICIENT_BALANCE, "Insufficient balance to place order",
                      required=required, available=available, currency=context.figures.currency)
