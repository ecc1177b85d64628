"""The paper venue: a simulated broker that behaves like a real one.

It mirrors the class of venue each instrument stands for (``catalogue.py`` has the table):

- stocks behave as at Alpaca: prices on the cent grid and above zero, but no price band, so a BUY LIMIT
  AAPL at 1.00 is accepted and rests;
- crypto behaves as Binance Spot: a PERCENT_PRICE_BY_SIDE filter (a BUY or a SELL between 0.2 and 5
  times the market), and the fee taken in the asset bought, as Binance does without BNB: a BUY of
  0.01 BTC at 10 bps is charged 0.00001 BTC and leaves 0.00999 held, a SELL pays in USDT;
- forex behaves as a margin FX dealer: 50:1 margin and a 5 % band around the mid.

Prices come from ``paper_market.PriceWalk`` (reproducible per seed and second). The
venue refuses what a real venue refuses (unknown, halted or closed symbols, prices
off the tick or outside the band of their class, quantities off the step or below the minimum,
orders the account cannot fund) and matches working orders second by second
against the top of book, filling no more than the size shown at each second, so a
large order fills in parts.

It keeps no state of its own between calls: the working orders, with the little
venue state they carry (trigger flag, trailing reference, how far they were
matched), live in the desk's database and are handed to ``sync``. That is what lets
the web process accept orders and the engine process match them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from orders.brokers.base import Broker
from orders.brokers.catalogue import is_fee_in_base_asset, venue_price_band
from orders.brokers.faults import PaperFaults
from orders.brokers.paper_market import EPOCH, PriceWalk, seconds_since_epoch
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
from orders.domain.account import Holding, account_figures
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
from orders.domain.errors import OrderRejected, ProviderError, ProviderUnavailable, SymbolNotFound
from orders.domain.money import ZERO, format_decimal, is_on_grid, quantize_money
from orders.domain.orders import OrderRequest
from orders.domain.positions import exposure_increase

MAX_CATCH_UP_SECONDS = 3600
_ALL_TYPES = tuple(OrderType)
_PROFILE_FEATURES = {
    BracketStrategy.NATIVE_BRACKET: ("bracket_orders", "oco"),
    BracketStrategy.NATIVE_OCO: ("oco",),
    BracketStrategy.PENDING: (),
}
_COMMON_FEATURES = ("trailing_stop", "trailing_stops", "short_selling", "reduce_only", "post_only", "get_quote")


@dataclass(frozen=True)
class PaperConfig:
    seed: int
    instruments: dict[str, Instrument]
    profile: BracketStrategy = BracketStrategy.PENDING
    fault_file: str = ""
    # the desk's books, which are this venue's (``paper_ledger.PaperLedger``); None: the venue reports no account
    ledger: Any = None


def is_session_open(instrument: Instrument, at: datetime) -> bool:
    if instrument.session == "always":
        return True
    if at.weekday() >= 5:
        return False
    minutes = at.hour * 60 + at.minute
    return 13 * 60 + 30 <= minutes < 20 * 60


def session_end(instrument: Instrument, opened: datetime) -> datetime:
    """When a DAY order placed at ``opened`` expires."""
    day = opened.replace(hour=0, minute=0, second=0, microsecond=0)
    if instrument.session == "always":
        return day + timedelta(days=1)
    return day.replace(hour=20)


def _is_exit_leg(ticket: OrderTicket) -> bool:
    """An order protecting a position: reduce-only and resting (a stop or a limit; a market close is not one)."""
    return ticket.reduce_only and ticket.order_type != OrderType.MARKET


class PaperBroker(Broker):
    name = "paper"
    answers_at_once = True
    simulated = True
    venue_ledger = False        # its books are the desk's own

    def __init__(self, config: PaperConfig) -> None:
        self.config = config
        self.walk = PriceWalk(seed=config.seed, provider=self.name)
        self.faults = PaperFaults(config.fault_file) if config.fault_file else None
        classes = tuple(dict.fromkeys(i.asset_class for i in config.instruments.values()))
        self.capabilities = Capabilities(
            platform=self.name,
            supported_asset_classes=classes or (AssetClass.STOCK,),
            supported_order_types=_ALL_TYPES,
            position_mode=PositionMode.NETTING,
            features=_PROFILE_FEATURES[config.profile] + _COMMON_FEATURES,
            bracket_strategy=config.profile,
            rate_limits={"requests_per_minute": 6000, "orders_per_second": 50},
        )

    # -- faults ----------------------------------------------------------------------------------------
    def _venue_call(self, *tickets: OrderTicket) -> None:
        """What every call meets first: the injected shocks, latency and outage. ``tickets``: the orders the call
        places or resizes (a latency for exit legs only delays the calls that carry one)."""
        if self.faults is None:
            return
        state = self.faults.state()
        self.walk.shocks = {symbol: (int(shock["from"]), 1 + Decimal(shock["pct"]) / 100)
                            for symbol, shock in state.shocks.items()}
        if state.latency_ms and (not state.latency_exits_only or any(map(_is_exit_leg, tickets))):
            time.sleep(state.latency_ms / 1000)
        if state.unavailable:
            raise ProviderUnavailable("paper venue is unavailable (injected fault)")

    def _injected_rejection(self, ticket: OrderTicket) -> None:
        if self.faults is None:
            return
        rule = self.faults.take_rejection(ticket.order_type)
        if rule is not None:
            raise OrderRejected(rule["reason"], f"Order rejected: {rule['message']}", injected=True)

    # -- reference data --------------------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted(self.config.instruments)

    def instrument(self, symbol: str) -> Instrument:
        try:
            return self.config.instruments[symbol]
        except KeyError:
            raise SymbolNotFound(symbol) from None

    def quote(self, symbol: str, *, now: datetime) -> Quote:
        self._venue_call()
        frozen_at = self.faults.state().frozen_at if self.faults is not None else None
        if frozen_at is not None:        # a feed that stopped: the quote of the second it stopped, ageing
            return self.walk.quote_at_second(self.instrument(symbol), min(frozen_at, seconds_since_epoch(now)))
        return self.walk.quote(self.instrument(symbol), now)

    def bars(self, symbol: str, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        self._venue_call()
        return self.walk.bars(self.instrument(symbol), timeframe=timeframe, seconds=seconds, end=end, count=count)

    def status(self, *, now: datetime) -> ConnectionStatus:
        unavailable = self.faults is not None and self.faults.state().unavailable
        return ConnectionStatus(connected=not unavailable, latency_ms=0, last_heartbeat=now)

    # -- the venue's books (the desk's database: see paper_ledger.py) -------------------------------------
    def account_state(self, *, now: datetime, account_id: int | None = None) -> VenueAccount:
        currency, cash = self._ledger().currency_and_cash(self._account(account_id))
        holdings = [Holding(quantity=p.quantity, average_price=p.average_price, mark=p.mark,
                            margin_rate=self._margin_rate(p.symbol))
                    for p in self.positions(now=now, account_id=account_id)]
        figures = account_figures(cash=cash, holdings=holdings, currency=currency)
        return VenueAccount(cash=figures.balance, equity=figures.equity, buying_power=figures.buying_power,
                            margin_used=figures.margin_used, margin_available=figures.margin_available,
                            currency=currency, unrealized_pnl=figures.unrealized_pnl)

    def positions(self, *, now: datetime, account_id: int | None = None) -> list[VenuePosition]:
        out = []
        for symbol, quantity, average in self._ledger().holdings(self._account(account_id)):
            instrument = self.config.instruments.get(symbol)
            mark = self.walk.quote(instrument, now).last if instrument else average
            out.append(VenuePosition(symbol=symbol, quantity=quantity, average_price=average, mark=mark))
        return out

    def open_orders(self, *, now: datetime, account_id: int | None = None) -> list[VenueOrder]:
        return [VenueOrder(**row) for row in self._ledger().working(self._account(account_id))]

    def _ledger(self) -> Any:
        if self.config.ledger is None:
            raise ProviderUnavailable("this paper venue was built without the desk's books")
        return self.config.ledger

    @staticmethod
    def _account(account_id: int | None) -> int:
        if account_id is None:
            raise ValueError("the paper venue keeps one book per desk account: account_id is required")
        return account_id

    def _margin_rate(self, symbol: str) -> Decimal:
        instrument = self.config.instruments.get(symbol)
        return instrument.margin_rate if instrument else Decimal("1")

    # -- pre-trade -------------------------------------------------------------------------------------
    def check_order(self, request: OrderRequest, *, context: AccountContext, now: datetime) -> Decimal:
        self._venue_call()
        instrument = self._tradeable(request.symbol, now)
        self._check_quantity(instrument, request)
        quote = self.walk.quote(instrument, now)
        self._check_prices(instrument, request, quote)
        reference = self._reference_price(request, quote)
        self._check_notional(instrument, request.quantity * reference)
        self._check_post_only(request, quote)
        self._check_funding(instrument, request, context, reference)
        return reference

    def _tradeable(self, symbol: str, now: datetime) -> Instrument:
        instrument = self.config.instruments.get(symbol)
        if instrument is None:
            raise OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE, f"Symbol {symbol} is not traded on this venue",
                                symbol=symbol, reason="unknown symbol")
        if instrument.halted:
            raise OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE, f"Trading in {symbol} is halted",
                                symbol=symbol, reason="halted")
        if not is_session_open(instrument, now):
            raise OrderRejected(RejectReason.SYMBOL_NOT_TRADEABLE,
                                f"The market for {symbol} is closed (open 13:30-20:00 UTC, Monday to Friday)",
                                symbol=symbol, reason="market closed")
        return instrument

    @staticmethod
    def _check_quantity(instrument: Instrument, request: OrderRequest) -> None:
        qty = request.quantity
        if qty < instrument.min_quantity:
            raise OrderRejected(RejectReason.INVALID_QUANTITY,
                                f"Quantity {format_decimal(qty)} is below the minimum "
                                f"{format_decimal(instrument.min_quantity)} for {instrument.symbol}",
                                quantity=format_decimal(qty), min_quantity=format_decimal(instrument.min_quantity))
        if not is_on_grid(qty, instrument.quantity_step):
            raise OrderRejected(RejectReason.INVALID_QUANTITY,
                                f"Quantity {format_decimal(qty)} is not a multiple of the step "
                                f"{format_decimal(instrument.quantity_step)} for {instrument.symbol}",
                                quantity=format_decimal(qty), quantity_step=format_decimal(instrument.quantity_step))

    @staticmethod
    def _check_prices(instrument: Instrument, request: OrderRequest, quote: Quote) -> None:
        tick = instrument.tick_size
        for field in ("limit_price", "stop_price", "stop_loss", "take_profit"):
            price = getattr(request, field)
            if price is None:
                continue
            if price <= 0:
                raise OrderRejected(RejectReason.INVALID_PRICE, f"{field} {format_decimal(price)} must be above zero",
                                    field=field, price=format_decimal(price))
            if not is_on_grid(price, tick):
                raise OrderRejected(RejectReason.INVALID_PRICE,
                                    f"{field} {format_decimal(price)} is not a multiple of the tick size "
                                    f"{format_decimal(tick)} for {instrument.symbol}",
                                    field=field, price=format_decimal(price), tick_size=format_decimal(tick))
            # the exits of a bracket are orders of the other side
            side = request.side if field in ("limit_price", "stop_price") else request.side.opposite
            _check_price_band(instrument, field, price, side=side, market=quote.mid)
        if (request.trailing_type is TrailingType.ABSOLUTE and request.trailing_distance is not None
                and not is_on_grid(request.trailing_distance, tick)):
            raise OrderRejected(RejectReason.INVALID_PRICE,
                                f"trailing_distance {format_decimal(request.trailing_distance)} is not a multiple "
                                f"of the tick size {format_decimal(tick)}",
                                field="trailing_distance", price=format_decimal(request.trailing_distance),
                                tick_size=format_decimal(tick))

    @staticmethod
    def _reference_price(request: OrderRequest, quote: Quote) -> Decimal:
        touch = quote.ask if request.side is Side.BUY else quote.bid
        if request.order_type is OrderType.LIMIT:
            return min(request.limit_price, touch) if request.side is Side.BUY else max(request.limit_price, touch)
        if request.order_type is OrderType.STOP_LIMIT:
            return request.limit_price
        if request.order_type is OrderType.STOP:
            return request.stop_price
        return touch

    @staticmethod
    def _check_notional(instrument: Instrument, notional: Decimal) -> None:
        if notional < instrument.min_notional:
            raise OrderRejected(RejectReason.INVALID_QUANTITY,
                                f"Order value {format_decimal(quantize_money(notional, 2))} is below the minimum "
                                f"notional {format_decimal(instrument.min_notional)} for {instrument.symbol}",
                                notional=format_decimal(quantize_money(notional, 8)),
                                min_notional=format_decimal(instrument.min_notional))

    @staticmethod
    def _check_post_only(request: OrderRequest, quote: Quote) -> None:
        if not request.post_only or request.limit_price is None:
            return
        crosses = request.limit_price >= quote.ask if request.side is Side.BUY else request.limit_price <= quote.bid
        if crosses:
            raise OrderRejected(RejectReason.POST_ONLY_VIOLATED,
                                "A post-only order would take liquidity at this price",
                                limit_price=format_decimal(request.limit_price),
                                bid=format_decimal(quote.bid), ask=format_decimal(quote.ask))

    @staticmethod
    def _check_funding(instrument: Instrument, request: OrderRequest, context: AccountContext,
                       reference: Decimal) -> None:
        held = context.position_quantity
        added = exposure_increase(held, side=request.side, quantity=request.quantity)
        if request.reduce_only and added > 0:
            raise OrderRejected(RejectReason.REDUCE_ONLY_VIOLATED,
                                "A reduce-only order may not open or grow a position",
                                position_quantity=format_decimal(held), quantity=format_decimal(request.quantity))
        if added <= 0:
            return
        opens_short = held + request.quantity * request.side.sign < 0
        if opens_short and not instrument.can_short:
            available = max(held, ZERO)
            raise OrderRejected(RejectReason.INSUFFICIENT_BALANCE,
                                f"Insufficient {instrument.base_asset} balance to sell "
                                f"{format_decimal(request.quantity)}",
                                asset=instrument.base_asset, required=format_decimal(request.quantity),
                                available=format_decimal(available))
        rate = instrument.margin_rate * (Decimal("1.5") if opens_short else 1)
        # a fee taken in the coin bought comes out of the coin, not out of the cash that pays for it
        fee = ZERO if is_fee_in_base_asset(instrument, request.side) else (
            added * reference * instrument.commission_bps / 10000)
        required = quantize_money(added * reference * rate + fee, 2)
        available = quantize_money(context.figures.buying_power, 2)
        if required > available:
            reason = (RejectReason.INSUFFICIENT_BALANCE if rate >= 1 and not opens_short
                      else RejectReason.INSUFFICIENT_MARGIN)
            noun = "balance" if reason is RejectReason.INSUFFICIENT_BALANCE else "margin"
            raise OrderRejected(reason, f"Insufficient {noun} to place order",
                                required=format_decimal(required), available=format_decimal(available),
                                currency=context.figures.currency)

    # -- order entry -----------------------------------------------------------------------------------
    def submit_order(self, ticket: OrderTicket) -> BrokerAck:
        self._venue_call(ticket)
        self._injected_rejection(ticket)
        return BrokerAck(broker_order_id=ticket.order_id, status=OrderStatus.OPEN)

    def submit_bracket(self, entry: OrderTicket, legs: Sequence[OrderTicket]) -> list[BrokerAck]:
        """Entry and legs accepted as one unit: if any part is refused, nothing is placed.
        The legs are held (PENDING) until the entry fills."""
        self._venue_call()
        for ticket in (entry, *legs):
            self._injected_rejection(ticket)
        return [BrokerAck(entry.order_id, OrderStatus.OPEN),
                *(BrokerAck(leg.order_id, OrderStatus.PENDING) for leg in legs)]

    def submit_oco(self, tickets: Sequence[OrderTicket]) -> list[BrokerAck]:
        """Orders the venue links one-cancels-other: the first fill of one cancels the rest."""
        self._venue_call(*tickets)
        for ticket in tickets:
            self._injected_rejection(ticket)
        return [BrokerAck(t.order_id, OrderStatus.OPEN) for t in tickets]

    def cancel_order(self, ticket: OrderTicket) -> None:
        self._venue_call()
        if self.faults is not None and self.faults.take_cancel_refusal():
            raise ProviderError("the venue refused to cancel the order (injected fault)", provider=self.name)

    def modify_order(self, ticket: OrderTicket, *, quantity: Decimal | None = None,
                     limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                     trailing_distance: Decimal | None = None) -> BrokerAck:
        self._venue_call(ticket)
        instrument = self.instrument(ticket.symbol)
        for field, price in (("limit_price", limit_price), ("stop_price", stop_price)):
            if price is not None and not is_on_grid(price, instrument.tick_size):
                raise OrderRejected(RejectReason.INVALID_PRICE,
                                    f"{field} {format_decimal(price)} is not a multiple of the tick size "
                                    f"{format_decimal(instrument.tick_size)}",
                                    field=field, price=format_decimal(price),
                                    tick_size=format_decimal(instrument.tick_size))
        if quantity is not None and not is_on_grid(quantity, instrument.quantity_step):
            raise OrderRejected(RejectReason.INVALID_QUANTITY,
                                f"Quantity {format_decimal(quantity)} is not a multiple of the step "
                                f"{format_decimal(instrument.quantity_step)}",
                                quantity=format_decimal(quantity),
                                quantity_step=format_decimal(instrument.quantity_step))
        return BrokerAck(broker_order_id=ticket.order_id, status=OrderStatus.OPEN)

    # -- matching --------------------------------------------------------------------------------------
    def sync(self, working: Sequence[WorkingOrder], *, now: datetime) -> list[ExecutionReport]:
        self._venue_call()
        reports: list[ExecutionReport] = []
        for order in working:
            instrument = self.config.instruments.get(order.symbol)
            if instrument is None:
                reports.append(ExecutionReport(order.order_id, ReportKind.CANCELLED, now,
                                               reason="symbol no longer traded"))
                continue
            reports.extend(_Matcher(self.walk, instrument, order).run(now))
        return _resolve_venue_oco(working, reports)


def _check_price_band(instrument: Instrument, field: str, price: Decimal, *, side: Side, market: Decimal) -> None:
    """Refuse a price outside the band the instrument's class of venue puts around the market (none for
    stocks, Binance's PERCENT_PRICE_BY_SIDE for crypto, a symmetric band for forex)."""
    band = venue_price_band(instrument)
    if band is None:
        return
    low, high = band.bounds(side, market)
    if low <= price <= high:
        return
    low, high = quantize_money(low, 8), quantize_money(high, 8)
    raise OrderRejected(RejectReason.INVALID_PRICE,
                        f"{field} {format_decimal(price)} is outside the {side} price band "
                        f"{format_decimal(low)} - {format_decimal(high)} around the market "
                        f"{format_decimal(market)} for {instrument.symbol}",
                        field=field, price=format_decimal(price),
                        min_price=format_decimal(low), max_price=format_decimal(high))


def _resolve_venue_oco(working: Sequence[WorkingOrder], reports: list[ExecutionReport]) -> list[ExecutionReport]:
    """Within a venue OCO group the first order to fill wins: the others lose their later fills and are
    cancelled at that moment, as a real venue would do."""
    groups: dict[str, list[str]] = {}
    for order in working:
        if order.venue_oco_id:
            groups.setdefault(order.venue_oco_id, []).append(order.order_id)
    if not groups:
        return reports
    first_fill: dict[str, datetime] = {}
    for report in reports:
        if report.kind is ReportKind.FILL and report.order_id not in first_fill:
            first_fill[report.order_id] = report.timestamp
    losers: dict[str, datetime] = {}
    for members in groups.values():
        filled = sorted((first_fill[m], m) for m in members if m in first_fill)
        if not filled:
            continue
        won_at, winner = filled[0]
        for member in members:
            if member != winner:
                losers[member] = won_at
    out = []
    for report in reports:
        cut = losers.get(report.order_id)
        if cut is not None and report.timestamp >= cut:
            continue
        out.append(report)
    out.extend(ExecutionReport(order_id, ReportKind.CANCELLED, cut, reason="OCO sibling filled")
               for order_id, cut in losers.items())
    return out


class _Matcher:
    """Walks one working order through the seconds it has not been matched for yet."""

    def __init__(self, walk: PriceWalk, instrument: Instrument, order: WorkingOrder) -> None:
        self.walk, self.instrument, self.order = walk, instrument, order
        self.remaining = order.remaining
        self.triggered = order.triggered
        self.trail = order.trail_reference
        self.reports: list[ExecutionReport] = []

    def run(self, now: datetime) -> list[ExecutionReport]:
        order = self.order
        created = seconds_since_epoch(order.created_at)
        start = seconds_since_epoch(order.checked_until) + 1 if order.checked_until else created
        end = seconds_since_epoch(now)
        start = max(start, end - MAX_CATCH_UP_SECONDS)
        expiry = seconds_since_epoch(session_end(self.instrument, order.created_at))
        last = start - 1
        for second in range(start, end + 1):
            if order.time_in_force is TimeInForce.DAY and second >= expiry:
                return self._finish(ReportKind.EXPIRED, second, "DAY order expired at the session close")
            at = EPOCH + timedelta(seconds=second)
            if not is_session_open(self.instrument, at):
                last = second
                continue
            self._step(second, arriving=second == created)
            last = second
            if self.remaining <= 0:
                return self.reports
            if order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                reason = "IOC remainder cancelled" if self.reports else f"{order.time_in_force} could not be filled"
                return self._finish(ReportKind.CANCELLED, second, reason)
        if last >= start or self.triggered != order.triggered or self.trail != order.trail_reference:
            self.reports.append(ExecutionReport(order.order_id, ReportKind.STATE, EPOCH + timedelta(seconds=last),
                                                trail_reference=self.trail, triggered=self.triggered,
                                                checked_until=EPOCH + timedelta(seconds=max(last, start - 1))))
        return self.reports

    def _finish(self, kind: ReportKind, second: int, reason: str) -> list[ExecutionReport]:
        self.reports.append(ExecutionReport(self.order.order_id, kind, EPOCH + timedelta(seconds=second),
                                            reason=reason))
        return self.reports

    def _step(self, second: int, *, arriving: bool) -> None:
        order = self.order
        quote = self.walk.quote_at_second(self.instrument, second)
        buy = order.side is Side.BUY
        touch, size = (quote.ask, quote.ask_size) if buy else (quote.bid, quote.bid_size)
        kind = order.order_type
        if kind is OrderType.TRAILING_STOP and not self.triggered:
            self._trail(touch, buy)
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not self.triggered:
            self.triggered = touch >= order.stop_price if buy else touch <= order.stop_price
            arriving = True
        if kind in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP) and not self.triggered:
            return
        price, maker = touch, False
        if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            limit = order.limit_price
            if (touch > limit) if buy else (touch < limit):
                return
            if not arriving:
                price, maker = limit, True
        if order.time_in_force is TimeInForce.FOK and size < self.remaining:
            return
        self._fill(second, min(self.remaining, size), price, maker)

    def _trail(self, touch: Decimal, buy: bool) -> None:
        order = self.order
        if self.trail is None or (touch < self.trail if buy else touch > self.trail):
            self.trail = touch
        distance = order.trailing_distance
        if order.trailing_type is TrailingType.PERCENT:
            distance = self.trail * distance / 100
        stop = self.trail + distance if buy else self.trail - distance
        self.triggered = touch >= stop if buy else touch <= stop

    def _fill(self, second: int, quantity: Decimal, price: Decimal, maker: bool) -> None:
        commission, currency = self._commission(quantity, price)
        self.remaining -= quantity
        self.reports.append(ExecutionReport(
            self.order.order_id, ReportKind.FILL, EPOCH + timedelta(seconds=second),
            fill_id=f"{self.order.order_id}:{second}", quantity=quantity, price=price, commission=commission,
            commission_currency=currency, is_maker=maker,
            trail_reference=self.trail, triggered=self.triggered, checked_until=EPOCH + timedelta(seconds=second)))

    def _commission(self, quantity: Decimal, price: Decimal) -> tuple[Decimal, str]:
        """The fee and the asset it is taken in. A fee in the coin bought is rounded to 8 places, the
        precision Binance keeps balances and commissions in, not to the lot step: 10 bps of 0.01 ETH is
        0.00001 ETH, which the 0.0001 step would round to nothing or to ten times the fee. So what is held
        afterwards (0.00999 ETH) may be off the step, as it is at the venue."""
        instrument, rate = self.instrument, self.instrument.commission_bps / 10000
        if is_fee_in_base_asset(instrument, self.order.side):
            return quantize_money(quantity * rate, 8), instrument.base_asset
        return quantize_money(quantity * price * rate, 8), instrument.quote_currency
