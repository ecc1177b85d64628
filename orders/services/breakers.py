"""Circuit breakers shared by every process (stored per account).

* ``adapter``: trips after 3 broker outages (unavailable / provider errors) within 300 s; while open,
  new entries fail fast with 503. Exits — legs, closes, cancels — are never blocked.
* ``exit_order``: trips after 3 infrastructure failures placing exit legs within 300 s; while open, leg
  placement is deferred and the position is reported unprotected.

Both recover only by a manual reset, refused within 60 s of the previous one.

A failure counted, a trip and a reset are each written with a desk-only outbox event (``breaker``) in their
transaction, so every open desk and risk view redraws the breakers with its next push, whichever door reset them
(/v1, the risk view, the admin, ``manage.py breakers_reset``). The protocol has no stream frame for a breaker:
/v1/ws clients read ``GET /v1/circuit-breakers``."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.caches import breaker_open
from orders.domain.errors import ProviderUnavailable, ResetCooldown
from orders.metrics import BREAKER_RESETS
from orders.models import Account, CircuitBreaker
from orders.services.audit import audit_record

ADAPTER, EXIT_ORDER = "adapter", "exit_order"
THRESHOLD = 3
WINDOW = timedelta(seconds=300)
RESET_COOLDOWN = timedelta(seconds=60)


def _breaker(account_id: int, name: str) -> CircuitBreaker:
    breaker, _ = CircuitBreaker.objects.get_or_create(account_id=account_id, name=name)
    return breaker


def breaker_snapshot(*, account: Account) -> dict:
    existing = {b.name: b for b in CircuitBreaker.objects.filter(account=account)}
    out = {}
    now = timezone.now()
    for name in (ADAPTER, EXIT_ORDER):
        breaker = existing.get(name)
        failures = _recent(breaker.failures, now) if breaker else []
        is_open = bool(breaker and breaker.is_open)
        out[name] = {"state": "open" if is_open else "closed", "failure_count": len(failures)}
    return out


def _recent(failures: list[str], now: datetime) -> list[str]:
    return [f for f in failures if datetime.fromisoformat(f) > now - WINDOW]


def breaker_record_failure(*, account_id: int, name: str, reason: str) -> bool:
    """Count one infrastructure failure; True when this one opened the breaker."""
    now = timezone.now()
    with transaction.atomic():
        breaker = CircuitBreaker.objects.select_for_update().filter(pk=_breaker(account_id, name).pk).first()
        breaker.failures = [*_recent(breaker.failures, now), now.isoformat()][-20:]
        opened = breaker.opened_at is None and len(breaker.failures) >= THRESHOLD
        if opened:
            breaker.opened_at = now
            audit_record(account_id=account_id, actor="system", action="breaker.open", target=name, reason=reason)
        breaker.save(update_fields=["failures", "opened_at"])
        # every failure, not only the trip: the risk view shows the count that trips the breaker
        events.record_desk(account_id, "breaker", name=name, state="open" if breaker.opened_at else "closed",
                           failure_count=len(breaker.failures), opened=opened)
    if opened:
        breaker_open.forget(account_id)
    return opened


def breaker_is_open(*, account_id: int, name: str) -> bool:
    return CircuitBreaker.objects.filter(account_id=account_id, name=name, opened_at__isnull=False).exists()


def breaker_guard_entry(*, account: Account) -> None:
    """Refuse new entries while the adapter breaker is open (read at most once a second per process:
    a breaker is about outages that last far longer than that)."""
    is_open = breaker_open.get(account.pk)
    if is_open is None:
        is_open = breaker_open.put(account.pk, breaker_is_open(account_id=account.pk, name=ADAPTER))
    if is_open:
        raise ProviderUnavailable(f"Adapter circuit breaker open — {account.broker} provider outage detected. "
                                  "Manual reset required.")


def breakers_reset(*, account: Account, actor: str) -> dict:
    """Close both breakers (``RESET_COOLDOWN`` within 60 s of a breaker's previous reset); their fresh snapshot."""
    now = timezone.now()
    with transaction.atomic():
        for name in (ADAPTER, EXIT_ORDER):
            breaker = CircuitBreaker.objects.select_for_update().filter(pk=_breaker(account.pk, name).pk).first()
            if breaker.last_reset_at and now - breaker.last_reset_at < RESET_COOLDOWN:
                raise ResetCooldown("Circuit breaker re-tripped within cooldown period. Investigate the underlying "
                                    "failure before resetting again.")
            was_open = breaker.opened_at is not None
            breaker.failures, breaker.opened_at, breaker.last_reset_at = [], None, now
            breaker.save(update_fields=["failures", "opened_at", "last_reset_at"])
            events.record_desk(account.pk, "breaker", name=name, state="closed", was_open=was_open)
        audit_record(account_id=account.pk, actor=actor, action="breaker.reset", target="adapter,exit_order")
    breaker_open.forget(account.pk)
    BREAKER_RESETS.inc(account=account.name)
    return breaker_snapshot(account=account)
