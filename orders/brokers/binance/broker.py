"""BinanceBroker: Binance Spot behind the one ``Broker`` shape.

* Our order id is Binance's ``newClientOrderId``, so every order can be found again by
  ``origClientOrderId`` — also when the answer to its submission was lost.
* Binance only refuses a reused client id while the first order is *open* (NOTES §0.1): after a timeout
  or a 5xx the order is looked up before it is sent again, or a filled MARKET order would fill twice;
  ``-2010 Duplicate order sent.`` answers with the existing order.
* SL + TP after an entry fill go as one native OCO order list (``/api/v3/orderList/oco``): the only way two
  reducing orders can rest against one balance on spot (``one_resting_exit``). Without an OCO (a symbol
  without ``ocoAllowed``: ``bracket_strategy_for``) the desk rests the stop at the venue and watches the
  take-profit itself, firing it on the quote.
* The account, its positions and its open orders are read from the venue (``account_state``, ``positions``,
  ``open_orders``; see ``account.py``): balances in the configured quote asset, and every open order, external
  ones and order-list legs included.
* Fills carry the venue's own commission and commission asset: without BNB, a BUY pays its fee in the coin
  bought (0.01 BTC bought leaves 0.00999 held), a SELL in the quote asset.
* ``sync`` asks for each working order and reports what grew: fills from ``/api/v3/myTrades`` (exact
  prices, commissions and trade ids), then cancels / expiries / rejections.
* Not supported (``Unsupported``, 501): TRAILING_STOP orders, ``modify_order`` (a cancel-replace
  would give the order a new client id, and the desk finds orders by theirs), DAY time in force
  (``InvalidValue``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

from orders.brokers.base import Broker
from orders.brokers.binance.account import (
    Balance,
    parse_binance_balances,
    parse_binance_open_order,
    parse_binance_taker_rate,
    to_venue_account,
    to_venue_positions,
)
from orders.brokers.binance.client import BinanceClient, BinanceConfig, Params
from orders.brokers.binance.endpoints import rest_base_url, ws_api_url
from orders.brokers.binance.mapping import (
    PROVIDER,
    BinanceApiError,
    ErrorContext,
    binance_list_client_order_id,
    combine_bars,
    datetime_to_ms,
    ms_to_datetime,
    parse_binance_ack,
    parse_binance_decimal,
    parse_binance_ending,
    parse_binance_error,
    parse_binance_klines,
    parse_binance_oco_acks,
    parse_binance_quote,
    parse_binance_trade,
    split_oco_pair,
    to_binance_interval,
    to_binance_oco,
    to_binance_order,
    to_binance_order_type,
    to_binance_time_in_force,
)
from orders.brokers.binance.rules import (
    SymbolRules,
    check_notional,
    check_percent_price,
    check_price,
    check_quantity,
    parse_binance_instrument,
    parse_binance_symbol_rules,
    parse_binance_weight_limit,
)
from orders.brokers.binance.stream import BinanceUserStream
from orders.brokers.config import require_env
from orders.brokers.http import HttpClient
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
from orders.domain.enums import AssetClass, OrderType, PositionMode, RejectReason, Side
from orders.domain.errors import (
    DeskError,
    OrderRejected,
    ProviderUnavailable,
    RateLimited,
    SymbolNotFound,
    Unsupported,
)
from orders.domain.money import ZERO, format_decimal, quantize_money
from orders.domain.orders import OrderRequest
from orders.domain.positions import exposure_increase

log = logging.getLogger(__name__)
T = TypeVar("T")

# request weights (rest-api.md); exchangeInfo and myTrades at their documented worst case
W_ORDER, W_CANCEL, W_QUERY, W_OCO, W_ORDER_LIST = 1, 1, 4, 1, 4
W_MY_TRADES, W_BOOK, W_KLINES, W_EXCHANGE_INFO = 20, 2, 2, 20
W_ACCOUNT, W_OPEN_ORDERS_ALL, W_PRICE, W_PRICES = 20, 80, 2, 4       # openOrders without a symbol weighs 80
# the account read once serves account_state and positions asked for the same ``now`` within this many seconds
HOLDINGS_REUSE_SECONDS = 1.0
# Binance's standard spot rate, for a fee the venue has not shown yet when the account's own rate is unknown
DEFAULT_TAKER_RATE = Decimal("0.001")
MAX_KLINES = 1000
# an order the venue does not know after this long never reached it: a signed request older than
# recvWindow is refused, and our retries end well within a minute
MISSING_GRACE = timedelta(seconds=60)

CAPABILITIES = Capabilities(
    platform=PROVIDER,
    supported_asset_classes=(AssetClass.CRYPTO,),
    supported_order_types=(OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT),
    position_mode=PositionMode.NETTING,
    features=("oco", "post_only", "get_quote"),
    bracket_strategy=BracketStrategy.NATIVE_OCO,
    rate_limits={"requests_per_minute": 6000, "orders_per_second": 10, "orders_per_day": 200000},
)


@dataclass(frozen=True)
class Holdings:
    """One read of the account: balances, each held asset's symbol against the quote asset, and its price."""
    balances: dict[str, Balance]
    symbols: dict[str, str]
    marks: dict[str, Decimal]


class BinanceBroker(Broker):
    name = PROVIDER
    poll_seconds = 2.0          # a poll weighs 4 per working order: 20 orders use 2,400 of the 6,000 a minute
    capabilities = CAPABILITIES
    # spot: a resting SELL locks its quantity, so one balance backs one resting exit, unless the two are linked
    # in an OCO order list (the native_oco strategy, used whenever both legs are asked for)
    one_resting_exit = True

    def __init__(self, config: BinanceConfig, *, http: HttpClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.client = BinanceClient(config, http=http, clock=clock)
        self._rules: dict[str, tuple[float, SymbolRules]] = {}
        self._listed: tuple[float, list[str]] | None = None      # the ticket's symbols, when listed
        self._unknown_symbols: dict[str, float] = {}            # symbol → when the venue said it has none
        self._holdings: tuple[datetime, float, Holdings] | None = None
        self._taker_rate: Decimal | None = None                  # from the last account answer

    def bracket_strategy_for(self, request: OrderRequest) -> BracketStrategy:
        """SL + TP as one OCO order list where the symbol allows order lists. Where it does not, the legs go
        separately, and since one balance backs one resting exit (``one_resting_exit``) the desk rests the stop
        and watches the take-profit itself."""
        if request.stop_loss is not None and request.take_profit is not None:
            try:
                if not self.symbol_rules(request.symbol).oco_allowed:
                    return BracketStrategy.PENDING
            except DeskError:
                pass                    # check_order has refused the symbol already, or the venue is away
        return self.capabilities.bracket_strategy

    def watch(self, *, wake, stop) -> None:
        """The user-data stream wakes the engine; the engine's sync records what happened."""
        stream = self.user_stream()
        follow_until(stop, lambda halt: stream.run(lambda reports: wake(), stop=halt))

    def user_stream(self, **options: Any) -> BinanceUserStream:
        """The user-data stream (executionReport → ExecutionReport); its subscription is stamped with the
        server clock, measured here first if need be."""
        try:
            self.client.ensure_time()
        except (DeskError, BinanceApiError) as e:
            log.warning("%s: server clock not measured before streaming: %s", PROVIDER, e)
        return BinanceUserStream(self.config, timestamp=self.client.now_ms, **options)

    # -- reference data ----------------------------------------------------------------------------------
    def symbol_rules(self, symbol: str) -> SymbolRules:
        """The symbol's filters from ``exchangeInfo``, cached for ``rules_ttl`` seconds."""
        now = self.client.clock()
        cached = self._rules.get(symbol)
        if cached is not None and now - cached[0] < self.config.rules_ttl:
            return cached[1]
        body = self._market("/api/v3/exchangeInfo", [("symbol", symbol)], weight=W_EXCHANGE_INFO, symbol=symbol)
        if (limit := parse_binance_weight_limit(body)) is not None:
            self.client.weight_limit = limit
        infos = [s for s in body.get("symbols", []) if s.get("symbol") == symbol]
        if not infos:
            raise SymbolNotFound(symbol)
        rules = parse_binance_symbol_rules(infos[0])
        self._rules[symbol] = (now, rules)
        return rules

    def instrument(self, symbol: str) -> Instrument:
        return parse_binance_instrument(self.symbol_rules(symbol))

    def symbols(self) -> list[str]:
        """The symbols the ticket offers: every spot symbol trading against the account's quote asset (one
        exchangeInfo call, kept as long as symbol rules are)."""
        now = self.client.clock()
        if self._listed is None or now - self._listed[0] >= self.config.rules_ttl:
            try:
                body = self._market("/api/v3/exchangeInfo", [("permissions", "SPOT"), ("symbolStatus", "TRADING")],
                                    weight=W_EXCHANGE_INFO, symbol="*")
            except DeskError as e:
                log.warning("%s: symbols not listed for the ticket: %s", PROVIDER, e.message)
                return []
            quote = self.config.quote_asset
            self._listed = (now, sorted(info["symbol"] for info in body.get("symbols", [])
                                        if info.get("quoteAsset") == quote
                                        and info.get("status", "TRADING") == "TRADING"))
        return self._listed[1]

    def quote(self, symbol: str, *, now: datetime) -> Quote:
        body = self._market("/api/v3/ticker/bookTicker", [("symbol", symbol)], weight=W_BOOK, symbol=symbol)
        return parse_binance_quote(body, now=now)

    def bars(self, symbol: str, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        """``count`` bars, oldest first, the last one containing ``end``. Timeframes Binance lacks (2m, 10m)
        are built from finer klines; more than 1000 klines are fetched page by page, backwards."""
        interval, factor = to_binance_interval(timeframe)
        needed = count * factor + factor - 1
        rows: list = []
        end_ms = datetime_to_ms(end)
        while needed > 0:
            limit = min(needed, MAX_KLINES)
            page = self._market("/api/v3/klines", [("symbol", symbol), ("interval", interval), ("endTime", end_ms),
                                                   ("limit", limit)], weight=W_KLINES, symbol=symbol)
            rows = list(page) + rows
            needed -= len(page)
            if len(page) < limit:
                break
            end_ms = int(page[0][0]) - 1
        bars = parse_binance_klines(rows, symbol=symbol, timeframe=timeframe)
        if factor > 1:
            bars = combine_bars(bars, seconds=seconds, timeframe=timeframe)
        return bars[-count:]

    def status(self, *, now: datetime) -> ConnectionStatus:
        try:
            latency = self.client.sync_time()
        except (DeskError, BinanceApiError) as e:
            log.warning("%s: status check failed: %s", PROVIDER, e)
            return ConnectionStatus(connected=False, latency_ms=0, last_heartbeat=now)
        return ConnectionStatus(connected=True, latency_ms=latency, last_heartbeat=now)

    def _market(self, path: str, params: Params, *, weight: int, symbol: str) -> Any:
        try:
            return self.client.public(path, params, weight=weight)
        except BinanceApiError as e:
            raise parse_binance_error(e, context=ErrorContext.MARKET, symbol=symbol) from None

    def _signed(self, method: str, path: str, params: Params, *, weight: int, context: ErrorContext,
                symbol: str, order_id: str | None = None) -> Any:
        try:
            return self.client.signed(method, path, params, weight=weight)
        except BinanceApiError as e:
            raise parse_binance_error(e, context=context, symbol=symbol, order_id=order_id) from None

    # -- pre-trade ---------------------------------------------------------------------------------------
    def check_order(self, request: OrderRequest, *, context: AccountContext, now: datetime) -> Decimal:
        """The symbol's filters, checked before anything is sent; returns the reference price."""
        if request.order_type is OrderType.TRAILING_STOP:
            raise Unsupported("TRAILING_STOP orders", PROVIDER)
        kind = to_binance_order_type(request.order_type, post_only=request.post_only)
        if kind in ("LIMIT", "STOP_LOSS_LIMIT"):
            to_binance_time_in_force(request.time_in_force)
        rules = self._tradeable(request.symbol)
        if rules.order_types and kind not in rules.order_types:
            raise Unsupported(f"{kind} orders on {request.symbol}", PROVIDER)
        market = request.order_type in (OrderType.MARKET, OrderType.STOP)
        check_quantity(rules, request.quantity, market=request.order_type is OrderType.MARKET)
        for field in ("limit_price", "stop_price", "stop_loss", "take_profit"):
            if (price := getattr(request, field)) is not None:
                check_price(rules, field, price)
        quote = self.quote(request.symbol, now=now)
        if request.limit_price is not None:
            check_percent_price(rules, "limit_price", request.limit_price, side=request.side, average=quote.mid)
        reference = _reference_price(request, quote)
        check_notional(rules, request.quantity, request.limit_price or reference, market=market)
        for field in ("stop_loss", "take_profit"):       # the exits must be placeable once the entry fills
            if (price := getattr(request, field)) is not None:
                check_notional(rules, request.quantity, price, market=field == "stop_loss", field=field)
        _check_post_only(request, quote)
        _check_stop_side(request, quote)
        _check_reduce_only(request, context)
        return reference

    def _tradeable(self, symbol: str) -> SymbolRules:
        try:
            rules = self.symbol_rules(symbol)
        except SymbolNotFound:
            raise OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE, f"Symbol {symbol} is not traded on Binance spot",
                                symbol=symbol, reason="unknown symbol") from None
        if not rules.trading:
            raise OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE, f"Trading in {symbol} is not open "
                                f"(status {rules.status})", symbol=symbol, reason=rules.status.lower())
        return rules

    # -- order entry -------------------------------------------------------------------------------------
    def submit_order(self, ticket: OrderTicket) -> BrokerAck:
        params = to_binance_order(ticket)

        def send() -> BrokerAck:
            return parse_binance_ack(self.client.signed("POST", "/api/v3/order", params, weight=W_ORDER))

        return self._place(send, lambda: self._find_order(ticket), symbol=ticket.symbol, order_id=ticket.order_id)

    def submit_oco(self, tickets: Sequence[OrderTicket]) -> list[BrokerAck]:
        """SL + TP as one Binance order list; acks in the tickets' order."""
        stop, _ = split_oco_pair(tickets)
        list_id = binance_list_client_order_id(tickets)
        params = to_binance_oco(tickets, list_client_order_id=list_id)

        def send() -> list[BrokerAck]:
            body = self.client.signed("POST", "/api/v3/orderList/oco", params, weight=W_OCO)
            return parse_binance_oco_acks(body, tickets)

        def find() -> list[BrokerAck] | None:
            try:
                body = self.client.signed("GET", "/api/v3/orderList", [("origClientOrderId", list_id)],
                                          weight=W_ORDER_LIST)
            except BinanceApiError as e:
                if e.order_missing or e.code in (-2011, -2013):
                    return None
                raise parse_binance_error(e, context=ErrorContext.LOOKUP, symbol=stop.symbol,
                                          order_id=list_id) from None
            return parse_binance_oco_acks(body, tickets)

        return self._place(send, find, symbol=stop.symbol, order_id=list_id)

    def lookup_order(self, ticket: OrderTicket) -> BrokerAck | None:
        return self._find_order(ticket)

    def _find_order(self, ticket: OrderTicket) -> BrokerAck | None:
        try:
            body = self.client.signed("GET", "/api/v3/order", [("symbol", ticket.symbol),
                                                               ("origClientOrderId", ticket.order_id)],
                                      weight=W_QUERY)
        except BinanceApiError as e:
            if e.order_missing:
                return None
            raise parse_binance_error(e, context=ErrorContext.LOOKUP, symbol=ticket.symbol,
                                      order_id=ticket.order_id) from None
        return parse_binance_ack(body)

    def _place(self, send: Callable[[], T], find: Callable[[], T | None], *, symbol: str, order_id: str) -> T:
        """Send once. A duplicate client id answers with the order already there; an unknown outcome (no
        answer, 5xx, -1006/-1007) looks the order up and sends again only if the venue has none."""
        try:
            return send()
        except BinanceApiError as e:
            if not (e.is_duplicate or e.unknown_outcome):
                raise parse_binance_error(e, context=ErrorContext.ORDER, symbol=symbol, order_id=order_id) from None
            log.warning("%s: order %s: %s; looking it up before anything else", PROVIDER, order_id, e)
            duplicate = e.is_duplicate
        except ProviderUnavailable as e:
            log.warning("%s: order %s: %s; looking it up before sending again", PROVIDER, order_id, e.message)
            duplicate = False
        found = find()          # ProviderUnavailable here leaves the order PENDING for reconciliation
        if found is not None:
            return found
        if duplicate:
            raise OrderRejected("ORDER_REJECTED", f"Order rejected: client order id {order_id} is in use at the "
                                "venue, but no such order could be found", code=-2010, msg="Duplicate order sent.")
        try:
            return send()
        except BinanceApiError as e:
            if e.is_duplicate and (found := find()) is not None:
                return found
            if e.is_duplicate or e.unknown_outcome:
                raise ProviderUnavailable(f"{PROVIDER} did not confirm order {order_id}; it is reconciled by its "
                                          "client id") from None
            raise parse_binance_error(e, context=ErrorContext.ORDER, symbol=symbol, order_id=order_id) from None

    def cancel_order(self, ticket: OrderTicket) -> None:
        """Cancels by our id. Cancelling one leg of an OCO cancels the whole list at Binance."""
        self._signed("DELETE", "/api/v3/order", [("symbol", ticket.symbol), ("origClientOrderId", ticket.order_id)],
                     weight=W_CANCEL, context=ErrorContext.LOOKUP, symbol=ticket.symbol, order_id=ticket.order_id)

    # -- what happened to working orders -----------------------------------------------------------------
    def sync(self, working: Sequence[WorkingOrder], *, now: datetime) -> list[ExecutionReport]:
        """Fills of every order come before any ending, as the venue made them: the leg an OCO sibling's fill
        cancelled must find that fill recorded, or the desk would put the leg back."""
        reports: list[ExecutionReport] = []
        for order in working:
            try:
                reports.extend(self._sync_one(order, now))
            except (ProviderUnavailable, RateLimited) as e:
                if not reports:
                    raise
                log.warning("%s: sync stopped early (%s); the rest waits for the next pass", PROVIDER, e.message)
                break
            except DeskError as e:
                log.warning("%s: could not sync order %s: %s", PROVIDER, order.order_id, e.message)
        return sorted(reports, key=lambda r: r.kind is not ReportKind.FILL)

    def _sync_one(self, order: WorkingOrder, now: datetime) -> list[ExecutionReport]:
        try:
            body = self.client.signed("GET", "/api/v3/order", [("symbol", order.symbol),
                                                               ("origClientOrderId", order.order_id)], weight=W_QUERY)
        except BinanceApiError as e:
            if e.order_missing:
                return self._missing(order, now)
            if e.code == -2026:
                return [ExecutionReport(order.order_id, ReportKind.CANCELLED, now, reason="archived by the venue")]
            raise parse_binance_error(e, context=ErrorContext.LOOKUP, symbol=order.symbol,
                                      order_id=order.order_id) from None
        executed = parse_binance_decimal(body["executedQty"], name="executedQty")
        status = body["status"]
        ending = parse_binance_ending(status, order_list_id=int(body.get("orderListId", -1)),
                                      expiry_reason=body.get("expiryReason"))
        at = ms_to_datetime(body["updateTime"]) if body.get("updateTime") else now
        reports = []
        if executed > order.filled_quantity:
            reports += self._fills(order, body, executed, final=ending is not None or status == "FILLED", at=at)
        if ending is not None:
            reports.append(ExecutionReport(order.order_id, ending[0], at, reason=ending[1]))
        elif (order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered
              and body.get("isWorking") and status in ("NEW", "PARTIALLY_FILLED")):
            reports.append(ExecutionReport(order.order_id, ReportKind.STATE, now, triggered=True, checked_until=now))
        return reports

    def _fills(self, order: WorkingOrder, body: dict, executed: Decimal, *, final: bool,
               at: datetime) -> list[ExecutionReport]:
        """The trades beyond what the desk has recorded, oldest first. When the order is done (filled or ended)
        and the trade list does not (yet) account for everything executed, the rest is reported at the price
        the order's cumulative quote amount implies: a finished order is not looked at again, and its OCO
        sibling's cancel must find it filled."""
        venue_id = str(body["orderId"])
        trades = self._signed("GET", "/api/v3/myTrades", [("symbol", order.symbol), ("orderId", venue_id)],
                              weight=W_MY_TRADES, context=ErrorContext.LOOKUP, symbol=order.symbol,
                              order_id=order.order_id)
        trades = sorted((t for t in trades if str(t.get("orderId")) == venue_id), key=lambda t: int(t["id"]))
        reports, seen, seen_quote = [], ZERO, ZERO
        for trade in trades:
            report = parse_binance_trade(trade, order_id=order.order_id)
            before, seen = seen, seen + report.quantity
            seen_quote += report.quantity * report.price
            if seen <= order.filled_quantity:
                continue                                   # recorded on an earlier pass
            if before < order.filled_quantity:             # partly recorded another way (estimated rest)
                report = replace(report, quantity=seen - order.filled_quantity)
            reports.append(report)
        missing = executed - max(seen, order.filled_quantity)
        if final and missing > 0:
            quote_total = parse_binance_decimal(body.get("cummulativeQuoteQty", "0"), name="cummulativeQuoteQty")
            rest = quote_total - seen_quote
            price = quantize_money(rest / missing if rest > 0 else quote_total / executed, 8)
            fee, fee_asset = self._estimated_fee(order, trades, quantity=missing, price=price)
            reports.append(ExecutionReport(
                order.order_id, ReportKind.FILL, at, fill_id=f"{order.symbol}:order-{venue_id}:"
                f"{format_decimal(executed)}", quantity=missing, price=price, commission=fee,
                commission_currency=fee_asset, extra={"venue_order_id": venue_id, "estimated": True}))
        return reports

    def _estimated_fee(self, order: WorkingOrder, trades: list[dict], *, quantity: Decimal,
                       price: Decimal) -> tuple[Decimal, str]:
        """The commission on a part of a fill the trade list does not show yet. At what the order's other trades
        paid per unit, in their asset; without any, in the coin bought (Binance's default without BNB: the base
        asset on a BUY, the quote asset on a SELL) at the account's taker rate. A fee taken in the base asset
        must not be left out, or the desk would think it holds more than the venue does."""
        paid = [t for t in trades if t.get("commissionAsset")]
        if paid:
            asset = paid[-1]["commissionAsset"]
            same = [t for t in paid if t["commissionAsset"] == asset]
            units = sum((parse_binance_decimal(t["qty"], name="qty") for t in same), ZERO)
            fees = sum((parse_binance_decimal(t["commission"], name="commission") for t in same), ZERO)
            return (quantize_money(fees * quantity / units, 8) if units > 0 else ZERO), asset
        try:
            rules = self.symbol_rules(order.symbol)
        except DeskError:
            return ZERO, ""
        rate = self._taker_rate if self._taker_rate is not None else DEFAULT_TAKER_RATE
        if order.side is Side.BUY:
            return quantize_money(quantity * rate, 8), rules.base_asset
        return quantize_money(quantity * price * rate, 8), rules.quote_asset

    def _missing(self, order: WorkingOrder, now: datetime) -> list[ExecutionReport]:
        if now - order.created_at < MISSING_GRACE + timedelta(milliseconds=self.config.recv_window):
            return []                                      # it may still be on its way
        if order.filled_quantity > 0:
            return [ExecutionReport(order.order_id, ReportKind.CANCELLED, now,
                                    reason="the venue no longer knows this order")]
        return [ExecutionReport(order.order_id, ReportKind.REJECTED, now,
                                reason="the venue has no order with this client id: it never arrived")]


    # -- the venue's account ---------------------------------------------------------------------------------
    def account_state(self, *, now: datetime, account_id: int | None = None) -> VenueAccount:
        """Cash, equity and buying power in the quote asset (``account.py``): weight 20 for the account, plus
        2-4 for the prices of what is held (and 20 per held asset's symbol rules, once an hour)."""
        holdings = self.holdings(now=now)
        return to_venue_account(holdings.balances, quote=self.config.quote_asset, marks=holdings.marks)

    def positions(self, *, now: datetime, account_id: int | None = None) -> list[VenuePosition]:
        holdings = self.holdings(now=now)
        return to_venue_positions(holdings.balances, quote=self.config.quote_asset, symbols=holdings.symbols,
                                  marks=holdings.marks)

    def open_orders(self, *, now: datetime, account_id: int | None = None) -> list[VenueOrder]:
        """Every open order on every symbol, order-list legs included (weight 80: without a symbol is the only
        way to see orders placed elsewhere, so this is for reconciliation, not for every tick)."""
        rows = self._signed("GET", "/api/v3/openOrders", [], weight=W_OPEN_ORDERS_ALL, context=ErrorContext.LOOKUP,
                            symbol=None)
        return sorted((parse_binance_open_order(row) for row in rows), key=lambda o: (o.created_at,
                                                                                     o.broker_order_id))

    def holdings(self, *, now: datetime) -> Holdings:
        """The account's balances, with the symbol and last price of each held asset against the quote asset.
        One read serves ``account_state`` and ``positions`` asked for the same ``now`` in quick succession."""
        clock = self.client.clock()
        if self._holdings is not None and self._holdings[0] == now and clock - self._holdings[1] < \
                HOLDINGS_REUSE_SECONDS:
            return self._holdings[2]
        body = self._signed("GET", "/api/v3/account", [("omitZeroBalances", "true")], weight=W_ACCOUNT,
                            context=ErrorContext.LOOKUP, symbol=None)
        if (rate := parse_binance_taker_rate(body)) is not None:
            self._taker_rate = rate
        balances = parse_binance_balances(body)
        quote = self.config.quote_asset
        rules = {asset: found for asset in balances if asset != quote
                 and (found := self._quote_symbol_rules(asset)) is not None}
        holdings = Holdings(balances=balances, symbols={asset: r.symbol for asset, r in rules.items()},
                            marks=self._last_prices(rules))
        self._holdings = (now, clock, holdings)
        return holdings

    def _quote_symbol_rules(self, asset: str) -> SymbolRules | None:
        """The rules of ``<ASSET><QUOTE>``, or None when Binance lists no such symbol (remembered as long as
        rules are, so dust does not cost an exchangeInfo call on every read)."""
        symbol = f"{asset}{self.config.quote_asset}"
        if self.client.clock() - self._unknown_symbols.get(symbol, -math.inf) < self.config.rules_ttl:
            return None
        try:
            rules = self.symbol_rules(symbol)
        except SymbolNotFound:
            self._unknown_symbols[symbol] = self.client.clock()
            return None
        if rules.base_asset not in ("", asset) or rules.quote_asset not in ("", self.config.quote_asset):
            return None
        return rules

    def _last_prices(self, rules: dict[str, SymbolRules]) -> dict[str, Decimal]:
        """Each asset's last price against the quote asset, in one ticker call. A symbol that is not trading
        (a break, a delisting) is not asked for: the venue would refuse the whole list for it."""
        symbols = sorted(r.symbol for r in rules.values() if r.trading)
        if not symbols:
            return {}
        if len(symbols) == 1:
            params: Params = [("symbol", symbols[0])]
        else:
            params = [("symbols", json.dumps(symbols, separators=(",", ":")))]
        body = self._market("/api/v3/ticker/price", params, weight=W_PRICE if len(symbols) == 1 else W_PRICES,
                            symbol=",".join(symbols))
        rows = body if isinstance(body, list) else [body]
        prices = {row["symbol"]: parse_binance_decimal(row["price"], name="price") for row in rows}
        return {asset: prices[r.symbol] for asset, r in rules.items() if r.symbol in prices}


# -- pre-trade helpers -----------------------------------------------------------------------------------

def _reference_price(request: OrderRequest, quote: Quote) -> Decimal:
    touch = quote.ask if request.side is Side.BUY else quote.bid
    if request.order_type is OrderType.LIMIT:
        limit = request.limit_price
        return min(limit, touch) if request.side is Side.BUY else max(limit, touch)
    if request.order_type is OrderType.STOP_LIMIT:
        return request.limit_price
    if request.order_type is OrderType.STOP:
        return request.stop_price
    return touch


def _check_post_only(request: OrderRequest, quote: Quote) -> None:
    if not request.post_only or request.limit_price is None:
        return
    crosses = request.limit_price >= quote.ask if request.side is Side.BUY else request.limit_price <= quote.bid
    if crosses:
        raise OrderRejected(RejectReason.POST_ONLY_VIOLATED, "A post-only order would take liquidity at this price",
                            limit_price=format_decimal(request.limit_price), bid=format_decimal(quote.bid),
                            ask=format_decimal(quote.ask))


def _check_stop_side(request: OrderRequest, quote: Quote) -> None:
    """A stop must sit beyond the market (above it for a BUY), or Binance says "Order would trigger
    immediately"; the book's mid stands in for the last trade."""
    if request.order_type not in (OrderType.STOP, OrderType.STOP_LIMIT):
        return
    stop, market = request.stop_price, quote.mid
    if (stop <= market) if request.side is Side.BUY else (stop >= market):
        relation = "above" if request.side is Side.BUY else "below"
        raise OrderRejected(RejectReason.INVALID_PRICE, f"A {request.side} stop must be {relation} the market "
                            f"{format_decimal(market)}; it would trigger immediately", field="stop_price",
                            price=format_decimal(stop), market=format_decimal(market))


def _check_reduce_only(request: OrderRequest, context: AccountContext) -> None:
    """Spot has no reduce-only flag: the desk's own rule, checked against the desk's position."""
    if request.reduce_only and exposure_increase(context.position_quantity, side=request.side,
                                                 quantity=request.quantity) > 0:
        raise OrderRejected(RejectReason.REDUCE_ONLY_VIOLATED, "A reduce-only order may not open or grow a position",
                            position_quantity=format_decimal(context.position_quantity),
                            quantity=format_decimal(request.quantity))


DEFAULT_QUOTE_ASSET = "USDT"


def build_binance_broker() -> BinanceBroker:
    """The registry's factory (``BROKERS["binance_spot"]``): configuration from the environment.

    ``BINANCE_BASE_URL`` (default: the Spot testnet) names the venue; the WebSocket API URL is derived from it
    (``endpoints.py``) unless ``BINANCE_WS_API_URL`` names one. ``BINANCE_QUOTE_ASSET`` (default USDT) is the
    account's currency."""
    values = require_env(PROVIDER, ["BINANCE_API_KEY", "BINANCE_API_SECRET"],
                         {"BINANCE_BASE_URL": "https://testnet.binance.vision", "BINANCE_RECV_WINDOW": "5000",
                          "BINANCE_WS_API_URL": "", "BINANCE_QUOTE_ASSET": DEFAULT_QUOTE_ASSET})
    try:
        base_url = rest_base_url(values["BINANCE_BASE_URL"])
    except ValueError as e:
        raise ImproperlyConfigured(f"BINANCE_BASE_URL: {e}") from None
    try:
        stream_url = ws_api_url(base_url, override=values["BINANCE_WS_API_URL"])
    except ValueError as e:
        raise ImproperlyConfigured(f"BINANCE_WS_API_URL: {e}") from None
    quote = values["BINANCE_QUOTE_ASSET"].strip().upper()
    if not quote.isalnum():
        raise ImproperlyConfigured(f"BINANCE_QUOTE_ASSET must be an asset code such as USDT (got {quote!r})")
    try:
        recv_window = int(values["BINANCE_RECV_WINDOW"])
    except ValueError:
        recv_window = 0
    if not 1 <= recv_window <= 60000:
        raise ImproperlyConfigured("BINANCE_RECV_WINDOW must be a whole number of milliseconds, 1 to 60000 "
                                   f"(got {values['BINANCE_RECV_WINDOW']!r})")
    return BinanceBroker(BinanceConfig(api_key=values["BINANCE_API_KEY"], api_secret=values["BINANCE_API_SECRET"],
                                       base_url=base_url, ws_api_url=stream_url, quote_asset=quote,
                                       recv_window=recv_window))
