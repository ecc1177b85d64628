"""``manage.py run_engine``: the engine beside the web server (see ``orders.engine``).

One engine acts for an account at a time: it holds the account's lease and renews it every couple of seconds.
Without ``--wait`` an engine whose accounts are already run refuses to start; with it, it stands by, says
which engine holds which lease, and takes over once that lease lapses.

The database may go away (a restart, a failover) without the engine going with it: it logs that it lost the
database, retries with backoff (0.5 s, doubling up to 4 s) until the database answers, then checks its leases.
Each is *kept* (still its own), *retaken* (it had lapsed and nobody took it) or *lost* to another engine, which
then acts alone: this engine releases the rest and stands by again (``--wait``) or stops. Every (re)start
catches up the same way: one tick for what the venue did meanwhile, exit legs reconciled, trailing stops
reloaded."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection, connections
from django.utils import timezone

from orders.brokers import get_broker
from orders.brokers.base import Broker
from orders.engine import (
    LEASE_SECONDS,
    BrokerLink,
    Courier,
    PollPacer,
    VenueWatch,
    deadman_disarm,
    engine_tick,
    lease_claim,
    lease_release,
    new_owner_id,
)
from orders.events import outbox_prune
from orders.models import Account, EngineLease
from orders.services.protection import protection_reconcile
from orders.services.watched import trail_book_load

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 600
DATABASE_ERRORS = (OperationalError, InterfaceError)     # the database went away (not a refused statement)
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 0.5, 4.0
# how long a standby needs to take a dead engine's lease over and re-arm the venue's dead man's switch: the lease
# lapsing, the standby's next look (every second) and its first tick, with room to spare
TAKEOVER_SECONDS = int(LEASE_SECONDS * 1.5) + 5
STEADY_SECONDS = 30.0       # an error this soon after recovering continues the backoff rather than restarting it


class LeaseLost(Exception):
    """Another engine holds one of this engine's accounts now."""


class Command(BaseCommand):
    help = ("Run the engine: the paper venue's clock and matching, fills, exit legs. One engine acts for an "
            "account at a time; it survives database restarts (retrying with backoff).")

    def add_arguments(self, parser):
        parser.add_argument("--account", action="append", help="account name (repeatable); default: all")
        parser.add_argument("--tick", type=float, default=None, help="seconds between ticks")
        parser.add_argument("--once", action="store_true", help="run one tick and exit")
        parser.add_argument("--wait", action="store_true",
                            help="stand by while another engine holds an account's lease (printing who) and "
                                 "take over when it lapses, instead of refusing to start")

    def handle(self, *args, **options):
        self._stopping = False
        self._stop_event = threading.Event()
        self._recovered_at, self._last_delay = float("-inf"), RETRY_FIRST_SECONDS
        self._watcher: threading.Thread | None = None
        self._courier = Courier()           # sends alerts to the accounts' channels beside the ticks
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        broker, owner = get_broker(), new_owner_id()
        accounts: list[Account] = []
        held = after_outage = False
        try:
            while not self._stopping:
                try:
                    accounts = accounts or self._accounts(options["account"], broker.name)
                    if held and after_outage:
                        held = self._leases_after_outage(accounts, owner, wait=options["wait"])
                    after_outage = False
                    held = held or self._take_leases(accounts, owner, wait=options["wait"])
                    if held:
                        self._run(accounts, broker, owner, options)
                    break
                except DatabaseError as e:         # gone, read-only after a failover, or a refused statement
                    after_outage = True
                    if not self._await_database(e):
                        break
                except LeaseLost as e:
                    held = self._give_up_leases(accounts, owner, reason=str(e), wait=options["wait"])
        finally:
            self._courier.stop()
            if held:
                self._disarm(accounts, broker)
                self._release(accounts, owner)
            self.stdout.write("engine stopped")

    def _run(self, accounts: list[Account], broker: Broker, owner: str, options) -> None:
        """Catch up, then tick until stopped (``LeaseLost`` and database errors leave to ``handle``)."""
        tick = options["tick"] or settings.ENGINE_TICK_SECONDS
        names = ", ".join(a.name for a in accounts)
        self.stdout.write(f"engine {owner} running for {names} on {broker.name} (tick {tick}s)")
        if 0 < broker.deadman_seconds < TAKEOVER_SECONDS:
            log.warning("engine: %s's dead man's switch times out after %d s, before a standby can take the lease "
                        "over and re-arm it (about %d s): a failover will cancel every order, stops included",
                        broker.name, broker.deadman_seconds, TAKEOVER_SECONDS)
        link, venue = BrokerLink(), VenueWatch(owner=owner)
        # one tick and out (``--once``) sends its alerts in the tick: stopping the courier drops what it was woken for
        courier = None if options["once"] else self._courier
        # catch up with what the venue did meanwhile (and, on a real venue, reconcile with its books)
        engine_tick(accounts=accounts, broker=broker, link=link, venue=venue, courier=courier)
        reconciled = protection_reconcile(accounts=accounts, broker=broker)
        book = trail_book_load(accounts=accounts)
        self.stdout.write(f"reconciled exit legs of {reconciled} entries; {len(book)} trailing stops followed")
        wake = self._watch_broker(broker)
        last_renewal, last_prune = time.monotonic(), float("-inf")
        pacer, woken = PollPacer(broker.poll_seconds), False
        while not self._stopping:
            started = time.monotonic()
            if started - last_renewal > LEASE_SECONDS / 3:
                self._renew(accounts, owner)
                last_renewal = started
            if started - last_prune > PRUNE_EVERY_SECONDS:
                self._prune(accounts)
                last_prune = started
            engine_tick(accounts=accounts, broker=broker, book=book, link=link, poll=pacer.due(started, woken=woken),
                        venue=venue, courier=courier)
            close_old_connections()         # a connection that failed is dropped; the next one is health-checked
            if options["once"]:
                return
            woken = wake.wait(max(0.0, tick - (time.monotonic() - started)))
            wake.clear()

    # -- leases ----------------------------------------------------------------------------------------------
    def _take_leases(self, accounts: list[Account], owner: str, *, wait: bool) -> bool:
        """Claim every account's lease: at once, or (``wait``) once their holders let them lapse. False when
        the engine was stopped while standing by."""
        standing_by_for = None
        while not self._stopping:
            blocked = self._claim_all(accounts, owner)
            if blocked is None:
                if standing_by_for is not None:
                    self.stdout.write(f"engine {owner} takes over {_names(accounts)}: the lease of "
                                      f"{standing_by_for} lapsed")
                return True
            account, holder, until = blocked
            if not wait:
                raise CommandError(f"refusing to start: account {account.name} is already run by engine {holder} "
                                   f"(lease valid until {until}); use --wait to stand by")
            if holder != standing_by_for:
                self.stdout.write(f"engine {owner} standing by for {_names(accounts)}: account {account.name} is "
                                  f"run by engine {holder} (lease valid until {until}); taking over when it lapses")
                standing_by_for = holder
            self._stop_event.wait(1)
        return False

    def _claim_all(self, accounts: list[Account], owner: str) -> tuple[Account, str, str] | None:
        """Claim every lease, or none: (the first account held by another engine, its holder, until when)."""
        for account in accounts:
            if not lease_claim(account=account, owner=owner):
                self._release(accounts, owner)
                lease = EngineLease.objects.filter(account=account).first()
                if lease is not None:           # else it was released meanwhile: the next claim gets it
                    return account, lease.owner, lease.expires_at.isoformat()
                return account, "(released)", timezone.now().isoformat()
        return None

    def _renew(self, accounts: list[Account], owner: str) -> None:
        for account in accounts:
            if not lease_claim(account=account, owner=owner):
                raise LeaseLost(f"lost the lease on {account.name} to engine {_holder(account)}")

    def _leases_after_outage(self, accounts: list[Account], owner: str, *, wait: bool) -> bool:
        """Back from a database outage: is each lease kept, retaken, or lost to another engine?"""
        for account in accounts:
            before = EngineLease.objects.filter(account=account).values_list("owner", "expires_at").first()
            if not lease_claim(account=account, owner=owner):
                return self._give_up_leases(accounts, owner, wait=wait,
                                            reason=f"lost the lease on {account.name} to engine {_holder(account)}")
            if before is not None and before[0] == owner and before[1] >= timezone.now():
                log.warning("engine %s: lease on %s kept", owner, account.name)
            else:
                log.warning("engine %s: lease on %s retaken (it had lapsed%s)", owner, account.name,
                            f"; held by {before[0]}" if before and before[0] != owner else "")
        return True

    def _give_up_leases(self, accounts: list[Account], owner: str, *, reason: str, wait: bool) -> bool:
        """Another engine acts for one of the accounts: let go of the others too, then stand by or stop."""
        self._release(accounts, owner)
        if not wait:
            raise CommandError(f"engine {owner}: {reason}; stopping")
        log.warning("engine %s: %s; standing by", owner, reason)
        return False

    def _disarm(self, accounts: list[Account], broker: Broker) -> None:
        try:
            deadman_disarm(accounts=accounts, broker=broker)
        except DatabaseError as e:
            log.warning("engine: the dead man's switch was disarmed but not recorded (%s)", _first_line(e))

    def _release(self, accounts: list[Account], owner: str) -> None:
        try:
            for account in accounts:
                lease_release(account=account, owner=owner)
        except DatabaseError as e:
            log.warning("engine %s: could not release its leases (%s); they lapse within %d s", owner,
                        _first_line(e), LEASE_SECONDS)

    # -- the database going away --------------------------------------------------------------------------------
    def _await_database(self, error: Exception) -> bool:
        """Drop every connection and retry with backoff until the database answers. False when stopped first."""
        lost_at = time.monotonic()
        # failing again soon after recovering (a statement the database keeps refusing, a flapping server)
        # goes on from the last delay instead of looping every 0.5 s
        recent = lost_at - self._recovered_at < STEADY_SECONDS
        delay = min(self._last_delay * 2, RETRY_MAX_SECONDS) if recent else RETRY_FIRST_SECONDS
        what = "lost the database" if isinstance(error, DATABASE_ERRORS) else "the database refused a statement"
        log.warning("engine: %s (%s); retrying in %g s", what, _first_line(error), delay)
        while True:
            _drop_connections()
            if self._stop_event.wait(delay):
                return False
            try:
                connection.ensure_connection()
            except DATABASE_ERRORS as e:
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                log.warning("engine: the database is still unavailable (%s); retrying in %g s", _first_line(e),
                            delay)
                continue
            log.warning("engine: reconnected to the database after %.1f s", time.monotonic() - lost_at)
            self._recovered_at, self._last_delay = time.monotonic(), delay
            return True

    # -- the rest ---------------------------------------------------------------------------------------------
    def _prune(self, accounts: list[Account]) -> None:
        """Housekeeping: the outbox keeps ``DESK_OUTBOX_KEEP_HOURS`` of events. A failure is logged; the
        engine goes on (a lost database is left to ``handle``)."""
        if not settings.DESK_OUTBOX_KEEP_HOURS:
            return
        cutoff = timezone.now() - timedelta(hours=settings.DESK_OUTBOX_KEEP_HOURS)
        try:
            deleted = outbox_prune(account_ids=[a.pk for a in accounts], older_than=cutoff)
        except DATABASE_ERRORS:
            raise
        except DatabaseError as e:
            log.warning("engine: pruning the outbox failed: %s", e)
            return
        if deleted:
            log.info("engine: deleted %d outbox events older than %s", deleted, cutoff.isoformat())

    def _stop(self, signum, frame):
        self._stopping = True
        self._stop_event.set()

    def _watch_broker(self, broker: Broker) -> threading.Event:
        """The broker's own event stream, if it has one, wakes the loop so fills are synced at once (one
        watcher for the process's life, whatever restarts the loop)."""
        if self._watcher is None:
            self._wake = threading.Event()
            self._watcher = threading.Thread(target=self._watch, args=(broker, self._wake), daemon=True,
                                             name="broker-stream")
            self._watcher.start()
        return self._wake

    def _watch(self, broker, wake: threading.Event) -> None:
        try:
            broker.watch(wake=wake.set, stop=self._stop_event)
        except Exception:
            self.stderr.write("broker stream stopped; the engine keeps syncing every tick")

    def _accounts(self, names: list[str] | None, broker_name: str) -> list[Account]:
        accounts = Account.objects.filter(broker=broker_name)
        if names:
            accounts = accounts.filter(name__in=names)
            missing = set(names) - set(accounts.values_list("name", flat=True))
            if missing:
                raise CommandError(f"unknown account(s): {', '.join(sorted(missing))}")
        accounts = list(accounts.order_by("pk"))
        if not accounts:
            raise CommandError(f"no {broker_name} accounts to run; create one with manage.py desk_setup")
        return accounts


def _names(accounts: list[Account]) -> str:
    return ", ".join(a.name for a in accounts)


def _holder(account: Account) -> str:
    return EngineLease.objects.filter(account=account).values_list("owner", flat=True).first() or "(none)"


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _drop_connections() -> None:
    for each in connections.all(initialized_only=True):
        try:
            each.close()
        except DatabaseError:
            pass        # a dead connection may fail to close; it is dropped all the same
