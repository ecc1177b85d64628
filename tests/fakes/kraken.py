"""A fake Kraken Spot, run as its own process: ``python -m tests.fakes.kraken --port 0 --ws-port 0``.

Written from Kraken's published Spot REST spec and its notes (``shared/reference/brokers/kraken/spot-rest``,
``NOTES.md`` §4), to behave as the venue does where the desk depends on it:

* **REST** on ``--port``: ``GET /0/public/<Method>`` and ``POST /0/private/<Method>`` (form body). Every answer is
  HTTP 200 with Kraken's envelope ``{"error": [...], "result": {...}}``; a refusal is an ``error`` entry.
* **Authentication**: ``API-Key`` must be the configured key, ``API-Sign`` must be
  base64(HMAC-SHA512(path + SHA256(nonce + body), base64decode(secret))) over the body as sent, and each
  key's nonce must increase (``EAPI:Invalid key`` / ``Invalid signature`` / ``Invalid nonce``).
* **Balances that are held**: every asset has a balance; an open order holds what it may spend (a sell its
  remaining volume of the base asset, a buy its remaining cost and fee in the quote asset) as ``hold_trade``.
  An order the free balance cannot cover is refused ``EOrder:Insufficient funds``; so after a resting
  full-size stop-loss, a full-size take-profit limit for the same balance is refused, as at Kraken.
* **Fees**: taker 0.26 %, maker 0.16 % (the first tier of Kraken's schedule), in the quote currency when the
  order says ``fciq`` (as the desk's orders do) or is a buy without ``fcib``; otherwise in the base asset.
* **Matching at its own price**: a market order fills at once at the fake's price (ask for a buy, bid for a
  sell, the same unless a spread is set); a limit order that crosses fills at once (taker), else rests and
  fills at its limit when the price reaches it (maker); ``stop-loss``, ``take-profit``, their ``-limit``
  kinds and ``trailing-stop`` trigger when the last price crosses. ``post`` cancels a limit that would take;
  ``IOC`` cancels what does not fill at once; ``GTD`` expires at ``expiretm``.
* **Orders and trades**: ``AddOrder`` (``cl_ord_id`` unique among open orders, or ``userref``),
  ``CancelOrder`` (by txid, userref or ``cl_ord_id``), ``CancelAll``, ``AmendOrder`` (``order_qty``,
  ``limit_price``, ``trigger_price``; a larger quantity is checked against the free balance), ``OpenOrders``,
  ``ClosedOrders``, ``QueryOrders``, ``QueryTrades``, ``TradesHistory``; ``Balance``, ``BalanceEx``,
  ``TradeBalance`` (``eb`` = every balance valued in the asset asked for); ``GetWebSocketsToken``.
* **Dead man's switch**: ``CancelAllOrdersAfter`` (``timeout`` seconds, 0 disarms) starts a real timer that
  cancels every open order when it expires unless armed again, then stays off until armed again; it answers
  ``currentTime`` and ``triggerTime``.
* **Public data**: ``AssetPairs``, ``Ticker``, ``OHLC`` (bars from the prices the fake has had), ``SystemStatus``,
  ``Time``; pairs XBTUSD, ETHUSD, SOLUSD against ZUSD and ETHXBT.
* **WebSocket v2** on ``--ws-port`` (path ``/v2``): the ``executions`` channel, subscribed with a token from
  ``GetWebSocketsToken``: a snapshot of open orders (``snap_orders``), then an update for every order event
  (``new``, ``trade``, ``filled``, ``canceled``, ``expired``, ``amended``), and heartbeats.
* **Private-call counter** (off unless ``/_fake/rate_limit`` turns it on): +1 per private call, +2 for trade
  history and ``QueryTrades``, order entry and cancels excluded; above its maximum ``EAPI:Rate limit exceeded``.

Test controls (JSON body, answered with JSON):

=================================  ==========================================================================
``POST /_fake/price``              ``{"pair" or "symbol", "price", "spread"?}``: the new price; resting orders
                                   trigger and fill on it
``POST /_fake/balance``            ``{"asset", "amount"}``: set a balance (``USD``/``ZUSD``, ``XBT``/``XXBT`` ...),
                                   e.g. a position opened outside the desk
``POST /_fake/fail``               ``{"count", "kind"?: "5xx"|"unavailable"|"busy"|"internal", "status"?: 503,
                                   "method"?: "AddOrder", "after"?: false}``: the next N venue calls (of that
                                   method) fail; ``after`` processes the call first and loses its answer
``POST /_fake/drop``               ``{"count", "method"?, "after"?}``: the next N calls get their connection
                                   closed without an answer
``POST /_fake/drop_stream``        close every WebSocket connection
``POST /_fake/external_order``     ``{"pair", "type", "ordertype", "volume", "price"?, "userref"?}``: an order
                                   placed by another app (same checks, no signature)
``POST /_fake/status``             ``{"status": "online"|"maintenance"|"cancel_only"|"post_only"}``
``POST /_fake/rate_limit``         ``{"max": 15, "decay": 0.33}`` (``max`` 0 = off)
``POST /_fake/reset``              back to the starting balances and prices, no orders, no faults, no requests
                                   and no nonce seen (as a new account with a new key)
``GET /_fake/state``               balances, holds, orders, trades, prices, the account's figures in USD and
                                   the dead man's switch (armed, trigger time, every time it fired)
``GET /_fake/requests``            every request to the venue's own paths: method, path, ``Host`` header,
                                   whether it carried an ``API-Key``; and every WebSocket connection
=================================  ==========================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import logging
import random
import secrets
import signal
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "fake-kraken-api-key"
# Kraken's documented example private key (docs.kraken.com "Spot REST Authentication")
API_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
TAKER_FEE, MAKER_FEE = Decimal("0.26"), Decimal("0.16")          # percent
ZERO = Decimal(0)
# what each open order is allowed to spend is priced with the taker fee on top
_RESTING_KINDS = ("limit", "stop-loss", "take-profit", "stop-loss-limit", "take-profit-limit", "trailing-stop")
_ORDER_KINDS = ("market", *_RESTING_KINDS)
_NO_COUNTER = frozenset({"AddOrder", "AmendOrder", "CancelOrder", "CancelAll", "CancelAllOrdersAfter"})
_HEAVY = frozenset({"TradesHistory", "QueryTrades", "Ledgers", "QueryLedgers"})


@dataclass(frozen=True)
class Pair:
    name: str            # Kraken's canonical name: XXBTZUSD
    altname: str         # what clients send and the desk's symbol: XBTUSD
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick: Decimal

    def describe(self) -> dict:
        fees = [[0, float(TAKER_FEE)], [50000, 0.24], [100000, 0.22]]
        fees_maker = [[0, float(MAKER_FEE)], [50000, 0.14], [100000, 0.12]]
        return {"altname": self.altname, "wsname": self.wsname, "aclass_base": "currency", "base": self.base,
                "aclass_quote": "currency", "quote": self.quote, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": self.pair_decimals, "lot_decimals": self.lot_decimals, "lot_multiplier": 1,
                "leverage_buy": [], "leverage_sell": [], "fees": fees, "fees_maker": fees_maker,
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": str(self.ordermin), "costmin": str(self.costmin), "tick_size": str(self.tick),
                "status": "online"}


PAIRS = {p.name: p for p in (
    Pair("XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1, 8, Decimal("0.0001"), Decimal("0.5"), Decimal("0.1")),
    Pair("XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD", 2, 8, Decimal("0.002"), Decimal("0.5"), Decimal("0.01")),
    Pair("SOLUSD", "SOLUSD", "SOL/USD", "SOL", "ZUSD", 2, 8, Decimal("0.02"), Decimal("0.5"), Decimal("0.01")),
    Pair("XETHXXBT", "ETHXBT", "ETH/XBT", "XETH", "XXBT", 5, 8, Decimal("0.002"), Decimal("0.00002"),
         Decimal("0.00001")),
)}
START_PRICES = {"XXBTZUSD": Decimal("30000.0"), "XETHZUSD": Decimal("2000.00"), "SOLUSD": Decimal("100.00"),
                "XETHXXBT": Decimal("0.06667")}
START_BALANCES = {"ZUSD": Decimal("100000")}
ASSET_DECIMALS = {"ZUSD": 4, "ZEUR": 4}
ASSET_NAMES = {"USD": "ZUSD", "EUR": "ZEUR", "XBT": "XXBT", "BTC": "XXBT", "ETH": "XETH"}


def asset_code(name: str) -> str:
    name = name.strip().upper()
    return ASSET_NAMES.get(name, name)


def places(asset: str) -> int:
    return ASSET_DECIMALS.get(asset, 10)


def fmt(value: Decimal, decimals: int) -> str:
    return f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kraken_id(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    part = lambda n: "".join(random.choice(alphabet) for _ in range(n))  # noqa: E731
    return f"{prefix}{part(5)}-{part(5)}-{part(6)}"


class Refused(Exception):
    """A Kraken error string, answered with HTTP 200 in the envelope's ``error`` list."""


def number(text: Any, what: str) -> Decimal:
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        raise Refused(f"EGeneral:Invalid arguments:{what}") from None
    if not value.is_finite():
        raise Refused(f"EGeneral:Invalid arguments:{what}")
    return value


@dataclass
class Order:
    txid: str
    pair: Pair
    side: str                       # buy | sell
    kind: str                       # ordertype
    volume: Decimal
    price: Decimal | None           # limit price (limit) or trigger price (stops, take-profits)
    price2: Decimal | None          # limit price of the -limit kinds
    oflags: list[str]
    opentm: float
    cl_ord_id: str | None = None
    userref: int = 0
    timeinforce: str = "GTC"
    expiretm: float = 0
    trail: Decimal | None = None    # trailing-stop distance
    trail_percent: bool = False
    trail_ref: Decimal | None = None
    triggered: bool = False
    status: str = "open"
    executed: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    trades: list[str] = field(default_factory=list)
    closetm: float | None = None
    reason: str | None = None

    @property
    def remaining(self) -> Decimal:
        return self.volume - self.executed

    @property
    def fee_in_quote(self) -> bool:
        return "fciq" in self.oflags or (self.side == "buy" and "fcib" not in self.oflags)

    def description(self) -> dict:
        price = f"+{self.trail}{'%' if self.trail_percent else ''}" if self.kind == "trailing-stop" else \
            fmt(self.price, self.pair.pair_decimals) if self.price is not None else "0"
        price2 = fmt(self.price2, self.pair.pair_decimals) if self.price2 is not None else "0"
        text = f"{self.side} {fmt(self.volume, self.pair.lot_decimals)} {self.pair.altname} @ {self.kind}"
        text += f" {price}" if self.kind != "market" else ""
        return {"pair": self.pair.altname, "type": self.side, "ordertype": self.kind, "price": price,
                "price2": price2, "leverage": "none", "order": text, "close": ""}

    def to_kraken(self, *, with_trades: bool) -> dict:
        average = self.cost / self.executed if self.executed else ZERO
        raw = {"refid": None, "userref": self.userref, "cl_ord_id": self.cl_ord_id, "status": self.status,
               "opentm": self.opentm, "starttm": 0, "expiretm": self.expiretm, "descr": self.description(),
               "vol": fmt(self.volume, self.pair.lot_decimals), "vol_exec": fmt(self.executed, self.pair.lot_decimals),
               "cost": fmt(self.cost, 5), "fee": fmt(self.fee, 5), "price": fmt(average, self.pair.pair_decimals),
               "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": ",".join(self.oflags)}
        if not self.cl_ord_id:
            raw.pop("cl_ord_id")
        if self.closetm is not None:
            raw.update(closetm=self.closetm, reason=self.reason)
        if with_trades and self.trades:
            raw["trades"] = list(self.trades)
        return raw

    def to_execution(self, exec_type: str, **extra: Any) -> dict:
        status = {"open": "new", "closed": "filled", "canceled": "canceled", "expired": "expired"}[self.status]
        if self.status == "open" and self.executed:
            status = "partially_filled"
        event = {"order_id": self.txid, "exec_type": exec_type, "order_status": status,
                 "symbol": self.pair.wsname, "side": self.side, "order_type": self.kind,
                 "order_qty": float(self.volume), "cum_qty": float(self.executed), "cum_cost": float(self.cost),
                 "time_in_force": self.timeinforce, "timestamp": rfc3339(time.time())}
        if self.cl_ord_id:
            event["cl_ord_id"] = self.cl_ord_id
        if self.price is not None and self.kind == "limit":
            event["limit_price"] = float(self.price)
        return {**event, **extra}


class Venue:
    """The exchange: balances, orders, trades, prices, the dead man's switch. Every method runs under one lock;
    order events go to ``publish`` (the WebSocket side) as lists of ``executions`` entries."""

    def __init__(self, *, balances: dict[str, Decimal], prices: dict[str, Decimal]) -> None:
        self.lock = threading.RLock()
        self.start = (dict(balances), dict(prices))
        self.publish: Callable[[list[dict]], None] = lambda events: None
        self.trade_ids = itertools.count(40000001)
        self.deadman_timer: threading.Timer | None = None
        self.reset()

    def reset(self) -> None:
        with self.lock:
            if getattr(self, "deadman_timer", None) is not None:
                self.deadman_timer.cancel()
            self.balances: dict[str, Decimal] = dict(self.start[0])
            self.prices: dict[str, Decimal] = dict(self.start[1])
            self.spreads: dict[str, Decimal] = {}
            self.history: dict[str, list[tuple[float, Decimal]]] = {
                name: [(time.time(), price)] for name, price in self.prices.items()}
            self.orders: dict[str, Order] = {}
            self.trades: dict[str, dict] = {}
            self.system_status = "online"
            self.deadman_timer = None
            self.deadman = {"armed": False, "timeout": 0, "trigger_at": None, "arms": 0, "fired": []}

    # -- reference -----------------------------------------------------------------------------------------
    @staticmethod
    def pair(name: str) -> Pair:
        for pair in PAIRS.values():
            if name in (pair.name, pair.altname, pair.wsname):
                return pair
        raise Refused("EQuery:Unknown asset pair")

    def bid_ask(self, pair: Pair) -> tuple[Decimal, Decimal]:
        price, half = self.prices[pair.name], self.spreads.get(pair.name, ZERO) / 2
        return price - half, price + half

    def usd_value(self, asset: str) -> Decimal:
        """The price of one unit of ``asset`` in USD (1 for USD itself, 0 when no pair prices it)."""
        if asset == "ZUSD":
            return Decimal(1)
        for pair in PAIRS.values():
            if pair.base == asset and pair.quote == "ZUSD":
                return self.prices[pair.name]
        return ZERO

    # -- balances ------------------------------------------------------------------------------------------
    def held(self) -> dict[str, Decimal]:
        holds: dict[str, Decimal] = {}
        for order in self.open_orders():
            asset, amount = self._hold_of(order)
            holds[asset] = holds.get(asset, ZERO) + amount
        return holds

    def _hold_of(self, order: Order, *, volume: Decimal | None = None) -> tuple[str, Decimal]:
        remaining = order.remaining if volume is None else volume - order.executed
        if order.side == "sell":
            extra = ZERO if order.fee_in_quote else remaining * TAKER_FEE / 100
            return order.pair.base, remaining + extra
        price = self._spend_price(order)
        return order.pair.quote, remaining * price * (1 + TAKER_FEE / 100)

    def _spend_price(self, order: Order) -> Decimal:
        if order.kind in ("stop-loss-limit", "take-profit-limit") and order.price2 is not None:
            return order.price2
        if order.price is not None and order.kind != "market":
            return order.price
        return self.bid_ask(order.pair)[1]

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO) - self.held().get(asset, ZERO)

    def _credit(self, asset: str, amount: Decimal) -> None:
        value = self.balances.get(asset, ZERO) + amount
        self.balances[asset] = value.quantize(Decimal(1).scaleb(-places(asset)), rounding=ROUND_HALF_UP)

    def set_balance(self, asset: str, amount: Decimal) -> None:
        with self.lock:
            self.balances[asset_code(asset)] = amount

    def figures(self, asset: str = "ZUSD") -> dict[str, Decimal]:
        """What ``TradeBalance`` reports in ``asset`` and what is free of it."""
        with self.lock:
            unit = self.usd_value(asset)
            if unit == 0:
                raise Refused("EGeneral:Invalid arguments:asset")
            equivalent = sum((amount * self.usd_value(a) for a, amount in self.balances.items()), ZERO) / unit
            unexecuted = sum((o.remaining * self._spend_price(o) * self.usd_value(o.pair.quote)
                              for o in self.open_orders()), ZERO) / unit
            return {"equivalent": equivalent.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
                    "unexecuted": unexecuted.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP),
                    "cash": self.balances.get(asset, ZERO), "free": self.free(asset)}

    # -- orders --------------------------------------------------------------------------------------------
    def open_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if o.status == "open"]

    def add_order(self, fields: dict[str, str]) -> Order:
        with self.lock:
            self.expire_due()
            order = self._parse_order(fields)
            if self.system_status in ("maintenance", "cancel_only"):
                raise Refused("EService:Unavailable" if self.system_status == "maintenance"
                              else "EOrder:Trading halted")
            self._check_funds(order)
            self.orders[order.txid] = order
            self.publish([order.to_execution("new")])
            self._on_arrival(order)
            return order

    def _parse_order(self, fields: dict[str, str]) -> Order:
        for name in ("pair", "type", "ordertype", "volume"):
            if not fields.get(name):
                raise Refused(f"EGeneral:Invalid arguments:{name}")
        pair = self.pair(fields["pair"])
        side, kind = fields["type"], fields["ordertype"]
        if side not in ("buy", "sell"):
            raise Refused("EGeneral:Invalid arguments:type")
        if kind not in _ORDER_KINDS:
            raise Refused("EGeneral:Invalid arguments:ordertype")
        volume = number(fields["volume"], "volume")
        if volume <= 0 or volume != volume.quantize(Decimal(1).scaleb(-pair.lot_decimals), rounding=ROUND_DOWN):
            raise Refused("EGeneral:Invalid arguments:volume")
        if volume < pair.ordermin:
            raise Refused("EOrder:Order minimum not met")
        if fields.get("cl_ord_id") and fields.get("userref"):
            raise Refused("EGeneral:Invalid arguments:cl_ord_id and userref are mutually exclusive")
        order = Order(txid=kraken_id("O"), pair=pair, side=side, kind=kind, volume=volume, price=None, price2=None,
                      oflags=[f for f in fields.get("oflags", "").split(",") if f], opentm=round(time.time(), 4),
                      cl_ord_id=fields.get("cl_ord_id") or None, userref=int(number(fields.get("userref") or 0,
                                                                                      "userref")))
        self._parse_prices(order, fields)
        self._parse_time_in_force(order, fields)
        if order.cl_ord_id and any(o.cl_ord_id == order.cl_ord_id for o in self.open_orders()):
            raise Refused("EOrder:Duplicate cl_ord_id")
        cost = volume * (order.price or self.bid_ask(pair)[1])
        if cost < pair.costmin:
            raise Refused("EOrder:Cost minimum not met")
        return order

    def _parse_prices(self, order: Order, fields: dict[str, str]) -> None:
        price, price2 = fields.get("price", ""), fields.get("price2", "")
        if order.kind == "market":
            return
        if not price:
            raise Refused("EGeneral:Invalid arguments:price")
        if order.kind == "trailing-stop":
            if not price.startswith("+"):
                raise Refused("EGeneral:Invalid arguments:price")
            order.trail_percent = price.endswith("%")
            order.trail = number(price[1:].rstrip("%"), "price")
            order.trail_ref = self.prices[order.pair.name]
            return
        order.price = self._tick_price(order.pair, price, "price")
        if order.kind.endswith("-limit"):
            if not price2:
                raise Refused("EGeneral:Invalid arguments:price2")
            order.price2 = self._tick_price(order.pair, price2, "price2")

    @staticmethod
    def _tick_price(pair: Pair, text: str, what: str) -> Decimal:
        value = number(text, what)
        if value <= 0:
            raise Refused(f"EGeneral:Invalid arguments:{what}")
        if value % pair.tick:
            raise Refused(f"EOrder:Invalid price:{pair.altname} price can only be specified up to "
                          f"{pair.pair_decimals} decimals.")
        return value

    @staticmethod
    def _parse_time_in_force(order: Order, fields: dict[str, str]) -> None:
        tif = fields.get("timeinforce", "GTC") or "GTC"
        if tif not in ("GTC", "IOC", "GTD"):
            raise Refused("EGeneral:Invalid arguments:timeinforce")
        order.timeinforce = tif
        if tif == "GTD":
            expires = fields.get("expiretm", "")
            if not expires:
                raise Refused("EGeneral:Invalid arguments:expiretm")
            order.expiretm = float(time.time() + int(expires[1:])) if expires.startswith("+") else \
                float(number(expires, "expiretm"))
        if "post" in order.oflags and order.kind != "limit":
            raise Refused("EGeneral:Invalid arguments:oflags")

    def _check_funds(self, order: Order, *, volume: Decimal | None = None, releasing: Decimal = ZERO) -> None:
        asset, need = self._hold_of(order, volume=volume)
        if self.free(asset) + releasing < need:
            raise Refused("EOrder:Insufficient funds")

    def _on_arrival(self, order: Order) -> None:
        bid, ask = self.bid_ask(order.pair)
        if order.kind == "market":
            self._fill(order, ask if order.side == "buy" else bid, maker=False)
        elif order.kind == "limit" and self._limit_crosses(order, bid, ask):
            if "post" in order.oflags:
                self._close(order, "canceled", "Post only order")
                return
            self._fill(order, ask if order.side == "buy" else bid, maker=False)
        else:
            self._match(order)
        if order.status == "open" and order.timeinforce == "IOC":
            self._close(order, "canceled", "IOC")

    @staticmethod
    def _limit_crosses(order: Order, bid: Decimal, ask: Decimal) -> bool:
        limit = order.price2 if order.kind.endswith("-limit") else order.price
        return ask <= limit if order.side == "buy" else bid >= limit

    def _triggered(self, order: Order, last: Decimal) -> bool:
        if order.kind == "trailing-stop":
            best = max if order.side == "sell" else min
            order.trail_ref = best(order.trail_ref or last, last)
            distance = order.trail_ref * order.trail / 100 if order.trail_percent else order.trail
            return last <= order.trail_ref - distance if order.side == "sell" else last >= order.trail_ref + distance
        falls = (order.kind.startswith("stop-loss")) == (order.side == "sell")   # sell stop / buy take-profit
        return last <= order.price if falls else last >= order.price

    def _match(self, order: Order) -> None:
        """One resting order against the current price: trigger, then fill what may fill."""
        last = self.prices[order.pair.name]
        bid, ask = self.bid_ask(order.pair)
        if order.kind != "limit" and not order.triggered:
            if not self._triggered(order, last):
                return
            order.triggered = True
            if order.kind in ("stop-loss", "take-profit", "trailing-stop"):
                self._fill(order, ask if order.side == "buy" else bid, maker=False)
                return
        if self._limit_crosses(order, bid, ask):
            limit = order.price2 if order.kind.endswith("-limit") else order.price
            self._fill(order, limit, maker=True)

    def _fill(self, order: Order, price: Decimal, *, maker: bool) -> None:
        pair, volume = order.pair, order.remaining
        cost = (volume * price).quantize(Decimal(1).scaleb(-places(pair.quote)), rounding=ROUND_HALF_UP)
        fee = (cost * (MAKER_FEE if maker else TAKER_FEE) / 100).quantize(
            Decimal(1).scaleb(-places(pair.quote)), rounding=ROUND_HALF_UP)
        base_fee = ZERO if order.fee_in_quote else (fee / price).quantize(
            Decimal(1).scaleb(-places(pair.base)), rounding=ROUND_HALF_UP)
        quote_fee = fee if order.fee_in_quote else ZERO
        if order.side == "buy":
            self._credit(pair.quote, -(cost + quote_fee))
            self._credit(pair.base, volume - base_fee)
        else:
            self._credit(pair.base, -(volume + base_fee))
            self._credit(pair.quote, cost - quote_fee)
        trade_id = kraken_id("T")
        now = round(time.time(), 4)
        self.trades[trade_id] = {
            "ordertxid": order.txid, "postxid": kraken_id("T"), "pair": pair.name, "time": now, "type": order.side,
            "ordertype": order.kind, "price": fmt(price, pair.pair_decimals), "cost": fmt(cost, 5),
            "fee": fmt(fee, 5), "vol": fmt(volume, pair.lot_decimals), "margin": "0.00000", "misc": "",
            "trade_id": next(self.trade_ids), "maker": maker}
        order.executed += volume
        order.cost += cost
        order.fee += fee
        order.trades.append(trade_id)
        self.publish([order.to_execution(
            "trade", exec_id=trade_id, last_qty=float(volume), last_price=float(price), cost=float(cost),
            liquidity_ind="m" if maker else "t",
            fees=[{"asset": (pair.quote if order.fee_in_quote else pair.base)[-3:], "qty": float(fee)}])])
        self._close(order, "closed", None)

    def _close(self, order: Order, status: str, reason: str | None) -> None:
        order.status, order.reason, order.closetm = status, reason, round(time.time(), 4)
        exec_type = {"closed": "filled", "canceled": "canceled", "expired": "expired"}[status]
        self.publish([order.to_execution(exec_type, **({"reason": reason} if reason else {}))])

    def set_price(self, pair: Pair, price: Decimal, spread: Decimal | None = None) -> list[str]:
        """A new price: every resting order of the pair, oldest first, may trigger and fill on it."""
        with self.lock:
            self.prices[pair.name] = price
            if spread is not None:
                self.spreads[pair.name] = spread
            self.history[pair.name].append((time.time(), price))
            before = {o.txid for o in self.open_orders()}
            for order in sorted(self.open_orders(), key=lambda o: o.opentm):
                if order.pair is pair and order.status == "open":
                    self._match(order)
            return sorted(before - {o.txid for o in self.open_orders()})

    def expire_due(self) -> None:
        now = time.time()
        for order in self.open_orders():
            if order.expiretm and order.expiretm <= now:
                self._close(order, "expired", "Order expired")

    def find_open(self, *, txid: str = "", cl_ord_id: str = "") -> list[Order]:
        open_orders = self.open_orders()
        if cl_ord_id:
            return [o for o in open_orders if o.cl_ord_id == cl_ord_id]
        if txid.isdigit():
            return [o for o in open_orders if o.userref == int(txid)]
        return [o for o in open_orders if o.txid == txid]

    def cancel(self, *, txid: str = "", cl_ord_id: str = "") -> int:
        with self.lock:
            if not txid and not cl_ord_id:
                raise Refused("EGeneral:Invalid arguments:txid")
            found = self.find_open(txid=txid, cl_ord_id=cl_ord_id)
            if not found:
                raise Refused("EOrder:Unknown order")
            for order in found:
                self._close(order, "canceled", "User requested")
            return len(found)

    def cancel_all(self, reason: str = "User requested") -> list[str]:
        with self.lock:
            cancelled = [o.txid for o in self.open_orders()]
            for order in self.open_orders():
                self._close(order, "canceled", reason)
            return cancelled

    def amend(self, fields: dict[str, str]) -> str:
        with self.lock:
            found = self.find_open(txid=fields.get("txid", ""), cl_ord_id=fields.get("cl_ord_id", ""))
            if len(found) != 1:
                raise Refused("EOrder:Unknown order")
            order = found[0]
            if "order_qty" in fields:
                quantity = number(fields["order_qty"], "order_qty")
                if quantity <= order.executed or quantity < order.pair.ordermin:
                    raise Refused("EGeneral:Invalid arguments:order_qty")
                _, holding = self._hold_of(order)
                self._check_funds(order, volume=quantity, releasing=holding)
                order.volume = quantity
            if "limit_price" in fields:
                value = self._tick_price(order.pair, fields["limit_price"], "limit_price")
                if order.kind.endswith("-limit"):
                    order.price2 = value
                else:
                    order.price = value
            if "trigger_price" in fields:
                order.price = self._tick_price(order.pair, fields["trigger_price"], "trigger_price")
            self.publish([order.to_execution("amended")])
            self._match(order)
            return kraken_id("T")

    # -- the dead man's switch ---------------------------------------------------------------------------------
    def arm_deadman(self, timeout: int) -> dict[str, str]:
        with self.lock:
            now = time.time()
            if self.deadman_timer is not None:
                self.deadman_timer.cancel()
                self.deadman_timer = None
            self.deadman["arms"] += 1
            if timeout == 0:
                self.deadman.update(armed=False, timeout=0, trigger_at=None)
                return {"currentTime": rfc3339(now), "triggerTime": "0"}
            self.deadman.update(armed=True, timeout=timeout, trigger_at=now + timeout)
            self.deadman_timer = threading.Timer(timeout, self._deadman_fires, args=(now + timeout,))
            self.deadman_timer.daemon = True
            self.deadman_timer.start()
            return {"currentTime": rfc3339(now), "triggerTime": rfc3339(now + timeout)}

    def _deadman_fires(self, trigger_at: float) -> None:
        with self.lock:
            if not self.deadman["armed"] or self.deadman["trigger_at"] != trigger_at:
                return                                  # re-armed or disarmed meanwhile
            cancelled = self.cancel_all("Cancel all orders after timeout")
            self.deadman["fired"].append({"at": time.time(), "trigger_at": trigger_at, "cancelled": cancelled})
            self.deadman.update(armed=False, trigger_at=None)
            self.deadman_timer = None

    # -- views -------------------------------------------------------------------------------------------------
    def state(self) -> dict:
        with self.lock:
            self.expire_due()
            holds = self.held()
            figures = self.figures("ZUSD")
            return {
                "balances": {a: fmt(v, places(a)) for a, v in sorted(self.balances.items())},
                "held": {a: fmt(v, places(a)) for a, v in sorted(holds.items())},
                "account": {"currency": "USD", "cash": fmt(figures["cash"], 4), "equity": fmt(figures["equivalent"], 4),
                            "buying_power": fmt(max(figures["free"], ZERO), 4)},
                "prices": {PAIRS[n].altname: str(p) for n, p in self.prices.items()},
                "open_orders": [dict(o.to_kraken(with_trades=True), txid=o.txid) for o in self.open_orders()],
                "closed_orders": [dict(o.to_kraken(with_trades=True), txid=o.txid)
                                  for o in self.orders.values() if o.status != "open"],
                "trades": [dict(t, txid=i) for i, t in self.trades.items()],
                "system_status": self.system_status,
                "deadman": dict(self.deadman),
            }


class Gate:
    """What stands between a request and the venue: the request log, injected faults, the signature and nonce
    checks, and the private-call counter."""

    def __init__(self, *, api_key: str, api_secret: str) -> None:
        self.lock = threading.Lock()
        self.api_key, self.secret = api_key, base64.b64decode(api_secret)
        self.nonces: dict[str, int] = {}
        self.requests: list[dict] = []
        self.faults: list[dict] = []
        self.counter = {"max": 0, "decay": Decimal("0.33"), "value": Decimal(0), "at": time.monotonic()}
        self.tokens: dict[str, float] = {}

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append({**entry, "at": time.time()})

    def add_fault(self, kind: str, body: dict) -> None:
        with self.lock:
            self.faults.append({"kind": kind, "count": int(body.get("count", 1)), "method": body.get("method"),
                                "after": bool(body.get("after", False)), "fail": body.get("kind", "5xx"),
                                "status": int(body.get("status", 503))})

    def take_fault(self, method: str) -> dict | None:
        with self.lock:
            for fault in self.faults:
                if fault["count"] > 0 and fault["method"] in (None, method):
                    fault["count"] -= 1
                    return dict(fault)
            return None

    def authenticate(self, path: str, headers: Any, body: bytes, fields: dict[str, str]) -> None:
        if headers.get("API-Key") != self.api_key:
            raise Refused("EAPI:Invalid key")
        nonce = fields.get("nonce", "")
        digest = hashlib.sha256(nonce.encode() + body).digest()
        expected = base64.b64encode(hmac.new(self.secret, path.encode() + digest, hashlib.sha512).digest()).decode()
        if not hmac.compare_digest(expected, headers.get("API-Sign", "")):
            raise Refused("EAPI:Invalid signature")
        with self.lock:
            if not nonce.isdigit() or int(nonce) <= self.nonces.get(self.api_key, 0):
                raise Refused("EAPI:Invalid nonce")
            self.nonces[self.api_key] = int(nonce)

    def count(self, method: str) -> None:
        if method in _NO_COUNTER:
            return
        with self.lock:
            c = self.counter
            now = time.monotonic()
            c["value"] = max(Decimal(0), c["value"] - c["decay"] * Decimal(str(now - c["at"])))
            c["at"] = now
            cost = 2 if method in _HEAVY else 1
            if c["max"] and c["value"] + cost > c["max"]:
                raise Refused("EAPI:Rate limit exceeded")
            c["value"] += cost

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = time.time()
        return token

    def token_valid(self, token: str) -> bool:
        with self.lock:
            issued = self.tokens.get(token)
        return issued is not None and time.time() - issued < 900


class Stream:
    """The WebSocket v2 side: ``executions`` subscribers, fed from the venue's events on the server's loop."""

    def __init__(self, venue: Venue, gate: Gate) -> None:
        self.venue, self.gate = venue, gate
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: set = set()
        self.subscribed: dict[Any, itertools.count] = {}

    def publish(self, events: list[dict]) -> None:
        if self.loop is not None and self.subscribed:
            self.loop.call_soon_threadsafe(self._send_all, events)

    def _send_all(self, events: list[dict]) -> None:
        for ws, sequence in list(self.subscribed.items()):
            message = {"channel": "executions", "type": "update", "data": events, "sequence": next(sequence)}
            asyncio.ensure_future(self._send(ws, message))

    @staticmethod
    async def _send(ws: Any, message: dict) -> None:
        try:
            await ws.send(json.dumps(message))
        except Exception:       # noqa: BLE001 - a closed socket: the client reconnects
            pass

    def drop_all(self) -> int:
        if self.loop is None:
            return 0
        connections = list(self.connections)
        for ws in connections:
            self.loop.call_soon_threadsafe(lambda w=ws: asyncio.ensure_future(w.close(1011, "dropped")))
        return len(connections)

    async def serve(self, ws: Any) -> None:
        request = ws.request
        self.gate.record({"method": "WS", "path": request.path, "host": request.headers.get("Host", ""),
                          "api_key": False})
        self.connections.add(ws)
        try:
            await ws.send(json.dumps({"channel": "status", "type": "update", "data": [{
                "version": "2.0.10", "system": "online", "api_version": "v2",
                "connection_id": random.getrandbits(63)}]}))
            heartbeat = asyncio.ensure_future(self._heartbeats(ws))
            try:
                async for raw in ws:
                    await self._answer(ws, raw)
            finally:
                heartbeat.cancel()
        except Exception:       # noqa: BLE001 - the client went away
            pass
        finally:
            self.connections.discard(ws)
            self.subscribed.pop(ws, None)

    async def _heartbeats(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(1)
            if ws in self.subscribed:
                await self._send(ws, {"channel": "heartbeat"})

    async def _answer(self, ws: Any, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            await ws.send(json.dumps({"error": "EGeneral:Invalid arguments", "success": False}))
            return
        method, req_id = message.get("method"), message.get("req_id")
        stamp = {"time_in": rfc3339(time.time()), "time_out": rfc3339(time.time())}
        if method == "ping":
            await ws.send(json.dumps({"method": "pong", "req_id": req_id, **stamp}))
            return
        params = message.get("params") or {}
        if method not in ("subscribe", "unsubscribe") or params.get("channel") != "executions":
            await ws.send(json.dumps({"method": method, "req_id": req_id, "success": False,
                                      "error": "EGeneral:Invalid arguments", **stamp}))
            return
        if not self.gate.token_valid(str(params.get("token", ""))):
            await ws.send(json.dumps({"method": method, "req_id": req_id, "success": False,
                                      "error": "ESession:Invalid session", **stamp}))
            return
        if method == "unsubscribe":
            self.subscribed.pop(ws, None)
            await ws.send(json.dumps({"method": method, "req_id": req_id, "success": True,
                                      "result": {"channel": "executions"}, **stamp}))
            return
        await ws.send(json.dumps({"method": "subscribe", "req_id": req_id, "success": True,
                                  "result": {"channel": "executions", "maxratecount": 180,
                                             "snapshot": bool(params.get("snap_orders", True))}, **stamp}))
        sequence = itertools.count(1)
        if params.get("snap_orders", True):
            with self.venue.lock:
                snapshot = [o.to_execution("new") for o in self.venue.open_orders()]
            await ws.send(json.dumps({"channel": "executions", "type": "snapshot", "data": snapshot,
                                      "sequence": next(sequence)}))
        self.subscribed[ws] = sequence


# -- REST ------------------------------------------------------------------------------------------------------

def public_answer(venue: Venue, method: str, query: dict[str, str]) -> Any:
    with venue.lock:
        if method == "AssetPairs":
            names = [n for n in query.get("pair", "").split(",") if n]
            pairs = [venue.pair(n) for n in names] if names else list(PAIRS.values())
            return {p.name: p.describe() for p in pairs}
        if method == "Ticker":
            names = [n for n in query.get("pair", "").split(",") if n]
            pairs = [venue.pair(n) for n in names] if names else list(PAIRS.values())
            return {p.name: ticker(venue, p) for p in pairs}
        if method == "OHLC":
            pair = venue.pair(query.get("pair", ""))
            return ohlc(venue, pair, int(number(query.get("interval") or 1, "interval")),
                        int(number(query.get("since") or 0, "since")))
        if method == "SystemStatus":
            return {"status": venue.system_status, "timestamp": rfc3339(time.time())}
        if method == "Time":
            now = int(time.time())
            return {"unixtime": now,
                    "rfc1123": datetime.fromtimestamp(now, UTC).strftime("%a, %d %b %y %H:%M:%S +0000")}
    raise Refused("EGeneral:Unknown method")


def ticker(venue: Venue, pair: Pair) -> dict:
    bid, ask = venue.bid_ask(pair)
    last = venue.prices[pair.name]
    p = pair.pair_decimals
    return {"a": [fmt(ask, p), "1", "1.000"], "b": [fmt(bid, p), "1", "1.000"], "c": [fmt(last, p), "0.01000000"],
            "v": ["10.00000000", "20.00000000"], "p": [fmt(last, p), fmt(last, p)], "t": [10, 20],
            "l": [fmt(last, p), fmt(last, p)], "h": [fmt(last, p), fmt(last, p)], "o": fmt(last, p)}


def ohlc(venue: Venue, pair: Pair, interval: int, since: int) -> dict:
    if interval not in (1, 5, 15, 30, 60, 240, 1440, 10080, 21600):
        raise Refused("EGeneral:Invalid arguments:interval")
    step = interval * 60
    now = int(time.time())
    history = venue.history[pair.name]
    rows = []
    start = max(since, now - step * 720) // step * step
    for at in range(start, now + 1, step):
        prices = [p for t, p in history if at <= t < at + step] or [next(
            (p for t, p in reversed(history) if t < at), history[0][1])]
        d = pair.pair_decimals
        rows.append([at, fmt(prices[0], d), fmt(max(prices), d), fmt(min(prices), d), fmt(prices[-1], d),
                     fmt(sum(prices) / len(prices), d), "1.00000000", len(prices)])
    return {pair.name: rows, "last": rows[-1][0] if rows else since}


def private_answer(venue: Venue, gate: Gate, method: str, fields: dict[str, str]) -> Any:
    if method in ("AddOrder", "CancelOrder", "CancelAll", "AmendOrder", "CancelAllOrdersAfter"):
        return trading_answer(venue, method, fields)
    with venue.lock:
        venue.expire_due()
        if method == "Balance":
            return {a: fmt(v, places(a)) for a, v in venue.balances.items()}
        if method == "BalanceEx":
            holds = venue.held()
            return {a: {"balance": fmt(v, places(a)), "hold_trade": fmt(holds.get(a, ZERO), places(a))}
                    for a, v in venue.balances.items()}
        if method == "TradeBalance":
            figures = venue.figures(asset_code(fields.get("asset", "ZUSD") or "ZUSD"))
            eb = fmt(figures["equivalent"], 4)
            return {"eb": eb, "tb": eb, "m": "0.0000", "n": "0.0000", "c": "0.0000", "v": "0.0000", "e": eb,
                    "mf": eb, "uv": fmt(figures["unexecuted"], 4)}
        if method in ("OpenOrders", "ClosedOrders", "QueryOrders"):
            return order_answer(venue, method, fields)
        if method == "QueryTrades":
            ids = [t for t in fields.get("txid", "").split(",") if t]
            if not ids or len(ids) > 20:
                raise Refused("EGeneral:Invalid arguments:txid")
            return {t: venue.trades[t] for t in ids if t in venue.trades}
        if method == "TradesHistory":
            start, end = float(fields.get("start") or 0), float(fields.get("end") or 9e12)
            trades = {t: raw for t, raw in sorted(venue.trades.items(), key=lambda kv: -kv[1]["time"])
                      if start < raw["time"] <= end}
            return {"trades": dict(list(trades.items())[:50]), "count": len(trades)}
        if method == "GetWebSocketsToken":
            return {"token": gate.issue_token(), "expires": 900}
    raise Refused("EGeneral:Unknown method")


def trading_answer(venue: Venue, method: str, fields: dict[str, str]) -> Any:
    if method == "AddOrder":
        if fields.get("validate") in ("true", "1"):
            raise Refused("EGeneral:Invalid arguments:validate is not served by this fake")
        order = venue.add_order(fields)
        return {"descr": {"order": order.description()["order"]}, "txid": [order.txid]}
    if method == "CancelOrder":
        return {"count": venue.cancel(txid=fields.get("txid", ""), cl_ord_id=fields.get("cl_ord_id", ""))}
    if method == "CancelAll":
        return {"count": len(venue.cancel_all())}
    if method == "AmendOrder":
        if not fields.get("txid") and not fields.get("cl_ord_id"):
            raise Refused("EGeneral:Invalid arguments:txid")
        return {"amend_id": venue.amend(fields)}
    timeout = fields.get("timeout", "")
    if not timeout.isdigit() or int(timeout) >= 86400:
        raise Refused("EGeneral:Invalid arguments:timeout")
    return venue.arm_deadman(int(timeout))


def order_answer(venue: Venue, method: str, fields: dict[str, str]) -> Any:
    with_trades = fields.get("trades") in ("true", "1", "True")
    chosen = list(venue.orders.values())
    if fields.get("cl_ord_id"):
        chosen = [o for o in chosen if o.cl_ord_id == fields["cl_ord_id"]]
    if fields.get("userref"):
        chosen = [o for o in chosen if o.userref == int(number(fields["userref"], "userref"))]
    if method == "OpenOrders":
        return {"open": {o.txid: o.to_kraken(with_trades=with_trades) for o in chosen if o.status == "open"}}
    if method == "ClosedOrders":
        closed = sorted((o for o in chosen if o.status != "open"), key=lambda o: -(o.closetm or 0))
        start, end = float(fields.get("start") or 0), float(fields.get("end") or 9e12)
        closed = [o for o in closed if start < (o.closetm or 0) <= end]
        offset = int(number(fields.get("ofs") or 0, "ofs"))
        return {"closed": {o.txid: o.to_kraken(with_trades=with_trades) for o in closed[offset:offset + 50]},
                "count": len(closed)}
    ids = [t for t in fields.get("txid", "").split(",") if t]
    if not ids and not fields.get("userref"):
        raise Refused("EGeneral:Invalid arguments:txid")
    if len(ids) > 50:
        raise Refused("EGeneral:Invalid arguments:txid")
    wanted = set(ids) if ids else {o.txid for o in chosen}
    return {o.txid: o.to_kraken(with_trades=with_trades) for o in chosen if o.txid in wanted}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kraken/1"
    venue: Venue
    gate: Gate
    stream: Stream

    def log_message(self, format: str, *args: Any) -> None:     # noqa: A002 - the stdlib's name
        """Quiet: the runner stops reading the fake's output after READY."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, verb: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if parts.path.startswith("/_fake/"):
            self._control(verb, parts.path[len("/_fake/"):], body)
            return
        self.gate.record({"method": verb, "path": parts.path, "host": self.headers.get("Host", ""),
                          "api_key": "API-Key" in self.headers})
        method = parts.path.rsplit("/", 1)[-1]
        fault = self.gate.take_fault(method)
        if fault and not fault["after"] and self._fault(fault):
            return
        status, answer = self._venue_answer(verb, parts, method, body)
        if fault and fault["after"] and self._fault(fault):
            return
        self._send(status, answer)

    def _venue_answer(self, verb: str, parts: Any, method: str, body: bytes) -> tuple[int, dict]:
        try:
            if verb == "GET" and parts.path.startswith("/0/public/"):
                result = public_answer(self.venue, method, dict(parse_qsl(parts.query)))
            elif verb == "POST" and parts.path.startswith("/0/private/"):
                fields = self._fields(body)
                self.gate.authenticate(parts.path, self.headers, body, fields)
                self.gate.count(method)
                result = private_answer(self.venue, self.gate, method, fields)
            else:
                return 404, {"error": ["EGeneral:Unknown method"]}
        except Refused as refusal:
            return 200, {"error": [str(refusal)], "result": {}}
        return 200, {"error": [], "result": result}

    def _fields(self, body: bytes) -> dict[str, str]:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            try:
                return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in json.loads(body).items()}
            except (ValueError, AttributeError):
                raise Refused("EGeneral:Invalid arguments") from None
        return dict(parse_qsl(body.decode(), keep_blank_values=True))

    def _fault(self, fault: dict) -> bool:
        if fault["kind"] == "drop":
            self.close_connection = True
            self.connection.close()
            return True
        if fault["fail"] == "5xx":
            text = f"<html><body><h1>{fault['status']} Service Unavailable</h1></body></html>".encode()
            self.send_response(fault["status"])
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
            return True
        error = {"unavailable": "EService:Unavailable", "busy": "EService:Busy",
                 "internal": "EGeneral:Internal error"}.get(fault["fail"], "EService:Unavailable")
        self._send(200, {"error": [error], "result": {}})
        return True

    def _send(self, status: int, answer: Any) -> None:
        text = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def _control(self, verb: str, action: str, body: bytes) -> None:
        try:
            request = json.loads(body) if body else {}
            self._send(200, control(self.venue, self.gate, self.stream, verb, action, request))
        except Refused as refusal:
            self._send(400, {"error": str(refusal)})
        except (ValueError, KeyError, TypeError) as e:
            self._send(400, {"error": f"{type(e).__name__}: {e}"})


def control(venue: Venue, gate: Gate, stream: Stream, verb: str, action: str, body: dict) -> Any:
    if verb == "GET" and action == "state":
        return venue.state()
    if verb == "GET" and action == "requests":
        with gate.lock:
            return list(gate.requests)
    if action == "price":
        pair = venue.pair(str(body.get("pair") or body.get("symbol")))
        spread = number(body["spread"], "spread") if "spread" in body else None
        closed = venue.set_price(pair, number(body["price"], "price"), spread)
        return {"pair": pair.altname, "price": str(venue.prices[pair.name]), "closed": closed}
    if action == "balance":
        venue.set_balance(str(body["asset"]), number(body["amount"], "amount"))
        return {"balances": venue.state()["balances"]}
    if action in ("fail", "drop"):
        gate.add_fault(action, body)
        return {"faults": gate.faults}
    if action == "drop_stream":
        return {"dropped": stream.drop_all()}
    if action == "external_order":
        order = venue.add_order({k: str(v) for k, v in body.items()})
        return {"txid": order.txid, "status": order.status}
    if action == "status":
        with venue.lock:
            venue.system_status = str(body["status"])
        return {"status": venue.system_status}
    if action == "rate_limit":
        with gate.lock:
            gate.counter.update(max=int(body.get("max", 15)), decay=number(body.get("decay", "0.33"), "decay"),
                                value=Decimal(0), at=time.monotonic())
        return {"max": gate.counter["max"]}
    if action == "reset":
        venue.reset()
        with gate.lock:
            gate.faults.clear()
            gate.requests.clear()
            gate.nonces.clear()             # a new account for the next test, whose broker counts afresh
        return {"reset": True}
    raise Refused(f"unknown control {verb} {action}")


# -- the process ---------------------------------------------------------------------------------------------

def parse_amounts(items: list[str], what: str) -> dict[str, Decimal]:
    amounts = {}
    for item in items:
        name, _, value = item.partition("=")
        amounts[name] = number(value, what)
    return amounts


async def run(args: argparse.Namespace) -> None:
    from websockets.asyncio.server import serve

    prices = {**START_PRICES, **{Venue.pair(n).name: p for n, p in parse_amounts(args.price, "price").items()}}
    balances = {asset_code(a): v for a, v in parse_amounts(args.balance, "balance").items()} or dict(START_BALANCES)
    venue = Venue(balances=balances, prices=prices)
    gate = Gate(api_key=args.api_key, api_secret=args.api_secret)
    stream = Stream(venue, gate)
    venue.publish = stream.publish
    stream.loop = asyncio.get_running_loop()
    handler = type("BoundHandler", (Handler,), {"venue": venue, "gate": gate, "stream": stream})
    http = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    http.daemon_threads = True
    http.handle_error = lambda request, client_address: None          # a dropped client is not news
    threading.Thread(target=http.serve_forever, daemon=True).start()
    async with serve(stream.serve, "127.0.0.1", args.ws_port) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1]
        print(f"READY http://127.0.0.1:{http.server_address[1]} ws://127.0.0.1:{ws_port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    http.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Kraken Spot venue on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--api-secret", default=API_SECRET)
    parser.add_argument("--balance", action="append", default=[], metavar="ASSET=AMOUNT",
                        help="a starting balance (default ZUSD=100000)")
    parser.add_argument("--price", action="append", default=[], metavar="PAIR=PRICE", help="a starting price")
    logging.getLogger("websockets").addHandler(logging.NullHandler())
    logging.getLogger("websockets").propagate = False
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
