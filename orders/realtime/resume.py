"""Resuming the /v1/ws stream after a reconnect — an extension of the protocol that its clients may ignore.

* Every frame from the outbox (order, position, account, trade, error, connection, data_staleness) carries the
  outbox id as the protocol's top-level ``event_id``, a string of digits that increases from frame to frame
  (``events.stream_frame``). Frames that are not in the outbox carry none: quotes, candles, pings, and the open
  alerts repeated on connect (``rebroadcast: true``).
* A client that reconnects with ``/v1/ws?last_event_id=N`` (the last ``event_id`` it received) is sent its
  account's outbox frames after N, oldest first, through its subscription filter and without the desk's own
  events, then the live stream: nothing missed and nothing twice at the seam (``Relay.register``). The open
  alerts are not repeated then: the replay holds every alert raised since N.
* When that cannot be done the client gets one ``error`` frame (code ``INTERNAL_ERROR``, details
  ``{"reason": "resume_gap", "cause": …, "last_event_id": "N"}``) and then what a fresh connection gets (open
  alerts, the live stream), and reconciles over REST. ``cause`` is ``invalid`` (N is not an id),
  ``unknown`` (N is not in the account's outbox: older than its retention, ``DESK_OUTBOX_KEEP_HOURS``, or never
  its own) or ``too_many`` (more than ``MAX_REPLAY`` frames were missed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.utils import timezone

from orders import wire
from orders.events import DESK_KIND, stream_frame
from orders.realtime.relay import Relay
from orders.selectors import outbox_after, outbox_reaches_back_to

QUERY_PARAMETER = "last_event_id"
MAX_REPLAY = 2000           # frames one resume may replay; a longer absence reconciles over REST
REACH_SECONDS = 2.0         # how long to wait for this process's relay to read up to the client's id
RECONCILE = "GET /v1/orders?status=OPEN (and X-Next-Cursor for more), /v1/positions and /v1/account"
_WHY = {"invalid": "it is not an event id",
        "unknown": "it is no longer (or was never) in this account's event outbox",
        "too_many": f"more than {MAX_REPLAY} events followed it"}


@dataclass(frozen=True)
class Resume:
    """How a connection starts: ``after`` and ``frames`` when it resumes, ``gap`` when it asked to and cannot;
    neither for a fresh connection."""
    after: int | None = None
    frames: list[dict] = field(default_factory=list)
    gap: dict | None = None

    @property
    def resumed(self) -> bool:
        return self.after is not None

    def is_new(self, frame: dict) -> bool:
        """Whether a frame the relay offered while the connection was set up still has to be sent (a relay
        a poll behind another process's may offer what the client already had)."""
        return self.after is None or "event_id" not in frame or int(frame["event_id"]) > self.after


def requested_resume(query_string: bytes) -> str | None:
    """The client's ``last_event_id`` as given, or None when it asked for no resume."""
    values = parse_qs(query_string.decode("latin-1")).get(QUERY_PARAMETER)
    return (values[-1].strip() or None) if values else None


async def stream_resume(query_string: bytes, *, account_id: int, relay: Relay, seam: int) -> Resume:
    """How the connection of ``account_id`` starts, the relay having promised every event after ``seam``."""
    raw = requested_resume(query_string)
    if raw is None:
        return Resume()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return Resume(gap=gap_frame(raw, "invalid"))
    after = int(raw)
    if after > seam and not await relay.reaches(after, timeout=REACH_SECONDS):
        return Resume(gap=gap_frame(raw, "unknown"))
    replay = await database_sync_to_async(replay_after)(account_id=account_id, after=after, up_to=seam)
    if isinstance(replay, str):
        return Resume(gap=gap_frame(raw, replay))
    return Resume(after=after, frames=replay)


def replay_after(*, account_id: int, after: int, up_to: int) -> list[dict] | str:
    """The account's outbox frames after ``after`` up to ``up_to``, oldest first, without desk-only events; or
    why they cannot all be given (a ``cause`` of the gap frame)."""
    rows = outbox_after(account_id=account_id, after_id=after, up_to_id=up_to, limit=MAX_REPLAY + 1,
                        skip_kind=DESK_KIND)
    if len(rows) > MAX_REPLAY:
        return "too_many"
    # read after the rows: the engine pruning in between is seen as a gap, never as a complete replay
    if not outbox_reaches_back_to(account_id=account_id, event_id=after):
        return "unknown"
    return [stream_frame(event_id, payload) for event_id, payload in rows]


def gap_frame(raw: str, cause: str) -> dict:
    """The frame that tells a client it was not resumed, and why."""
    shown = raw[:24]
    return {"type": "error", "code": "INTERNAL_ERROR",
            "message": f"Cannot resume after event_id {shown!r}: {_WHY[cause]}. The stream goes on live from "
                       f"here; reconcile with {RECONCILE}",
            "details": {"reason": "resume_gap", "cause": cause, "last_event_id": shown, "max_replay": MAX_REPLAY},
            "timestamp": wire.ts(timezone.now())}
