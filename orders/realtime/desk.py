"""The desk's browser socket: the outbox frames of /v1/ws, turned into HTML fragments for the htmx
websocket extension (out-of-band swaps), rendered from the same template partials as the page.

* on connect the whole blotter is sent (working orders, positions, fills, finished orders, account
  figures, trading state, circuit breakers, alerts; the risk view: alerts, trading state, breakers and the
  working and finished orders), so a reconnecting page is reconciled, never left half-right;
* an order event replaces its row, or redraws the tables it moved between and the account figures
  (whose buying power its reservation holds); position, trade and account events redraw positions,
  fills and figures; alerts redraw the alert bar; a desk-only event (``events.record_desk``) redraws what
  ``_DESK_SECTIONS`` names (trading state, breakers) — redraws are coalesced, at most one per section
  every ``REDRAW_SECONDS``;
* every second the ticket's symbol gets a fresh quote, every two seconds positions are marked to
  market (live P&L);
* the order a page's ticket placed (the ticket names it: ``{"follow": id}``) has its banner redrawn on each of
  its events (OPEN → PARTIALLY_FILLED → FILLED, or REJECTED with the venue's reason); only that page gets it, so
  a page without a banner is never sent one; an order the ticket sent for approval (``{"follow_approval": id}``)
  likewise, as the request is decided (rejected, withdrawn, expired; approved, its order's banner follows);
* each fill shows as a short notification on the desk ("Bought 10 AAPL @ 187.20", "Stopped out: …");
* only a logged-in user who may see the account gets in, and only from an allowed origin
  (``AllowedHostsOriginValidator`` in routing)."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from orders import wire
from orders.brokers import get_broker
from orders.domain.errors import DeskError
from orders.domain.ids import is_uuid
from orders.domain.quotes import quote_figures
from orders.domain.throttle import age_text, quote_age
from orders.events import DESK_KIND
from orders.models import Account, ApprovalRequest, Order, TradingState
from orders.realtime.market import market_data
from orders.realtime.opening import OpensUnlessDatabaseGone
from orders.realtime.relay import get_relay
from orders.selectors import live_alerts
from orders.services.breakers import breaker_snapshot
from orders.services.staleness import max_quote_age
from orders.services.two_factor import is_second_factor_missing
from orders.web.approvals import approvals_context
from orders.web.banner import placed_out
from orders.web.context import (
    alerts_context,
    blotter_context,
    channels_context,
    guards_context,
    kill_run_context,
    orders_context,
    protection_context,
    venue_context,
)
from orders.web.roles import can_supervise, can_trade, visible_accounts

log = logging.getLogger(__name__)
CLOSE_UNAUTHORIZED = 4401
FRAGMENTS = "orders/fragments.html"
DESK = "orders/desk.html"
REDRAW_SECONDS = 0.1
QUOTE_SECONDS = 1.0
MARK_SECONDS = 2.0
TERMINAL = {"FILLED", "CANCELLED", "REJECTED", "EXPIRED"}


def render_fragment(kind: str, frame: dict, *, can_trade: bool = False) -> str | None:
    """The row an event replaces in place, or None when the event needs a section redrawn."""
    if kind == "order" and frame["order"]["status"] not in TERMINAL and frame.get("event") != "ORDER_CREATED":
        return render_to_string(f"{FRAGMENTS}#order-row", {"order": frame["order"], "oob": True,
                                                          "can_trade": can_trade})
    return None


# events.record_desk's ``what`` -> the sections it redraws. API keys are on no page the socket serves (they are the
# admin's); the pre-trade limits only in the risk view's time to protection (when to alert and flatten).
_DESK_SECTIONS = {"alert": ("alerts",), "trading_state": ("state", "approvals"), "breaker": ("breakers",),
                  "limits": ("protection", "guards", "approvals"), "api_key": (), "venue": ("venue",),
                  "protection": ("protection",), "kill_run": ("kill-run",), "guards": ("guards",),
                  "channels": ("channels",), "approvals": ("approvals",)}


def sections_for(kind: str, frame: dict) -> set[str]:
    if kind == "order":
        # a new or finished order also changes the buying power its reservation holds
        if frame["order"]["status"] in TERMINAL:
            return {"working", "finished", "figures"}
        return {"working", "figures"} if frame.get("event") == "ORDER_CREATED" else set()
    if kind == "account":
        return {"positions", "fills", "figures", "venue"}
    if kind in ("position", "trade"):
        return {"positions", "fills", "figures"}
    if kind == "error":
        return {"alerts"}
    if kind == DESK_KIND:
        return set(_DESK_SECTIONS.get(frame.get("what"), ()))
    return set()


class DeskLiveConsumer(OpensUnlessDatabaseGone, AsyncWebsocketConsumer):
    socket_name = "desk socket"
    account_id: int
    channel_layer_alias = None      # fed by the outbox relay: no channel, no Redis connection per socket

    async def _open(self) -> None:
        user = self.scope.get("user")
        query = parse_qs(self.scope.get("query_string", b"").decode())
        wanted = query.get("account", [None])[0]
        self.view = query.get("view", ["desk"])[0]
        found = await _account_for(user, wanted, self.scope.get("session"))
        if found is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.account, self.can_trade, self.can_supervise = found
        self.account_id = self.account.pk
        self.broker = get_broker(self.account.broker)
        self.watch: str | None = None
        self.follow: str | None = None          # the order whose banner this page's ticket shows
        self.follow_approval: str | None = None     # or the approval request its order waits for
        self.dirty: set[str] = set()
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.STREAM_QUEUE_SIZE)
        await get_relay().register(self)
        await self.accept()
        await self._send_sections(self._all_sections())
        self.tasks = [asyncio.create_task(self._writer())]
        if self.view != "risk":
            self.tasks.append(asyncio.create_task(self._market()))

    def _all_sections(self) -> set[str]:
        if self.view == "risk":
            return {"alerts", "state", "breakers", "working", "finished", "venue", "protection", "kill-run",
                    "guards", "channels", "approvals"}
        return {"working", "finished", "positions", "fills", "figures", "state", "alerts", "breakers"}

    async def disconnect(self, code) -> None:
        get_relay().unregister(self)            # also after a connect that failed half way
        if hasattr(self, "tasks"):
            for task in self.tasks:
                task.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The ticket tells the socket which symbol it shows (htmx ``ws-send`` of the ticket form), and which
        order it placed (its banner's ``ws-send``)."""
        try:
            message = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        follow = message.get("follow")
        if is_uuid(follow) and self.view == "desk":
            self.follow, self.follow_approval = follow, None
            self._enqueue(("banner", follow))      # as it stands now: it may have filled before the page asked
        approval = message.get("follow_approval")
        if is_uuid(approval) and self.view == "desk":
            self.follow, self.follow_approval = None, approval
            self._enqueue(("queued", approval))    # as it stands now: it may have been decided already
        symbol = message.get("symbol")
        if isinstance(symbol, str) and len(symbol) <= 32:
            self.watch = symbol
            await self._send_quote()

    def _enqueue(self, item: str | tuple[str, object]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dirty |= self._all_sections()

    def _staleness_html(self, frame: dict) -> str:
        """Per-symbol staleness badges: STALE adds the symbols (since when), FRESH clears them."""
        stale = getattr(self, "stale", {})
        symbols = frame.get("symbols") or []
        if frame.get("event") == "STALE":
            for name in symbols:
                stale.setdefault(name, frame.get("stale_since") or frame.get("timestamp", ""))
        else:
            for name in symbols or list(stale):
                stale.pop(name, None)
        self.stale = stale
        return render_to_string(f"{FRAGMENTS}#staleness", {"stale": sorted(stale.items())})

    def offer(self, frame: dict, *, kind: str, symbol: str | None) -> None:
        if kind == "data_staleness":
            try:
                self.queue.put_nowait(self._staleness_html(frame))
            except asyncio.QueueFull:
                pass
            return
        try:
            # the risk view supervises: its order rows carry no trading buttons, whoever looks at them
            html = render_fragment(kind, frame, can_trade=self.can_trade and self.view != "risk")
        except Exception:
            log.exception("desk: could not render a %s fragment", kind)
            return
        sections = sections_for(kind, frame) & self._all_sections()
        if self.view == "desk":
            for item in self._personal(kind, frame):
                self._enqueue(item)
        try:
            if html is not None:
                self.queue.put_nowait(html)
            if sections:
                self.dirty |= sections
                self.queue.put_nowait("")          # wake the writer to redraw
        except asyncio.QueueFull:
            self.dirty |= self._all_sections()

    def _personal(self, kind: str, frame: dict) -> list[tuple[str, object]]:
        """What this page alone is shown of an event: its ticket's banner, a fill's notification."""
        if kind == "order" and self.follow and frame["order"].get("id") == self.follow:
            return [("banner", self.follow)]
        if (kind == DESK_KIND and frame.get("what") == "approvals" and self.follow_approval
                and frame.get("id") == self.follow_approval):
            return [("queued", self.follow_approval)]
        if kind == "trade" and isinstance(frame.get("trade"), dict):
            return [("toast", frame["trade"])]
        return []

    @database_sync_to_async
    def _render_personal(self, what: str, subject) -> str:
        if what == "banner":
            order = Order.objects.filter(pk=subject, account_id=self.account_id).first()
            if order is None:
                return ""
            return render_to_string(f"{DESK}#ticket-outcome", {"placed": placed_out(order), "oob": True})
        if what == "queued":
            return self._queued_banner(subject)
        role = Order.objects.filter(pk=subject.get("order_id"), account_id=self.account_id).values_list(
            "leg_role", flat=True).first()
        kind = {Order.LegRole.STOP_LOSS: "stop", Order.LegRole.TAKE_PROFIT: "target"}.get(role, "fill")
        return render_to_string(f"{FRAGMENTS}#toast", {"toast": {**subject, "kind": kind}})

    def _queued_banner(self, approval_id: str) -> str:
        """The banner of the ticket's order waiting for approval, as its request stands; once approved, the placed
        order's banner, which the page then follows."""
        approval = ApprovalRequest.objects.filter(pk=approval_id, account_id=self.account_id,
                                                  kind=ApprovalRequest.Kind.LARGE_ORDER).first()
        if approval is None or approval_id != self.follow_approval:
            return ""
        order_id = (approval.result or {}).get("order_id")
        order = Order.objects.filter(pk=order_id, account_id=self.account_id).first() if is_uuid(order_id) else None
        if approval.status == ApprovalRequest.Status.APPROVED and order is not None:
            self.follow, self.follow_approval = str(order.pk), None
            return render_to_string(f"{DESK}#ticket-outcome", {"placed": placed_out(order), "oob": True,
                                                               "approval_id": approval.pk})
        return render_to_string(f"{DESK}#ticket-outcome", {"queued": approval, "oob": True})

    async def _writer(self) -> None:
        while True:
            html = await self.queue.get()
            if isinstance(html, tuple):
                try:
                    html = await self._render_personal(*html)
                except Exception:
                    log.exception("desk: could not render the page's %s", html[0])
                    html = ""
            if html:
                await self.send(text_data=html)
            if self.dirty:
                await asyncio.sleep(REDRAW_SECONDS)
                sections, self.dirty = self.dirty, set()
                await self._send_sections(sections)

    async def _market(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(QUOTE_SECONDS)
            ticks += 1
            await self._send_quote()
            if ticks % int(MARK_SECONDS / QUOTE_SECONDS) == 0:
                self.dirty |= {"positions", "figures"}
                self.queue.put_nowait("")

    async def _send_quote(self) -> None:
        if not self.watch:
            return
        market, now = market_data(self.broker), timezone.now()
        try:
            raw = await market.quote(self.watch, now=now)
        except DeskError:
            return
        quote, day = wire.quote_out(raw), await market.day_open(self.watch, now=now)
        figures = quote_figures(bid=raw.bid, ask=raw.ask, last=raw.last, day_open=day.open if day else None)
        epoch = int(timezone.now().timestamp())
        # a frozen feed's quote shows it ageing, marked past the account's limit (orders priced from it need a reason)
        age, limit = quote_age(raw.timestamp, now=now), await _quote_age_limit(self.account_id)
        await self.send(text_data=render_to_string(f"{FRAGMENTS}#ticket-quote", {
            "quote": quote, "figures": figures, "age": age_text(age), "limit": limit,
            "stale": limit is not None and age > limit}) +
                        render_to_string(f"{FRAGMENTS}#chart-tick", {"quote": quote, "epoch": epoch}))

    def _state_parts(self) -> list[str]:
        """The trading state wherever the page shows it: the top bar's badge, the ticket's note and, on the
        risk view, the trading-state card with its form."""
        account = Account.objects.get(pk=self.account_id)
        state = account.trading_state
        parts = [render_to_string(f"{FRAGMENTS}#trading-state-badge", {"state": state, "oob": True})]
        if self.view == "risk":
            parts.append(render_to_string("orders/risk.html#trading-state", {
                "account": account, "states": TradingState.values, "can_supervise": self.can_supervise,
                "oob": True}))
        else:
            parts.append(render_to_string(f"{FRAGMENTS}#trading-state-note", {"state": state, "oob": True}))
        return parts

    async def _send_sections(self, sections: set[str]) -> None:
        """The table bodies in one message, everything else in the next. A message is parsed as one fragment
        whose first tag sets the parser's mode: after a ``<tbody>`` the rest is parsed as table content, which
        drops the tables nested in the risk view's cards; before it, a ``<tbody>`` is dropped itself."""
        rows, rest = await self._render_sections(sections)
        for html in (rows, rest):
            if html:
                await self.send(text_data=html)

    @database_sync_to_async
    def _render_sections(self, sections: set[str]) -> tuple[str, str]:
        if self.view == "risk":
            wanted = sections & {"working", "finished"}
            context = {**(orders_context(self.account) if wanted else {}), "oob": True, "can_trade": False,
                       "account": self.account}
        else:
            context = {**blotter_context(self.account, self.broker), "oob": True, "can_trade": self.can_trade,
                       "account": self.account}
        rows = [render_to_string(f"{DESK}#{name}-body", context)
                for name in ("working", "finished", "positions", "fills") if name in sections]
        parts = []
        if "figures" in sections:
            parts.append(render_to_string(f"{FRAGMENTS}#account-figures", {"account": context["figures"],
                                                                            "oob": True}))
        if "figures" in sections or "state" in sections:
            parts.extend(self._state_parts())
        if "breakers" in sections:
            breakers = breaker_snapshot(account=self.account)
            parts.append(render_to_string(f"{FRAGMENTS}#breaker-badge", {"breakers": breakers, "oob": True}))
            if self.view == "risk":
                parts.append(render_to_string("orders/risk.html#breakers", {
                    "breakers": breakers, "account": self.account, "can_supervise": self.can_supervise,
                    "oob": True}))
        if "guards" in sections and self.view == "risk":        # the day's loss guards: a level reached, new levels
            parts.append(render_to_string("orders/risk.html#guards", {
                **guards_context(self.account, self.broker), "account": self.account,
                "can_supervise": self.can_supervise, "oob": True}))
        if "approvals" in sections and self.view == "risk":     # the queue as this page's person sees it
            user = self.scope["user"]
            parts.append(render_to_string("orders/approvals.html#approvals", {
                **approvals_context(self.account, actor=f"user:{user.username}", can_supervise=self.can_supervise,
                                    can_trade=self.can_trade), "account": self.account, "oob": True}))
        if "kill-run" in sections and self.view == "risk":
            parts.append(render_to_string("orders/risk.html#kill-run", {**kill_run_context(self.account),
                                                                         "oob": True}))
        if "channels" in sections and self.view == "risk":      # alert channels: a delivery tried, a channel failing
            parts.append(render_to_string("orders/risk_channels.html#channels", {
                **channels_context(self.account), "account": self.account, "oob": True}))
        if "venue" in sections and self.view == "risk":
            venue = venue_context(self.account)
            if venue["venue"] is not None:
                parts.append(render_to_string("orders/risk.html#venue", {**venue, "account": self.account,
                                                                          "oob": True}))
        if self.view == "risk" and sections & {"protection", "positions"}:     # a position gone takes its line
            parts.append(render_to_string("orders/risk.html#protection", {**protection_context(self.account),
                                                                          "oob": True}))
        if "alerts" in sections:
            alerts = live_alerts(account_id=self.account_id)
            if self.view == "risk":          # the alert cards (position, P&L, reason, actions) as the page draws them
                html = render_to_string("orders/risk.html#alerts", {
                    **alerts_context(self.account, self.broker), "account": self.account,
                    "can_supervise": self.can_supervise})
                parts.append(html.replace('<div id="alerts">', '<div id="alerts" hx-swap-oob="true">', 1))
            else:
                parts.append(render_to_string(f"{FRAGMENTS}#alerts-bar", {"alerts": alerts, "oob": True}))
        return "".join(rows), "".join(parts)



@database_sync_to_async
def _account_for(user, wanted: str | None, session=None):
    """The account the socket follows, or None to refuse it: nobody logged in, a session still owing its second
    factor (services/two_factor.py), or no account of theirs."""
    if user is None or not user.is_authenticated or is_second_factor_missing(user, session):
        return None
    accounts = visible_accounts(user)
    # an account named that is not theirs is refused, as the page answers 404: never another account's socket
    account = accounts.filter(name=wanted).first() if wanted else accounts.first()
    if account is None:
        return None
    return account, can_trade(user), can_supervise(user)


_quote_age_limit = database_sync_to_async(max_quote_age)     # remembered 5 s per process, like the limits
