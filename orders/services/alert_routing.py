"""Which of an account's alert channels an alert is owed to, written as ``AlertDelivery`` rows in the same
transaction as the alert's change (raised, escalated), so no alert is raised without its deliveries and none is
owed twice (one per alert, channel and reason). The engine sends them (``services/channels.py``).

Channels are routed by kind (a channel's ``kinds``, empty for every kind) and by ``step``: 0 as the alert is
raised, 1 when it is escalated for going unacknowledged ``DESK_ALERT_ESCALATE_MINUTES``, N when it is still
unacknowledged N such periods after it was raised. An alert acknowledged before a step is never sent to it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from orders import events
from orders.models import Alert, AlertChannel, AlertDelivery

FAILING_KIND = Alert.Kind.CHANNEL_FAILING


def is_routed(channel: AlertChannel, alert: Alert) -> bool:
    """Whether ``channel`` takes ``alert``'s kind; a channel is never told of its own failure (it would fail)."""
    if alert.kind == FAILING_KIND and alert.details.get("channel_id") == channel.pk:
        return False
    return not channel.kinds or alert.kind in channel.kinds


def alert_route(*, alert: Alert, reason: str, step: int, now: datetime) -> list[AlertDelivery]:
    """Owe ``alert`` to each enabled channel of its account at ``step`` that takes its kind. Call it inside the
    transaction that raises or escalates the alert."""
    channels = AlertChannel.objects.filter(account_id=alert.account_id, step=step, enabled=True)
    owed = [AlertDelivery(alert=alert, channel=channel, reason=reason, next_attempt_at=now, created_at=now,
                          updated_at=now)
            for channel in channels if is_routed(channel, alert)]
    if owed:
        AlertDelivery.objects.bulk_create(owed, ignore_conflicts=True)
        events.record_desk(alert.account_id, "channels")          # the risk view's channels card lists them
    return owed


def alerts_route_later_steps(*, account_ids: list[int], now: datetime) -> int:
    """Channels of step 2 and above: owe each still-unacknowledged escalated alert to them once it has waited
    ``step`` escalation periods. Returns how many deliveries were created."""
    minutes = settings.DESK_ALERT_ESCALATE_MINUTES
    if not minutes:
        return 0
    created = 0
    for channel in AlertChannel.objects.filter(account_id__in=account_ids, step__gte=2, enabled=True):
        waiting = (Alert.objects.filter(account_id=channel.account_id, status=Alert.Status.OPEN,
                                        escalated_at__isnull=False,
                                        raised_at__lte=now - timedelta(minutes=minutes * channel.step))
                   .exclude(deliveries__channel=channel, deliveries__reason=AlertDelivery.Reason.ESCALATED))
        for alert in waiting:
            created += len(alert_route_one(alert=alert, channel=channel, now=now))
    return created


def alert_route_one(*, alert: Alert, channel: AlertChannel, now: datetime) -> list[AlertDelivery]:
    if not is_routed(channel, alert):
        return []
    delivery, made = AlertDelivery.objects.get_or_create(
        alert=alert, channel=channel, reason=AlertDelivery.Reason.ESCALATED,
        defaults={"next_attempt_at": now, "created_at": now, "updated_at": now})
    if made:
        events.record_desk(alert.account_id, "channels")
    return [delivery] if made else []
