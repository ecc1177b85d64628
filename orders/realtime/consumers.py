"""The /v1/ws stream for scripts, speaking the Trading Gateway protocol.

On connect: authenticate exactly as REST, accept, then send every still-open risk alert
(``error`` frames) before anything else. After that: the account's order, position, trade,
account and error frames from the outbox relay, plus quote and candle frames for subscribed
symbols every ``STREAM_MARKET_SECONDS``.

Beyond the reference gateway: the server pings (``{"type":"ping"}``) every
``STREAM_PING_SECONDS`` and closes a client that has sent nothing for
``STREAM_IDLE_SECONDS``; a client whose queue fills up gets an ``error`` frame and is closed
rather than silently losing events; clients may ``subscribe`` / ``unsubscribe`` at runtime; outbox frames
carry the protocol's ``event_id``, and a client reconnecting with ``?last_event_id=N`` is sent what it missed
(``realtime/resume.py``). Unknown or malformed messages are ignored and never close the connection.

The stream takes nothing from the channel layer (the outbox relay feeds it), so it holds no Redis connection
and a Redis restart does not touch it."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from orders import wire
from orders.api.auth import credentials_from, resolve_client
from orders.brokers import get_broker
from orders.domain.errors import DeskError
from orders.events import DESK_KIND
from orders.metrics import WS_CONNECTIONS, WS_DISCONNECTS, WS_FRAMES_SENT, WS_RESUMES, WS_SLOW_CONSUMERS
from orders.realtime.market import market_data
from orders.realtime.opening import OpensUnlessDatabaseGone
from orders.realtime.relay import frame_symbol, frame_text, get_relay
from orders.realtime.resume import Resume, stream_resume
from orders.realtime.subscriptions import SubscriptionFilter
from orders.selectors import live_alerts
from orders.services.alerts import WIRE_KINDS

log = logging.getLogger(__name__)
CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW = 4408
CLOSE_IDLE = 4000
RECONCILE = "GET /v1/orders?status=OPEN (and X-Next-Cursor for more)"


class _Headers:
    def __init__(self, scope) -> None:
        self._h = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}

    def get(self, name: str, default: str = "") -> str:
        return self._h.get(name.lower(), default)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._h


def scope_is_loopback(scope, headers: _Headers) -> bool:
    import ipaddress

    if "x-forwarded-for" in headers or "forwarded" in headers:
        return False
    client = scope.get("client") or ("", 0)
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class StrategyStreamConsumer(OpensUnlessDatabaseGone, AsyncWebsocketConsumer):
    socket_name = "/v1/ws"
    account_id: int
    channel_layer_alias = None      # fed by the outbox relay: no channel, no Redis connection per socket
    counted = False                     # in gateway_ws_connections_active

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:                        # closed, lost or crashed: an open socket is never counted after it
            self._uncount()

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            WS_CONNECTIONS.inc(-1)

    async def _open(self) -> None:
        headers = _Headers(self.scope)
        try:
            client = await database_sync_to_async(resolve_client)(
                credentials_from(headers), loopback=scope_is_loopback(self.scope, headers))
        except DeskError:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.client = client
        self.account_id = client.account.pk
        self.broker = get_broker(client.account.broker)
        self.filter = SubscriptionFilter.from_config(settings.SUBSCRIPTIONS, platform=self.broker.name,
                                                     default_market=settings.STREAM_DEFAULT_SYMBOLS)
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.STREAM_QUEUE_SIZE)
        self.last_heard = time.monotonic()
        self.closing = False
        self.backlog: list | None = []          # frames the relay offers before the first ones are ready
        relay = get_relay()
        seam = await relay.register(self)       # from here on nothing committed is missed
        resume = await stream_resume(self.scope.get("query_string", b""), account_id=self.account_id,
                                     relay=relay, seam=seam)
        if resume.resumed or resume.gap:        # it asked to resume: resumed, or why it could not be
            WS_RESUMES.inc(outcome="resumed" if resume.resumed else resume.gap["details"]["cause"])
        backlog, self.backlog = self.backlog, None
        self.first = [*await self._first_frames(resume), *(f for f in backlog if resume.is_new(f))]
        await self.accept()
        WS_CONNECTIONS.inc(1)
        self.counted = True
        self.tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._heartbeat()),
                      asyncio.create_task(self._market_data())]

    async def _first_frames(self, resume: Resume) -> list[dict]:
        """What a connection starts with: what it missed since its ``last_event_id``, or else (a fresh
        connection, or one that could not be resumed: the gap frame first) every still-open alert."""
        if resume.resumed:
            return [f for f in resume.frames if self.filter.passes(f["type"], frame_symbol(f))]
        return [*([resume.gap] if resume.gap else []), *await _live_alert_frames(self.account_id)]

    async def disconnect(self, code) -> None:
        get_relay().unregister(self)            # also after a connect that failed half way
        if not hasattr(self, "tasks"):
            return
        self._uncount()
        if self.closing:
            reason = "closed_by_server"                 # slow or unresponsive: logged and counted already
        elif code in (1000, 1001):
            reason = "closed_by_client"
        else:
            # the connection was lost: the network, or the server's own protocol-level ping going unanswered
            # (daphne drops a client that cannot keep up that way); events after this point are not delivered
            reason = "lost"
            log.warning("stream client of account %s lost (close code %s); it must reconnect (with "
                        "?last_event_id= to resume)", self.account_id, code)
        WS_DISCONNECTS.inc(reason=reason)
        for task in self.tasks:
            task.cancel()

    # -- inbound -------------------------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None) -> None:
        self.last_heard = time.monotonic()
        if text_data is None:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind in ("subscribe", "unsubscribe"):
            symbols, events = _strings(message.get("symbols")), _strings(message.get("events"))
            if kind == "subscribe":
                self.filter.add(symbols, events)
            else:
                self.filter.remove(symbols)

    # -- outbound ------------------------------------------------------------------------------------
    def offer(self, frame: dict, *, kind: str, symbol: str | None) -> None:
        """Called by the relay for every frame of this account."""
        if self.closing or kind == DESK_KIND or not self.filter.passes(kind, symbol):
            return
        if self.backlog is not None:
            self.backlog.append(frame)
            return
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._drop_slow_client()

    def _drop_slow_client(self) -> None:
        self.closing = True
        WS_SLOW_CONSUMERS.inc(reason="slow_consumer")
        log.warning("stream client of account %s is too slow; closing it", self.account_id)
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait({"type": "error", "code": "INTERNAL_ERROR",
                               "message": "Client too slow: events could not be delivered in time; "
                                          f"reconnect and reconcile with {RECONCILE}",
                               "details": {"reason": "slow_consumer", "queue_size": settings.STREAM_QUEUE_SIZE},
                               "timestamp": wire.ts(timezone.now())})
        self.queue.put_nowait(None)

    async def _writer(self) -> None:
        first, self.first = self.first, []
        for frame in first:                     # the replay or the open alerts, then what came meanwhile
            await self.send(text_data=frame_text(frame))
            WS_FRAMES_SENT.inc(type=frame.get("type", "other"))
        while True:
            frames = [await self.queue.get()]
            while not self.queue.empty():        # what one relay batch queued goes out on one wake-up
                frames.append(self.queue.get_nowait())
            for frame in frames:
                if frame is None:
                    await self.close(code=CLOSE_SLOW)
                    return
                await self.send(text_data=frame_text(frame))
                WS_FRAMES_SENT.inc(type=frame.get("type", "other"))

    async def _heartbeat(self) -> None:
        interval, idle = settings.STREAM_PING_SECONDS, settings.STREAM_IDLE_SECONDS
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self.last_heard > idle:
                # a client that stopped reading cannot answer pings either: under daphne this is how a
                # stuck consumer is found, since the server buffers what it cannot write
                log.warning("stream client of account %s stopped answering for %g s; closing it",
                            self.account_id, idle)
                self.closing = True
                WS_SLOW_CONSUMERS.inc(reason="unresponsive")
                await self.send(text_data=json.dumps({
                    "type": "error", "code": "INTERNAL_ERROR",
                    "message": f"No answer to pings for {idle:g} s: closing; reconnect and reconcile with "
                               f"{RECONCILE}",
                    "details": {"reason": "unresponsive", "idle_seconds": idle},
                    "timestamp": wire.ts(timezone.now())}))
                WS_FRAMES_SENT.inc(type="error")
                await self.close(code=CLOSE_IDLE)
                return
            self.offer({"type": "ping", "timestamp": wire.ts(timezone.now())}, kind="ping", symbol=None)

    async def _market_data(self) -> None:
        while True:
            await asyncio.sleep(settings.STREAM_MARKET_SECONDS)
            now = timezone.now()
            for symbol in sorted(self.filter.symbols()):
                for frame in await self._market_frames(symbol, now):
                    self.offer(frame, kind=frame["type"], symbol=symbol)

    async def _market_frames(self, symbol: str, now) -> list[dict]:
        market = market_data(self.broker)
        frames = []
        try:
            if self.filter.wants_market_data(symbol, "quote"):
                quote = await market.quote(symbol, now=now)
                frames.append({"type": "quote", "quote": wire.quote_out(quote), "timestamp": wire.ts(now)})
            if self.filter.wants_market_data(symbol, "candle"):
                bar = await market.last_bar(symbol, now=now)
                if bar:
                    frames.append({"type": "candle", "bar": wire.bar_out(bar), "timestamp": wire.ts(now)})
        except DeskError:
            return []
        return frames


def _strings(value) -> list[str]:
    """The strings of a JSON list; anything else (null, a bare string, a number) counts as none."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


@database_sync_to_async
def _live_alert_frames(account_id: int) -> list[dict]:
    return [{"type": "error", "code": a.kind, "message": a.message,
             "details": {**a.details, "alert_status": a.status, "rebroadcast": True},
             "timestamp": wire.ts(a.raised_at)}
            # only the protocol's kinds: a strict client's schema knows no PROTECTION_SLOW or POSITION_MISMATCH
            for a in reversed(live_alerts(account_id=account_id, kinds=WIRE_KINDS))]
