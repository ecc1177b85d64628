"""Risk alerts: raised once per cause, pushed through the outbox, shown until acknowledged, raised
again as escalated when nobody has acknowledged them in ``DESK_ALERT_ESCALATE_MINUTES``, resolved when
the position is protected again or flat. Raising and escalating an alert also owes it to the account's alert channels
(``services/alert_routing.py``) in the same transaction."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from orders import events
from orders.domain.errors import AlertNotFound, InvalidValue
from orders.metrics import OCO_DOUBLE_EXITS
from orders.models import Alert, AlertDelivery
from orders.services.alert_routing import alert_route
from orders.services.audit import audit_record

log = logging.getLogger(__name__)

LIVE = (Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED)
# the alerts the protocol's stream carries as ``error`` frames (PROTOCOL.md, WsErrorCode); the desk's own kinds
# (POSITION_MISMATCH) are pushed to the desk and the risk view only, so a strict /v1/ws client never meets them
WIRE_KINDS = frozenset({Alert.Kind.POSITION_UNPROTECTED, Alert.Kind.OCO_DOUBLE_EXIT})


def alert_raise(*, account_id: int, kind: str, symbol: str, dedupe_key: str, message: str, details: dict,
                entry_id=None) -> Alert | None:
    """Store and push an alert, unless the same cause already has a live one."""
    if Alert.objects.filter(dedupe_key=dedupe_key, status__in=LIVE).exists():
        return None
    try:
        with transaction.atomic():
            alert = Alert.objects.create(account_id=account_id, kind=kind, symbol=symbol, dedupe_key=dedupe_key,
                                         message=message[:255], details={**details, "alert_id": None},
                                         entry_id=entry_id, raised_at=timezone.now())
            alert.details["alert_id"] = str(alert.id)
            alert.save(update_fields=["details"])
            if kind in WIRE_KINDS:
                events.record_error(account_id, kind, message, alert.details)
            else:
                events.record_desk(account_id, "alert", alert_id=str(alert.pk), status=alert.status, kind=kind)
            audit_record(account_id=account_id, actor="engine", action="alert.raise", target=str(alert.id),
                         kind=kind, symbol=symbol)
            alert_route(alert=alert, reason=AlertDelivery.Reason.RAISED, step=0, now=alert.raised_at)
            if kind == Alert.Kind.OCO_DOUBLE_EXIT:
                events.after_commit(_count_oco_double_exit, account_id)
    except IntegrityError:
        return None
    return alert


def _count_oco_double_exit(platform: str) -> None:
    OCO_DOUBLE_EXITS.inc(platform=platform)


def alert_acknowledge(*, alert_id: str, actor: str, comment: str) -> Alert:
    comment = comment.strip()
    if not comment:
        raise InvalidValue("comment", "say what was done about the alert", provided="")
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert_id, status=Alert.Status.OPEN).update(
            status=Alert.Status.ACKNOWLEDGED, acknowledged_by=actor, acknowledged_at=timezone.now(),
            ack_comment=comment)
        alert = Alert.objects.filter(pk=alert_id).first()
        if alert is None:
            raise AlertNotFound(alert_id)
        if updated:
            audit_record(account_id=alert.account_id, actor=actor, action="alert.acknowledge", target=alert_id,
                         comment=comment)
            events.record_desk(alert.account_id, "alert", alert_id=str(alert.pk), status=alert.status)
    return alert


def alerts_resolve(*, account_id: int, symbol: str, kind: str, resolution: str, entry_id=None) -> int:
    """Resolve the live alerts of this kind on ``symbol`` (only those of ``entry_id`` when given)."""
    alerts = Alert.objects.filter(account_id=account_id, symbol=symbol, kind=kind, status__in=LIVE)
    if entry_id is not None:
        alerts = alerts.filter(entry_id=entry_id)
    return _resolve(account_id=account_id, alerts=list(alerts), resolution=resolution)


def alert_resolve_cause(*, account_id: int, dedupe_key: str, resolution: str) -> int:
    """Resolve the live alert of one cause (its ``dedupe_key``), e.g. one failing alert channel of several."""
    alerts = list(Alert.objects.filter(account_id=account_id, dedupe_key=dedupe_key, status__in=LIVE))
    return _resolve(account_id=account_id, alerts=alerts, resolution=resolution)


def _resolve(*, account_id: int, alerts: list[Alert], resolution: str) -> int:
    for alert in alerts:
        claimed = Alert.objects.filter(pk=alert.pk, status__in=LIVE).update(
            status=Alert.Status.RESOLVED, resolved_at=timezone.now(), resolution=resolution[:255])
        if claimed:
            audit_record(account_id=account_id, actor="engine", action="alert.resolve", target=str(alert.pk),
                         resolution=resolution)
            events.record_desk(account_id, "alert", alert_id=str(alert.pk), status=Alert.Status.RESOLVED)
    return len(alerts)


def alerts_escalate(*, account_ids: list[int], now: datetime) -> list[Alert]:
    """Raise again, once, every alert of these accounts still OPEN ``DESK_ALERT_ESCALATE_MINUTES`` after it was
    raised: pushed to the desk and to stream clients under its own code with ``escalated`` in its details,
    audited, and logged at CRITICAL for whatever pages the desk's on-call. Returns the alerts escalated."""
    minutes = settings.DESK_ALERT_ESCALATE_MINUTES
    if not minutes:
        return []
    due = Alert.objects.filter(account_id__in=account_ids, status=Alert.Status.OPEN, escalated_at__isnull=True,
                               raised_at__lte=now - timedelta(minutes=minutes))
    escalated = []
    for alert in due:
        with transaction.atomic():
            claimed = Alert.objects.filter(pk=alert.pk, status=Alert.Status.OPEN, escalated_at__isnull=True).update(
                escalated_at=now)
            if not claimed:
                continue
            alert.escalated_at = now
            waited = int((now - alert.raised_at).total_seconds())
            message = f"{alert.message} — unacknowledged for {waited // 60} min"
            if alert.kind in WIRE_KINDS:
                events.record_error(alert.account_id, alert.kind, message,
                                    {**alert.details, "escalated": True, "unacknowledged_seconds": waited})
            else:
                events.record_desk(alert.account_id, "alert", alert_id=str(alert.pk), status=alert.status,
                                   kind=alert.kind, escalated=True)
            audit_record(account_id=alert.account_id, actor="engine", action="alert.escalate", target=str(alert.pk),
                         kind=alert.kind, symbol=alert.symbol, unacknowledged_seconds=waited)
            alert_route(alert=alert, reason=AlertDelivery.Reason.ESCALATED, step=1, now=now)
        log.critical("alert %s %s %s escalated: unacknowledged for %d s", alert.pk, alert.kind, alert.symbol, waited)
        escalated.append(alert)
    return escalated
