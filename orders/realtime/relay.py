"""One relay per web process: it tails the event outbox and hands each new frame to the stream
clients of this process that may see it.

Every process reads the same outbox, so a client connected to any process receives what any
other process or the engine committed, in commit order, with no broker between them. A client
gets frames through its own bounded queue; a client that cannot keep up is told so and closed
(``StreamClient.offer``), never silently skipped.

Each frame carries its outbox id as the protocol's top-level ``event_id`` (``events.stream_frame``). A
client registered when the relay stood at id S gets every frame after S from the relay; what came before
S is the outbox's to give (``realtime/resume.py``), so a resumed client sees neither a gap nor a repeat."""

from __future__ import annotations

import asyncio
import json
import logging
from functools import cached_property
from typing import Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from orders.events import stream_frame
from orders.metrics import SOCKET_LISTENERS
from orders.models import Event

log = logging.getLogger(__name__)


class SharedFrame(dict):
    """A frame handed to many clients: its JSON text is made once, by the first client that sends it."""

    @cached_property
    def text(self) -> str:
        return json.dumps(self)


def frame_text(frame: dict) -> str:
    return frame.text if isinstance(frame, SharedFrame) else json.dumps(frame)


class StreamClient(Protocol):
    """A socket the relay feeds: the frames of its account (``account_id``), or, for a client that follows several
    (the risk view of every account, ``realtime/risk_all.py``), of each account in its ``account_ids``."""
    account_id: int | None

    def offer(self, frame: dict, *, kind: str, symbol: str | None) -> None: ...


def frame_symbol(frame: dict) -> str | None:
    for key in ("order", "position", "trade"):
        body = frame.get(key)
        if isinstance(body, dict):
            return body.get("symbol")
    details = frame.get("details")
    if isinstance(details, dict):
        return details.get("symbol")
    return None


def _followed(client: StreamClient):
    return getattr(client, "account_ids", None) or (client.account_id,)


class Relay:
    def __init__(self) -> None:
        self.clients: set[StreamClient] = set()
        self.last_id: int | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    async def register(self, client: StreamClient) -> int:
        """Start delivering to ``client`` everything committed from now on: every event after the id
        returned (the relay's position, read with no await between it and the registration)."""
        if self.last_id is None:
            head = await _head()
            if self.last_id is None:         # another client may have registered during the read
                self.last_id = head
        if client not in self.clients:
            self.clients.add(client)
            for account_id in _followed(client):
                SOCKET_LISTENERS.inc(account_id=str(account_id))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self.last_id

    async def reaches(self, event_id: int, *, timeout: float) -> bool:
        """Wait until this relay has read up to ``event_id`` (another process's relay may be ahead of this
        one by a poll); False if it does not within ``timeout`` seconds (no such event yet)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.last_id is None or self.last_id < event_id:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(settings.STREAM_POLL_SECONDS)
        return True

    def unregister(self, client: StreamClient) -> None:
        if client in self.clients:               # a socket that failed half way may be unregistered twice
            self.clients.discard(client)
            for account_id in _followed(client):
                SOCKET_LISTENERS.inc(-1, account_id=str(account_id))

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                batch = await _events_after(self.last_id, limit=500)
            except Exception:
                log.exception("relay: reading the outbox failed")
                batch = []
                await asyncio.sleep(1)
            for event_id, account_id, kind, payload in batch:
                self.last_id = event_id
                frame = SharedFrame(stream_frame(event_id, payload))
                symbol = frame_symbol(frame)
                for client in list(self.clients):
                    if client.account_id == account_id or account_id in getattr(client, "account_ids", ()):
                        client.offer(frame, kind=kind, symbol=symbol)
            if len(batch) < 500:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=settings.STREAM_POLL_SECONDS)
                except TimeoutError:
                    pass


@database_sync_to_async
def _head() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


@database_sync_to_async
def _events_after(last_id: int, *, limit: int) -> list[tuple[int, int, str, dict]]:
    return list(Event.objects.filter(id__gt=last_id).order_by("id").values_list(
        "id", "account_id", "kind", "payload")[:limit])


_relays: dict[int, Relay] = {}


def get_relay() -> Relay:
    """The relay of the running event loop (one per process under daphne)."""
    loop = asyncio.get_running_loop()
    relay = _relays.get(id(loop))
    if relay is None:
        relay = _relays[id(loop)] = Relay()
    return relay
