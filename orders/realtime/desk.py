"""The desk's browser socket: the same outbox frames as /v1/ws, rendered as HTML fragments
(out-of-band swaps for the htmx websocket extension) from the template partials the page
itself is drawn with.

Only a logged-in user who is a member of the account gets in; the route is wrapped in
``AllowedHostsOriginValidator`` so a page on another origin cannot open it."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string

from orders.models import Alert, DeskMembership
from orders.realtime.relay import get_relay

log = logging.getLogger(__name__)
CLOSE_UNAUTHORIZED = 4401
FRAGMENTS = "orders/fragments.html"


def render_fragment(kind: str, frame: dict) -> str | None:
    """The HTML an event becomes on the desk, or None for events the desk does not show."""
    if kind == "order":
        return render_to_string(f"{FRAGMENTS}#order-row", {"order": frame["order"], "oob": True})
    if kind == "position":
        return render_to_string(f"{FRAGMENTS}#position-row", {"position": frame["position"], "event":
                                frame.get("event"), "oob": True})
    if kind == "trade":
        return render_to_string(f"{FRAGMENTS}#trade-row", {"trade": frame["trade"], "oob": True})
    if kind == "error":
        return render_to_string(f"{FRAGMENTS}#alert-item", {"alert": _alert_context(frame), "oob": True})
    if kind == "account":
        return render_to_string(f"{FRAGMENTS}#account-figures", {"account": frame["account"], "oob": True})
    return None


def _alert_context(frame: dict) -> dict:
    details = frame.get("details") or {}
    return {"id": details.get("alert_id") or "", "kind": frame.get("code"), "message": frame.get("message"),
            "symbol": details.get("symbol", ""), "status": details.get("alert_status", "OPEN"),
            "raised_at": frame.get("timestamp")}


class DeskLiveConsumer(AsyncWebsocketConsumer):
    account_id: int

    async def connect(self) -> None:
        user = self.scope.get("user")
        account_id = await _account_for(user)
        if account_id is None:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.account_id = account_id
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=settings.STREAM_QUEUE_SIZE)
        alerts = await _live_alert_fragments(account_id)
        for html in alerts:
            self.queue.put_nowait(html)
        await get_relay().register(self)
        await self.accept()
        self.writer = asyncio.create_task(self._writer())

    async def disconnect(self, code) -> None:
        if hasattr(self, "writer"):
            get_relay().unregister(self)
            self.writer.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing the server must act on; actions go through ordinary POSTs."""

    def offer(self, frame: dict, *, kind: str, symbol: str | None) -> None:
        try:
            html = render_fragment(kind, frame)
        except Exception:
            log.exception("desk: could not render a %s fragment", kind)
            return
        if html is None:
            return
        try:
            self.queue.put_nowait(html)
        except asyncio.QueueFull:
            self.queue = asyncio.Queue(maxsize=settings.STREAM_QUEUE_SIZE)
            self.queue.put_nowait('<div id="connection-state" hx-swap-oob="true" data-state="stale">'
                                  'reloading: too many updates</div>')
            self.queue.put_nowait(None)

    async def _writer(self) -> None:
        while True:
            html = await self.queue.get()
            if html is None:
                await self.close(code=4408)
                return
            await self.send(text_data=html)


@database_sync_to_async
def _account_for(user) -> int | None:
    if user is None or not user.is_authenticated:
        return None
    return DeskMembership.objects.filter(user=user).order_by("account_id").values_list(
        "account_id", flat=True).first()


@database_sync_to_async
def _live_alert_fragments(account_id: int) -> list[str]:
    alerts = Alert.objects.filter(account_id=account_id, status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED))
    return [render_to_string(f"{FRAGMENTS}#alert-item", {"alert": {
        "id": str(a.id), "kind": a.kind, "message": a.message, "symbol": a.symbol, "status": a.status,
        "raised_at": a.raised_at.isoformat()}, "oob": True}) for a in alerts.order_by("raised_at")]
