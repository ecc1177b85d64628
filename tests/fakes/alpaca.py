"""A fake Alpaca, written from ``shared/reference/brokers/alpaca/*.json`` and NOTES.md §2, run as its own process:
``python -m tests.fakes.alpaca --port 0 --ws-port 0 [--cash 100000] [--multiplier 2] [--key K --secret S]``.

It behaves like the venue rather than replaying it:

* an account with cash and positions; equity, margin and buying power computed as the spec describes
  (``multiplier`` 1: buying power is cash; 2: twice the excess of equity over the reg-T initial margin), less
  what working orders that add exposure hold;
* orders as the adapter sends them (market, limit, stop, stop_limit, trailing_stop; simple, bracket, oto, oco),
  answered ``accepted`` (``pending_new`` for crypto) and then working (``new``); market orders fill at the fake's
  own price, the others when the price crosses them; a bracket's legs are ``held`` until the entry fills, then
  ``new`` (at once, after ``hold_legs`` seconds, or on ``release_legs``), and one filling cancels the other;
* cancel (``DELETE``), replace (``PATCH``: a new order, the old one ``replaced``), the unique ``client_order_id``,
  refusals with Alpaca's numeric codes (403 40310000 for buying power and quantity, 422 for the rest);
* the market-data paths the adapter asks (latest quotes, bars; stocks and crypto), assets and the clock;
* the ``trade_updates`` WebSocket at ``/stream`` on the ws port: authenticate, listen, binary JSON frames.

Only the paths the adapter calls are served; anything else is 404 in Alpaca's ``{"code", "message"}`` shape.
Every request without both key headers equal to ``--key`` / ``--secret`` is 401.

Test instructions (``POST /_fake/<action>``, JSON body; never logged as venue requests):

==================  ============================================================================================
action              body / effect
==================  ============================================================================================
price               ``{"symbol", "price"}``: the fake's price (bid = ask); working orders are matched against it
hold_legs           ``{"seconds": N}``: legs released N s after their entry fills; N < 0 or null: on release_legs
release_legs        ``{}``: release every held leg whose entry has filled
fail                ``{"status": 503, "count": N, "path": prefix?}``: the next N venue requests answer that status
drop                ``{"count": N, "when": "before"|"after", "path": prefix?, "method": M?}``: close the socket
                    without an answer, before doing anything or after doing what was asked (the answer is lost)
external_position   ``{"symbol", "qty", "avg_entry_price", "pay": true}``: a position opened elsewhere (paid from cash)
external_order      an order body as ``POST /v2/orders`` takes it: placed by "another app"
fill                ``{"id", "qty"?, "price"?}``: fill (part of) a working order now
cancel              ``{"id"}``: the venue cancels an order
account             ``{"cash"?, "multiplier"?}``
drop_stream         ``{}``: close every trade_updates socket
state               the account, positions and every order, as the venue would answer them
requests            every venue request so far: method, Host header, path, query, whether the keys came with it
clear_requests      forget them
==================  ============================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ZERO = Decimal("0")
OPEN = frozenset({"new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding",
                  "pending_cancel", "pending_replace", "done_for_day", "stopped", "suspended", "calculated"})
NOT_REPLACEABLE = frozenset({"accepted", "pending_new", "pending_cancel", "pending_replace"})
TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
CRYPTO_TYPES = ("market", "limit", "stop_limit")
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC", "ETH")
DEFAULT_PRICES = {"AAPL": "170", "MSFT": "410", "SPY": "450", "TSLA": "250", "BTC/USD": "60000", "ETH/USD": "3000"}
MARGIN = {"us_equity": (Decimal("0.5"), Decimal("0.3")), "crypto": (Decimal("1"), Decimal("1"))}
NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


class Refused(Exception):
    """An Alpaca error answer: HTTP status and the ``{"code", "message", ...}`` body."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"code": code, "message": message, **extra}


def _text(value: Decimal | None) -> str | None:
    """A decimal as Alpaca writes it: a plain string, no exponent, no trailing zeros."""
    if value is None:
        return None
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def _number(value: Decimal) -> int | float:
    """The market-data API writes JSON numbers."""
    return int(value) if value == value.to_integral_value() else float(value)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Refused(422, 40010001, f"invalid {name}") from None
    if not result.is_finite():
        raise Refused(422, 40010001, f"invalid {name}")
    return result


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def alpaca_symbol(symbol: str) -> str:
    """Any spelling -> Alpaca's order spelling: ``btcusd`` -> ``BTC/USD``; stocks stay."""
    upper = symbol.upper()
    if "/" in upper:
        return upper
    for quote in CRYPTO_QUOTES:
        if upper.endswith(quote) and len(upper) > len(quote):
            return f"{upper[:-len(quote)]}/{quote}"
    return upper


def is_crypto(symbol: str) -> bool:
    return "/" in symbol


@dataclass
class Fault:
    kind: str            # fail | drop
    count: int
    status: int = 503
    when: str = "before"
    path: str = ""
    method: str = ""

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and path.startswith(self.path) and (not self.method or self.method == method)


class Venue:
    """The account, its orders and prices. Every public method runs under one lock."""

    def __init__(self, *, cash: Decimal, multiplier: int, key: str, secret: str) -> None:
        self.lock = threading.RLock()
        self.cash, self.multiplier, self.key, self.secret = cash, multiplier, key, secret
        self.start_equity = cash
        self.prices = {s: Decimal(p) for s, p in DEFAULT_PRICES.items()}
        self.opening_prices = dict(self.prices)
        self.positions: dict[str, dict[str, Decimal]] = {}         # alpaca symbol -> qty (signed), avg
        self.orders: dict[str, dict[str, Any]] = {}                # id -> Alpaca order (+ "_" keys of the fake)
        self.client_ids: set[str] = set()
        self.hold_seconds: float | None = 0.0
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.publish: Any = lambda message: None                    # set by the stream server
        self.created_at = _now()

    # -- account ----------------------------------------------------------------------------------------------
    def price(self, symbol: str) -> Decimal:
        found = self.prices.get(alpaca_symbol(symbol))
        if found is None:
            raise Refused(404, 40410000, f"asset not found: {symbol}")
        return found

    def figures(self) -> dict[str, Decimal]:
        long_value = short_value = initial = maintenance = ZERO
        for symbol, held in self.positions.items():
            value = held["qty"] * self.prices[symbol]
            long_value, short_value = (long_value + value, short_value) if value > 0 else (long_value,
                                                                                           short_value + value)
            rates = MARGIN["crypto" if is_crypto(symbol) else "us_equity"]
            initial += abs(value) * rates[0]
            maintenance += abs(value) * rates[1]
        equity = self.cash + long_value + short_value
        reserved = self._reserved()
        if self.multiplier <= 1:
            buying_power = max(ZERO, self.cash - reserved)
        else:
            buying_power = max(ZERO, (equity - initial) * self.multiplier - reserved)
        return {"cash": self.cash, "equity": equity, "long_market_value": long_value,
                "short_market_value": short_value, "initial_margin": initial, "maintenance_margin": maintenance,
                "buying_power": buying_power, "non_marginable_buying_power": max(ZERO, self.cash - reserved)}

    def _reserved(self) -> Decimal:
        """What working orders that add exposure hold of the buying power: their notional at their price."""
        total = ZERO
        for order in self.orders.values():
            if order["status"] not in OPEN or order["status"] == "held" or self._reduces(order):
                continue
            remaining = Decimal(order["qty"]) - Decimal(order["filled_qty"])
            total += remaining * self._order_price(order)
        return total

    def _order_price(self, order: dict[str, Any]) -> Decimal:
        return Decimal(order["limit_price"]) if order.get("limit_price") else self.prices[order["symbol"]]

    def _reduces(self, order: dict[str, Any]) -> bool:
        held = self.positions.get(order["symbol"], {}).get("qty", ZERO)
        return (held > 0 and order["side"] == "sell") or (held < 0 and order["side"] == "buy")

    def account(self) -> dict[str, Any]:
        f = self.figures()
        return {
            "id": str(uuid.uuid5(NAMESPACE, self.key)), "admin_configurations": {}, "user_configurations": None,
            "account_number": "PAFAKE0001", "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
            "buying_power": _text(f["buying_power"]), "regt_buying_power": _text(f["buying_power"]),
            "daytrading_buying_power": "0", "options_buying_power": "0",
            "effective_buying_power": _text(f["buying_power"]),
            "non_marginable_buying_power": _text(f["non_marginable_buying_power"]), "bod_dtbp": "0",
            "cash": _text(f["cash"]), "accrued_fees": "0", "pending_transfer_in": "0",
            "portfolio_value": _text(f["equity"]), "pattern_day_trader": False, "trading_blocked": False,
            "transfers_blocked": False, "account_blocked": False, "created_at": _stamp(self.created_at),
            "trade_suspended_by_user": False, "multiplier": str(self.multiplier),
            "shorting_enabled": self.multiplier > 1, "equity": _text(f["equity"]),
            "last_equity": _text(self.start_equity), "long_market_value": _text(f["long_market_value"]),
            "short_market_value": _text(f["short_market_value"]),
            "position_market_value": _text(f["long_market_value"] - f["short_market_value"]),
            "initial_margin": _text(f["initial_margin"]), "maintenance_margin": _text(f["maintenance_margin"]),
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
            "balance_asof": self.created_at.date().isoformat(), "crypto_tier": 1, "options_trading_level": 0,
            "intraday_adjustments": "0", "pending_reg_taf_fees": "0"}

    def position_list(self) -> list[dict[str, Any]]:
        return [self._position(symbol, held) for symbol, held in sorted(self.positions.items())]

    def _position(self, symbol: str, held: dict[str, Decimal]) -> dict[str, Any]:
        qty, avg, price = held["qty"], held["avg"], self.prices[symbol]
        cost, value = qty * avg, qty * price
        pnl = value - cost
        crypto = is_crypto(symbol)
        opening = self.opening_prices.get(symbol, price)
        locked = sum((Decimal(o["qty"]) - Decimal(o["filled_qty"]) for o in self.orders.values()
                      if o["symbol"] == symbol and o["status"] in OPEN and o["status"] != "held"
                      and self._reduces(o)), ZERO)
        available = max(ZERO, abs(qty) - locked) * (1 if qty > 0 else -1)
        return {"asset_id": str(uuid.uuid5(NAMESPACE, symbol)), "symbol": symbol.replace("/", ""),
                "exchange": "CRYPTO" if crypto else "NASDAQ", "asset_class": "crypto" if crypto else "us_equity",
                "asset_marginable": not crypto, "qty": _text(qty), "qty_available": _text(available),
                "avg_entry_price": _text(avg), "side": "long" if qty > 0 else "short", "market_value": _text(value),
                "cost_basis": _text(cost), "unrealized_pl": _text(pnl),
                "unrealized_plpc": _text(pnl / abs(cost)) if cost else "0", "unrealized_intraday_pl": _text(pnl),
                "unrealized_intraday_plpc": _text(pnl / abs(cost)) if cost else "0", "current_price": _text(price),
                "lastday_price": _text(opening), "change_today": _text((price - opening) / opening)}

    # -- orders: entry --------------------------------------------------------------------------------------
    def place(self, body: dict[str, Any], *, external: bool = False) -> dict[str, Any]:
        """``POST /v2/orders``: checked, recorded, answered as Alpaca answers (not routed yet), then matched."""
        order_class = body.get("order_class") or "simple"
        parent = self._new_order(body, order_class=order_class, external=external)
        legs = self._new_legs(body, parent, order_class)
        self._check_funds(parent)
        for order in (parent, *legs):
            self.orders[order["id"]] = order
            self.client_ids.add(order["client_order_id"])
        parent["_legs"] = [leg["id"] for leg in legs]
        answer = self.render(parent, nested=True)
        self._route(parent)
        return answer

    def _new_order(self, body: dict[str, Any], *, order_class: str, external: bool) -> dict[str, Any]:
        symbol = alpaca_symbol(str(body.get("symbol") or ""))
        if symbol not in self.prices:
            raise Refused(422, 40010001, f"asset not found: {body.get('symbol')}")
        kind, side = body.get("type"), body.get("side")
        tif = body.get("time_in_force")
        if kind not in TYPES or side not in ("buy", "sell") or tif not in ("day", "gtc", "ioc", "fok", "opg", "cls"):
            raise Refused(422, 40010001, "invalid order: type, side and time_in_force are required")
        qty = _decimal(body.get("qty"), "qty")
        if qty <= 0:
            raise Refused(422, 40010001, "qty must be > 0")
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        if client_id in self.client_ids:
            raise Refused(422, 40010001, "client_order_id must be unique")
        self._check_kind(symbol, kind, tif, order_class, body)
        if order_class == "oco":
            kind, body = "limit", {**body, "limit_price": body["take_profit"]["limit_price"]}
        return self._order(symbol=symbol, side=side, kind=kind, qty=qty, tif=tif, order_class=order_class,
                           client_id=client_id, body=body, external=external)

    def _check_kind(self, symbol: str, kind: str, tif: str, order_class: str, body: dict[str, Any]) -> None:
        if is_crypto(symbol) and (kind not in CRYPTO_TYPES or tif not in ("gtc", "ioc")):
            raise Refused(422, 42210000, f"invalid crypto order: {kind} {tif}")
        if is_crypto(symbol) and order_class != "simple":
            raise Refused(422, 42210000, "crypto orders must be simple orders")
        if kind in ("limit", "stop_limit") and order_class != "oco" and not body.get("limit_price"):
            raise Refused(422, 40010001, "limit_price is required for limit orders")
        if kind in ("stop", "stop_limit") and not body.get("stop_price"):
            raise Refused(422, 40010001, "stop_price is required for stop orders")
        if kind == "trailing_stop" and not (body.get("trail_price") or body.get("trail_percent")):
            raise Refused(422, 40010001, "trail_price or trail_percent is required")
        if order_class in ("bracket", "oto") and kind not in ("market", "limit"):
            raise Refused(422, 42210000, "bracket orders must be market or limit orders")
        if order_class == "bracket" and not ((body.get("take_profit") or {}).get("limit_price")
                                             and (body.get("stop_loss") or {}).get("stop_price")):
            raise Refused(422, 40010001, "bracket orders require take_profit.limit_price and stop_loss.stop_price")
        if order_class == "oco" and (kind != "limit" or not body.get("take_profit") or not body.get("stop_loss")):
            raise Refused(422, 40010001, "oco orders must be limit orders with take_profit and stop_loss")

    def _order(self, *, symbol: str, side: str, kind: str, qty: Decimal, tif: str, order_class: str,
               client_id: str, body: dict[str, Any], external: bool, status: str = "accepted") -> dict[str, Any]:
        at = _stamp(_now())
        return {
            "id": str(uuid.uuid4()), "client_order_id": client_id, "created_at": at, "updated_at": at,
            "submitted_at": at, "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
            "replaced_at": None, "replaced_by": None, "replaces": None,
            "asset_id": str(uuid.uuid5(NAMESPACE, symbol)), "symbol": symbol,
            "asset_class": "crypto" if is_crypto(symbol) else "us_equity", "notional": None, "qty": _text(qty),
            "filled_qty": "0", "filled_avg_price": None, "order_class": "" if order_class == "simple" else order_class,
            "order_type": kind, "type": kind, "side": side, "time_in_force": tif,
            "limit_price": _price(body.get("limit_price")) if kind in ("limit", "stop_limit") else None,
            "stop_price": _price(body.get("stop_price")) if kind in ("stop", "stop_limit") else None,
            "status": status, "extended_hours": False, "legs": None,
            "trail_percent": _price(body.get("trail_percent")) if kind == "trailing_stop" else None,
            "trail_price": _price(body.get("trail_price")) if kind == "trailing_stop" else None,
            "hwm": None, "subtag": None, "source": "external" if external else None,
            "_legs": [], "_parent": None, "_triggered": False}

    def _new_legs(self, body: dict[str, Any], parent: dict[str, Any], order_class: str) -> list[dict[str, Any]]:
        if order_class == "simple":
            return []
        exit_side = "sell" if parent["side"] == "buy" else "buy"
        if order_class == "oco":                                 # both exits of one position: the parent's side
            exit_side = parent["side"]
        status = "new" if order_class == "oco" else "held"
        legs = []
        take_profit, stop_loss = body.get("take_profit"), body.get("stop_loss")
        if take_profit and order_class != "oco":
            legs.append(("limit", {"limit_price": take_profit["limit_price"]}))
        if stop_loss:
            kind = "stop_limit" if stop_loss.get("limit_price") else "stop"
            legs.append((kind, {"stop_price": stop_loss["stop_price"], "limit_price": stop_loss.get("limit_price")}))
        out = []
        for kind, prices in legs:
            leg = self._order(symbol=parent["symbol"], side=exit_side, kind=kind, qty=Decimal(parent["qty"]),
                              tif=parent["time_in_force"], order_class=order_class, client_id=str(uuid.uuid4()),
                              body=prices, external=parent["source"] == "external", status=status)
            leg["_parent"] = parent["id"]
            out.append(leg)
        return out

    def _check_funds(self, order: dict[str, Any]) -> None:
        """403 40310000, as Alpaca refuses: buying power for what adds exposure, quantity for what sells."""
        qty = Decimal(order["qty"])
        symbol = order["symbol"]
        held = self.positions.get(symbol, {}).get("qty", ZERO)
        if order["side"] == "sell" and (is_crypto(symbol) or held > 0):
            self._check_quantity(order, qty, held)
            return
        cost = qty * self._order_price(order)
        buying_power = self.figures()["non_marginable_buying_power" if is_crypto(symbol) else "buying_power"]
        if cost > buying_power:
            raise Refused(403, 40310000, "insufficient buying power", buying_power=_text(buying_power),
                          cost_basis=_text(cost))

    def _check_quantity(self, order: dict[str, Any], qty: Decimal, held: Decimal) -> None:
        locked = sum((Decimal(o["qty"]) - Decimal(o["filled_qty"]) for o in self.orders.values()
                      if o["symbol"] == order["symbol"] and o["side"] == "sell" and o["status"] in OPEN
                      and o["status"] != "held" and not self._is_second_exit(o)), ZERO)
        available = max(ZERO, held - locked)
        if qty > available:
            if is_crypto(order["symbol"]):
                asset = order["symbol"].split("/")[0]
                raise Refused(403, 40310000, f"insufficient balance for {asset} (requested: {_text(qty)}, "
                                             f"available: {_text(available)})")
            raise Refused(403, 40310000, f"insufficient qty available for order (requested: {_text(qty)}, "
                                         f"available: {_text(available)})")

    def _is_second_exit(self, order: dict[str, Any]) -> bool:
        """The stop of a bracket or OCO shares its quantity with the take-profit: counted once."""
        parent = self.orders.get(order["_parent"] or "")
        if parent is None:
            return False
        if parent["order_class"] == "oco":
            return True
        return order["type"] != "limit" and any(self.orders[i]["type"] == "limit" for i in parent["_legs"])

    def _route(self, order: dict[str, Any]) -> None:
        """Alpaca routes what it accepted: it works (``new``), then the price may fill it."""
        order["status"] = "new"
        self._event("new", order)
        for leg_id in order["_legs"]:
            leg = self.orders[leg_id]
            if leg["status"] == "new":
                self._event("new", leg)
        self.match(order["symbol"])

    # -- orders: matching -----------------------------------------------------------------------------------
    def set_price(self, symbol: str, price: Decimal) -> None:
        symbol = alpaca_symbol(symbol)
        self.prices[symbol] = price
        self.opening_prices.setdefault(symbol, price)
        self.match(symbol)

    def match(self, symbol: str) -> None:
        price = self.prices[symbol]
        for order in sorted(self.orders.values(), key=lambda o: o["submitted_at"]):
            if order["symbol"] != symbol or order["status"] not in ("new", "partially_filled"):
                continue
            if self._crosses(order, price):
                self.fill(order, Decimal(order["qty"]) - Decimal(order["filled_qty"]), price)
            elif order["time_in_force"] in ("ioc", "fok") and order["type"] != "market":
                self._end(order, "canceled")

    def _crosses(self, order: dict[str, Any], price: Decimal) -> bool:
        buy = order["side"] == "buy"
        kind = order["type"]
        if kind == "trailing_stop":
            return self._trail(order, price, buy)
        if kind in ("stop", "stop_limit") and not order["_triggered"]:
            stop = Decimal(order["stop_price"])
            order["_triggered"] = price >= stop if buy else price <= stop
            if not order["_triggered"]:
                return False
        if kind in ("limit", "stop_limit"):
            limit = Decimal(order["limit_price"])
            return price <= limit if buy else price >= limit
        return True

    def _trail(self, order: dict[str, Any], price: Decimal, buy: bool) -> bool:
        mark = Decimal(order["hwm"]) if order["hwm"] else price
        mark = min(mark, price) if buy else max(mark, price)
        if order["trail_percent"]:
            offset = mark * Decimal(order["trail_percent"]) / 100
        else:
            offset = Decimal(order["trail_price"])
        stop = mark + offset if buy else mark - offset
        order["hwm"], order["stop_price"] = _text(mark), _text(stop)
        return price >= stop if buy else price <= stop

    def fill(self, order: dict[str, Any], qty: Decimal, price: Decimal) -> None:
        """Fill ``qty`` of ``order`` at ``price``: the order, the position, the cash, the stream, the legs."""
        before, average = Decimal(order["filled_qty"]), Decimal(order["filled_avg_price"] or "0")
        total = before + qty
        at = _stamp(_now())
        done = total >= Decimal(order["qty"])
        order.update(filled_qty=_text(total), filled_avg_price=_text((average * before + price * qty) / total),
                     status="filled" if done else "partially_filled", updated_at=at,
                     filled_at=at if done else order["filled_at"])
        self._book(order["symbol"], qty if order["side"] == "buy" else -qty, price)
        held = self.positions.get(order["symbol"], {}).get("qty", ZERO)
        self._event("fill" if done else "partial_fill", order, price=_text(price), qty=_text(qty),
                    position_qty=_text(held), execution_id=str(uuid.uuid4()))
        if done:
            self._after_fill(order)

    def _book(self, symbol: str, signed: Decimal, price: Decimal) -> None:
        self.cash -= signed * price
        held = self.positions.get(symbol, {"qty": ZERO, "avg": ZERO})
        qty, avg = held["qty"], held["avg"]
        after = qty + signed
        if after == 0:
            self.positions.pop(symbol, None)
            return
        if qty == 0 or (qty > 0) != (after > 0):
            avg = price                                             # opened, or turned over
        elif (qty > 0) == (signed > 0):
            avg = (qty * avg + signed * price) / after             # grown
        self.positions[symbol] = {"qty": after, "avg": avg}

    def _after_fill(self, order: dict[str, Any]) -> None:
        if order["_legs"] and order["order_class"] in ("bracket", "oto"):
            self._schedule_release(order)
            return
        for other in self._exits_beside(order):                      # one-cancels-other
            if other["status"] in OPEN:
                self._end(other, "canceled")

    def _exits_beside(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        """The other exits of ``order``'s bracket or OCO (an OCO's parent is its take-profit, an exit too)."""
        parent = order if order["order_class"] == "oco" and order["_legs"] else self.orders.get(order["_parent"] or "")
        if parent is None:
            return []
        exits = [self.orders[i] for i in parent["_legs"]]
        if parent["order_class"] == "oco":
            exits.append(parent)
        return [o for o in exits if o is not order]

    def _schedule_release(self, entry: dict[str, Any]) -> None:
        if self.hold_seconds is None or self.hold_seconds < 0:
            return
        if self.hold_seconds == 0:
            self.release(entry)
            return
        timer = threading.Timer(self.hold_seconds, self._release_later, args=(entry["id"],))
        timer.daemon = True
        timer.start()

    def _release_later(self, entry_id: str) -> None:
        with self.lock:
            self.release(self.orders[entry_id])

    def release(self, entry: dict[str, Any]) -> int:
        """The entry filled: its held legs work."""
        released = 0
        for leg_id in entry["_legs"]:
            leg = self.orders[leg_id]
            if leg["status"] == "held":
                leg.update(status="new", updated_at=_stamp(_now()))
                self._event("new", leg)
                released += 1
        self.match(entry["symbol"])
        return released

    def release_all(self) -> int:
        return sum(self.release(o) for o in list(self.orders.values())
                   if o["_legs"] and o["status"] == "filled")

    # -- orders: cancel and replace -------------------------------------------------------------------------
    def find(self, order_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise Refused(422, 40010001, "order_id is missing") from None
        order = self.orders.get(order_id)
        if order is None:
            raise Refused(404, 40410000, "order not found")
        return order

    def by_client_id(self, client_id: str) -> dict[str, Any]:
        found = [o for o in self.orders.values() if o["client_order_id"] == client_id]
        if not found:
            raise Refused(404, 40410000, "order not found")
        return found[0]

    def cancel(self, order_id: str) -> None:
        order = self.find(order_id)
        if order["status"] not in OPEN:
            raise Refused(422, 42210000, "order is not cancelable")
        self._end(order, "canceled")
        for leg_id in order["_legs"]:
            if self.orders[leg_id]["status"] in OPEN:
                self._end(self.orders[leg_id], "canceled")

    def _end(self, order: dict[str, Any], status: str) -> None:
        at = _stamp(_now())
        stamp = {"canceled": "canceled_at", "expired": "expired_at", "rejected": "failed_at"}[status]
        order.update(status=status, updated_at=at, **{stamp: at})
        self._event(status, order)

    def replace(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        old = self.find(order_id)
        if old["status"] not in OPEN or old["status"] in NOT_REPLACEABLE:
            raise Refused(422, 42210000, f"order is not replaceable (status {old['status']})")
        new = {**old, "id": str(uuid.uuid4()), "client_order_id": str(body.get("client_order_id") or uuid.uuid4()),
               "replaces": old["id"], "replaced_by": None, "replaced_at": None, "filled_qty": "0",
               "filled_avg_price": None, "_legs": [], "_triggered": False,
               "status": "held" if old["status"] == "held" else "new"}
        at = _stamp(_now())
        new.update(created_at=at, updated_at=at, submitted_at=at)
        for name, key in (("qty", "qty"), ("limit_price", "limit_price"), ("stop_price", "stop_price")):
            if body.get(key) is not None:
                new[name] = _text(_decimal(body[key], key))
        if body.get("trail") is not None:
            new["trail_percent" if old["trail_percent"] else "trail_price"] = _text(_decimal(body["trail"], "trail"))
        old.update(status="replaced", replaced_by=new["id"], replaced_at=at, updated_at=at)
        self.orders[new["id"]] = new
        self.client_ids.add(new["client_order_id"])
        parent = self.orders.get(old["_parent"] or "")
        if parent is not None:
            parent["_legs"].append(new["id"])
        self._event("replaced", new)
        self.match(new["symbol"])
        return self.render(new, nested=True)

    # -- listing --------------------------------------------------------------------------------------------
    def render(self, order: dict[str, Any], *, nested: bool) -> dict[str, Any]:
        shown = {k: v for k, v in order.items() if not k.startswith("_")}
        if nested and order["_legs"]:
            shown["legs"] = [self.render(self.orders[i], nested=False) for i in order["_legs"]]
        return shown

    def listing(self, query: dict[str, str]) -> list[dict[str, Any]]:
        """``GET /v2/orders``: status, nested, after/until, direction, symbols, side, before/after_order_id, limit."""
        status, nested = query.get("status", "open"), query.get("nested") == "true"
        wanted = (lambda s: s in OPEN) if status == "open" else (lambda s: s not in OPEN) if status == "closed" \
            else (lambda s: True)
        orders = [o for o in self.orders.values() if not (nested and o["_parent"])]
        orders = [o for o in orders if wanted(o["status"])
                  or (nested and any(wanted(self.orders[i]["status"]) for i in o["_legs"]))]
        orders = _window(orders, query)
        descending = query.get("direction", "desc") == "desc"
        orders.sort(key=lambda o: o["submitted_at"], reverse=descending)
        orders = _after_cursor(orders, query, descending=descending)
        limit = min(int(query.get("limit") or 50), 500)
        return [self.render(o, nested=nested) for o in orders[:limit]]

    # -- the stream -----------------------------------------------------------------------------------------
    def _event(self, event: str, order: dict[str, Any], **fields: Any) -> None:
        data = {"event": event, "timestamp": _stamp(_now()), "order": self.render(order, nested=False), **fields}
        self.publish({"stream": "trade_updates", "data": data})

    # -- test instructions ----------------------------------------------------------------------------------
    def external_position(self, body: dict[str, Any]) -> dict[str, Any]:
        symbol = alpaca_symbol(str(body["symbol"]))
        qty, avg = _decimal(body["qty"], "qty"), _decimal(body["avg_entry_price"], "avg_entry_price")
        self.prices.setdefault(symbol, avg)
        self.opening_prices.setdefault(symbol, avg)
        cash = self.cash
        self._book(symbol, qty, avg)
        if not body.get("pay", True):
            self.cash = cash
        return self._position(symbol, self.positions[symbol]) if symbol in self.positions else {}


def _price(value: Any) -> str | None:
    return None if value in (None, "") else _text(_decimal(value, "price"))


def _window(orders: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    after, until = query.get("after"), query.get("until")
    symbols = {alpaca_symbol(s) for s in (query.get("symbols") or "").split(",") if s}
    side = query.get("side")
    out = []
    for order in orders:
        submitted = datetime.fromisoformat(order["submitted_at"])
        if after and submitted <= datetime.fromisoformat(after):
            continue
        if until and submitted >= datetime.fromisoformat(until):
            continue
        if (symbols and order["symbol"] not in symbols) or (side and order["side"] != side):
            continue
        out.append(order)
    return out


def _after_cursor(orders: list[dict[str, Any]], query: dict[str, str], *, descending: bool) -> list[dict[str, Any]]:
    """``before_order_id`` / ``after_order_id``: the orders submitted before / after that one (exclusive)."""
    for name, older in (("before_order_id", True), ("after_order_id", False)):
        cursor = query.get(name)
        if not cursor:
            continue
        ids = [o["id"] for o in orders]
        if cursor not in ids:
            return orders
        index = ids.index(cursor)
        return orders[index + 1:] if older == descending else orders[:index]
    return orders


# -- market data ---------------------------------------------------------------------------------------------
TIMEFRAMES = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600, "Day": 86400, "D": 86400, "Week": 604800, "W": 604800}


def timeframe_seconds(value: str) -> int:
    digits = "".join(c for c in value if c.isdigit()) or "1"
    unit = value[len(digits):] if value.startswith(digits) else value
    if unit not in TIMEFRAMES:
        raise Refused(400, 40010001, f"invalid timeframe {value}")
    return int(digits) * TIMEFRAMES[unit]


def quote_body(price: Decimal, *, stock: bool) -> dict[str, Any]:
    quote = {"t": _stamp(_now()), "bp": _number(price), "bs": 5, "ap": _number(price), "as": 5}
    if stock:
        quote.update(ax="V", bx="V", c=["R"], z="C")
    return quote


def bars_body(price: Decimal, query: dict[str, str]) -> list[dict[str, Any]]:
    step = timeframe_seconds(query.get("timeframe", "1Min"))
    end = datetime.fromisoformat(query["end"]) if query.get("end") else _now()
    newest = datetime.fromtimestamp(int(end.timestamp()) // step * step, tz=UTC)
    count = min(int(query.get("limit") or 1000), 10000)
    bars = [{"t": _stamp(newest - timedelta(seconds=step * n)), "o": _number(price), "h": _number(price),
             "l": _number(price), "c": _number(price), "v": 100, "n": 1, "vw": _number(price)} for n in range(count)]
    return bars if query.get("sort", "asc") == "desc" else bars[::-1]


# -- HTTP ----------------------------------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    venue: Venue
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:     # noqa: A002 - quiet: stdout is a pipe nobody reads
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), {k: v[-1] for k, v in parse_qs(parts.query).items()}
        body = self._body()
        if path.startswith("/_fake/"):
            self._answer(*self._control(path.removeprefix("/_fake/"), body))
            return
        with self.venue.lock:
            self.venue.requests.append({"method": method, "host": self.headers.get("Host", ""), "path": path,
                                        "query": parts.query, "keyed": self._keyed()})
            fault = next((f for f in self.venue.faults if f.matches(method, path)), None)
            if fault is not None:
                fault.count -= 1
            if fault is not None and fault.when == "before":
                self._fault(fault)
                return
            status, answer = self._venue_call(method, path, query, body)
        if fault is not None:
            self._fault(fault)
            return
        self._answer(status, answer)

    def _venue_call(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if not self._keyed():
            return 401, {"code": 40110000, "message": "request is not authorized"}
        try:
            return route(self.venue, method, path, query, body)
        except Refused as e:
            return e.status, e.body

    def _keyed(self) -> bool:
        return (self.headers.get("APCA-API-KEY-ID") == self.venue.key
                and self.headers.get("APCA-API-SECRET-KEY") == self.venue.secret)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"_unreadable": True}

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        messages = {500: "internal server error", 502: "bad gateway", 503: "service unavailable",
                    504: "gateway timeout", 429: "rate limit exceeded"}
        self._answer(fault.status, {"code": fault.status * 100000, "message": messages.get(fault.status, "error")})

    def _answer(self, status: int, body: Any) -> None:
        raw = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if raw:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (("X-Ratelimit-Limit", "200"), ("X-Ratelimit-Remaining", "199"),
                            ("X-Ratelimit-Reset", str(int(_now().timestamp()) + 60))):
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _control(self, action: str, body: Any) -> tuple[int, Any]:
        with self.venue.lock:
            try:
                return 200, control(self.venue, action, body or {})
            except Refused as e:
                return e.status, e.body
            except (KeyError, TypeError, ValueError) as e:
                return 400, {"message": f"bad instruction {action}: {type(e).__name__} {e}"}


def route(venue: Venue, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    """The venue's own paths, exactly those the adapter calls."""
    segments = path.strip("/").split("/")
    if (method, path) == ("GET", "/v2/account"):
        return 200, venue.account()
    if (method, path) == ("GET", "/v2/positions"):
        return 200, venue.position_list()
    if (method, path) == ("GET", "/v2/clock"):
        return 200, clock_body()
    if (method, path) == ("POST", "/v2/orders"):
        return 200, venue.place(body if isinstance(body, dict) else {})
    if (method, path) == ("GET", "/v2/orders"):
        return 200, venue.listing(query)
    if (method, path) == ("GET", "/v2/orders:by_client_order_id"):
        return 200, venue.render(venue.by_client_id(query.get("client_order_id", "")), nested=True)
    if len(segments) == 3 and segments[:2] == ["v2", "orders"]:
        return order_route(venue, method, segments[2], query, body)
    if method == "GET" and len(segments) >= 3 and segments[:2] == ["v2", "assets"]:
        return 200, asset_body(venue, "/".join(segments[2:]))
    if method == "GET":
        return data_route(venue, segments, query)
    raise Refused(404, 40410000, "endpoint not found")


def order_route(venue: Venue, method: str, order_id: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    if method == "GET":
        return 200, venue.render(venue.find(order_id), nested=query.get("nested") == "true")
    if method == "DELETE":
        venue.cancel(order_id)
        return 204, None
    if method == "PATCH":
        return 200, venue.replace(order_id, body if isinstance(body, dict) else {})
    raise Refused(404, 40410000, "endpoint not found")


def data_route(venue: Venue, segments: list[str], query: dict[str, str]) -> tuple[int, Any]:
    if len(segments) == 5 and segments[:2] == ["v2", "stocks"] and segments[3:] == ["quotes", "latest"]:
        return 200, {"symbol": segments[2], "quote": quote_body(_data_price(venue, segments[2]), stock=True)}
    if len(segments) == 4 and segments[:2] == ["v2", "stocks"] and segments[3] == "bars":
        return 200, {"bars": bars_body(_data_price(venue, segments[2]), query), "symbol": segments[2],
                     "next_page_token": None}
    if segments == ["v1beta3", "crypto", "us", "latest", "quotes"]:
        symbols = [alpaca_symbol(s) for s in query.get("symbols", "").split(",") if s]
        return 200, {"quotes": {s: quote_body(venue.prices[s], stock=False) for s in symbols if s in venue.prices}}
    if segments == ["v1beta3", "crypto", "us", "bars"]:
        symbols = [alpaca_symbol(s) for s in query.get("symbols", "").split(",") if s]
        return 200, {"bars": {s: bars_body(venue.prices[s], query) for s in symbols if s in venue.prices},
                     "next_page_token": None}
    raise Refused(404, 40410000, "endpoint not found")


def _data_price(venue: Venue, symbol: str) -> Decimal:
    price = venue.prices.get(symbol.upper())
    if price is None or is_crypto(symbol):
        raise Refused(400, 40010001, f"invalid symbol: {symbol}")
    return price


def asset_body(venue: Venue, symbol: str) -> dict[str, Any]:
    symbol = alpaca_symbol(symbol)
    if symbol not in venue.prices:
        raise Refused(404, 40410000, "asset not found")
    crypto = is_crypto(symbol)
    body = {"id": str(uuid.uuid5(NAMESPACE, symbol)), "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "NASDAQ", "symbol": symbol, "name": symbol, "status": "active",
            "tradable": True, "marginable": not crypto, "shortable": not crypto, "easy_to_borrow": not crypto,
            "fractionable": True}
    if crypto:
        body.update(min_order_size="0.0001", min_trade_increment="0.000000001", price_increment="0.01")
    return body


def clock_body() -> dict[str, Any]:
    now = _now()
    return {"timestamp": _stamp(now), "is_open": True, "next_open": _stamp(now + timedelta(days=1)),
            "next_close": _stamp(now + timedelta(hours=6))}


def control(venue: Venue, action: str, body: dict[str, Any]) -> Any:
    """``/_fake/<action>`` (table in the module docstring)."""
    if action == "price":
        venue.set_price(str(body["symbol"]), _decimal(body["price"], "price"))
        return {"symbol": alpaca_symbol(str(body["symbol"])), "price": _text(venue.price(str(body["symbol"])))}
    if action == "hold_legs":
        seconds = body.get("seconds")
        venue.hold_seconds = None if seconds is None or float(seconds) < 0 else float(seconds)
        return {"seconds": venue.hold_seconds}
    if action == "release_legs":
        return {"released": venue.release_all()}
    if action in ("fail", "drop"):
        fault = Fault(kind=action, count=int(body.get("count", 1)), status=int(body.get("status", 503)),
                      when=str(body.get("when", "before")), path=str(body.get("path", "")),
                      method=str(body.get("method", "")).upper())
        venue.faults = [f for f in venue.faults if f.count > 0] + [fault]
        return {"armed": action, "count": fault.count}
    return _control_more(venue, action, body)


def _control_more(venue: Venue, action: str, body: dict[str, Any]) -> Any:
    if action == "external_position":
        return venue.external_position(body)
    if action == "external_order":
        return venue.place(body, external=True)
    if action == "fill":
        order = venue.find(str(body["id"]))
        price = _decimal(body["price"], "price") if body.get("price") else venue.prices[order["symbol"]]
        qty = _decimal(body["qty"], "qty") if body.get("qty") else Decimal(order["qty"]) - Decimal(order["filled_qty"])
        venue.fill(order, qty, price)
        return venue.render(order, nested=True)
    if action == "cancel":
        venue.cancel(str(body["id"]))
        return venue.render(venue.find(str(body["id"])), nested=True)
    if action == "account":
        venue.cash = _decimal(body.get("cash", venue.cash), "cash")
        venue.multiplier = int(body.get("multiplier", venue.multiplier))
        return venue.account()
    if action == "state":
        return {"account": venue.account(), "positions": venue.position_list(),
                "orders": [venue.render(o, nested=False) for o in venue.orders.values()]}
    if action == "requests":
        return {"requests": list(venue.requests)}
    if action == "clear_requests":
        venue.requests.clear()
        return {"requests": []}
    if action == "drop_stream":
        venue.publish(None)
        return {"dropped": True}
    raise Refused(404, 40410000, f"no such instruction: {action}")


# -- the trade_updates stream ------------------------------------------------------------------------------
class Stream:
    """The ``/stream`` WebSocket: authenticate, listen to ``trade_updates``, then every event as a binary frame."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.listeners: set[Any] = set()
        self.loop = asyncio.new_event_loop()

    def start(self, port: int) -> int:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        server = asyncio.run_coroutine_threadsafe(self._serve(port), self.loop).result(timeout=10)
        self.venue.publish = self.publish
        return server.sockets[0].getsockname()[1]

    async def _serve(self, port: int) -> Any:
        from websockets.asyncio.server import serve

        return await serve(self._connection, "127.0.0.1", port)

    def publish(self, message: dict[str, Any] | None) -> None:
        """From any thread: send ``message`` to every listener (None: close every socket)."""
        asyncio.run_coroutine_threadsafe(self._broadcast(message), self.loop)

    async def _broadcast(self, message: dict[str, Any] | None) -> None:
        for ws in list(self.listeners):
            try:
                if message is None:
                    await ws.close(code=1011, reason="dropped by the test")
                else:
                    await ws.send(json.dumps(message).encode())
            except Exception:               # a socket that went away meanwhile
                self.listeners.discard(ws)

    async def _connection(self, ws: Any) -> None:
        record = {"method": "WS", "host": ws.request.headers.get("Host", ""), "path": ws.request.path, "query": "",
                  "keyed": False}
        with self.venue.lock:
            self.venue.requests.append(record)
        if urlsplit(ws.request.path).path != "/stream":
            await ws.close(code=1008, reason="not found")
            return
        try:
            await self._session(ws, record)
        finally:
            self.listeners.discard(ws)

    async def _session(self, ws: Any, record: dict[str, Any]) -> None:
        authorized = False
        async for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                await self._send(ws, {"action": "error", "data": {"error_message": "invalid syntax"}})
                continue
            action, data = message.get("action"), message.get("data") or {}
            if action in ("authenticate", "auth"):
                authorized = data.get("key_id") == self.venue.key and data.get("secret_key") == self.venue.secret
                record["keyed"] = authorized
                status = "authorized" if authorized else "unauthorized"
                await self._send(ws, {"stream": "authorization", "data": {"status": status, "action": "authenticate"}})
                if not authorized:
                    await ws.close()
                    return
            elif action == "listen" and authorized:
                streams = [s for s in (data.get("streams") or []) if s == "trade_updates"]
                if streams:
                    self.listeners.add(ws)
                await self._send(ws, {"stream": "listening", "data": {"streams": streams}})
            else:
                await self._send(ws, {"action": "error", "data": {"error_message": "access key verification failed"}})

    @staticmethod
    async def _send(ws: Any, message: dict[str, Any]) -> None:
        await ws.send(json.dumps(message).encode())


# -- the process ---------------------------------------------------------------------------------------------
class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:     # a dropped client is not news
        return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a fake Alpaca on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ws-port", type=int, default=0)
    parser.add_argument("--cash", default="100000")
    parser.add_argument("--multiplier", type=int, default=2)
    parser.add_argument("--key", default="FAKEALPACAKEY")
    parser.add_argument("--secret", default="fake-alpaca-secret")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)                   # stdout and stderr are a pipe the tests stop reading
    venue = Venue(cash=Decimal(args.cash), multiplier=args.multiplier, key=args.key, secret=args.secret)
    ws_port = Stream(venue).start(args.ws_port)
    handler = type("AlpacaHandler", (Handler,), {"venue": venue})
    server = QuietServer(("127.0.0.1", args.port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"READY http://127.0.0.1:{server.server_address[1]} ws://127.0.0.1:{ws_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
