"""Risk alerts: raised once per cause, pushed through the outbox, shown until acknowledged,
resolved when the position is protected again or flat."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders import events
from orders.domain.errors import InvalidValue, NotFound
from orders.models import Alert
from orders.services.audit import audit_record

LIVE = (Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED)


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
            events.record_error(account_id, kind, message, alert.details)
            audit_record(account_id=account_id, actor="engine", action="alert.raise", target=str(alert.id),
                         kind=kind, symbol=symbol)
    except IntegrityError:
        return None
    return alert


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
            raise NotFound(f"Alert not found: {alert_id}", details={"resource": "alert", "id": alert_id})
        if updated:
            audit_record(account_id=alert.account_id, actor=actor, action="alert.acknowledge", target=alert_id,
                         comment=comment)
    return alert


def alerts_resolve(*, account_id: int, symbol: str, kind: str, resolution: str, entry_id=None) -> int:
    """Resolve the live alerts of this kind on ``symbol`` (only those of ``entry_id`` when given)."""
    alerts = Alert.objects.filter(account_id=account_id, symbol=symbol, kind=kind, status__in=LIVE)
    if entry_id is not None:
        alerts = alerts.filter(entry_id=entry_id)
    alerts = list(alerts)
    for alert in alerts:
        claimed = Alert.objects.filter(pk=alert.pk, status__in=LIVE).update(
            status=Alert.Status.RESOLVED, resolved_at=timezone.now(), resolution=resolution[:255])
        if claimed:
            audit_record(account_id=account_id, actor="engine", action="alert.resolve", target=str(alert.pk),
                         resolution=resolution)
    return len(alerts)
