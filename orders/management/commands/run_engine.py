"""``manage.py run_engine``: the engine beside the web server (see ``orders.engine``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from orders.brokers import get_broker
from orders.engine import (
    LEASE_SECONDS,
    BrokerLink,
    PollPacer,
    engine_tick,
    lease_claim,
    lease_release,
    new_owner_id,
)
from orders.events import outbox_prune
from orders.models import Account, EngineLease
from orders.services.protection import protection_reconcile, trail_book_load

log = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 600


class Command(BaseCommand):
    help = "Run the engine: the paper venue's clock and matching, fills, exit legs. One engine per account."

    def add_arguments(self, parser):
        parser.add_argument("--account", action="append", help="account name (repeatable); default: all")
        parser.add_argument("--tick", type=float, default=None, help="seconds between ticks")
        parser.add_argument("--once", action="store_true", help="run one tick and exit")
        parser.add_argument("--wait", action="store_true",
                            help="stand by until the accounts' leases are free instead of refusing to start")

    def handle(self, *args, **options):
        broker = get_broker()
        accounts = self._accounts(options["account"], broker.name)
        owner = new_owner_id()
        self._stopping = False
        self._stop_event = threading.Event()
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        while True:
            try:
                self._claim_all(accounts, owner)
                break
            except CommandError:
                if not options["wait"]:
                    raise
                if self._stopping:
                    return
                time.sleep(1)
        tick = options["tick"] or settings.ENGINE_TICK_SECONDS
        names = ", ".join(a.name for a in accounts)
        self.stdout.write(f"engine {owner} running for {names} on {broker.name} (tick {tick}s)")
        engine_tick(accounts=accounts, broker=broker)           # catch up with what the venue did meanwhile
        reconciled = protection_reconcile(accounts=accounts, broker=broker)
        book = trail_book_load(accounts=accounts)
        link = BrokerLink()
        self.stdout.write(f"reconciled exit legs of {reconciled} entries; {len(book)} trailing stops followed")
        wake = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(broker, wake), daemon=True, name="broker-stream")
        watcher.start()
        last_renewal, last_prune = time.monotonic(), float("-inf")
        pacer, woken = PollPacer(broker.poll_seconds), False
        try:
            while not self._stopping:
                started = time.monotonic()
                if started - last_renewal > LEASE_SECONDS / 3:
                    self._renew(accounts, owner)
                    last_renewal = started
                if started - last_prune > PRUNE_EVERY_SECONDS:
                    self._prune(accounts)
                    last_prune = started
                engine_tick(accounts=accounts, broker=broker, book=book, link=link,
                            poll=pacer.due(started, woken=woken))
                close_old_connections()
                if options["once"]:
                    break
                woken = wake.wait(max(0.0, tick - (time.monotonic() - started)))
                wake.clear()
        finally:
            for account in accounts:
                lease_release(account=account, owner=owner)
            self.stdout.write("engine stopped")

    def _prune(self, accounts: list[Account]) -> None:
        """Housekeeping: the outbox keeps ``DESK_OUTBOX_KEEP_HOURS`` of events. A failure is logged; the
        engine goes on."""
        if not settings.DESK_OUTBOX_KEEP_HOURS:
            return
        cutoff = timezone.now() - timedelta(hours=settings.DESK_OUTBOX_KEEP_HOURS)
        try:
            deleted = outbox_prune(account_ids=[a.pk for a in accounts], older_than=cutoff)
        except DatabaseError as e:
            log.warning("engine: pruning the outbox failed: %s", e)
            return
        if deleted:
            log.info("engine: deleted %d outbox events older than %s", deleted, cutoff.isoformat())

    def _stop(self, signum, frame):
        self._stopping = True
        self._stop_event.set()

    def _watch(self, broker, wake: threading.Event) -> None:
        """The broker's own event stream, if it has one, wakes the loop so fills are synced at once."""
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

    def _claim_all(self, accounts: list[Account], owner: str) -> None:
        for account in accounts:
            if not lease_claim(account=account, owner=owner):
                lease = EngineLease.objects.get(account=account)
                for claimed in accounts:
                    lease_release(account=claimed, owner=owner)
                raise CommandError(f"refusing to start: account {account.name} is already run by engine "
                                   f"{lease.owner} (lease valid until {lease.expires_at.isoformat()})")

    def _renew(self, accounts: list[Account], owner: str) -> None:
        for account in accounts:
            if not lease_claim(account=account, owner=owner):
                self.stderr.write(f"lost the lease on {account.name}; stopping")
                self._stopping = True
