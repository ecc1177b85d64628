"""A fake Binance Spot, written from ``shared/reference/brokers/binance/spot_api.yaml`` and NOTES §3, run as its own
process on 127.0.0.1: ``python -m tests.fakes.binance --port 0 --ws-port 0`` prints
``READY http://127.0.0.1:<port> ws://127.0.0.1:<ws-port>``. The REST API is on the first; the WebSocket API
(``/ws-api/v3``: ``userDataStream.subscribe.signature``, then ``executionReport`` and balance events) on the second.

It behaves like the venue, not like the adapter expects:

* SIGNED calls need the ``X-MBX-APIKEY`` header of its one key (``API_KEY``), an HMAC-SHA256 signature of the query
  string plus body with its secret (``API_SECRET``) and a ``timestamp`` within ``recvWindow`` of its clock;
* it holds balances (free / locked per asset): a resting order locks what it may spend (the base asset of a SELL,
  the quote asset of a BUY at its price), an OCO order list locks its quantity once for both legs;
* fills take a 0.1 % fee in the asset bought, as Binance does without BNB: a BUY of 0.01 BTC leaves 0.00999 BTC;
  a SELL pays it in the quote asset;
* refusals carry Binance's codes and messages: -2010 insufficient balance / duplicate / would trigger or match
  immediately / OCO prices, -1013 ``Filter failure: <NAME>`` (LOT_SIZE, MARKET_LOT_SIZE, PRICE_FILTER,
  PERCENT_PRICE_BY_SIDE, NOTIONAL from its own ``exchangeInfo``), -1121 invalid symbol, -2011 unknown order on a
  cancel, -2013 on a query, -1021 / -1022 / -2014 / -2015 for time, signature and key;
* MARKET orders fill at once at its own price; resting LIMIT, STOP_LOSS(_LIMIT) and TAKE_PROFIT(_LIMIT) orders fill
  or trigger when the price crosses them; one leg of an OCO executing expires the other (``OCO_TRIGGER``).

Test controls, ``POST /_fake/<action>`` with a JSON body (``GET`` for the two reads):

    price      {"symbol", "price"}                 move the market (resting orders fill or trigger)
    balance    {"asset", "free"[, "locked"]}       set a balance: a deposit, or a position opened elsewhere
    fill       {"symbol", "clientOrderId"|"orderId", "qty"[, "price"]}   a (partial) fill of a resting order
    fail       {"status", "count"[, "path", "method", "after"]}   the next matching calls answer this 5xx
    drop       {"count"[, "path", "method", "after"]}              the next matching calls get no answer at all
               (``after``: the call is carried out first, so only its answer is lost — "execution status unknown")
    clock      {"offset_ms"}                       move the venue's clock
    close_streams {}                             drop every WebSocket API connection
    reset      {"balances": {asset: free}, "prices": {symbol: price}}   start over
    state      (GET)  balances, prices, orders and order lists
    requests   (GET)  every request received: method, path, Host header, whether it carried the API key
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import ServerConnection, serve

API_KEY = "fakeBinanceKey0000000000000000000000000000000000000000000000000001"
API_SECRET = "fakeBinanceSecret00000000000000000000000000000000000000000000001"
FEE_RATE = Decimal("0.001")
EIGHT = Decimal("0.00000001")
WS_API_PATH = "/ws-api/v3"
DEFAULT_BALANCES = {"USDT": Decimal("10000")}
ZERO = Decimal(0)


@dataclass(frozen=True)
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    price: Decimal
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal = Decimal("9000")
    market_max_qty: Decimal = Decimal("100")
    min_notional: Decimal = Decimal("5")
    band: tuple[Decimal, Decimal] = (Decimal("0.2"), Decimal("5"))     # PERCENT_PRICE_BY_SIDE down / up
    oco_allowed: bool = True


SYMBOLS = {s.symbol: s for s in (
    SymbolSpec("BTCUSDT", "BTC", "USDT", Decimal("50000"), Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001")),
    SymbolSpec("ETHUSDT", "ETH", "USDT", Decimal("3000"), Decimal("0.01"), Decimal("0.0001"), Decimal("0.0001")),
    SymbolSpec("BNBUSDT", "BNB", "USDT", Decimal("600"), Decimal("0.1"), Decimal("0.001"), Decimal("0.001"),
               oco_allowed=False),
)}
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"]
STOP_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
LIMIT_PRICED = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
WEIGHTS = {"/api/v3/exchangeInfo": 20, "/api/v3/account": 20, "/api/v3/myTrades": 20, "/api/v3/order": 4,
           "/api/v3/orderList": 4, "/api/v3/openOrderList": 6, "/api/v3/ticker/bookTicker": 2,
           "/api/v3/ticker/price": 2, "/api/v3/klines": 2, "/api/v3/avgPrice": 2}
INTERVALS = {"1s": 1, "1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
             "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800}


class VenueError(Exception):
    """A refusal as Binance words it: HTTP status and ``{"code", "msg"}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def insufficient() -> VenueError:
    return VenueError(-2010, "Account has insufficient balance for requested action.")


def filter_failure(name: str) -> VenueError:
    return VenueError(-1013, f"Filter failure: {name}")


def mandatory(name: str) -> VenueError:
    return VenueError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def fmt(value: Decimal) -> str:
    return str(value.quantize(EIGHT))


def on_step(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


# -- the venue's books -------------------------------------------------------------------------------------

@dataclass
class Hold:
    """What an order (or an order list, once for its legs) keeps locked."""
    asset: str
    amount: Decimal


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    qty: Decimal
    price: Decimal
    stop: Decimal
    time: int
    list_id: int = -1
    status: str = "NEW"
    executed: Decimal = ZERO
    quote: Decimal = ZERO
    update: int = 0
    working: bool = True             # in the book (a stop is not until it triggers)
    working_time: int = -1
    hold: Hold | None = None
    expiry_reason: str = "NONE"

    @property
    def lock_price(self) -> Decimal:
        return self.price if self.type in LIMIT_PRICED else self.stop


@dataclass
class OrderList:
    list_id: int
    client_id: str
    symbol: str
    legs: list[Order]
    time: int
    hold: Hold
    status: str = "EXECUTING"          # listOrderStatus: EXECUTING | ALL_DONE


@dataclass
class Rule:
    """An injected failure for the next ``count`` calls that match."""
    count: int
    status: int = 0                    # 0: drop the connection
    path: str | None = None
    method: str | None = None
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and self.path in (None, path) and self.method in (None, method)


@dataclass
class Venue:
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    lock: threading.RLock = field(default_factory=threading.RLock)
    publish: Any = None                # callable(event dict), set by the WebSocket API

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, balances: dict[str, Decimal] | None = None, prices: dict[str, Decimal] | None = None) -> None:
        with self.lock:
            self.balances: dict[str, list[Decimal]] = {
                asset: [Decimal(free), ZERO] for asset, free in (balances or DEFAULT_BALANCES).items()}
            self.prices = {s.symbol: s.price for s in SYMBOLS.values()}
            self.prices.update({k: Decimal(v) for k, v in (prices or {}).items()})
            self.orders: dict[int, Order] = {}
            self.lists: dict[int, OrderList] = {}
            self.trades: list[dict] = []
            self.requests: list[dict] = []
            self.rules: list[Rule] = []
            self.offset_ms = 0
            self.weight: tuple[int, int] = (0, 0)           # (minute, weight used in it)
            self.ids = itertools.count(28457190)
            self.list_ids = itertools.count(1042)
            self.trade_ids = itertools.count(3917265)

    # -- clock and bookkeeping ----------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def use_weight(self, weight: int) -> int:
        minute = self.now_ms() // 60_000
        used = (self.weight[1] if self.weight[0] == minute else 0) + weight
        self.weight = (minute, used)
        return used

    def injected(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.count -= 1
                    return rule
        return None

    def balance(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [ZERO, ZERO])

    def _changed(self, *assets: str) -> None:
        rows = [{"a": a, "f": fmt(self.balance(a)[0]), "l": fmt(self.balance(a)[1])} for a in dict.fromkeys(assets)]
        self._emit({"e": "outboundAccountPosition", "E": self.now_ms(), "u": self.now_ms(), "B": rows})

    def _emit(self, event: dict) -> None:
        if self.publish is not None:
            self.publish(event)

    # -- balances -------------------------------------------------------------------------------------------
    def lock_funds(self, asset: str, amount: Decimal) -> Hold:
        row = self.balance(asset)
        if row[0] < amount:
            raise insufficient()
        row[0] -= amount
        row[1] += amount
        return Hold(asset, amount)

    def release(self, hold: Hold | None, amount: Decimal | None = None) -> None:
        if hold is None:
            return
        amount = hold.amount if amount is None else min(amount, hold.amount)
        row = self.balance(hold.asset)
        row[1] -= amount
        row[0] += amount
        hold.amount -= amount

    def set_balance(self, asset: str, free: Decimal, locked: Decimal | None = None) -> None:
        with self.lock:
            row = self.balance(asset)
            delta = free - row[0]
            row[0] = free
            if locked is not None:
                row[1] = locked
            self._emit({"e": "balanceUpdate", "E": self.now_ms(), "a": asset, "d": fmt(delta), "T": self.now_ms()})
            self._changed(asset)

    # -- placing orders -------------------------------------------------------------------------------------
    def spec(self, symbol: str | None) -> SymbolSpec:
        if not symbol:
            raise mandatory("symbol")
        if symbol not in SYMBOLS:
            raise VenueError(-1121, "Invalid symbol.")
        return SYMBOLS[symbol]

    def new_order(self, p: dict[str, str]) -> tuple[Order, list[dict]]:
        with self.lock:
            spec = self.spec(p.get("symbol"))
            side, kind = _side(p.get("side")), p.get("type") or ""
            if kind not in ORDER_TYPES:
                raise VenueError(-1116, "Invalid orderType.")
            qty, price, stop, tif = self._order_fields(spec, kind, p)
            client_id = p.get("newClientOrderId") or _random_id()
            self._check_unique(client_id)
            self._check_filters(spec, side, kind, qty, price, stop)
            self._check_trigger(spec, side, kind, price, stop)
            order = Order(next(self.ids), client_id, spec.symbol, side, kind, tif, qty, price, stop, self.now_ms(),
                          working=kind not in STOP_TYPES)
            order.update = order.time
            order.working_time = order.time if order.working else -1
            order.hold = self._hold_for(spec, order)
            self.orders[order.order_id] = order
            self._report(order, "NEW")
            self._changed(spec.base, spec.quote)
            fills = self._on_arrival(spec, order)
            return order, fills

    def _order_fields(self, spec: SymbolSpec, kind: str, p: dict[str, str]) -> tuple[Decimal, Decimal, Decimal, str]:
        needs_tif = kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
        tif = p.get("timeInForce") or ""
        if needs_tif and tif not in ("GTC", "IOC", "FOK"):
            raise mandatory("timeInForce")
        if kind == "MARKET" and "quantity" not in p and "quoteOrderQty" in p:
            quote = _decimal(p, "quoteOrderQty")
            qty = (quote / self.prices[spec.symbol]).quantize(spec.step, rounding=ROUND_DOWN)
        else:
            qty = _decimal(p, "quantity")
        price = _decimal(p, "price") if kind in LIMIT_PRICED else ZERO
        stop = _decimal(p, "stopPrice") if kind in STOP_TYPES else ZERO
        return qty, price, stop, tif if needs_tif else "GTC"

    def _check_unique(self, client_id: str) -> None:
        if any(o.client_id == client_id and o.status in OPEN for o in self.orders.values()):
            raise VenueError(-2010, "Duplicate order sent.")

    def _check_filters(self, spec: SymbolSpec, side: str, kind: str, qty: Decimal, price: Decimal,
                       stop: Decimal) -> None:
        for value in (price, stop):
            if value and (value < spec.tick or value > Decimal("1000000") or not on_step(value, spec.tick)):
                raise filter_failure("PRICE_FILTER")
        if qty < spec.min_qty or qty > spec.max_qty or not on_step(qty, spec.step):
            raise filter_failure("LOT_SIZE")
        if kind == "MARKET" and qty > spec.market_max_qty:
            raise filter_failure("MARKET_LOT_SIZE")
        market = self.prices[spec.symbol]
        if price:
            low, high = market * spec.band[0], market * spec.band[1]
            if not low <= price <= high:
                raise filter_failure("PERCENT_PRICE_BY_SIDE")
        if qty * (price or stop or market) < spec.min_notional:
            raise filter_failure("NOTIONAL")

    def _check_trigger(self, spec: SymbolSpec, side: str, kind: str, price: Decimal, stop: Decimal) -> None:
        market = self.prices[spec.symbol]
        if kind in STOP_TYPES and _triggered(kind, side, stop, market):
            raise VenueError(-2010, "Order would trigger immediately.")
        if kind == "LIMIT_MAKER" and _crosses(side, price, market):
            raise VenueError(-2010, "Order would immediately match and take.")

    def _hold_for(self, spec: SymbolSpec, order: Order) -> Hold | None:
        """A resting order locks what it may spend; a MARKET order needs it free now and locks nothing."""
        market = self.prices[spec.symbol]
        if order.side == "SELL":
            need = order.qty
            asset = spec.base
        else:
            need = order.qty * (order.lock_price or market)
            asset = spec.quote
        if order.type == "MARKET":
            if self.balance(asset)[0] < need:
                raise insufficient()
            return None
        return self.lock_funds(asset, need)

    def _on_arrival(self, spec: SymbolSpec, order: Order) -> list[dict]:
        market = self.prices[spec.symbol]
        if order.type == "MARKET" or (order.type == "LIMIT" and _crosses(order.side, order.price, market)):
            return [self._execute(order, order.qty, market, maker=False)]
        if order.type == "LIMIT" and order.tif in ("IOC", "FOK"):
            self._end(order, "EXPIRED", "EXPIRED")
        return []

    # -- OCO order lists --------------------------------------------------------------------------------------
    def new_oco(self, p: dict[str, str]) -> OrderList:
        with self.lock:
            spec = self.spec(p.get("symbol"))
            side, qty = _side(p.get("side")), _decimal(p, "quantity")
            if not spec.oco_allowed:
                raise VenueError(-2010, "OCO orders are not supported for this symbol.")
            above, below = (self._leg_fields(spec, p, at) for at in ("above", "below"))
            limit_leg, stop_leg = _oco_roles(side, above, below)
            market = self.prices[spec.symbol]
            limit_at = limit_leg["price"] if limit_leg["type"] == "LIMIT_MAKER" else limit_leg["stop"]
            if (side == "SELL" and not limit_at > market > stop_leg["stop"]) or \
                    (side == "BUY" and not limit_at < market < stop_leg["stop"]):
                raise VenueError(-2010, "The relationship of the prices for the orders is not correct.")
            list_client_id = p.get("listClientOrderId") or _random_id()
            if any(lst.client_id == list_client_id and lst.status == "EXECUTING" for lst in self.lists.values()):
                raise VenueError(-2010, "Duplicate order sent.")
            for leg in (below, above):
                self._check_unique(leg["client_id"])
                self._check_filters(spec, side, leg["type"], qty, leg["price"], leg["stop"])
            if side == "SELL":
                hold = self.lock_funds(spec.base, qty)
            else:
                hold = self.lock_funds(spec.quote, qty * max(leg["price"] or leg["stop"] for leg in (above, below)))
            now = self.now_ms()
            order_list = OrderList(next(self.list_ids), list_client_id, spec.symbol, [], now, hold)
            for leg in (below, above):
                order = Order(next(self.ids), leg["client_id"], spec.symbol, side, leg["type"], leg["tif"], qty,
                              leg["price"], leg["stop"], now, list_id=order_list.list_id, update=now,
                              working=leg["type"] not in STOP_TYPES)
                order.working_time = now if order.working else -1
                order_list.legs.append(order)
                self.orders[order.order_id] = order
            self.lists[order_list.list_id] = order_list
            for order in order_list.legs:
                self._report(order, "NEW")
            self._list_status(order_list, "EXEC_STARTED")
            self._changed(spec.base, spec.quote)
            return order_list

    def _leg_fields(self, spec: SymbolSpec, p: dict[str, str], at: str) -> dict:
        kind = p.get(f"{at}Type") or ""
        if kind not in ("STOP_LOSS", "STOP_LOSS_LIMIT", "LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"):
            raise mandatory(f"{at}Type")
        tif = p.get(f"{at}TimeInForce") or ""
        if kind.endswith("_LIMIT") and tif not in ("GTC", "IOC", "FOK"):
            raise mandatory(f"{at}TimeInForce")
        return {"type": kind, "client_id": p.get(f"{at}ClientOrderId") or _random_id(), "tif": tif or "GTC",
                "price": _decimal(p, f"{at}Price") if kind in LIMIT_PRICED else ZERO,
                "stop": _decimal(p, f"{at}StopPrice") if kind in STOP_TYPES else ZERO}

    # -- executing -----------------------------------------------------------------------------------------------
    def _execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> dict:
        spec = SYMBOLS[order.symbol]
        holder = self.lists[order.list_id].hold if order.list_id != -1 else order.hold
        notional = qty * price
        if order.side == "BUY":
            self.release(holder, qty * (order.lock_price or price))
            fee, fee_asset = (qty * FEE_RATE).quantize(EIGHT, rounding=ROUND_HALF_UP), spec.base
            self._move(spec.quote, -notional)
            self._move(spec.base, qty - fee)
        else:
            self.release(holder, qty)
            fee, fee_asset = (notional * FEE_RATE).quantize(EIGHT, rounding=ROUND_HALF_UP), spec.quote
            self._move(spec.base, -qty)
            self._move(spec.quote, notional - fee)
        now = self.now_ms()
        trade = {"symbol": order.symbol, "id": next(self.trade_ids), "orderId": order.order_id,
                 "orderListId": order.list_id, "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(notional),
                 "commission": fmt(fee), "commissionAsset": fee_asset, "time": now, "isBuyer": order.side == "BUY",
                 "isMaker": maker, "isBestMatch": True}
        self.trades.append(trade)
        order.executed += qty
        order.quote += notional
        order.update = now
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        if order.status == "FILLED" and order.list_id == -1:
            self.release(order.hold)
        self._report(order, "TRADE", trade=trade)
        if order.list_id != -1:
            self._oco_triggered(order)
        self._changed(spec.base, spec.quote)
        return trade

    def _move(self, asset: str, amount: Decimal) -> None:
        row = self.balance(asset)
        row[0] += amount
        if row[0] < 0:                      # a fill priced above what was locked: the rest comes from free
            row[0] = ZERO

    def _oco_triggered(self, order: Order) -> None:
        order_list = self.lists[order.list_id]
        for sibling in order_list.legs:
            if sibling is not order and sibling.status in OPEN:
                sibling.expiry_reason = "OCO_TRIGGER"
                self._end(sibling, "EXPIRED", "EXPIRED")
        if order.status == "FILLED":
            self._finish_list(order_list)

    def _finish_list(self, order_list: OrderList) -> None:
        if order_list.status == "ALL_DONE":
            return
        order_list.status = "ALL_DONE"
        self.release(order_list.hold)
        self._list_status(order_list, "ALL_DONE")

    def _end(self, order: Order, status: str, execution: str, *, cancel_id: str | None = None) -> None:
        order.status, order.update = status, self.now_ms()
        if order.list_id == -1:
            self.release(order.hold)
        self._report(order, execution, cancel_id=cancel_id)

    def set_price(self, symbol: str, price: Decimal) -> None:
        with self.lock:
            self.spec(symbol)
            self.prices[symbol] = price
            self._match(symbol)

    def _match(self, symbol: str) -> None:
        market = self.prices[symbol]
        for order in sorted((o for o in self.orders.values() if o.symbol == symbol), key=lambda o: o.order_id):
            if order.status not in OPEN:
                continue
            if order.type in STOP_TYPES and not order.working:
                if not _triggered(order.type, order.side, order.stop, market):
                    continue
                order.working, order.working_time = True, self.now_ms()
                if order.type in ("STOP_LOSS", "TAKE_PROFIT"):
                    self._execute(order, order.qty - order.executed, market, maker=False)
                    continue
                if _crosses(order.side, order.price, market):
                    self._execute(order, order.qty - order.executed, market, maker=False)
                continue
            if order.working and order.type in LIMIT_PRICED and _crosses(order.side, order.price, market):
                self._execute(order, order.qty - order.executed, order.price, maker=True)

    def force_fill(self, p: dict) -> dict:
        with self.lock:
            order = self.find(p.get("symbol"), p.get("orderId"), p.get("clientOrderId"))
            if order is None or order.status not in OPEN:
                raise VenueError(-2013, "Order does not exist.")
            qty = Decimal(str(p.get("qty", order.qty - order.executed)))
            price = Decimal(str(p["price"])) if p.get("price") else (order.price or self.prices[order.symbol])
            order.working = True
            return self._execute(order, min(qty, order.qty - order.executed), price, maker=True)

    # -- queries and cancels -------------------------------------------------------------------------------------
    def find(self, symbol: str | None, order_id: Any = None, client_id: str | None = None) -> Order | None:
        if order_id in (None, "") and not client_id:
            raise VenueError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        self.spec(symbol)
        found = [o for o in self.orders.values() if o.symbol == symbol and (
            (order_id not in (None, "") and str(o.order_id) == str(order_id)) or
            (client_id and o.client_id == client_id))]
        return max(found, key=lambda o: o.order_id) if found else None

    def cancel(self, p: dict[str, str]) -> tuple[Order, str]:
        with self.lock:
            order = self.find(p.get("symbol"), p.get("orderId"), p.get("origClientOrderId"))
            if order is None or order.status not in OPEN:
                raise VenueError(-2011, "Unknown order sent.")
            cancel_id = p.get("newClientOrderId") or _random_id()
            legs = self.lists[order.list_id].legs if order.list_id != -1 else [order]
            for leg in legs:                       # cancelling one leg cancels the whole order list
                if leg.status in OPEN:
                    self._end(leg, "CANCELED", "CANCELED", cancel_id=cancel_id)
            if order.list_id != -1:
                self._finish_list(self.lists[order.list_id])
            self._changed(*self._assets(order))
            return order, cancel_id

    def cancel_list(self, p: dict[str, str]) -> OrderList:
        with self.lock:
            self.spec(p.get("symbol"))
            order_list = self.find_list(p.get("orderListId"), p.get("listClientOrderId"))
            if order_list is None or order_list.status != "EXECUTING":
                raise VenueError(-2011, "Unknown order list sent.")
            cancel_id = p.get("newClientOrderId") or _random_id()
            for leg in order_list.legs:
                if leg.status in OPEN:
                    self._end(leg, "CANCELED", "CANCELED", cancel_id=cancel_id)
            self._finish_list(order_list)
            self._changed(*self._assets(order_list.legs[0]))
            return order_list

    def find_list(self, list_id: Any, client_id: str | None) -> OrderList | None:
        found = [lst for lst in self.lists.values() if (list_id not in (None, "") and str(lst.list_id) == str(list_id))
                 or (client_id and lst.client_id == client_id)]
        return max(found, key=lambda lst: lst.list_id) if found else None

    @staticmethod
    def _assets(order: Order) -> tuple[str, str]:
        spec = SYMBOLS[order.symbol]
        return spec.base, spec.quote

    # -- the user-data stream's events ---------------------------------------------------------------------------
    def _report(self, order: Order, execution: str, *, trade: dict | None = None, cancel_id: str | None = None) -> None:
        now = self.now_ms()
        event = {"e": "executionReport", "E": now, "s": order.symbol,
                 "c": cancel_id if execution == "CANCELED" and cancel_id else order.client_id, "S": order.side,
                 "o": order.type, "f": order.tif, "q": fmt(order.qty), "p": fmt(order.price), "P": fmt(order.stop),
                 "F": fmt(ZERO), "g": order.list_id, "C": order.client_id if execution == "CANCELED" else "",
                 "x": execution, "X": order.status, "r": "NONE", "i": order.order_id,
                 "l": trade["qty"] if trade else fmt(ZERO), "z": fmt(order.executed),
                 "L": trade["price"] if trade else fmt(ZERO), "n": trade["commission"] if trade else "0",
                 "N": trade["commissionAsset"] if trade else None, "T": trade["time"] if trade else now,
                 "t": trade["id"] if trade else -1, "I": next(self.trade_ids), "w": order.working and
                 order.status in OPEN, "m": bool(trade and trade["isMaker"]), "M": False, "O": order.time,
                 "Z": fmt(order.quote), "Y": trade["quoteQty"] if trade else fmt(ZERO), "Q": fmt(ZERO),
                 "W": order.working_time, "V": "EXPIRE_MAKER"}
        if execution == "EXPIRED":
            event["eR"] = order.expiry_reason
        self._emit(event)

    def _list_status(self, order_list: OrderList, status_type: str) -> None:
        self._emit({"e": "listStatus", "E": self.now_ms(), "s": order_list.symbol, "g": order_list.list_id,
                    "c": "OCO", "l": status_type, "L": order_list.status, "r": "NONE", "C": order_list.client_id,
                    "T": self.now_ms(), "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_id}
                                              for o in order_list.legs]})


def _side(value: str | None) -> str:
    if value not in ("BUY", "SELL"):
        raise VenueError(-1117, "Invalid side.")
    return value


def _decimal(p: dict[str, str], name: str) -> Decimal:
    raw = p.get(name)
    if not raw:
        raise mandatory(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                         "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not value.is_finite() or value <= 0:
        raise VenueError(-1100, f"Illegal characters found in parameter '{name}'.")
    return value


def _random_id() -> str:
    return secrets.token_urlsafe(16)[:22]


def _crosses(side: str, limit: Decimal, market: Decimal) -> bool:
    """A limit at ``limit`` would trade against the market at ``market``."""
    return market <= limit if side == "BUY" else market >= limit


def _triggered(kind: str, side: str, stop: Decimal, market: Decimal) -> bool:
    """A stop-loss BUY and a take-profit SELL trigger at or above their price; the others at or below."""
    upward = (kind.startswith("STOP_LOSS") and side == "BUY") or (kind.startswith("TAKE_PROFIT") and side == "SELL")
    return market >= stop if upward else market <= stop


def _oco_roles(side: str, above: dict, below: dict) -> tuple[dict, dict]:
    """(limit leg, stop leg): a SELL list takes profit above and stops below; a BUY list the other way round."""
    limit_leg, stop_leg = (above, below) if side == "SELL" else (below, above)
    if limit_leg["type"] not in ("LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT") or \
            stop_leg["type"] not in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
        raise VenueError(-1116, "Invalid orderType.")
    return limit_leg, stop_leg


# -- answers, shaped as the spec's schemas -----------------------------------------------------------------------

def order_ack(order: Order) -> dict:
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": order.list_id,
            "clientOrderId": order.client_id, "transactTime": order.time}


def order_result(order: Order) -> dict:
    body = {**order_ack(order), "price": fmt(order.price), "origQty": fmt(order.qty),
            "executedQty": fmt(order.executed), "origQuoteOrderQty": fmt(ZERO), "cummulativeQuoteQty": fmt(order.quote),
            "status": order.status, "timeInForce": order.tif, "type": order.type, "side": order.side,
            "workingTime": order.working_time, "selfTradePreventionMode": "EXPIRE_MAKER"}
    if order.type in STOP_TYPES:
        body["stopPrice"] = fmt(order.stop)
    return body


def order_full(order: Order, trades: list[dict]) -> dict:
    return {**order_result(order), "fills": [
        {"price": t["price"], "qty": t["qty"], "commission": t["commission"], "commissionAsset": t["commissionAsset"],
         "tradeId": t["id"]} for t in trades]}


def order_details(order: Order) -> dict:
    """``GET /api/v3/order`` and ``openOrders`` rows."""
    return {"symbol": order.symbol, "orderId": order.order_id, "orderListId": order.list_id,
            "clientOrderId": order.client_id, "price": fmt(order.price), "origQty": fmt(order.qty),
            "executedQty": fmt(order.executed), "cummulativeQuoteQty": fmt(order.quote), "status": order.status,
            "timeInForce": order.tif, "type": order.type, "side": order.side, "stopPrice": fmt(order.stop),
            "icebergQty": fmt(ZERO), "time": order.time, "updateTime": order.update,
            "isWorking": order.working, "workingTime": order.working_time, "origQuoteOrderQty": fmt(ZERO),
            "selfTradePreventionMode": "EXPIRE_MAKER"}


def cancel_answer(order: Order, cancel_id: str) -> dict:
    return {"symbol": order.symbol, "origClientOrderId": order.client_id, "orderId": order.order_id,
            "orderListId": order.list_id, "clientOrderId": cancel_id, "transactTime": order.update,
            "price": fmt(order.price), "origQty": fmt(order.qty), "executedQty": fmt(order.executed),
            "cummulativeQuoteQty": fmt(order.quote), "status": order.status, "timeInForce": order.tif,
            "type": order.type, "side": order.side, "selfTradePreventionMode": "EXPIRE_MAKER"}


def list_answer(order_list: OrderList, *, reports: bool) -> dict:
    body = {"orderListId": order_list.list_id, "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED" if order_list.status == "EXECUTING" else "ALL_DONE",
            "listOrderStatus": order_list.status, "listClientOrderId": order_list.client_id,
            "transactionTime": order_list.time, "symbol": order_list.symbol,
            "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_id}
                       for o in order_list.legs]}
    if reports:
        body["orderReports"] = [order_result(o) for o in order_list.legs]
    return body


def symbol_info(spec: SymbolSpec) -> dict:
    return {
        "symbol": spec.symbol, "status": "TRADING", "baseAsset": spec.base, "baseAssetPrecision": 8,
        "quoteAsset": spec.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8, "orderTypes": ORDER_TYPES, "icebergAllowed": True,
        "ocoAllowed": spec.oco_allowed, "otoAllowed": spec.oco_allowed, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(spec.tick), "maxPrice": "1000000.00000000",
             "tickSize": fmt(spec.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(spec.min_qty), "maxQty": fmt(spec.max_qty),
             "stepSize": fmt(spec.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": fmt(spec.market_max_qty),
             "stepSize": "0.00000000"},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": str(spec.band[1]),
             "bidMultiplierDown": str(spec.band[0]), "askMultiplierUp": str(spec.band[1]),
             "askMultiplierDown": str(spec.band[0]), "avgPriceMins": 5},
            {"filterType": "NOTIONAL", "minNotional": fmt(spec.min_notional), "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5}],
        "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]}


RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]


# -- the REST API ----------------------------------------------------------------------------------------------

def _symbols_param(venue: Venue, p: dict[str, str]) -> list[str] | None:
    """``symbol=X`` or ``symbols=["X","Y"]``, every one known; None when neither was sent (all symbols)."""
    if p.get("symbol"):
        return [venue.spec(p["symbol"]).symbol]
    if p.get("symbols"):
        try:
            names = json.loads(p["symbols"])
        except ValueError:
            raise VenueError(-1100, "Illegal characters found in parameter 'symbols'.") from None
        return [venue.spec(name).symbol for name in names]
    return None


def exchange_info(venue: Venue, p: dict[str, str]) -> dict:
    names = _symbols_param(venue, p) or list(SYMBOLS)
    return {"timezone": "UTC", "serverTime": venue.now_ms(), "rateLimits": RATE_LIMITS, "exchangeFilters": [],
            "symbols": [symbol_info(SYMBOLS[name]) for name in names]}


def book_ticker(venue: Venue, p: dict[str, str]) -> Any:
    """The fake's book has no spread: bid and ask are both its price, so a MARKET order fills at exactly that."""
    def row(name: str) -> dict:
        price = fmt(venue.prices[name])
        return {"symbol": name, "bidPrice": price, "bidQty": "1.00000000", "askPrice": price, "askQty": "1.00000000"}
    names = _symbols_param(venue, p)
    return row(names[0]) if p.get("symbol") else [row(name) for name in names or SYMBOLS]


def price_ticker(venue: Venue, p: dict[str, str]) -> Any:
    names = _symbols_param(venue, p)
    rows = [{"symbol": name, "price": fmt(venue.prices[name])} for name in names or SYMBOLS]
    return rows[0] if p.get("symbol") else rows


def klines(venue: Venue, p: dict[str, str]) -> list:
    spec = venue.spec(p.get("symbol"))
    seconds = INTERVALS.get(p.get("interval") or "")
    if seconds is None:
        raise VenueError(-1120, "Invalid interval.")
    limit = min(int(p.get("limit") or 500), 1000)
    size = seconds * 1000
    last = int(p.get("endTime") or venue.now_ms()) // size * size
    price = fmt(venue.prices[spec.symbol])
    return [[start, price, price, price, price, "1.00000000", start + size - 1, price, 10, "0.50000000", price, "0"]
            for start in range(last - (limit - 1) * size, last + 1, size)]


def account(venue: Venue, p: dict[str, str]) -> dict:
    omit = p.get("omitZeroBalances") == "true"
    rows = [{"asset": asset, "free": fmt(free), "locked": fmt(locked)}
            for asset, (free, locked) in sorted(venue.balances.items()) if not (omit and free == locked == 0)]
    return {"makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(FEE_RATE), "taker": fmt(FEE_RATE), "buyer": fmt(ZERO),
                                "seller": fmt(ZERO)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": venue.now_ms(),
            "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 354937868}


def new_order(venue: Venue, p: dict[str, str]) -> dict:
    order, trades = venue.new_order(p)
    kind = p.get("newOrderRespType") or ("FULL" if order.type in ("MARKET", "LIMIT") else "ACK")
    if kind == "ACK":
        return order_ack(order)
    return order_full(order, trades) if kind == "FULL" else order_result(order)


def query_order(venue: Venue, p: dict[str, str]) -> dict:
    order = venue.find(p.get("symbol"), p.get("orderId"), p.get("origClientOrderId"))
    if order is None:
        raise VenueError(-2013, "Order does not exist.")
    return order_details(order)


def cancel_order(venue: Venue, p: dict[str, str]) -> dict:
    order, cancel_id = venue.cancel(p)
    return cancel_answer(order, cancel_id)


def open_orders(venue: Venue, p: dict[str, str]) -> list:
    symbol = venue.spec(p["symbol"]).symbol if p.get("symbol") else None
    return [order_details(o) for o in sorted(venue.orders.values(), key=lambda o: o.order_id)
            if o.status in OPEN and symbol in (None, o.symbol)]


def my_trades(venue: Venue, p: dict[str, str]) -> list:
    spec = venue.spec(p.get("symbol"))
    rows = [t for t in venue.trades if t["symbol"] == spec.symbol
            and (not p.get("orderId") or str(t["orderId"]) == p["orderId"])
            and (not p.get("fromId") or t["id"] >= int(p["fromId"]))]
    return rows[:min(int(p.get("limit") or 500), 1000)]


def new_oco(venue: Venue, p: dict[str, str]) -> dict:
    return list_answer(venue.new_oco(p), reports=p.get("newOrderRespType") != "ACK")


def query_list(venue: Venue, p: dict[str, str]) -> dict:
    if not p.get("orderListId") and not p.get("origClientOrderId"):
        raise VenueError(-1102, "Param 'origClientOrderId' or 'orderListId' must be sent, but both were empty/null!")
    order_list = venue.find_list(p.get("orderListId"), p.get("origClientOrderId"))
    if order_list is None:
        raise VenueError(-2011, "Order list does not exist.")
    return list_answer(order_list, reports=False)


def cancel_list(venue: Venue, p: dict[str, str]) -> dict:
    return list_answer(venue.cancel_list(p), reports=True)


def open_lists(venue: Venue, p: dict[str, str]) -> list:
    return [list_answer(lst, reports=False) for lst in venue.lists.values() if lst.status == "EXECUTING"]


# (method, path) → (signed, answer)
ROUTES = {
    ("GET", "/api/v3/ping"): (False, lambda venue, p: {}),
    ("GET", "/api/v3/time"): (False, lambda venue, p: {"serverTime": venue.now_ms()}),
    ("GET", "/api/v3/exchangeInfo"): (False, exchange_info),
    ("GET", "/api/v3/ticker/bookTicker"): (False, book_ticker),
    ("GET", "/api/v3/ticker/price"): (False, price_ticker),
    ("GET", "/api/v3/avgPrice"): (False, lambda venue, p: {"mins": 5, "price": fmt(venue.prices[venue.spec(
        p.get("symbol")).symbol]), "closeTime": venue.now_ms()}),
    ("GET", "/api/v3/klines"): (False, klines),
    ("GET", "/api/v3/account"): (True, account),
    ("POST", "/api/v3/order"): (True, new_order),
    ("GET", "/api/v3/order"): (True, query_order),
    ("DELETE", "/api/v3/order"): (True, cancel_order),
    ("GET", "/api/v3/openOrders"): (True, open_orders),
    ("GET", "/api/v3/myTrades"): (True, my_trades),
    ("POST", "/api/v3/orderList/oco"): (True, new_oco),
    ("GET", "/api/v3/orderList"): (True, query_list),
    ("DELETE", "/api/v3/orderList"): (True, cancel_list),
    ("GET", "/api/v3/openOrderList"): (True, open_lists),
}


def weight_of(method: str, path: str, p: dict[str, str]) -> int:
    if path == "/api/v3/openOrders":
        return 6 if p.get("symbol") else 80
    if path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        return 2 if p.get("symbol") else 4
    if method in ("POST", "DELETE"):
        return 1
    return WEIGHTS.get(path, 1)


def authenticate(venue: Venue, headers: Any, query: str, body: str, p: dict[str, str]) -> None:
    """A SIGNED call: the key, the HMAC of the query string plus body, and the timestamp window."""
    key = headers.get("X-MBX-APIKEY")
    if not key:
        raise VenueError(-2014, "API-key format invalid.", 401)
    if key != venue.api_key:
        raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
    if not p.get("signature"):
        raise mandatory("signature")
    payload = "&".join(s for s in query.split("&") if s and not s.startswith("signature=")) + \
        "&".join(s for s in body.split("&") if s and not s.startswith("signature="))
    expected = hmac.new(venue.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, p["signature"].lower()):
        raise VenueError(-1022, "Signature for this request is not valid.")
    check_timestamp(venue, p.get("timestamp"), p.get("recvWindow"))


def check_timestamp(venue: Venue, timestamp: Any, recv_window: Any) -> None:
    if timestamp in (None, ""):
        raise mandatory("timestamp")
    window = int(recv_window or 5000)
    if window > 60000:
        raise VenueError(-1131, "recvWindow must be less than 60000")
    now, stamp = venue.now_ms(), int(timestamp)
    if stamp >= now + 1000:
        raise VenueError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if now - stamp > window:
        raise VenueError(-1021, "Timestamp for this request is outside of the recvWindow.")


FAILURE_BODIES = {
    500: {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
    503: {"code": -1008, "msg": "Server is currently overloaded with other requests. Please try again in a few "
                                "minutes."},
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:          # quiet: the tests read /_fake/requests
        return

    def do_GET(self) -> None:
        self.serve("GET")

    def do_POST(self) -> None:
        self.serve("POST")

    def do_DELETE(self) -> None:
        self.serve("DELETE")

    def do_PUT(self) -> None:
        self.serve("PUT")

    def serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if parts.path.startswith("/_fake/"):
            self.control(method, parts.path.removeprefix("/_fake/"), body)
            return
        venue = self.server.venue
        with venue.lock:
            venue.requests.append({"method": method, "path": parts.path, "host": self.headers.get("Host"),
                                   "api_key": bool(self.headers.get("X-MBX-APIKEY")), "ws": False})
        rule = venue.injected(method, parts.path)
        if rule is not None and not rule.after:
            self.fail(rule)
            return
        status, answer, used = self.answer(method, parts.path, parts.query, body)
        if rule is not None:
            self.fail(rule)
            return
        self.send_json(status, answer, {"X-MBX-USED-WEIGHT-1M": str(used)})

    def answer(self, method: str, path: str, query: str, body: str) -> tuple[int, Any, int]:
        venue = self.server.venue
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        with venue.lock:
            used = venue.use_weight(weight_of(method, path, params))
        route = ROUTES.get((method, path))
        if route is None:
            return 404, {"code": -1000, "msg": f"No such endpoint: {method} {path}"}, used
        signed, handler = route
        try:
            if signed:
                authenticate(venue, self.headers, query, body, params)
            with venue.lock:
                return 200, handler(venue, params), used
        except VenueError as e:
            return e.status, {"code": e.code, "msg": e.msg}, used

    def fail(self, rule: Rule) -> None:
        if rule.status == 0:                          # a dropped connection: no answer at all
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if rule.status in FAILURE_BODIES:
            self.send_json(rule.status, FAILURE_BODIES[rule.status])
        else:
            self.send_text(rule.status, f"<html><body><h1>{rule.status}</h1></body></html>")

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- test controls ----------------------------------------------------------------------------------------
    def control(self, method: str, action: str, body: str) -> None:
        try:
            data = json.loads(body) if body else {}
            answer = self.server.control(action, data)
        except (KeyError, ValueError, TypeError, InvalidOperation) as e:
            self.send_json(400, {"error": f"{action}: {e!r}"})
            return
        except VenueError as e:
            self.send_json(e.status, {"code": e.code, "msg": e.msg})
            return
        if answer is None:
            self.send_json(404, {"error": f"no control {action!r}"})
            return
        self.send_json(200, answer)


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], venue: Venue, stream: StreamServer) -> None:
        super().__init__(address, Handler)
        self.venue, self.stream = venue, stream

    def control(self, action: str, data: dict) -> Any:
        venue = self.venue
        if action == "price":
            venue.set_price(data["symbol"], Decimal(str(data["price"])))
        elif action == "balance":
            locked = data.get("locked")
            venue.set_balance(data["asset"], Decimal(str(data["free"])),
                              Decimal(str(locked)) if locked is not None else None)
        elif action == "fill":
            return venue.force_fill(data)
        elif action in ("fail", "drop"):
            with venue.lock:
                venue.rules.append(Rule(count=int(data.get("count", 1)),
                                        status=int(data["status"]) if action == "fail" else 0,
                                        path=data.get("path"), method=data.get("method"),
                                        after=bool(data.get("after", False))))
        elif action == "clock":
            venue.offset_ms = int(data["offset_ms"])
        elif action == "close_streams":
            self.stream.close_all()
        elif action == "reset":
            venue.reset({k: Decimal(str(v)) for k, v in data["balances"].items()} if "balances" in data else None,
                        {k: Decimal(str(v)) for k, v in data.get("prices", {}).items()})
        elif action == "state":
            return self.state()
        elif action == "requests":
            with venue.lock:
                return {"requests": list(venue.requests)}
        else:
            return None
        return {}

    def state(self) -> dict:
        venue = self.venue
        with venue.lock:
            balances = {asset: {"free": fmt(free), "locked": fmt(locked)}
                        for asset, (free, locked) in sorted(venue.balances.items())}
            return {"balances": balances,
                    "prices": {s: fmt(p) for s, p in venue.prices.items()},
                    "orders": [order_details(o) for o in venue.orders.values()],
                    "orderLists": [list_answer(lst, reports=False) for lst in venue.lists.values()],
                    "trades": list(venue.trades)}


# -- the WebSocket API -----------------------------------------------------------------------------------------

@dataclass
class StreamClient:
    queue: asyncio.Queue
    subscriptions: set[int] = field(default_factory=set)
    next_id: int = 0


class StreamServer:
    """``/ws-api/v3``: requests ``{"id", "method", "params"}`` answered ``{"id", "status", "result" | "error"}``;
    once subscribed, every event of the venue arrives as ``{"subscriptionId", "event"}``."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.loop: asyncio.AbstractEventLoop | None = None
        self.clients: dict[ServerConnection, StreamClient] = {}
        self.port = 0

    def start(self, port: int) -> int:
        ready = threading.Event()
        threading.Thread(target=lambda: asyncio.run(self._main(port, ready)), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the WebSocket API did not start")
        return self.port

    async def _main(self, port: int, ready: threading.Event) -> None:
        self.loop = asyncio.get_running_loop()
        async with serve(self._session, "127.0.0.1", port, process_request=self._handshake) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            ready.set()
            await asyncio.Future()

    def _handshake(self, connection: ServerConnection, request: Any) -> Any:
        path = urlsplit(request.path).path
        with self.venue.lock:
            self.venue.requests.append({"method": "GET", "path": path, "host": request.headers.get("Host"),
                                        "api_key": False, "ws": True})
        if path != WS_API_PATH:
            return connection.respond(404, "Not Found\n")
        return None

    def publish(self, event: dict) -> None:
        """Called with the venue's lock held, from any thread."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: dict) -> None:
        for client in self.clients.values():
            for subscription in client.subscriptions:
                client.queue.put_nowait({"subscriptionId": subscription, "event": event})

    def close_all(self) -> None:
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_all(), self.loop).result(timeout=10)

    async def _close_all(self) -> None:
        for connection in list(self.clients):
            await connection.close(code=1001, reason="going away")

    async def _session(self, connection: ServerConnection) -> None:
        client = StreamClient(queue=asyncio.Queue())
        self.clients[connection] = client
        sender = asyncio.create_task(self._send(connection, client))
        try:
            async for raw in connection:
                await connection.send(json.dumps(self._answer(client, raw)))
        except Exception:                                   # the peer went away: nothing to tell anyone
            pass
        finally:
            sender.cancel()
            self.clients.pop(connection, None)

    @staticmethod
    async def _send(connection: ServerConnection, client: StreamClient) -> None:
        while True:
            frame = await client.queue.get()
            await connection.send(json.dumps(frame))

    def _answer(self, client: StreamClient, raw: Any) -> dict:
        try:
            request = json.loads(raw)
        except ValueError:
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
        request_id, method, params = request.get("id"), request.get("method"), request.get("params") or {}
        try:
            result = self._call(client, method, params)
        except VenueError as e:
            return {"id": request_id, "status": e.status, "error": {"code": e.code, "msg": e.msg}}
        return {"id": request_id, "status": 200, "result": result, "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000, "count": 2}]}

    def _call(self, client: StreamClient, method: str, params: dict) -> dict:
        venue = self.venue
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": venue.now_ms()}
        if method == "userDataStream.subscribe.signature":
            if params.get("apiKey") != venue.api_key:
                raise VenueError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
            payload = "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "signature")
            expected = hmac.new(venue.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, str(params.get("signature", "")).lower()):
                raise VenueError(-1022, "Signature for this request is not valid.")
            check_timestamp(venue, params.get("timestamp"), params.get("recvWindow"))
            subscription, client.next_id = client.next_id, client.next_id + 1
            client.subscriptions.add(subscription)
            return {"subscriptionId": subscription}
        if method == "userDataStream.unsubscribe":
            client.subscriptions.discard(params.get("subscriptionId"))
            return {}
        raise VenueError(-1000, f"Unknown method: {method}.")


# -- the process -------------------------------------------------------------------------------------------------

def _pairs(values: list[str]) -> dict[str, Decimal]:
    return {key.upper(): Decimal(value) for key, value in (item.split("=", 1) for item in values)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Binance Spot on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--api-secret", default=API_SECRET)
    parser.add_argument("--balance", action="append", default=[], help="ASSET=FREE (repeatable)")
    parser.add_argument("--price", action="append", default=[], help="SYMBOL=PRICE (repeatable)")
    args = parser.parse_args(argv)
    venue = Venue(api_key=args.api_key, api_secret=args.api_secret)
    venue.reset(_pairs(args.balance) or None, _pairs(args.price))
    stream = StreamServer(venue)
    ws_port = stream.start(args.ws_port)
    venue.publish = stream.publish
    server = FakeServer(("127.0.0.1", args.port), venue, stream)
    print(f"READY http://127.0.0.1:{server.server_port} ws://127.0.0.1:{ws_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
