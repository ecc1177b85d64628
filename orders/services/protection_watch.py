"""The engine's look, each tick, at filled positions still waiting for their exits (``services/protection_time``).

* A fill whose legs the venue has not all acknowledged ``PreTradeLimits.protection_slow_seconds`` (2 s when the
  account has no limits) after it was recorded raises ``PROTECTION_SLOW``: before ``POSITION_UNPROTECTED``,
  which still follows once the leg's retries are spent. It is resolved when the legs are acknowledged.
* With ``flatten_unprotected_after_seconds`` set, a position whose fill has waited that long (still waiting, or
  whose venue took that long to answer) is flattened at market through ``positions.position_close``, audited.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from orders.brokers.base import Broker
from orders.domain.errors import DeskError
from orders.domain.lifecycle import LIVE_LEG
from orders.domain.protection import seconds_text
from orders.models import Account, Alert, ExitLeg, Position, PreTradeLimits
from orders.services.alerts import LIVE, alert_raise
from orders.services.audit import audit_record
from orders.services.positions import position_close
from orders.services.protection_time import DEFAULT_SLOW_SECONDS, dedupe_key, slow_details

log = logging.getLogger(__name__)
ACTOR = "engine:protection"
AFTER_THE_FACT_WINDOW = timedelta(seconds=30)    # how long an alert raised at the legs' late answer may flatten


def protection_watch_tick(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    limits = {row[0]: row[1:] for row in PreTradeLimits.objects.filter(account__in=accounts).values_list(
        "account_id", "protection_slow_seconds", "flatten_unprotected_after_seconds")}
    waiting: dict = {}
    for leg in ExitLeg.objects.filter(account__in=accounts, status__in=LIVE_LEG, needed_at__isnull=False,
                                      acked_at__isnull=True).only("account_id", "entry_id", "symbol", "needed_at"):
        waiting.setdefault(leg.entry_id, leg)
    for entry_id, leg in waiting.items():
        slow, flatten_after = limits.get(leg.account_id, (DEFAULT_SLOW_SECONDS, None))
        waited = (now - leg.needed_at).total_seconds()
        flatten = flatten_after is not None and waited > flatten_after
        if waited <= slow and not flatten:
            continue
        key = dedupe_key(entry_id, leg.needed_at)
        # this wait's alert, whatever became of it (superseded by POSITION_UNPROTECTED, acknowledged): one a wait
        alert = Alert.objects.filter(entry_id=entry_id, dedupe_key=key).order_by("-raised_at").first() or alert_raise(
            account_id=leg.account_id, kind=Alert.Kind.PROTECTION_SLOW, symbol=leg.symbol, dedupe_key=key,
            entry_id=entry_id, details=slow_details(entry_id, leg.needed_at, limit=slow),
            message=f"{leg.symbol} filled but unprotected for {seconds_text(waited)}: the venue has not "
                    f"acknowledged its exits within {seconds_text(slow)}")
        if flatten and alert is not None:
            _flatten_once(alert, broker=broker, waited=waited, limit=flatten_after)
    # a venue that took that long to answer, inside the fill's own transaction: its alert says how long. Only
    # one just raised: an old wait, long since protected, never flattens today's position because flattening was
    # switched on (or made shorter) later
    flattening = {account_id: row[1] for account_id, row in limits.items() if row[1] is not None}
    if flattening:
        for alert in Alert.objects.filter(account_id__in=flattening, kind=Alert.Kind.PROTECTION_SLOW,
                                          status__in=LIVE, raised_at__gte=now - AFTER_THE_FACT_WINDOW):
            took = alert.details.get("protected_after_seconds")
            if took is not None and float(took) > flattening[alert.account_id]:
                _flatten_once(alert, broker=broker, waited=float(took), limit=flattening[alert.account_id])


def _flatten_once(alert: Alert, *, broker: Broker, waited: float, limit) -> None:
    """Flatten the alert's position, once: the alert keeps that it was done (or tried and refused)."""
    if alert.details.get("flattened"):
        return
    alert.details["flattened"] = _flatten(alert.account_id, alert.symbol, broker=broker, waited=waited, limit=limit)
    alert.save(update_fields=["details"])


def _flatten(account_id: int, symbol: str, *, broker: Broker, waited: float, limit) -> str:
    """Close the position at market. Returns what happened: "sent" (the order's id), "flat" or "refused"."""
    if not Position.objects.filter(account_id=account_id, symbol=symbol).exclude(quantity=0).exists():
        return "flat"
    account = Account.objects.get(pk=account_id)
    reason = f"unprotected for {seconds_text(waited)} (flattened after {seconds_text(limit)})"
    try:
        with transaction.atomic():
            order = position_close(account=account, position_id=symbol, broker=broker, actor=ACTOR)
            audit_record(account_id=account_id, actor=ACTOR, action="position.flatten", target=symbol,
                         reason=reason, order=str(order.id))
    except DeskError as e:
        log.error("%s not flattened after waiting for its exits: %s", symbol, e.message)
        audit_record(account_id=account_id, actor=ACTOR, action="position.flatten", target=symbol, reason=reason,
                     result="failed", error=e.message)
        return "refused"
    return f"sent {order.id}"
