"""The socket of the risk view of every account (``/ws/risk/all/``): it follows the outbox of every account the
person supervises at once (the relay hands it each of their events, ``account_ids``) and redraws, from the page's
own partials (``web/risk_all.py``), the one list of alerts and the accounts' rows: an alert raised, acknowledged or
resolved on any of them, a trading state set, a kill switch pulled, an order or a position that changes a count.

Redraws are coalesced: at most one every ``REDRAW_SECONDS``, however many events arrive meanwhile. Only a
logged-in person who supervises, their second factor given, gets in (4401 otherwise), and only from the desk's own
origin (routing)."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.template.loader import render_to_string

from orders.events import DESK_KIND
from orders.realtime.opening import OpensUnlessDatabaseGone
from orders.realtime.relay import get_relay
from orders.services.two_factor import is_second_factor_missing
from orders.web.risk_all import TEMPLATE, all_accounts_context, supervised_accounts

log = logging.getLogger(__name__)
CLOSE_UNAUTHORIZED = 4401
REDRAW_SECONDS = 0.25
# a desk-only event (events.record_desk's ``what``) -> whether it changes the alerts (else only the accounts' rows)
_DESK_WHATS = {"alert": True, "trading_state": False, "kill_run": False, "guards": False}


def redraws_for(kind: str, frame: dict) -> set[str]:
    """Which of the page's parts an event of any followed account changes."""
    if kind == "error":
        return {"alerts", "rows"}
    if kind == DESK_KIND and frame.get("what") in _DESK_WHATS:
        return {"alerts", "rows"} if _DESK_WHATS[frame["what"]] else {"rows"}
    if kind == "order" and (frame.get("event") == "ORDER_CREATED" or frame.get("order", {}).get("status") in
                            ("FILLED", "CANCELLED", "REJECTED", "EXPIRED")):
        return {"rows"}                     # the working orders' count
    if kind == "position":
        return {"rows"}
    return set()


class RiskAllConsumer(OpensUnlessDatabaseGone, AsyncWebsocketConsumer):
    socket_name = "risk socket (all accounts)"
    account_id = None               # the relay matches ``account_ids``
    account_ids: frozenset[int] = frozenset()
    channel_layer_alias = None      # fed by the outbox relay: no channel, no Redis connection per socket

    async def _open(self) -> None:
        accounts = await _supervised(self.scope.get("user"), self.scope.get("session"))
        if not accounts:
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.accounts = accounts
        self.account_ids = frozenset(a.pk for a in accounts)
        self.dirty: set[str] = set()
        self.wake = asyncio.Event()
        await get_relay().register(self)
        await self.accept()
        await self._send({"alerts", "rows"})          # a reconnecting page is redrawn whole
        self.task = asyncio.create_task(self._writer())

    async def disconnect(self, code) -> None:
        get_relay().unregister(self)
        if hasattr(self, "task"):
            self.task.cancel()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        """The page sends nothing this socket acts on."""

    def offer(self, frame: dict, *, kind: str, symbol: str | None) -> None:
        parts = redraws_for(kind, frame)
        if parts:
            self.dirty |= parts
            self.wake.set()

    async def _writer(self) -> None:
        while True:
            await self.wake.wait()
            await asyncio.sleep(REDRAW_SECONDS)
            self.wake.clear()
            parts, self.dirty = self.dirty, set()
            try:
                await self._send(parts)
            except Exception:
                log.exception("risk socket (all accounts): could not redraw %s", ", ".join(sorted(parts)))

    async def _send(self, parts: set[str]) -> None:
        html = await self._render(parts)
        if html:
            await self.send(text_data=html)

    @database_sync_to_async
    def _render(self, parts: set[str]) -> str:
        context = {**all_accounts_context(self.accounts), "can_supervise": True, "oob": True}
        html = []
        if "alerts" in parts:
            html.append(render_to_string(f"{TEMPLATE}#all-alerts", context))
        if "rows" in parts:
            html.append(render_to_string(f"{TEMPLATE}#account-rows", context))
        return "".join(html)


@database_sync_to_async
def _supervised(user, session):
    """The accounts the socket follows; none (refused) for nobody logged in or a session still owing its second
    factor (``services/two_factor.py``), as the desk socket does."""
    if user is None or not user.is_authenticated or is_second_factor_missing(user, session):
        return []
    return supervised_accounts(user)
