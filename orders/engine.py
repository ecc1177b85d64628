"""The engine: the long-running loop beside the web server.

Each tick it renews its lease on the accounts it acts for, hands their working
orders to the broker's ``sync`` (the paper venue matches them; a real broker
reports what it saw) and applies the reports. Only the holder of an account's
lease acts for it, so two engines can never both fill or place legs for one account.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain.enums import OrderStatus
from orders.domain.errors import DeskError
from orders.exits.book import TrailingBook
from orders.metrics import (
    BROKER_DISCONNECTIONS,
    BROKER_RECONNECT_ATTEMPTS,
    BROKER_RECONNECT_FAILURES,
    BROKER_RECONNECTIONS,
    ENGINE_LAST_TICK,
    ENGINE_LEASE_HELD,
    ENGINE_TICK_SECONDS,
)
from orders.models import Account, Alert, EngineLease, Order, Position, VenueState
from orders.services.alert_routing import alerts_route_later_steps
from orders.services.alerts import alerts_escalate
from orders.services.approvals import approvals_tick
from orders.services.audit import audit_record
from orders.services.channels import alert_deliveries_send
from orders.services.fills import reports_apply
from orders.services.flatness import flatness_tick
from orders.services.guards import guards_tick
from orders.services.positions import position_close
from orders.services.protection import protection_tick
from orders.services.protection_watch import protection_watch_tick
from orders.services.reconcile import reconcile_run, venue_refresh
from orders.services.watched import watched_tick
from orders.venue import order_to_working

log = logging.getLogger(__name__)
LEASE_SECONDS = 6
_MATCHED_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


class LeaseHeld(Exception):
    def __init__(self, account: Account, lease: EngineLease) -> None:
        super().__init__(f"account {account.name} is already run by engine {lease.owner} "
                         f"(lease valid until {lease.expires_at.isoformat()})")
        self.lease = lease


def new_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_claim(*, account: Account, owner: str, now: datetime | None = None) -> bool:
    """Claim or renew the account's lease. True if ``owner`` holds it afterwards."""
    now = now or timezone.now()
    expires = now + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic():
        updated = EngineLease.objects.filter(Q(owner=owner) | Q(expires_at__lt=now), account=account).update(
            owner=owner, expires_at=expires, heartbeat_at=now)
        held = updated > 0
        if not held:
            _, held = EngineLease.objects.get_or_create(
                account=account, defaults={"owner": owner, "expires_at": expires, "heartbeat_at": now})
    ENGINE_LEASE_HELD.set(1 if held else 0, account=account.name, owner=owner)
    return held


def lease_release(*, account: Account, owner: str) -> None:
    EngineLease.objects.filter(account=account, owner=owner).delete()
    ENGINE_LEASE_HELD.set(0, account=account.name, owner=owner)


class PollPacer:
    """When the engine's tick may poll the venue: at most once every ``broker.poll_seconds`` (every tick for
    the paper venue), and at once when the venue's stream woke the engine."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last: float | None = None

    def due(self, now: float, *, woken: bool = False) -> bool:
        if woken or self.last is None or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


@dataclass
class BrokerLink:
    """What the engine last knew of its broker connection, to report changes once."""
    connected: bool = True
    down_since: datetime | None = None
    stale_symbols: list[str] = field(default_factory=list)
    reconnects: int = 0          # how often the venue came back (each one is followed by a reconciliation)

    def went_down(self, *, accounts: list[Account], broker: Broker, error: str, now: datetime) -> None:
        if not self.connected:
            return
        self.connected, self.down_since = False, now
        symbols = sorted(set(Order.objects.filter(account__in=accounts, status__in=_MATCHED_STATUSES)
                             .values_list("symbol", flat=True)))
        self.stale_symbols = symbols
        with transaction.atomic():
            for account in accounts:
                events.record_connection(account.pk, "BROKER_DISCONNECTED", broker=broker.name, error=error)
                events.record_staleness(account.pk, "STALE", symbols=symbols, broker=broker.name, stale_since=now)
        BROKER_DISCONNECTIONS.inc(platform=broker.name)

    def came_back(self, *, accounts: list[Account], broker: Broker, now: datetime) -> None:
        if self.connected:
            return
        gap = int((now - self.down_since).total_seconds() * 1000) if self.down_since else 0
        with transaction.atomic():
            for account in accounts:
                events.record_connection(account.pk, "BROKER_RECONNECTED", broker=broker.name, gap_duration_ms=gap)
                events.record_staleness(account.pk, "FRESH", symbols=self.stale_symbols, broker=broker.name,
                                        stale_since=self.down_since)
        self.connected, self.down_since, self.stale_symbols = True, None, []
        self.reconnects += 1
        BROKER_RECONNECTIONS.inc(platform=broker.name)


@dataclass
class VenueWatch:
    """A real venue's books as the engine follows them (``services/reconcile.py``): when it last read the
    account and positions, last reconciled, and last armed the venue's dead man's switch. ``owner`` is the engine
    holding the accounts' leases: only it arms the switch."""
    owner: str = ""
    refreshed: float | None = None
    reconciled: float | None = None
    armed: float | None = None
    reconnects_seen: int = 0


def venue_tick(*, accounts: list[Account], broker: Broker, watch: VenueWatch, link: BrokerLink, now: datetime,
               clock: float | None = None) -> None:
    """Follow a real venue: reconcile at the first tick, after a reconnect and every ``DESK_RECONCILE_MINUTES``;
    else read its figures and positions every ``DESK_VENUE_POLL_SECONDS``; re-arm its dead man's switch."""
    clock = time.monotonic() if clock is None else clock
    if broker.deadman_seconds and (watch.armed is None or clock - watch.armed >= broker.deadman_seconds / 3):
        _arm_deadman(accounts=accounts, broker=broker, owner=watch.owner, now=now)
        watch.armed = clock
    if not broker.venue_ledger:
        return
    reconnected = link.reconnects > watch.reconnects_seen
    due = watch.reconciled is None or clock - watch.reconciled >= settings.DESK_RECONCILE_MINUTES * 60
    if reconnected or due:
        reason = "start" if watch.reconciled is None else "reconnect" if reconnected else "periodic"
        for account in accounts:
            reconcile_run(account=account, broker=broker, now=now, reason=reason)
        watch.reconciled = watch.refreshed = clock
        watch.reconnects_seen = link.reconnects
    elif watch.refreshed is None or clock - watch.refreshed >= settings.DESK_VENUE_POLL_SECONDS:
        for account in accounts:
            venue_refresh(account=account, broker=broker, now=now)
        watch.refreshed = clock


def _arm_deadman(*, accounts: list[Account], broker: Broker, owner: str, now: datetime) -> None:
    try:
        broker.arm_deadman(seconds=broker.deadman_seconds)
    except DeskError as e:
        log.error("engine: %s's dead man's switch not re-armed: %s (it cancels every order %d s after the last "
                  "arming)", broker.name, e.message, broker.deadman_seconds)
        return
    with transaction.atomic():
        for account in accounts:
            VenueState.objects.update_or_create(account=account, defaults={
                "deadman_armed_at": now, "deadman_seconds": broker.deadman_seconds, "deadman_owner": owner})
            events.record_desk(account.pk, "venue")           # the risk view shows when it was last armed


def deadman_disarm(*, accounts: list[Account], broker: Broker) -> None:
    """An engine stopped on purpose disarms the switch, so the venue does not cancel every order (stops too)
    behind a person who stopped it. An engine that dies leaves it armed: the venue cancels at its timeout
    unless a standby takes over and re-arms it first."""
    if not broker.deadman_seconds:
        return
    try:
        broker.arm_deadman(seconds=0)
    except DeskError as e:
        log.error("engine: %s's dead man's switch not disarmed: %s", broker.name, e.message)
        return
    with transaction.atomic():
        VenueState.objects.filter(account__in=accounts).update(deadman_seconds=0)
        for account in accounts:
            events.record_desk(account.pk, "venue")


class Courier:
    """Sends the alert deliveries that are due (``services/channels.py``) on a thread of its own, woken by each
    tick: a webhook receiver that takes its whole timeout to answer holds up no fill, exit leg or lease renewal.
    Only what a tick woke it for is sent, for the accounts that tick acted for: an engine that lost its leases
    stops waking it. Whatever one batch meets is logged and the thread goes on; a thread that died all the same is
    noticed by the next ``wake`` and started again. ``stop`` sends no new batch and ends the one under way after its
    current delivery, so stopping the engine is not held up by receivers (what is left stays due)."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = False
        self._account_ids: list[int] = []
        self._thread: threading.Thread | None = None

    def wake(self, account_ids: list[int]) -> None:
        self._account_ids = list(account_ids)
        if self._stopping:
            return
        if self._thread is None or not self._thread.is_alive():
            if self._thread is not None:
                log.error("engine: the alert courier's thread had stopped; starting a new one")
            self._thread = threading.Thread(target=self._run, daemon=True, name="alert-courier")
            self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._send()
            except Exception:           # a database hiccup: the deliveries stay due for the next wake-up
                log.exception("engine: sending alert deliveries failed")

    def _send(self) -> None:
        try:
            if self._account_ids:
                alert_deliveries_send(account_ids=self._account_ids, stopping=lambda: self._stopping)
        finally:
            close_old_connections()


@dataclass
class TickResult:
    accounts: int = 0
    orders: int = 0
    changes: int = 0


def engine_tick(*, accounts: list[Account], broker: Broker, now: datetime | None = None,
                book: TrailingBook | None = None, link: BrokerLink | None = None, poll: bool = True,
                venue: VenueWatch | None = None, courier: Courier | None = None) -> TickResult:
    """Match every working order of ``accounts`` up to ``now``, apply what happened, follow a real venue's books
    (``venue``: the engine's ``VenueWatch``; see ``venue_tick``), then let exit management retry, escalate and
    trail. With ``poll`` False (see ``PollPacer``) the venue is left alone:
    no ``sync`` and no quotes for trailing stops, only what the database alone decides. Alerts owed to the accounts'
    channels are sent last: by the ``courier``'s thread when given (the engine's loop), else here."""
    started = time.perf_counter()
    now = now or timezone.now()
    result = TickResult(accounts=len(accounts))
    link = link or BrokerLink()
    if poll:
        result.orders, result.changes = _poll(accounts=accounts, broker=broker, now=now, link=link)
    if venue is not None:
        # the venue's books after its reports were applied: a fill seen by ``sync`` is no longer a difference
        try:
            venue_tick(accounts=accounts, broker=broker, watch=venue, link=link, now=now)
        except (OperationalError, InterfaceError):
            raise                   # the database went away: the engine's loop waits for it
        except Exception:           # a venue answer that cannot be read or kept must not stop fills and exits
            log.exception("engine: following %s's books failed this tick", broker.name)
            venue.reconciled = venue.refreshed = time.monotonic()     # tried again when next due, not every tick
    # each stage on its own: one that fails (a venue answer that cannot be read, a bug met by one account) is
    # logged and the next runs, so the loss guard and the kill switch's follow-up never wait on exit management
    stages = [("exit legs", protection_tick), ("time to protection", protection_watch_tick)]
    if poll:                    # the venue may be asked for quotes this tick
        stages.append(("watched exits", partial(watched_tick, book=book)))
    stages += [("auto-flatten", auto_flatten),
               ("loss guards", guards_tick),                    # the day's loss and drawdown levels
               ("flatness", flatness_tick),                     # a kill switch followed until the venue is flat
               ("approvals", approvals_tick)]                   # four-eyes requests expired, temporary raises put back
    for name, stage in stages:
        _stage(name, stage, accounts=accounts, broker=broker, now=now)
    account_ids = [a.pk for a in accounts]
    _stage("alert escalation", lambda **_: alerts_escalate(account_ids=account_ids, now=now))
    _stage("alert channels", lambda **_: alerts_route_later_steps(account_ids=account_ids, now=now))
    if courier is not None:
        courier.wake(account_ids)
    else:
        _stage("alert deliveries", lambda **_: alert_deliveries_send(account_ids=account_ids))
    ENGINE_TICK_SECONDS.observe(time.perf_counter() - started, platform=broker.name)
    finished = time.time()
    for account in accounts:
        ENGINE_LAST_TICK.set(finished, account=account.name)
    return result


def _stage(name: str, stage, **arguments) -> None:
    try:
        stage(**arguments)
    except (OperationalError, InterfaceError):
        raise                       # the database went away: the engine's loop waits for it
    except Exception:
        log.exception("engine: %s failed this tick", name)


def auto_flatten(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    """An account's policy: a position left unprotected for ``auto_flatten_after_seconds`` is closed."""
    for account in accounts:
        if account.auto_flatten_after_seconds is None:
            continue
        cutoff = now - timedelta(seconds=account.auto_flatten_after_seconds)
        for alert in Alert.objects.filter(account=account, kind=Alert.Kind.POSITION_UNPROTECTED,
                                          status__in=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED),
                                          raised_at__lte=cutoff):
            if not Position.objects.filter(account=account, symbol=alert.symbol).exclude(quantity=0).exists():
                continue
            try:
                order = position_close(account=account, position_id=alert.symbol, broker=broker,
                                       actor="engine:auto-flatten")
                audit_record(account_id=account.pk, actor="engine:auto-flatten", action="position.flatten",
                             target=alert.symbol, alert=str(alert.pk), order=str(order.id))
            except DeskError as e:
                audit_record(account_id=account.pk, actor="engine:auto-flatten", action="position.flatten",
                             target=alert.symbol, result="failed", error=e.message)


def _poll(*, accounts: list[Account], broker: Broker, now: datetime, link: BrokerLink) -> tuple[int, int]:
    """Hand the working orders to ``broker.sync`` and apply what it reports. Returns (orders, changes)."""
    # a PENDING order is one whose submission's answer was lost (the venue is asked about it), or a bracket leg
    # held back: the venue that answers at once has never seen that one
    statuses = _MATCHED_STATUSES if broker.answers_at_once else (*_MATCHED_STATUSES, OrderStatus.PENDING)
    # an order adopted from the venue is followed by the reconciliation (the venue never had our id for it)
    working = list(Order.objects.filter(account__in=accounts, status__in=statuses, external=False)
                   .order_by("created_at"))
    reconnecting = not link.connected          # the venue stopped answering: this poll tries it again
    if reconnecting:
        BROKER_RECONNECT_ATTEMPTS.inc(platform=broker.name)
    try:
        reports = broker.sync([order_to_working(o) for o in working], now=now)
    except DeskError as e:
        log.warning("engine: broker sync failed: %s", e.message)
        if reconnecting:
            BROKER_RECONNECT_FAILURES.inc(platform=broker.name)
        link.went_down(accounts=accounts, broker=broker, error=e.message, now=now)
        reports = []
    else:
        link.came_back(accounts=accounts, broker=broker, now=now)
    basis = {str(o.pk): (o.stop_price, o.limit_price, o.trailing_distance) for o in working}
    return len(working), reports_apply(reports=reports, broker=broker, basis=basis)
