"""Alert channels: an alert reaches people away from the desk. A signed webhook or an e-mail, sent by the engine
when the alert is raised (step 0) and, while nobody acknowledges it, when it is escalated (step 1); retried with a
growing backoff until delivered, each retry with the same idempotency key; a channel that keeps failing raises
CHANNEL_FAILING on the desk, resolved when it delivers again. Receivers are real servers on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.domain.deliveries import IDEMPOTENCY_HEADER, is_valid_signature, webhook_signature
from orders.domain.errors import InvalidValue
from orders.engine import Courier, engine_tick
from orders.models import Alert, AlertChannel, AlertDelivery, AuditEvent, Event
from orders.notify.sealing import secret_open
from orders.selectors import live_alerts
from orders.services.alerts import WIRE_KINDS, alert_acknowledge, alert_raise
from orders.services.channels import alert_channel_create, alert_channel_remove
from tests.builders import run_engine
from tests.fakes.receivers import WebhookReceiver, free_port, start_smtp_server, start_webhook_receiver
from tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def channel_settings(settings):
    settings.DESK_ALERT_ESCALATE_MINUTES = 5
    settings.DESK_ALERT_RETRY_BASE_SECONDS = 5
    settings.DESK_ALERT_RETRY_MAX_SECONDS = 600
    settings.DESK_ALERT_DELIVERY_ATTEMPTS = 15
    settings.DESK_ALERT_CHANNEL_FAILING_AFTER = 3
    settings.DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS = 2


@pytest.fixture
def receivers():
    """Start webhook receivers on 127.0.0.1; each is shut down after the test."""
    servers = []

    def start(*, script: list[int] | None = None) -> WebhookReceiver:
        receiver = WebhookReceiver(script=list(script or []))
        servers.append(start_webhook_receiver(receiver))
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp(settings):
    controller, mailbox = start_smtp_server()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = controller.hostname, controller.port
    settings.DEFAULT_FROM_EMAIL = "desk@example.test"
    yield mailbox
    controller.stop()


def webhook(account, receiver: WebhookReceiver, *, name: str = "ops hook", step: int = 0,
            kinds: list[str] | None = None) -> AlertChannel:
    channel, secret = alert_channel_create(account=account, name=name, kind="webhook", url=receiver.url, step=step,
                                           kinds=kinds, actor="user:rita")
    receiver.secret = secret
    return channel


def unprotected(account, symbol: str = "AAPL") -> Alert:
    return alert_raise(account_id=account.pk, kind=Alert.Kind.POSITION_UNPROTECTED, symbol=symbol,
                       dedupe_key=f"unprotected:{account.pk}:{symbol}",
                       message=f"Exit order placement failed for {symbol} — position may be unprotected",
                       details={"symbol": symbol})


def retry_when_due(account, broker, clock, delivery: AlertDelivery) -> AlertDelivery:
    """Move the clock to the delivery's next try and let the engine tick."""
    delivery.refresh_from_db()
    clock.move_to(delivery.next_attempt_at)
    run_engine(account, broker)
    delivery.refresh_from_db()
    return delivery


# -- webhooks -----------------------------------------------------------------------------------------------------

def test_a_raised_alert_reaches_the_webhook_signed_with_the_channels_secret(account, broker, clock, receivers):
    receiver = receivers()
    channel = webhook(account, receiver)
    alert = unprotected(account)

    run_engine(account, broker)

    [request] = receiver.requests
    assert receiver.verifies(request)
    assert not is_valid_signature(secret="whsec_someone-else", timestamp=request.headers["X-Desk-Timestamp"],
                                  body=request.body, signature=request.headers["X-Desk-Signature"],
                                  now=timezone.now().timestamp())
    assert request.headers["X-Desk-Signature"] == webhook_signature(
        secret=receiver.secret, timestamp=request.headers["X-Desk-Timestamp"], body=request.body)
    delivery = AlertDelivery.objects.get(alert=alert, channel=channel)
    assert request.headers[IDEMPOTENCY_HEADER] == str(delivery.idempotency_key)
    assert request.headers["X-Desk-Event"] == "alert.raised"
    body = request.json
    assert body["event"] == "alert.raised" and body["account"] == "alice"
    assert body["alert"]["kind"] == "POSITION_UNPROTECTED" and body["alert"]["symbol"] == "AAPL"
    assert body["alert"]["message"] == "Exit order placement failed for AAPL — position may be unprotected"
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert delivery.attempt_log.get().http_status == 200


def test_a_receiver_answering_500_three_times_gets_the_alert_on_the_fourth_try_exactly_once(
        account, broker, clock, receivers):
    receiver = receivers(script=[500, 500, 500])
    webhook(account, receiver)
    unprotected(account)

    run_engine(account, broker)
    delivery = AlertDelivery.objects.get()
    for _ in range(3):
        assert delivery.status == "pending"
        delivery = retry_when_due(account, broker, clock, delivery)

    assert [r.answered for r in receiver.requests] == [500, 500, 500, 200]
    assert {r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests} == {str(delivery.idempotency_key)}
    assert list(receiver.handled) == [str(delivery.idempotency_key)]          # handled once, by its key
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 4, "")
    log = list(delivery.attempt_log.order_by("at", "pk").values_list("outcome", "http_status"))
    assert log == [("failed", 500), ("failed", 500), ("failed", 500), ("delivered", 200)]
    run_engine(account, broker, seconds=3600, clock=clock)
    assert len(receiver.requests) == 4                                      # never sent again


def test_a_failed_delivery_waits_for_its_backoff_and_each_wait_is_longer(account, broker, clock, receivers):
    receiver = receivers(script=[503] * 6)
    webhook(account, receiver)
    unprotected(account)
    run_engine(account, broker)
    delivery = AlertDelivery.objects.get()

    run_engine(account, broker, seconds=1, clock=clock)          # not due yet: 5 s ± 25 % after the first try
    assert len(receiver.requests) == 1

    waits = []
    for _ in range(5):
        delivery.refresh_from_db()
        waits.append((delivery.next_attempt_at - delivery.attempt_log.first().at).total_seconds())
        delivery = retry_when_due(account, broker, clock, delivery)
    assert 3.75 <= waits[0] <= 6.25
    assert all(later >= 1.2 * earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert delivery.last_error == "HTTP 503: receiver is down"


def test_a_delivery_is_given_up_after_the_set_tries(account, broker, clock, receivers, settings, client):
    settings.DESK_ALERT_DELIVERY_ATTEMPTS = 2
    receiver = receivers(script=[500, 500, 500])
    webhook(account, receiver)
    unprotected(account)
    before = scrape(client)

    run_engine(account, broker)
    delivery = retry_when_due(account, broker, clock, AlertDelivery.objects.get())

    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("given_up", 2, None)
    after = scrape(client)
    name = "desk_alert_deliveries_total"
    for outcome in ("failed", "given_up"):
        assert value(after, name, channel_kind="webhook", outcome=outcome) == \
            value(before, name, channel_kind="webhook", outcome=outcome) + 1


def test_an_unreachable_receiver_is_retried_with_the_reason(account, broker, clock):
    channel, _ = alert_channel_create(account=account, name="gone", kind="webhook",
                                      url=f"http://127.0.0.1:{free_port()}/hook", actor="user:rita")
    unprotected(account)
    run_engine(account, broker)

    delivery = AlertDelivery.objects.get(channel=channel)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "could not connect to the receiver"
    assert delivery.next_attempt_at > timezone.now()


@pytest.mark.django_db(transaction=True)
def test_the_engine_loop_sends_on_its_courier_without_waiting_for_a_slow_receiver(account, broker, receivers):
    receiver = receivers()
    receiver.delay = 1.5                                # well inside the webhook's 2 s timeout: it is delivered
    webhook(account, receiver)
    unprotected(account)
    courier = Courier()

    started = time.monotonic()
    engine_tick(accounts=[account], broker=broker, courier=courier)
    took = time.monotonic() - started
    courier.stop()

    assert took < 1.2                                   # the tick did not wait for the receiver's answer
    assert len(receiver.requests) == 1 and AlertDelivery.objects.get().status == "delivered"


# -- e-mail -------------------------------------------------------------------------------------------------------

def test_an_email_channel_delivers_the_alert_text_through_smtp(account, broker, clock, smtp):
    alert_channel_create(account=account, name="on-call", kind="email", recipients=["oncall@example.test"],
                         actor="user:rita")
    alert = unprotected(account)

    run_engine(account, broker)

    [message] = smtp.messages
    assert smtp.envelopes == [("desk@example.test", ["oncall@example.test"])]
    assert message["Subject"] == "[alice] POSITION_UNPROTECTED AAPL"
    text = message.get_content()
    assert "Exit order placement failed for AAPL — position may be unprotected" in text
    assert f"Alert id: {alert.pk}" in text
    delivery = AlertDelivery.objects.get()
    assert message["Message-ID"] == f"<{delivery.idempotency_key}@tradingdesk>"
    assert delivery.status == "delivered"


def test_an_smtp_server_that_is_down_is_logged_and_retried(account, broker, clock, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    alert_channel_create(account=account, name="on-call", kind="email", recipients=["oncall@example.test"],
                         actor="user:rita")
    unprotected(account)

    run_engine(account, broker)

    delivery = AlertDelivery.objects.get()
    assert delivery.status == "pending" and delivery.last_error.startswith("ConnectionRefusedError")
    assert delivery.attempt_log.get().outcome == "failed"


# -- routing and escalation -----------------------------------------------------------------------------------

def test_an_unacknowledged_alert_goes_to_the_first_channel_then_on_escalation_to_the_second(
        account, broker, clock, receivers, smtp):
    first = receivers()
    webhook(account, first, step=0)
    alert_channel_create(account=account, name="risk manager", kind="email", recipients=["head@example.test"],
                         step=1, actor="user:rita")
    unprotected(account)

    run_engine(account, broker)
    assert [r.json["event"] for r in first.requests] == ["alert.raised"]
    assert smtp.messages == []

    run_engine(account, broker, seconds=5 * 60, clock=clock)

    [message] = smtp.messages
    assert message["Subject"] == "[alice] ESCALATED, unacknowledged: POSITION_UNPROTECTED AAPL"
    assert "nobody has acknowledged it" in message.get_content()
    assert len(first.requests) == 1                                  # the first step is not sent it again


def test_an_alert_acknowledged_before_it_escalates_never_reaches_the_next_step(account, broker, clock, receivers):
    first, second = receivers(), receivers()
    webhook(account, first, name="desk hook", step=0)
    webhook(account, second, name="manager hook", step=1)
    alert = unprotected(account)
    run_engine(account, broker)

    alert_acknowledge(alert_id=str(alert.pk), actor="user:rita", comment="stop placed by hand")
    run_engine(account, broker, seconds=30 * 60, clock=clock)

    assert len(first.requests) == 1 and second.requests == []


def test_a_later_step_is_sent_after_as_many_escalation_periods(account, broker, clock, receivers):
    second, third = receivers(), receivers()
    webhook(account, second, name="manager", step=1)
    webhook(account, third, name="head of desk", step=2)
    unprotected(account)

    run_engine(account, broker, seconds=5 * 60, clock=clock)
    assert len(second.requests) == 1 and third.requests == []

    run_engine(account, broker, seconds=5 * 60, clock=clock)
    assert [r.json["event"] for r in third.requests] == ["alert.escalated"]


def test_a_channel_gets_only_the_kinds_routed_to_it(account, broker, clock, receivers):
    losses, everything = receivers(), receivers()
    webhook(account, losses, name="losses", kinds=["LOSS_LIMIT"])
    webhook(account, everything, name="everything")
    unprotected(account)

    run_engine(account, broker)

    assert losses.requests == [] and len(everything.requests) == 1


# -- a failing channel --------------------------------------------------------------------------------------------

def test_a_channel_that_keeps_failing_raises_its_alert_on_the_desk_until_it_delivers_again(
        account, broker, clock, receivers):
    broken, other = receivers(script=[500, 500, 500]), receivers()
    channel = webhook(account, broken, name="broken hook")
    webhook(account, other, name="other hook", kinds=["CHANNEL_FAILING"])
    unprotected(account)
    run_engine(account, broker)
    delivery = AlertDelivery.objects.get(channel=channel)
    delivery = retry_when_due(account, broker, clock, delivery)
    assert not Alert.objects.filter(kind="CHANNEL_FAILING").exists()          # two failures: not yet

    retry_when_due(account, broker, clock, delivery)

    [failing] = [a for a in live_alerts(account_id=account.pk) if a.kind == "CHANNEL_FAILING"]
    assert failing.message.startswith("Alert channel broken hook (webhook) is failing: 3 tries failed since ")
    assert failing.message.endswith("last: HTTP 500: receiver is down")
    assert "CHANNEL_FAILING" not in WIRE_KINDS                                 # the desk's own, never on /v1/ws
    assert not Event.objects.filter(kind="error", payload__code="CHANNEL_FAILING").exists()
    assert Event.objects.filter(kind="desk", payload__kind="CHANNEL_FAILING").exists()
    run_engine(account, broker)
    assert [r.json["alert"]["kind"] for r in other.requests] == ["CHANNEL_FAILING"]    # told elsewhere
    assert not AlertDelivery.objects.filter(alert=failing, channel=channel).exists()  # never to itself

    retry_when_due(account, broker, clock, delivery)                           # it answers 200 now

    failing.refresh_from_db()
    assert failing.status == "RESOLVED" and failing.resolution == "alert channel broken hook delivers again"
    assert AlertChannel.objects.get(pk=channel.pk).failing_since is None


# -- made, kept, removed ------------------------------------------------------------------------------------------

def test_a_webhook_secret_is_returned_once_and_stored_encrypted(account):
    channel, secret = alert_channel_create(account=account, name="hook", kind="webhook",
                                           url="https://hooks.example.test/desk?token=abc", actor="user:rita")

    assert secret.startswith("whsec_") and len(secret) > 40
    stored = AlertChannel.objects.get(pk=channel.pk)
    assert secret not in stored.secret_encrypted and stored.secret_encrypted
    assert secret_open(stored.secret_encrypted) == secret
    assert stored.secret_hint == f"…{secret[-4:]}"
    audit = AuditEvent.objects.get(action="alert_channel.create")
    assert secret not in str(audit.details) and "token" not in str(audit.details)


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "webhook", "url": "ftp://example.test/x"}, "Invalid value for url: a webhook needs an http"),
    ({"kind": "webhook", "url": ""}, "Invalid value for url"),
    ({"kind": "email", "recipients": ["not an address"]}, "Invalid value for recipients: not an e-mail address"),
    ({"kind": "email", "recipients": []}, "Invalid value for recipients: an e-mail channel writes to 1 to 20"),
    ({"kind": "sms"}, "Invalid value for kind: one of webhook, email"),
    ({"kind": "email", "recipients": ["a@example.test"], "kinds": ["FIRE"]}, "Invalid value for kinds"),
    ({"kind": "email", "recipients": ["a@example.test"], "step": 10}, "Invalid value for step"),
])
def test_a_channel_that_cannot_work_is_refused_with_the_reason(account, fields, message):
    with pytest.raises(InvalidValue) as refused:
        alert_channel_create(account=account, name="x", actor="user:rita", **fields)
    assert refused.value.message.startswith(message)
    assert not AlertChannel.objects.exists()


def test_a_second_channel_of_the_same_name_is_refused(account):
    alert_channel_create(account=account, name="hook", kind="email", recipients=["a@example.test"], actor="x")
    with pytest.raises(InvalidValue, match="alice has a channel named hook already"):
        alert_channel_create(account=account, name="hook", kind="email", recipients=["b@example.test"], actor="x")


def test_removing_a_failing_channel_resolves_its_alert(account, broker, clock, receivers, settings):
    settings.DESK_ALERT_CHANNEL_FAILING_AFTER = 1
    receiver = receivers(script=[500])
    channel = webhook(account, receiver)
    unprotected(account)
    run_engine(account, broker)
    failing = Alert.objects.get(kind="CHANNEL_FAILING")

    alert_channel_remove(channel=channel, actor="user:rita")

    failing.refresh_from_db()
    assert failing.status == "RESOLVED" and not AlertDelivery.objects.exists()
    assert AuditEvent.objects.filter(action="alert_channel.remove", target="ops hook").exists()
    run_engine(account, broker, seconds=timedelta(hours=1).total_seconds(), clock=clock)
    assert len(receiver.requests) == 1
