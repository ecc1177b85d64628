"""Time to protection: how long a filled entry waits for the venue to acknowledge every one of its exit legs.

* ``legs_needed``: an entry's fill was recorded; its live legs must cover it from now (``ExitLeg.needed_at``,
  one write inside the fill's transaction). A later fill of an entry whose legs were all acknowledged opens
  a new wait (the legs grow for it); one that arrives while a leg still waits keeps the older time.
* ``ack_fields`` / ``leg_acked``: a leg is acknowledged (``ExitLeg.acked_at``, written with its move to
  PLACED) when the venue answered its order's placement or growth. A leg the venue already holds (a native
  bracket's, released or kept by the venue when the entry fills) is acknowledged when the desk learns of the
  fill; an engine-watched take-profit (a venue that rests one exit only) when the engine arms its watch: no
  venue is asked, the stop resting at the venue is what protects the position.
* When the entry's last leg is acknowledged the wait is observed once (``desk_time_to_protection_seconds``),
  its ``PROTECTION_SLOW`` alerts are resolved and the risk view is told (desk event ``protection``). A wait
  longer than the account's ``protection_slow_seconds`` that nobody could see (the venue call itself took that
  long, inside the fill's transaction) raises ``PROTECTION_SLOW`` then, left for a person to acknowledge.
* ``protection_summary``: what the risk view shows (p50/p99 over the last hour, each open position's wait).

The engine's check of waits still running (``PROTECTION_SLOW``, optional flattening) is
``services/protection_watch.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from orders import events
from orders.domain.lifecycle import LIVE_LEG
from orders.domain.money import format_decimal
from orders.domain.protection import percentile, seconds_text
from orders.metrics import TIME_TO_PROTECTION
from orders.models import Alert, ExitLeg, Order, Position, PreTradeLimits
from orders.services.alerts import alert_raise, alerts_resolve

DEFAULT_SLOW_SECONDS = Decimal("2")
WINDOW = timedelta(hours=1)


def legs_needed(entry: Order, *, now: datetime) -> int:
    """The entry's fill recorded at ``now``: its live legs wait for the venue from now. Returns how many."""
    return ExitLeg.objects.filter(entry=entry, status__in=LIVE_LEG).filter(
        Q(needed_at__isnull=True) | Q(acked_at__isnull=False)).update(needed_at=now, acked_at=None)


def ack_fields(leg: ExitLeg, *, now: datetime) -> dict:
    """What to write with the leg's move to PLACED: its acknowledgement, when a fill waits for it."""
    return {"acked_at": now} if leg.needed_at is not None and leg.acked_at is None else {}


def leg_acked(leg: ExitLeg) -> float | None:
    """``leg``'s acknowledgement was written: when no other leg of its entry still waits, the entry is protected.
    Returns the seconds its fill waited, or None while another leg waits."""
    if leg.needed_at is None or leg.acked_at is None or ExitLeg.objects.filter(
            entry_id=leg.entry_id, status__in=LIVE_LEG, needed_at__isnull=False, acked_at__isnull=True).exists():
        return None
    waited = max(0.0, (leg.acked_at - leg.needed_at).total_seconds())
    TIME_TO_PROTECTION.observe(waited, strategy=leg.strategy)
    after = f"protected after {seconds_text(waited)}"
    resolved = alerts_resolve(account_id=leg.account_id, symbol=leg.symbol, kind=Alert.Kind.PROTECTION_SLOW,
                              resolution=after, entry_id=leg.entry_id)
    limit = slow_seconds(leg.account_id)
    if not resolved and waited > limit:
        # nobody saw this wait (the venue's answer itself took that long): say so now, for a person to acknowledge
        alert_raise(account_id=leg.account_id, kind=Alert.Kind.PROTECTION_SLOW, symbol=leg.symbol,
                    dedupe_key=dedupe_key(leg.entry_id, leg.needed_at), entry_id=leg.entry_id,
                    message=f"{leg.symbol} {after}: the venue took longer than {seconds_text(limit)} "
                            "to acknowledge its exits",
                    details=slow_details(leg.entry_id, leg.needed_at, limit=limit, protected_after=waited))
    events.record_desk(leg.account_id, "protection")
    return waited


def slow_seconds(account_id: int) -> Decimal:
    found = PreTradeLimits.objects.filter(account_id=account_id).values_list("protection_slow_seconds",
                                                                              flat=True).first()
    return DEFAULT_SLOW_SECONDS if found is None else found


def dedupe_key(entry_id, needed_at: datetime) -> str:
    return f"protection-slow:{entry_id}:{needed_at.timestamp():.6f}"


def slow_details(entry_id, needed_at: datetime, *, limit: Decimal, protected_after: float | None = None) -> dict:
    details = {"order_id": str(entry_id), "needed_at": needed_at.isoformat(), "limit_seconds": str(limit)}
    if protected_after is not None:
        details["protected_after_seconds"] = f"{protected_after:.3f}"
    return details


# -- what the risk view shows ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PositionProtection:
    symbol: str
    quantity: str
    protected: bool
    seconds: float                   # how long its last fill waited, or has waited so far

    @property
    def text(self) -> str:
        return (f"protected after {seconds_text(self.seconds)}" if self.protected
                else f"unprotected for {seconds_text(self.seconds)}")


def protection_summary(account, *, now: datetime | None = None) -> dict:
    """p50/p99 of the entries protected in the last hour (from their legs: latest acknowledgement − the fill
    that needed them) and, for each open position with exits, how long its latest fill waited or has waited."""
    now = now or timezone.now()
    waits: dict = {}
    for entry_id, needed, acked in ExitLeg.objects.filter(
            account=account, needed_at__gte=now - WINDOW, acked_at__isnull=False).values_list(
            "entry_id", "needed_at", "acked_at"):
        waits[entry_id] = max(waits.get(entry_id, 0.0), (acked - needed).total_seconds())
    times = sorted(waits.values())
    latest: dict[str, tuple[datetime, bool, float]] = {}
    for symbol, needed, acked in ExitLeg.objects.filter(
            account=account, status__in=LIVE_LEG, needed_at__isnull=False).values_list(
            "symbol", "needed_at", "acked_at").order_by("needed_at"):
        waiting = acked is None
        seconds = (now - needed if waiting else acked - needed).total_seconds()
        known = latest.get(symbol)
        if known is None or needed > known[0]:
            latest[symbol] = (needed, not waiting, seconds)
        elif needed == known[0]:        # the other leg of that fill: protected when both are, after the later
            latest[symbol] = (needed, known[1] and not waiting, max(known[2], seconds))
    positions = [PositionProtection(p.symbol, format_decimal(p.quantity), latest[p.symbol][1],
                                    max(0.0, latest[p.symbol][2]))
                 for p in Position.objects.filter(account=account).exclude(quantity=0).order_by("symbol")
                 if p.symbol in latest]
    limits = PreTradeLimits.objects.filter(account=account).first()
    return {
        "count": len(times),
        "p50": seconds_text(percentile(times, 50)) if times else "",
        "p99": seconds_text(percentile(times, 99)) if times else "",
        "positions": positions,
        "slow_after": seconds_text(limits.protection_slow_seconds if limits else DEFAULT_SLOW_SECONDS),
        "flatten_after": seconds_text(limits.flatten_unprotected_after_seconds)
        if limits and limits.flatten_unprotected_after_seconds is not None else "",
    }
