"""Alert channels: an account's webhooks and e-mail addresses, and the engine's sending of what they are owed.

* **Made, changed, removed** through one call each, whatever the door (the admin, ``manage.py alert_channel``):
  the row, its audit record and a desk event (the risk view's channels card) in one transaction. A webhook's
  secret is generated here, returned once to show, stored encrypted (``notify/sealing.py``: the signature needs
  it back, so it cannot be a digest) and afterwards shown only as its hint.
* **Sent by the engine**, never by a web request: ``alert_deliveries_send`` takes the deliveries that are due
  (``services/alert_routing.py`` wrote them with the alert), claims each by compare-and-set, sends it with no
  transaction open, then logs the attempt. A failure is tried again after an exponential backoff with jitter
  (``domain/deliveries.retry_delay``) until ``DESK_ALERT_DELIVERY_ATTEMPTS``; a delivery whose claim outlived its
  sender (the engine died mid-send) is sent again: at least once, deduplicated by the receiver on its key.
* **A failing channel** (``DESK_ALERT_CHANNEL_FAILING_AFTER`` failed tries in a row since it last delivered, or a
  delivery given up) raises ``CHANNEL_FAILING`` on the desk (desk-only: never on /v1/ws), sent to the account's
  other channels; it resolves when the channel delivers again.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from orders import events, wire
from orders.domain.deliveries import retry_delay, secret_hint
from orders.domain.errors import InvalidValue
from orders.metrics import ALERT_DELIVERIES
from orders.models import Account, Alert, AlertChannel, AlertDelivery, AlertDeliveryAttempt
from orders.notify import Sent
from orders.notify.mail import email_send
from orders.notify.sealing import SecretUnreadable, secret_open, secret_seal
from orders.notify.webhook import webhook_post, webhook_url_refusal
from orders.services.alerts import alert_raise, alert_resolve_cause
from orders.services.audit import audit_record

log = logging.getLogger(__name__)
SECRET_PREFIX = "whsec_"
MAX_STEP = 9
MAX_RECIPIENTS = 20
SEND_BATCH = 50
LOG_ROWS = 20


# -- made, changed, removed ----------------------------------------------------------------------------------

def alert_channel_create(*, account: Account, name: str, kind: str, url: str = "", recipients: list[str] | None = None,
                         kinds: list[str] | None = None, step: int = 0, actor: str) -> tuple[AlertChannel, str]:
    """Add a channel. Returns it and, for a webhook, its new signing secret: shown now, never again."""
    fields = alert_channel_fields(account=account, name=name, kind=kind, url=url, recipients=recipients or [],
                                  kinds=kinds or [], step=step)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32) if kind == AlertChannel.Kind.WEBHOOK else ""
    with transaction.atomic():
        channel = AlertChannel.objects.create(account=account, **fields, created_at=timezone.now(),
                                              secret_encrypted=secret_seal(secret) if secret else "",
                                              secret_hint=secret_hint(secret) if secret else "")
        audit_record(account_id=account.pk, actor=actor, action="alert_channel.create", target=channel.name,
                     **_described(channel))
        events.record_desk(account.pk, "channels")
    return channel, secret


def alert_channel_update(*, channel: AlertChannel, actor: str, name: str, url: str, recipients: list[str],
                         kinds: list[str], step: int, enabled: bool) -> AlertChannel:
    """Change what a channel is (its kind and secret stay): the admin's change form."""
    fields = alert_channel_fields(account=channel.account, name=name, kind=channel.kind, url=url,
                                  recipients=recipients, kinds=kinds, step=step, exclude=channel.pk)
    with transaction.atomic():
        AlertChannel.objects.filter(pk=channel.pk).update(**fields, enabled=enabled)
        for key, value in {**fields, "enabled": enabled}.items():
            setattr(channel, key, value)
        audit_record(account_id=channel.account_id, actor=actor, action="alert_channel.update", target=channel.name,
                     **_described(channel))
        events.record_desk(channel.account_id, "channels")
    return channel


def alert_channel_remove(*, channel: AlertChannel, actor: str) -> None:
    """Remove a channel with its delivery log (the audit trail keeps what it was); its failure alert resolves."""
    with transaction.atomic():
        audit_record(account_id=channel.account_id, actor=actor, action="alert_channel.remove", target=channel.name,
                     **_described(channel))
        alert_resolve_cause(account_id=channel.account_id, dedupe_key=failing_key(channel),
                            resolution=f"alert channel {channel.name} removed")
        channel.delete()
        events.record_desk(channel.account_id, "channels")


def alert_channel_test(*, channel: AlertChannel, actor: str) -> Sent:
    """Send a sample alert through the channel now, signed like a real one (an operator's check, from the shell:
    not from a web request). Not a delivery: it changes no delivery and no failure count."""
    now = timezone.now()
    alert = Alert(account=channel.account, kind="TEST", symbol="", message=f"Test of alert channel {channel.name}",
                  details={"test": True}, status=Alert.Status.OPEN, raised_at=now, dedupe_key="")
    delivery = AlertDelivery(alert=alert, channel=channel, reason=AlertDelivery.Reason.RAISED, created_at=now,
                             updated_at=now)
    sent = _send(delivery)
    audit_record(account_id=channel.account_id, actor=actor, action="alert_channel.test", target=channel.name,
                 result="ok" if sent.delivered else "failed", http_status=sent.http_status, error=sent.error)
    return sent


def failing_key(channel: AlertChannel) -> str:
    return f"channel-failing:{channel.pk}"


def alert_channel_fields(*, account: Account, name: str, kind: str, url: str, recipients: list[str],
                         kinds: list[str], step, exclude: int | None = None) -> dict:
    """The channel's fields once each is acceptable, or ``InvalidValue`` naming the first that is not."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidValue("name", "give the channel a name of 1 to 100 characters", provided=name)
    if AlertChannel.objects.filter(account=account, name=name).exclude(pk=exclude).exists():
        raise InvalidValue("name", f"{account.name} has a channel named {name} already", provided=name)
    if kind not in AlertChannel.Kind.values:
        raise InvalidValue("kind", f"one of {', '.join(AlertChannel.Kind.values)}", provided=kind)
    url = (url or "").strip() if kind == AlertChannel.Kind.WEBHOOK else ""
    if kind == AlertChannel.Kind.WEBHOOK:
        _check_url(url)
    recipients = _checked_recipients(recipients) if kind == AlertChannel.Kind.EMAIL else []
    unknown = sorted(set(kinds) - set(Alert.Kind.values))
    if unknown:
        raise InvalidValue("kinds", f"alert kinds are {', '.join(Alert.Kind.values)}", provided=", ".join(unknown))
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        raise InvalidValue("step", f"0 (when raised) to {MAX_STEP} (escalation periods unacknowledged)",
                           provided=step)
    return {"name": name, "kind": kind, "url": url, "recipients": recipients, "kinds": sorted(set(kinds)),
            "step": step}


def _check_url(url: str) -> None:
    """An https:// address; http:// only to this machine (the receivers tests start) or with
    ``DESK_ALERT_WEBHOOK_ALLOW_HTTP``. Where its host points is checked when it is sent to (``notify/webhook.py``)."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise InvalidValue("url", "a webhook needs an https:// address", provided=url) from None
    if len(url) > 500:
        raise InvalidValue("url", "at most 500 characters", provided=url[:60] + "…")
    if webhook_url_refusal(url, allow_http=settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP):
        raise InvalidValue("url", "a webhook needs an https:// address (http:// only to this machine, unless "
                                  "DESK_ALERT_WEBHOOK_ALLOW_HTTP is set)", provided=url)


def _checked_recipients(recipients: list[str]) -> list[str]:
    addresses = [r.strip() for r in recipients if r and r.strip()]
    if not addresses or len(addresses) > MAX_RECIPIENTS:
        raise InvalidValue("recipients", f"an e-mail channel writes to 1 to {MAX_RECIPIENTS} addresses",
                           provided=", ".join(addresses))
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            raise InvalidValue("recipients", "not an e-mail address", provided=address) from None
    return addresses


def _described(channel: AlertChannel) -> dict:
    return {"kind": channel.kind, "to": channel_target(channel), "kinds": channel.kinds, "step": channel.step,
            "enabled": channel.enabled}


def channel_target(channel: AlertChannel) -> str:
    """Where a channel goes, as the desk shows it: a webhook's scheme and host (its path may hold a token), an
    e-mail channel's addresses."""
    if channel.kind == AlertChannel.Kind.WEBHOOK:
        parts = urlsplit(channel.url)
        return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") or parts.query else \
            f"{parts.scheme}://{parts.netloc}"
    return ", ".join(channel.recipients)


# -- sent by the engine -----------------------------------------------------------------------------------------

def alert_deliveries_send(*, account_ids: list[int], limit: int = SEND_BATCH,
                          stopping: Callable[[], bool] = lambda: False) -> int:
    """Send the deliveries of these accounts that are due: those never tried first (a new alert is not queued
    behind the retries of a receiver that is down), then retries, oldest first. A receiver that could not be
    reached (no connection, no answer in time) is not tried again in this batch, so a dead host costs the batch one
    timeout, not one per delivery: its other deliveries stay due for the next batch. Stops between two deliveries
    once ``stopping()``. Returns how many were tried."""
    now = timezone.now()
    due = list(AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now,
                                            channel__account_id__in=account_ids, channel__enabled=True)
               .select_related("alert", "channel", "channel__account")
               .annotate(is_retry=Case(When(attempts=0, then=Value(0)), default=Value(1)))
               .order_by("is_retry", "next_attempt_at", "pk")[:limit])
    tried, unreachable = 0, set()
    for delivery in due:
        if stopping():
            break
        if _route(delivery.channel) in unreachable or not _claim(delivery):
            continue
        tried += 1
        sent = _send(delivery)
        _record(delivery, sent)
        if sent.unreachable:
            unreachable.add(_route(delivery.channel))
    return tried


def _route(channel: AlertChannel) -> str:
    """What a delivery travels through: a webhook's own receiver; for every e-mail channel, the one SMTP server."""
    return f"webhook:{channel.pk}" if channel.kind == AlertChannel.Kind.WEBHOOK else "smtp"


def _claim(delivery: AlertDelivery) -> bool:
    """Take the delivery for this sender by compare-and-set on the state it was read in, and hold it (its next
    try moved past the longest a send can take) so no other sender takes it meanwhile; if this process dies
    sending, it is due again once the hold is over. False when it changed since it was read: another sender
    claimed it (or sent it), or its channel was removed."""
    hold = timedelta(seconds=2 * max(settings.DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT) + 30)
    return AlertDelivery.objects.filter(
        pk=delivery.pk, status=AlertDelivery.Status.PENDING, attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at).update(next_attempt_at=timezone.now() + hold) == 1


def _send(delivery: AlertDelivery) -> Sent:
    channel = delivery.channel
    payload = alert_payload(delivery)
    key = str(delivery.idempotency_key)
    if channel.kind == AlertChannel.Kind.WEBHOOK:
        try:
            secret = secret_open(channel.secret_encrypted)
        except SecretUnreadable as e:
            return Sent(False, 0.0, error=str(e))
        timeout = settings.DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS
        return webhook_post(url=channel.url, body=json.dumps(payload, separators=(",", ":")).encode(),
                            secret=secret, idempotency_key=key, event=payload["event"],
                            timeout=(min(3.05, timeout), timeout),
                            allow_http=settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP,
                            allow_private=settings.DESK_ALERT_WEBHOOK_ALLOW_PRIVATE)
    return email_send(recipients=channel.recipients, subject=email_subject(delivery), text=email_text(delivery),
                      idempotency_key=key, sender=settings.DEFAULT_FROM_EMAIL, timeout=settings.EMAIL_TIMEOUT)


def _record(delivery: AlertDelivery, sent: Sent) -> None:
    """Log the attempt and move the delivery on: delivered, tried again after a backoff, or given up."""
    now = timezone.now()
    attempts = delivery.attempts + 1
    if sent.delivered:
        status, next_at, outcome = AlertDelivery.Status.DELIVERED, None, "delivered"
    elif attempts >= settings.DESK_ALERT_DELIVERY_ATTEMPTS:
        status, next_at, outcome = AlertDelivery.Status.GIVEN_UP, None, "given_up"
    else:
        status, outcome = AlertDelivery.Status.PENDING, "failed"
        next_at = now + retry_delay(attempts, base=settings.DESK_ALERT_RETRY_BASE_SECONDS,
                                    cap=settings.DESK_ALERT_RETRY_MAX_SECONDS)
    with transaction.atomic():
        moved = AlertDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(
            status=status, attempts=attempts, next_attempt_at=next_at, updated_at=now,
            delivered_at=now if sent.delivered else None, last_error=sent.error[:255])
        if not moved:
            return                      # its channel was removed meanwhile
        AlertDeliveryAttempt.objects.create(
            delivery=delivery, at=now, http_status=sent.http_status, error=sent.error[:255],
            outcome=AlertDeliveryAttempt.Outcome.DELIVERED if sent.delivered else AlertDeliveryAttempt.Outcome.FAILED,
            duration_ms=int(sent.duration * 1000))
        events.record_desk(delivery.channel.account_id, "channels")
    ALERT_DELIVERIES.inc(channel_kind=delivery.channel.kind, outcome=outcome)
    if sent.delivered:
        _channel_delivered(delivery.channel)
    else:
        log.warning("alert %s not delivered to channel %s (try %d): %s", delivery.alert_id, delivery.channel.name,
                    attempts, sent.error)
        _channel_failed(delivery.channel, sent, now=now, given_up=status == AlertDelivery.Status.GIVEN_UP)


def _channel_delivered(channel: AlertChannel) -> None:
    with transaction.atomic():
        if AlertChannel.objects.filter(pk=channel.pk, failing_since__isnull=False).update(failing_since=None):
            alert_resolve_cause(account_id=channel.account_id, dedupe_key=failing_key(channel),
                                resolution=f"alert channel {channel.name} delivers again")
            events.record_desk(channel.account_id, "channels")


def _channel_failed(channel: AlertChannel, sent: Sent, *, now: datetime, given_up: bool) -> None:
    """Note the channel failing since its first failed try; raise CHANNEL_FAILING once it keeps failing."""
    AlertChannel.objects.filter(pk=channel.pk, failing_since__isnull=True).update(failing_since=now)
    since = AlertChannel.objects.filter(pk=channel.pk).values_list("failing_since", flat=True).first()
    if since is None:
        return                          # removed, or it delivered meanwhile
    failures = AlertDeliveryAttempt.objects.filter(delivery__channel_id=channel.pk, at__gte=since,
                                                   outcome=AlertDeliveryAttempt.Outcome.FAILED).count()
    if failures < settings.DESK_ALERT_CHANNEL_FAILING_AFTER and not given_up:
        return
    alert_raise(account_id=channel.account_id, kind=Alert.Kind.CHANNEL_FAILING, symbol="",
                dedupe_key=failing_key(channel),
                message=(f"Alert channel {channel.name} ({channel.kind}) is failing: {failures} tries failed since "
                         f"{since:%H:%M:%S} UTC, last: {sent.error or 'no answer'}"),
                details={"channel_id": channel.pk, "channel": channel.name, "channel_kind": channel.kind,
                         "failures": failures, "failing_since": wire.ts(since), "last_error": sent.error})


# -- what a channel is sent ----------------------------------------------------------------------------------------

def alert_payload(delivery: AlertDelivery) -> dict:
    """The webhook's JSON body: the alert as it stands, why it is sent (``alert.raised``/``alert.escalated``) and
    the delivery's key (also the ``Idempotency-Key`` header)."""
    alert = delivery.alert
    return {
        "event": f"alert.{delivery.reason}",
        "delivery_id": str(delivery.idempotency_key),
        "account": delivery.channel.account.name,
        "alert": {"id": str(alert.pk), "kind": alert.kind, "symbol": alert.symbol, "status": alert.status,
                  "message": alert.message, "details": alert.details, "raised_at": wire.ts(alert.raised_at),
                  "escalated_at": wire.ts(alert.escalated_at) if alert.escalated_at else None},
    }


def email_subject(delivery: AlertDelivery) -> str:
    alert = delivery.alert
    escalated = "ESCALATED, unacknowledged: " if delivery.reason == AlertDelivery.Reason.ESCALATED else ""
    about = f" {alert.symbol}" if alert.symbol else ""
    return f"[{delivery.channel.account.name}] {escalated}{alert.kind}{about}"


def email_text(delivery: AlertDelivery) -> str:
    alert = delivery.alert
    lines = [alert.message, "", f"Alert:    {alert.kind}{' ' + alert.symbol if alert.symbol else ''}",
             f"Account:  {delivery.channel.account.name}", f"Raised:   {alert.raised_at:%Y-%m-%d %H:%M:%S} UTC",
             f"Status:   {alert.status}"]
    if alert.escalated_at:
        lines.append(f"Escalated: {alert.escalated_at:%Y-%m-%d %H:%M:%S} UTC (nobody has acknowledged it)")
    lines += ["", "Acknowledge it on the desk's risk view.", "", f"Alert id: {alert.pk}",
              f"Delivery: {delivery.idempotency_key}"]
    return "\n".join(lines) + "\n"


# -- what the risk view shows ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelLine:
    channel: AlertChannel
    target: str
    routes: str
    when: str


def channel_overview(account: Account, *, rows: int = LOG_ROWS) -> dict:
    """The account's channels (where, which kinds, when, failing or not; a webhook's secret only by its hint) and
    its newest deliveries with every attempt's outcome."""
    channels = [ChannelLine(channel=c, target=channel_target(c), routes=", ".join(c.kinds) or "every kind",
                            when="when raised" if c.step == 0 else "when escalated" if c.step == 1 else
                            f"after {c.step} escalation periods unacknowledged")
                for c in AlertChannel.objects.filter(account=account)]
    deliveries = list(AlertDelivery.objects.filter(channel__account=account).select_related("alert", "channel")
                      .prefetch_related("attempt_log").order_by("-created_at", "-pk")[:rows])
    return {"channels": channels, "deliveries": deliveries}
