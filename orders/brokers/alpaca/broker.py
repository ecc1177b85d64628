"""AlpacaBroker: the ``Broker`` interface over Alpaca's trading and market-data REST APIs.

Identity. Our order id is Alpaca's ``client_order_id`` (Alpaca keeps it unique forever, even after a cancel),
so any order we placed can be found again with ``GET /v2/orders:by_client_order_id``. Exit legs of a bracket or
OCO get ids Alpaca generates; they are found through their parent's ``legs`` and remembered in this process.
A replace (``PATCH``) makes a new Alpaca order; the old one turns ``replaced`` and points at it
(``replaced_by``), so the live order is at the end of that chain.

Submitting is safe to repeat: the POST carries our client id, so ``brokers.http`` may retry it, and a
"client_order_id must be unique" answer (our own earlier attempt landed) or an unknown outcome (timeouts,
5xx) is settled by looking the id up before anything is decided.

Polling (``sync``) costs one listing of recent orders per call plus single lookups only for what that
listing missed, to stay inside Alpaca's 200 requests a minute. The venue's truth (``account_state``,
``positions``, ``open_orders``: one request each) is paced by the engine (``DESK_VENUE_POLL_SECONDS``); here
each kind is asked at most once per ``VENUE_READ_SECONDS`` of the caller's ``now``, so the reads of one tick
(a reconciliation, several desk accounts on one set of keys) share one request. An event on the trade_updates
stream or an order this process sends forgets what was read.

Released legs. A bracket's legs are ``held`` at Alpaca until the entry fills, and PENDING on the desk. ``sync``
reports ACCEPTED once one works (table in ``reports.py``) for the orders the desk may hold PENDING: a bracket
leg (``venue_oco_id`` ``bracket-...``) or an order the desk has no Alpaca id for (its answer was lost). The
desk ignores ACCEPTED for an order that is OPEN already, so each is said at most once every
``ACCEPTED_REPEAT`` per order and process, not on every poll.

Redirects are never followed: the keys travel in headers, which ``requests`` would carry to whatever host a
3xx named; a 3xx is an error instead (``config.py`` says which hosts the keys may go to).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote as urlquote

from django.core.exceptions import ImproperlyConfigured

from orders.brokers.alpaca.account import (
    parse_alpaca_account,
    parse_alpaca_open_orders,
    parse_alpaca_positions,
    parse_alpaca_venue_order,
)
from orders.brokers.alpaca.config import HTTP_SCHEMES, PAPER_URL, STREAM_SCHEMES, AlpacaConfig, url_problem
from orders.brokers.alpaca.errors import parse_alpaca_error
from orders.brokers.alpaca.mapping import (
    CRYPTO_TIME_IN_FORCE,
    CRYPTO_TYPES,
    AlpacaOrder,
    is_alpaca_crypto,
    is_same_order,
    parse_alpaca_asset,
    parse_alpaca_bar,
    parse_alpaca_order,
    parse_alpaca_quote,
    to_alpaca_bracket,
    to_alpaca_oco,
    to_alpaca_order,
    to_alpaca_replace,
    to_alpaca_symbol,
    to_alpaca_time,
    to_alpaca_timeframe,
)
from orders.brokers.alpaca.reports import parse_alpaca_missing, parse_alpaca_reports
from orders.brokers.alpaca.stream import AlpacaTradeUpdates
from orders.brokers.base import Broker
from orders.brokers.config import require_env
from orders.brokers.http import HttpClient, HttpResponse, RetryPolicy
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
from orders.domain.enums import AssetClass, OrderStatus, OrderType, PositionMode, RejectReason, Side, TimeInForce
from orders.domain.errors import (
    DeskError,
    OrderNotFound,
    OrderNotModifiable,
    OrderRejected,
    ProviderError,
    ProviderUnavailable,
    Unsupported,
)
from orders.domain.money import format_decimal
from orders.domain.orders import OrderRequest

log = logging.getLogger(__name__)
INSTRUMENT_TTL_SECONDS = 3600
MAX_REPLACE_CHAIN = 20
MAX_FILLS_SEEN = 10_000                                # (filled_qty, avg) pairs kept to price fill increments
CAPABILITIES = Capabilities(
    platform="alpaca",
    supported_asset_classes=(AssetClass.STOCK, AssetClass.CRYPTO),
    supported_order_types=tuple(OrderType),
    position_mode=PositionMode.NETTING,
    # no post_only / reduce_only / hidden / iceberg: Alpaca's order API has no such flags
    features=("bracket_orders", "oco", "trailing_stop", "get_quote", "short_selling"),
    bracket_strategy=BracketStrategy.NATIVE_BRACKET,
    rate_limits={"requests_per_minute": 200, "orders_per_second": 10},
)
_NOT_REPLACEABLE = frozenset({"accepted", "pending_new", "pending_cancel", "pending_replace"})
VENUE_READ_SECONDS = 1.0        # account, positions, open orders: each asked at most this often (see above)
ACCEPTED_REPEAT = timedelta(minutes=5)
OPEN_ORDER_PAGE, OPEN_ORDER_PAGES = 500, 10     # Alpaca's largest page, and how many a listing may take
_URL_SETTINGS = (("ALPACA_BASE_URL", HTTP_SCHEMES), ("ALPACA_DATA_URL", HTTP_SCHEMES),
                 ("ALPACA_STREAM_URL", STREAM_SCHEMES))


def build_alpaca_broker() -> AlpacaBroker:
    """The adapter from the environment: keys required, hosts as ``config.py`` derives them unless overridden."""
    env = require_env("alpaca", ["ALPACA_API_KEY", "ALPACA_API_SECRET"],
                      {"ALPACA_BASE_URL": PAPER_URL, "ALPACA_DATA_URL": "", "ALPACA_STREAM_URL": "",
                       "ALPACA_FEED": "iex"})
    problems = [f"  {name}: {problem}" for name, schemes in _URL_SETTINGS
                if env[name] and (problem := url_problem(env[name], schemes))]
    if problems:
        raise ImproperlyConfigured("GATEWAY_PROVIDER=alpaca cannot use these variables:\n" + "\n".join(problems))
    return AlpacaBroker(AlpacaConfig(api_key=env["ALPACA_API_KEY"], api_secret=env["ALPACA_API_SECRET"],
                                     base_url=env["ALPACA_BASE_URL"], data_url=env["ALPACA_DATA_URL"],
                                     stream_url=env["ALPACA_STREAM_URL"], feed=env["ALPACA_FEED"]))


@dataclass
class _Snapshot:
    """Recent Alpaca orders of one ``sync``, indexed by id and client id; nested legs included."""
    by_id: dict[str, AlpacaOrder] = field(default_factory=dict)
    by_client_id: dict[str, AlpacaOrder] = field(default_factory=dict)

    def add(self, order: AlpacaOrder) -> None:
        self.by_id[order.id] = order
        if order.client_order_id:
            self.by_client_id[order.client_order_id] = order
        for leg in order.legs:
            self.add(leg)


class AlpacaBroker(Broker):
    name = "alpaca"
    poll_seconds = 1.5          # a poll is one or two requests: at most 80 of the 200 a minute, the rest for orders

    def __init__(self, config: AlpacaConfig, *, http: HttpClient | None = None, data_http: HttpClient | None = None,
                 sleep: Callable[[float], None] = time.sleep, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time, venue_read_seconds: float = VENUE_READ_SECONDS) -> None:
        self.config = config
        self.capabilities = CAPABILITIES
        self.http = http or HttpClient(base_url=config.base_url, provider=self.name, retry=retry, sleep=sleep)
        self.data_http = data_http or HttpClient(base_url=config.data_url, provider=self.name, retry=retry,
                                                 sleep=sleep)
        self.clock = clock
        self.venue_read_seconds = venue_read_seconds
        self._read: dict[str, tuple[datetime, Any]] = {}     # venue truth last read: kind -> (when, what)
        self._accepted_said: dict[str, datetime] = {}       # our order id -> when ACCEPTED was last reported
        self._alpaca_ids: dict[str, str] = {}          # our order id -> first Alpaca order of its chain
        self._desk_ids: dict[str, str] = {}            # any Alpaca order id seen -> our order id
        self._fills_seen: dict[str, tuple[Decimal, Decimal]] = {}
        self._instruments: dict[str, tuple[float, Instrument]] = {}
        self._last_heartbeat: datetime | None = None

    # -- HTTP ------------------------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.config.api_key, "APCA-API-SECRET-KEY": self.config.api_secret}

    def _call(self, method: str, path: str, *, market_data: bool = False, order_ref: str | None = None,
              symbol: str | None = None, **kwargs: Any) -> HttpResponse:
        client = self.data_http if market_data else self.http
        if method != "GET":
            self.forget_venue_reads()
        response = client.request(method, path, headers=self._auth(), **kwargs)
        if 200 <= response.status < 300:
            return response
        raise parse_alpaca_error(response, order_ref=order_ref, symbol=symbol, market_data=market_data,
                                 now=self.clock())

    def _order_reply(self, response: HttpResponse) -> AlpacaOrder:
        if not isinstance(response.body, dict):
            raise ProviderError("Alpaca answered an order request without an order", provider=self.name)
        return parse_alpaca_order(response.body)

    # -- reference data ----------------------------------------------------------------------------------
    def instrument(self, symbol: str) -> Instrument:
        cached = self._instruments.get(symbol)
        if cached is not None and self.clock() - cached[0] < INSTRUMENT_TTL_SECONDS:
            return cached[1]
        path = f"/v2/assets/{urlquote(to_alpaca_symbol(symbol), safe='')}"
        response = self._call("GET", path, symbol=symbol, market_data=False)
        instrument = parse_alpaca_asset(symbol, response.body or {})
        self._instruments[symbol] = (self.clock(), instrument)
        return instrument

    def quote(self, symbol: str, *, now: datetime) -> Quote:
        alpaca_symbol = to_alpaca_symbol(symbol)
        if is_alpaca_crypto(symbol):
            response = self._call("GET", "/v1beta3/crypto/us/latest/quotes", market_data=True, symbol=symbol,
                                  params={"symbols": alpaca_symbol})
            raw = ((response.body or {}).get("quotes") or {}).get(alpaca_symbol)
        else:
            response = self._call("GET", f"/v2/stocks/{alpaca_symbol}/quotes/latest", market_data=True,
                                  symbol=symbol, params={"feed": self.config.feed})
            raw = (response.body or {}).get("quote")
        if not raw:
            raise ProviderError(f"Alpaca sent no quote for {symbol}", provider=self.name)
        return parse_alpaca_quote(symbol, raw)

    def bars(self, symbol: str, *, timeframe: str, seconds: int, end: datetime, count: int) -> list[Bar]:
        """The ``count`` bars up to ``end``, oldest first: asked newest-first from a window wide enough to span
        nights and weekends, following ``next_page_token``."""
        alpaca_symbol = to_alpaca_symbol(symbol)
        start = end - timedelta(seconds=seconds * count * 2) - timedelta(days=4)
        params: dict[str, Any] = {"timeframe": to_alpaca_timeframe(seconds), "start": to_alpaca_time(start),
                                  "end": to_alpaca_time(end), "limit": count, "sort": "desc"}
        crypto = is_alpaca_crypto(symbol)
        if crypto:
            path, params["symbols"] = "/v1beta3/crypto/us/bars", alpaca_symbol
        else:
            path, params["feed"], params["adjustment"] = f"/v2/stocks/{alpaca_symbol}/bars", self.config.feed, "raw"
        raw_bars: list[dict] = []
        for _page in range(10):
            body = self._call("GET", path, market_data=True, symbol=symbol, params=params).body or {}
            page = (body.get("bars") or {}).get(alpaca_symbol) if crypto else body.get("bars")
            raw_bars.extend(page or [])
            if len(raw_bars) >= count or not body.get("next_page_token"):
                break
            params = {**params, "page_token": body["next_page_token"], "limit": count - len(raw_bars)}
        bars = [parse_alpaca_bar(symbol, timeframe, raw) for raw in raw_bars[:count]]
        return sorted(bars, key=lambda bar: bar.timestamp)

    def status(self, *, now: datetime) -> ConnectionStatus:
        """Reachability of the trading API (``GET /v2/clock``, which also proves the keys work)."""
        started = time.monotonic()
        try:
            self._call("GET", "/v2/clock")
        except DeskError as e:
            log.warning("alpaca: status check failed: %s", e.message)
            return ConnectionStatus(connected=False, latency_ms=int((time.monotonic() - started) * 1000),
                                    last_heartbeat=self._last_heartbeat or now)
        self._last_heartbeat = now
        return ConnectionStatus(connected=True, latency_ms=int((time.monotonic() - started) * 1000),
                                last_heartbeat=now)

    # -- pre-trade -------------------------------------------------------------------------------------
    def check_order(self, request: OrderRequest, *, context: AccountContext, now: datetime) -> Decimal:
        """Light local checks; Alpaca applies buying power, shortability and its own rules when the order
        arrives. Returns the reference price from the latest quote."""
        _check_alpaca_rules(request)
        quote = self.quote(request.symbol, now=now)
        touch = quote.ask if request.side is Side.BUY else quote.bid
        if request.order_type is OrderType.LIMIT:
            limit = request.limit_price
            return min(limit, touch) if request.side is Side.BUY else max(limit, touch)
        if request.order_type is OrderType.STOP_LIMIT:
            return request.limit_price
        if request.order_type is OrderType.STOP:
            return request.stop_price
        return touch

    # -- order entry -----------------------------------------------------------------------------------
    def submit_order(self, ticket: OrderTicket) -> BrokerAck:
        placed = self._place(ticket.order_id, to_alpaca_order(ticket))
        return _ack(placed)

    def submit_bracket(self, entry: OrderTicket, legs: Sequence[OrderTicket]) -> list[BrokerAck]:
        """Entry + take-profit + stop-loss as ``order_class=bracket`` (one exit: ``oto``), accepted or refused as
        one. Acks: the entry, then each leg in the order given; legs are ``held`` (PENDING) until the entry fills.
        Raises Unsupported for crypto and for stop entries, which Alpaca cannot bracket."""
        placed = self._place(entry.order_id, to_alpaca_bracket(entry, legs))
        if legs and not placed.legs:
            placed = self._get(placed.id, nested=True, order_ref=entry.order_id)
        return [_ack(placed), *(self._leg_ack(placed, leg, armed=False) for leg in legs)]

    def submit_oco(self, tickets: Sequence[OrderTicket]) -> list[BrokerAck]:
        """A take-profit LIMIT and a stop-loss STOP for one position as ``order_class=oco``: Alpaca makes the
        take-profit the parent and the stop its leg."""
        body = to_alpaca_oco(tickets)
        parent_ticket = next(t for t in tickets if t.order_type is OrderType.LIMIT)
        placed = self._place(parent_ticket.order_id, body)
        if not placed.legs:
            placed = self._get(placed.id, nested=True, order_ref=parent_ticket.order_id)
        return [_ack(placed) if t is parent_ticket else self._leg_ack(placed, t, armed=True) for t in tickets]

    def _place(self, client_order_id: str, body: dict[str, Any]) -> AlpacaOrder:
        """POST an order; settle a duplicate-id refusal or an unknown outcome by looking our id up."""
        try:
            response = self._call("POST", "/v2/orders", json_body=body, idempotent=True,
                                  symbol=body.get("symbol"))
        except OrderRejected as e:
            if (e.details or {}).get("reject_code") != "DUPLICATE_CLIENT_ORDER_ID":
                raise
            existing = self.find_order(client_order_id)
            if existing is None or not is_same_order(existing, body):
                raise
            log.info("alpaca: order %s was already placed by an earlier attempt", client_order_id)
            placed = existing
        except (ProviderUnavailable, ProviderError):
            placed = self._settle_unknown_outcome(client_order_id)
        else:
            placed = self._order_reply(response)
        self._remember(client_order_id, placed.id)
        return placed

    def _settle_unknown_outcome(self, client_order_id: str) -> AlpacaOrder:
        try:
            existing = self.find_order(client_order_id)
        except DeskError:
            existing = None
        if existing is None:
            log.warning("alpaca: submission of %s has an unknown outcome; it is safe to resubmit", client_order_id)
            raise ProviderUnavailable(f"alpaca did not confirm order {client_order_id}; it was not found either")
        return existing

    def _leg_ack(self, parent: AlpacaOrder, leg: OrderTicket, *, armed: bool) -> BrokerAck:
        """A bracket leg is ``held`` (PENDING) until its entry fills; an OCO's stop leg is armed (OPEN) at once."""
        match = _matching_leg(parent, leg.side, leg.order_type)
        if match is None:
            log.warning("alpaca: order %s came back without a %s leg for %s", parent.id, leg.order_type, leg.order_id)
            return BrokerAck("", OrderStatus.OPEN if armed else OrderStatus.PENDING)
        self._remember(leg.order_id, match.id)
        return _ack(match, armed=armed)

    def cancel_order(self, ticket: OrderTicket) -> None:
        live = self._chain(self._locate_ticket(ticket))[-1]
        if live.desk_status in (OrderStatus.CANCELLED, OrderStatus.PENDING_CANCEL):
            return
        if live.desk_status.is_terminal:
            raise OrderNotModifiable(ticket.order_id, f"the order is {live.status} at Alpaca")
        try:
            self._call("DELETE", f"/v2/orders/{live.id}", order_ref=ticket.order_id)
        except OrderRejected:                  # 422: "order is not cancelable" - say why, unless it is on its way
            now_live = self._get(live.id, order_ref=ticket.order_id)
            if now_live.desk_status not in (OrderStatus.CANCELLED, OrderStatus.PENDING_CANCEL):
                raise OrderNotModifiable(ticket.order_id,
                                         f"Alpaca cannot cancel an order that is {now_live.status}") from None

    def modify_order(self, ticket: OrderTicket, *, quantity: Decimal | None = None,
                     limit_price: Decimal | None = None, stop_price: Decimal | None = None,
                     trailing_distance: Decimal | None = None) -> BrokerAck:
        """Replace (``PATCH``): Alpaca answers with a new order; its id is the ack's ``broker_order_id``."""
        chain = self._chain(self._locate_ticket(ticket))
        live, filled = chain[-1], sum((o.filled_quantity for o in chain), Decimal("0"))
        if live.desk_status.is_terminal or live.status in _NOT_REPLACEABLE:
            raise OrderNotModifiable(ticket.order_id, f"Alpaca cannot replace an order that is {live.status}")
        body = to_alpaca_replace(live, already_filled=filled, quantity=quantity, limit_price=limit_price,
                                 stop_price=stop_price, trailing_distance=trailing_distance)
        if not body:
            return _ack(live, armed=live.status != "held")
        response = self._call("PATCH", f"/v2/orders/{live.id}", json_body=body, order_ref=ticket.order_id)
        replacement = self._order_reply(response)
        self._remember(ticket.order_id, chain[0].id, *(o.id for o in chain[1:]), replacement.id)
        ack = _ack(replacement, armed=live.status != "held")
        if filled > 0 and ack.status is OrderStatus.OPEN:
            return BrokerAck(ack.broker_order_id, OrderStatus.PARTIALLY_FILLED)
        return ack

    # -- finding orders --------------------------------------------------------------------------------
    def watch(self, *, wake, stop) -> None:
        """Alpaca's trade_updates stream wakes the engine; the engine's sync records what happened."""
        def changed() -> None:
            self.forget_venue_reads()
            wake()

        updates = AlpacaTradeUpdates(self.config, order_id_for=self.desk_order_id, on_reconnect=changed)
        for _ in updates.reports(stop):
            changed()

    def lookup_order(self, ticket: OrderTicket) -> BrokerAck | None:
        found = self.find_order(ticket.order_id)
        return _ack(found, armed=found.status != "held") if found is not None else None

    def find_order(self, client_order_id: str) -> AlpacaOrder | None:
        """The Alpaca order placed under our client id, or None: the check before any resubmission."""
        try:
            response = self._call("GET", "/v2/orders:by_client_order_id", order_ref=client_order_id,
                                  params={"client_order_id": client_order_id})
        except OrderNotFound:
            return None
        return self._order_reply(response)

    def _get(self, alpaca_id: str, *, nested: bool = False, order_ref: str | None = None) -> AlpacaOrder:
        params = {"nested": "true"} if nested else None
        return self._order_reply(self._call("GET", f"/v2/orders/{alpaca_id}", params=params,
                                            order_ref=order_ref or alpaca_id))

    def _chain(self, first: AlpacaOrder, snapshot: _Snapshot | None = None) -> list[AlpacaOrder]:
        """``first`` and the orders that replaced it, up to the live one."""
        chain = [first]
        while chain[-1].status == "replaced" and chain[-1].replaced_by and len(chain) < MAX_REPLACE_CHAIN:
            successor = chain[-1].replaced_by
            known = snapshot.by_id.get(successor) if snapshot else None
            try:
                chain.append(known or self._get(successor))
            except OrderNotFound:
                break
        return chain

    def _locate_ticket(self, ticket: OrderTicket) -> AlpacaOrder:
        """The first Alpaca order of ``ticket``: by broker id when the ticket carries one, by what this process
        remembers, by our client id, or - for an exit leg - by its shape among recent orders."""
        for alpaca_id in (getattr(ticket, "broker_order_id", None), self._alpaca_ids.get(ticket.order_id)):
            if alpaca_id:
                try:
                    return self._get(alpaca_id, order_ref=ticket.order_id)
                except OrderNotFound:
                    continue
        found = self.find_order(ticket.order_id) or self._leg_by_shape(ticket)
        if found is None:
            raise OrderNotFound(ticket.order_id)
        self._remember(ticket.order_id, found.id)
        return found

    def _leg_by_shape(self, ticket: OrderTicket) -> AlpacaOrder | None:
        """An exit leg (client id generated by Alpaca) among recent orders: the one working leg with the
        ticket's symbol, side, kind, quantity and price. Ambiguity finds nothing."""
        snapshot = self._snapshot(after=None)
        symbol = to_alpaca_symbol(ticket.symbol).replace("/", "")
        is_limit = ticket.order_type is OrderType.LIMIT
        price = ticket.limit_price if is_limit else ticket.stop_price
        found = [o for o in snapshot.by_id.values()
                 if o.symbol.replace("/", "") == symbol and o.side is ticket.side and o.quantity == ticket.quantity
                 and _same_kind(o.order_type, ticket.order_type) and (o.limit_price if is_limit else o.stop_price)
                 == price and not o.desk_status.is_terminal and o.id not in self._desk_ids]
        return found[0] if len(found) == 1 else None

    def _snapshot(self, *, after: datetime | None) -> _Snapshot:
        params: dict[str, Any] = {"status": "all", "limit": 500, "nested": "true", "direction": "desc"}
        if after is not None:
            params["after"] = to_alpaca_time(after)
        body = self._call("GET", "/v2/orders", params=params).body
        snapshot = _Snapshot()
        for raw in body if isinstance(body, list) else []:
            snapshot.add(parse_alpaca_order(raw))
        return snapshot

    # -- the venue's truth ------------------------------------------------------------------------------
    def account_state(self, *, now: datetime, account_id: int | None = None) -> VenueAccount:
        """``GET /v2/account`` (figures as ``account.py`` maps them); ``account_id`` is the paper venue's."""
        return self._venue_read("account", now, lambda: parse_alpaca_account(self._call("GET", "/v2/account").body))

    def positions(self, *, now: datetime, account_id: int | None = None) -> list[VenuePosition]:
        """``GET /v2/positions``: every position of the account, opened by the desk or anywhere else."""
        return self._venue_read("positions", now,
                                lambda: parse_alpaca_positions(self._call("GET", "/v2/positions").body))

    def open_orders(self, *, now: datetime, account_id: int | None = None) -> list[VenueOrder]:
        """``GET /v2/orders?status=open&nested=true&limit=500``, legs taken out of their parents, page by page
        (``before_order_id``) while a page comes back full."""
        return self._venue_read("open_orders", now, lambda: self._open_orders(now))

    def _open_orders(self, now: datetime) -> list[VenueOrder]:
        found: dict[str, VenueOrder] = {}
        params: dict[str, Any] = {"status": "open", "nested": "true", "limit": OPEN_ORDER_PAGE, "direction": "desc"}
        for _page in range(OPEN_ORDER_PAGES):
            body = self._call("GET", "/v2/orders", params=params).body
            page = [raw for raw in body if isinstance(raw, dict)] if isinstance(body, list) else []
            before = len(found)
            for order in parse_alpaca_open_orders(body):
                venue_order = parse_alpaca_venue_order(order, now=now)
                if venue_order is not None:
                    found.setdefault(order.id, venue_order)
            if len(page) < OPEN_ORDER_PAGE or len(found) == before:
                break
            params = {**params, "before_order_id": page[-1]["id"]}
        return list(found.values())

    def _venue_read(self, kind: str, now: datetime, read: Callable[[], Any]) -> Any:
        """What Alpaca answered for ``kind`` within the last ``venue_read_seconds``, else a fresh read."""
        last = self._read.get(kind)
        if last is not None and 0 <= (now - last[0]).total_seconds() < self.venue_read_seconds:
            return last[1]
        value = read()
        self._read[kind] = (now, value)
        return value

    def forget_venue_reads(self) -> None:
        """Something changed at Alpaca (a stream event, an order sent): the next read asks again."""
        self._read.clear()

    # -- matching --------------------------------------------------------------------------------------
    def sync(self, working: Sequence[WorkingOrder], *, now: datetime) -> list[ExecutionReport]:
        """Fills, cancels, expiries, rejections and releases (ACCEPTED) Alpaca has seen for ``working`` since the desk
        last looked (table in ``reports.py``)."""
        if not working:
            return []
        snapshot = self._snapshot(after=min(w.created_at for w in working) - timedelta(minutes=5))
        groups: dict[str, list[str]] = {}
        for order in working:
            if order.venue_oco_id:
                groups.setdefault(order.venue_oco_id, []).append(order.order_id)
        reports: list[ExecutionReport] = []
        for order in working:
            first = self._locate_working(order, snapshot, groups.get(order.venue_oco_id or "", []))
            if first is None:
                reports.extend(parse_alpaca_missing(order, now=now))
                continue
            chain = self._chain(first, snapshot)
            self._remember(order.order_id, first.id, *(o.id for o in chain[1:]))
            found = parse_alpaca_reports(order, chain, now=now, seen=self._fills_seen,
                                         may_be_pending=self._may_be_pending(order, now=now))
            reports.extend(found)
            self._note_accepted(found, now=now)
            self._fills_seen.update({o.id: (o.filled_quantity, o.filled_avg_price) for o in chain
                                     if o.filled_avg_price})
        for stale in list(self._fills_seen)[:max(0, len(self._fills_seen) - MAX_FILLS_SEEN)]:
            del self._fills_seen[stale]
        still_working = {o.order_id for o in working}
        self._accepted_said = {k: v for k, v in self._accepted_said.items() if k in still_working}
        return reports

    def _may_be_pending(self, order: WorkingOrder, *, now: datetime) -> bool:
        """Could the desk hold ``order`` PENDING, so a working order at Alpaca must be reported ACCEPTED? The desk's
        status when ``WorkingOrder`` carries one; else a bracket leg or an order without an Alpaca id, not said
        ACCEPTED within ``ACCEPTED_REPEAT`` (module docstring)."""
        status = getattr(order, "status", None)
        if status is not None:
            return status == OrderStatus.PENDING
        if not (order.broker_order_id is None or (order.venue_oco_id or "").startswith("bracket-")):
            return False
        said = self._accepted_said.get(order.order_id)
        return said is None or now - said >= ACCEPTED_REPEAT

    def _note_accepted(self, reports: Sequence[ExecutionReport], *, now: datetime) -> None:
        for report in reports:
            if report.kind is ReportKind.ACCEPTED:
                self._accepted_said[report.order_id] = now

    def _locate_working(self, order: WorkingOrder, snapshot: _Snapshot, siblings: list[str]) -> AlpacaOrder | None:
        """A working order's first Alpaca order: remembered id, our client id, or - for an exit leg - the matching
        leg of its parent (the bracket entry named in ``venue_oco_id``, or an OCO sibling)."""
        known = getattr(order, "broker_order_id", None) or self._alpaca_ids.get(order.order_id)
        found = (snapshot.by_id.get(known) or self._get_or_none(known)) if known else None
        found = found or snapshot.by_client_id.get(order.order_id)
        if found is None and order.venue_oco_id:
            found = self._leg_of_parent(order, snapshot, siblings)
        found = found or self.find_order(order.order_id)
        if found is not None:
            self._remember(order.order_id, found.id)
        return found

    def _leg_of_parent(self, order: WorkingOrder, snapshot: _Snapshot, siblings: list[str]) -> AlpacaOrder | None:
        parents = [s for s in siblings if s != order.order_id]
        if order.venue_oco_id and order.venue_oco_id.startswith("bracket-"):
            parents.insert(0, order.venue_oco_id.removeprefix("bracket-"))
        for client_id in dict.fromkeys(parents):
            parent = snapshot.by_client_id.get(client_id) or self.find_order(client_id)
            if parent is not None and not parent.legs:
                parent = self._get_or_none(parent.id, nested=True) or parent
            leg = _matching_leg(parent, order.side, order.order_type) if parent is not None else None
            if leg is not None:
                return leg
        return None

    def _get_or_none(self, alpaca_id: str, *, nested: bool = False) -> AlpacaOrder | None:
        try:
            return self._get(alpaca_id, nested=nested)
        except OrderNotFound:
            return None

    def _remember(self, order_id: str, first_alpaca_id: str, *later_ids: str) -> None:
        self._alpaca_ids[order_id] = first_alpaca_id
        for alpaca_id in (first_alpaca_id, *later_ids):
            self._desk_ids[alpaca_id] = order_id

    def desk_order_id(self, order: AlpacaOrder) -> str | None:
        """Our order id for an Alpaca order (used by the trade_updates stream): a leg or replacement this
        process has seen, or the order it replaces, else its client id (our id for what we placed)."""
        ours = self._desk_ids.get(order.id) or (self._desk_ids.get(order.replaces) if order.replaces else None)
        if ours is not None:
            self._desk_ids[order.id] = ours
        return ours or order.client_order_id or None


def _ack(order: AlpacaOrder, *, armed: bool = True) -> BrokerAck:
    """What the desk records once Alpaca has taken an order. Alpaca usually answers ``accepted`` (not yet
    routed); for the desk that is a working order (OPEN) - the engine polls only OPEN / PARTIALLY_FILLED orders,
    so PENDING would strand it. A ``held`` bracket leg stays PENDING until the desk releases it on the entry
    fill, unless ``armed`` (an OCO's stop leg works from the start)."""
    status = order.desk_status
    if status is OrderStatus.PENDING and (order.status != "held" or armed):
        status = OrderStatus.OPEN
    return BrokerAck(order.id, status)


def _same_kind(alpaca_type: OrderType | None, ours: OrderType) -> bool:
    stops = (OrderType.STOP, OrderType.STOP_LIMIT)
    return alpaca_type is ours or (alpaca_type in stops and ours in stops)


def _matching_leg(parent: AlpacaOrder, side: Side, order_type: OrderType) -> AlpacaOrder | None:
    return next((leg for leg in parent.legs if leg.side is side and _same_kind(leg.order_type, order_type)), None)


def _check_alpaca_rules(request: OrderRequest) -> None:
    """What Alpaca would refuse anyway, said before the order is recorded (NOTES.md §2.4, §2.6)."""
    crypto = is_alpaca_crypto(request.symbol)
    if request.quantity <= 0:
        raise OrderRejected(RejectReason.INVALID_QUANTITY, "Quantity must be positive",
                            quantity=format_decimal(request.quantity))
    if request.post_only:
        raise Unsupported("post-only orders", "alpaca")
    if crypto and request.order_type not in CRYPTO_TYPES:
        raise Unsupported(f"{request.order_type} orders on crypto (Alpaca: MARKET, LIMIT, STOP_LIMIT)", "alpaca")
    if crypto and request.time_in_force not in CRYPTO_TIME_IN_FORCE:
        raise Unsupported(f"time in force {request.time_in_force} on crypto (Alpaca: GTC, IOC)", "alpaca")
    if request.has_exits and crypto:
        raise Unsupported("stop-loss / take-profit on crypto (Alpaca has no crypto brackets)", "alpaca")
    if request.has_exits and request.order_type not in (OrderType.MARKET, OrderType.LIMIT):
        raise Unsupported(f"stop-loss / take-profit on a {request.order_type} entry (Alpaca brackets need a "
                          "MARKET or LIMIT entry)", "alpaca")
    fractional = request.quantity != request.quantity.to_integral_value()
    if not crypto and fractional and (request.order_type is not OrderType.MARKET
                                      or request.time_in_force != TimeInForce.DAY or request.has_exits):
        raise OrderRejected(RejectReason.INVALID_QUANTITY,
                            "Fractional quantities are accepted only for MARKET DAY orders without exits",
                            quantity=format_decimal(request.quantity))
    if not crypto:
        _check_stock_prices(request)


def _check_stock_prices(request: OrderRequest) -> None:
    """US equity prices: at most 2 decimals from $1 up, 4 below (else 422 "sub-penny increment")."""
    for name in ("limit_price", "stop_price", "stop_loss", "take_profit"):
        price = getattr(request, name)
        if price is None:
            continue
        places = 2 if price >= 1 else 4
        if price != price.quantize(Decimal(1).scaleb(-places)):
            raise OrderRejected(RejectReason.INVALID_PRICE,
                                f"{name} {format_decimal(price)} has more than {places} decimals (sub-penny)",
                                field=name, price=format_decimal(price), max_decimals=places)
