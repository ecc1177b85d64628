"""Alert channels: an alert reaches people away from the desk. A signed webhook or an e-mail, sent by the engine
when the alert is raised (step 0) and, while nobody acknowledges it, when it is escalated (step 1); retried with a
growing backoff until delivered, each retry with the same idempotency key; a channel that keeps failing raises
CHANNEL_FAILING on the desk, resolved when it delivers again. Receivers are real servers on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connections
from django.utils import timezone

from orders.domain.deliveries import IDEMPOTENCY_HEADER, is_valid_signature, webhook_signature
from orders.domain.errors import InvalidValue
from orders.engine import Courier, engine_tick
from orders.models import Alert, AlertChannel, AlertDelivery, AuditEvent, Event
from orders.notify.sealing import secret_open
from orders.selectors import live_alerts
from orders.services.alerts import WIRE_KINDS, alert_acknowledge, alert_raise
from orders.services.channels import alert_channel_create, alert_channel_remove, alert_deliveries_send
from tests.builders import run_engine
from tests.fakes.receivers import (
    WebhookReceiver,
    free_port,
    start_silent_receiver,
    start_smtp_server,
    start_webhook_receiver,
)
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


def loss_limit(account) -> Alert:
    return alert_raise(account_id=account.pk, kind=Alert.Kind.LOSS_LIMIT, symbol="", dedupe_key="loss:day",
                       message="The day's loss passed its limit", details={})


def wait_until(condition: Callable[[], object], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def delivered(channel: AlertChannel) -> bool:
    return AlertDelivery.objects.filter(channel=channel, status="delivered").exists()


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
    assert delivery.last_error == "HTTP 503 Service Unavailable"


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
    wait_until(lambda: AlertDelivery.objects.get().status == "delivered")
    courier.stop()

    assert took < 1.2                                   # the tick did not wait for the receiver's answer
    assert len(receiver.requests) == 1


# -- a receiver that hangs holds up no other ---------------------------------------------------------------------

@pytest.fixture
def hanging_url():
    """The address of a receiver that takes the connection and never answers."""
    listeners = []

    def start() -> str:
        listeners.append(start_silent_receiver())
        return f"http://127.0.0.1:{listeners[-1].getsockname()[1]}/hooks/desk"

    yield start
    for listener in listeners:
        listener.close()


def hanging_with_retries(account, url: str, *, due_since: timedelta) -> AlertChannel:
    """A channel for POSITION_UNPROTECTED whose receiver hangs, owed four alerts it failed once, due ``due_since``."""
    channel, _ = alert_channel_create(account=account, name="hanging hook", kind="webhook", url=url,
                                      kinds=["POSITION_UNPROTECTED"], actor="user:rita")
    for symbol in ("AAPL", "MSFT", "NVDA", "TSLA"):
        unprotected(account, symbol)
    AlertDelivery.objects.filter(channel=channel).update(attempts=1, next_attempt_at=timezone.now() - due_since)
    return channel


def test_a_hanging_receiver_costs_a_batch_one_timeout_not_one_per_delivery(account, receivers, hanging_url,
                                                                           settings):
    settings.DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS = 1
    hanging = hanging_with_retries(account, hanging_url(), due_since=timedelta(minutes=2))
    healthy = receivers()
    desk_hook = webhook(account, healthy, name="desk hook", kinds=["LOSS_LIMIT"])
    loss_limit(account)
    AlertDelivery.objects.filter(channel=desk_hook).update(           # a retry too, behind the hanging ones
        attempts=1, next_attempt_at=timezone.now() - timedelta(minutes=1))

    started = time.monotonic()
    tried = alert_deliveries_send(account_ids=[account.pk])
    took = time.monotonic() - started

    assert len(healthy.requests) == 1 and delivered(desk_hook)
    assert took < 1.8                                             # one timeout of 1 s, not four
    assert tried == 2
    hanging_deliveries = AlertDelivery.objects.filter(channel=hanging)
    assert sorted(d.attempts for d in hanging_deliveries) == [1, 1, 1, 2]     # the rest wait for the next batch
    assert {d.last_error for d in hanging_deliveries if d.attempts == 2} == {"no answer within 1 s"}
    assert all(d.next_attempt_at <= timezone.now() for d in hanging_deliveries if d.attempts == 1)


def test_a_new_alert_goes_out_before_the_retries_of_a_hanging_receiver(account, receivers, hanging_url, settings):
    settings.DESK_ALERT_WEBHOOK_TIMEOUT_SECONDS = 1
    hanging_with_retries(account, hanging_url(), due_since=timedelta(minutes=2))
    healthy = receivers()
    webhook(account, healthy, name="desk hook", kinds=["LOSS_LIMIT"])
    loss_limit(account)                                           # never tried, due now

    started = time.monotonic()
    alert_deliveries_send(account_ids=[account.pk])

    [request] = healthy.requests
    assert request.at - started < 0.8                             # before the hanging receiver's first timeout
    assert request.json["alert"]["kind"] == "LOSS_LIMIT"


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_each_delivery_once(account, receivers):
    receiver = receivers()
    receiver.delay = 1.5                            # the first sender is busy with AAPL while the second starts
    webhook(account, receiver)
    unprotected(account, "AAPL")
    unprotected(account, "MSFT")

    def sender() -> None:
        try:
            alert_deliveries_send(account_ids=[account.pk])
        finally:
            connections.close_all()

    first, second = threading.Thread(target=sender), threading.Thread(target=sender)
    first.start()
    time.sleep(0.5)
    second.start()                                  # takes MSFT while the first still sends AAPL
    first.join(10)
    second.join(10)

    assert sorted(r.json["alert"]["symbol"] for r in receiver.requests) == ["AAPL", "MSFT"]
    assert list(AlertDelivery.objects.values_list("status", "attempts").distinct()) == [("delivered", 1)]


# -- the engine's courier ----------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_courier_whose_clean_up_fails_logs_it_and_still_delivers_on_the_next_wake(account, receivers, monkeypatch,
                                                                                    caplog):
    receiver = receivers()
    channel = webhook(account, receiver)
    cleanups = []

    def close_old_connections() -> None:
        cleanups.append(1)
        if len(cleanups) == 1:
            raise OperationalError("the connection was already gone")
        connections.close_all()

    monkeypatch.setattr("orders.engine.close_old_connections", close_old_connections)
    courier = Courier()
    courier.wake([account.pk])                      # nothing due; closing its connection afterwards fails
    wait_until(lambda: cleanups)
    unprotected(account)
    try:
        wait_until(lambda: courier.wake([account.pk]) or delivered(channel))       # each tick wakes it
    finally:
        courier.stop()

    assert len(receiver.requests) == 1
    assert "engine: sending alert deliveries failed" in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_courier_thread_that_died_is_started_again_by_the_next_wake(account, receivers, monkeypatch, caplog):
    receiver = receivers()
    channel = webhook(account, receiver)
    unprotected(account)
    sends = []

    def send_or_die(**arguments) -> int:
        sends.append(1)
        if len(sends) == 1:
            raise SystemExit("ended from within")   # not an Exception: it ends the thread
        return alert_deliveries_send(**arguments)

    monkeypatch.setattr("orders.engine.alert_deliveries_send", send_or_die)
    courier = Courier()
    courier.wake([account.pk])
    wait_until(lambda: sends)
    try:
        with caplog.at_level(logging.ERROR, logger="orders.engine"):
            wait_until(lambda: courier.wake([account.pk]) or delivered(channel))
    finally:
        courier.stop()

    assert len(receiver.requests) == 1
    assert "engine: the alert courier's thread had stopped; starting a new one" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_stopping_the_courier_sends_no_new_batch(account, receivers):
    receiver = receivers()
    receiver.delay = 1.5
    webhook(account, receiver)
    courier = Courier()
    courier.wake([account.pk])                      # nothing due yet: it waits for the next tick
    time.sleep(0.5)
    unprotected(account)

    started = time.monotonic()
    courier.stop()

    assert time.monotonic() - started < 0.5
    assert receiver.requests == [] and AlertDelivery.objects.get().status == "pending"      # due for the next engine


@pytest.mark.django_db(transaction=True)
def test_stopping_the_courier_ends_its_batch_after_the_delivery_under_way(account, receivers):
    receiver = receivers()
    receiver.delay = 1.0
    webhook(account, receiver)
    for symbol in ("AAPL", "MSFT", "NVDA"):
        unprotected(account, symbol)
    courier = Courier()
    courier.wake([account.pk])
    time.sleep(0.3)                                 # the first POST is under way

    started = time.monotonic()
    courier.stop()

    assert time.monotonic() - started < 1.5         # not the three seconds of the whole batch
    assert len(receiver.requests) == 1
    assert sorted(AlertDelivery.objects.values_list("status", flat=True)) == ["delivered", "pending", "pending"]


@pytest.mark.django_db(transaction=True)
def test_an_engine_run_once_sends_its_alerts_before_it_exits(account, receivers, monkeypatch):
    monkeypatch.setattr("orders.management.commands.run_engine.signal.signal", lambda *args: None)
    receiver = receivers()
    channel = webhook(account, receiver)
    unprotected(account)

    call_command("run_engine", "--once", stdout=StringIO())

    assert len(receiver.requests) == 1 and delivered(channel)


# -- where a webhook may go ----------------------------------------------------------------------------------------

@pytest.fixture
def dns(monkeypatch):
    """Names that resolve to the given address, as a DNS server would answer; any other name resolves as usual."""
    names: dict[str, str] = {}
    resolve = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        return resolve(names.get(host, host), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize("url", ["http://hooks.example.test/desk", "http://10.1.2.3/desk"])
def test_a_plain_http_webhook_off_this_machine_is_refused(account, url):
    with pytest.raises(InvalidValue) as refused:
        alert_channel_create(account=account, name="plain", kind="webhook", url=url, actor="user:rita")

    assert refused.value.message.startswith("Invalid value for url: a webhook needs an https:// address (http:// "
                                            "only to this machine, unless DESK_ALERT_WEBHOOK_ALLOW_HTTP is set)")
    assert not AlertChannel.objects.exists()


@pytest.mark.parametrize("url", ["http://localhost:9/desk", "http://127.0.0.1:9/desk", "http://[::1]:9/desk",
                                 "https://hooks.example.test/desk"])
def test_https_anywhere_and_http_to_this_machine_are_accepted(account, url):
    channel, _ = alert_channel_create(account=account, name="ok", kind="webhook", url=url, actor="user:rita")
    assert channel.url == url


def test_plain_http_off_this_machine_is_accepted_when_the_operator_allows_it(account, settings):
    settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP = True
    channel, _ = alert_channel_create(account=account, name="plain", kind="webhook",
                                      url="http://hooks.example.test/desk", actor="user:rita")
    assert channel.url == "http://hooks.example.test/desk"


def test_a_plain_http_channel_kept_from_before_is_refused_when_sent_to(account, settings):
    settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP = True
    channel, _ = alert_channel_create(account=account, name="plain", kind="webhook",
                                      url="http://hooks.example.test/desk", actor="user:rita")
    settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP = False
    unprotected(account)

    alert_deliveries_send(account_ids=[account.pk])

    delivery = AlertDelivery.objects.get(channel=channel)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("refused: a webhook needs an https:// address")


@pytest.mark.parametrize(("url", "allow_private"), [
    ("https://169.254.169.254/latest/meta-data/", False),          # a cloud's metadata service
    ("https://169.254.169.254/latest/meta-data/", True),           # never, even inside the desk's network
    ("https://0.0.0.0/desk", True),
    ("https://[fe80::1]/desk", True),
    ("https://[::ffff:169.254.169.254]/desk", True),
])
def test_a_webhook_to_a_link_local_or_unspecified_address_is_never_sent(account, settings, url, allow_private):
    settings.DESK_ALERT_WEBHOOK_ALLOW_PRIVATE = allow_private
    channel, _ = alert_channel_create(account=account, name="metadata", kind="webhook", url=url, actor="user:rita")
    unprotected(account)

    alert_deliveries_send(account_ids=[account.pk])

    delivery = AlertDelivery.objects.get(channel=channel)
    attempt = delivery.attempt_log.get()
    assert (attempt.outcome, attempt.http_status) == ("failed", None)
    assert attempt.error == delivery.last_error == \
        "refused: the receiver's host resolves to a link-local, unspecified or multicast address"


def test_a_host_resolving_into_the_desks_network_is_refused_unless_the_operator_allows_it(
        account, settings, receivers, dns):
    settings.DESK_ALERT_WEBHOOK_ALLOW_HTTP = True
    receiver = receivers()
    dns["hooks.internal.test"] = "127.0.0.1"        # a name, not this machine's: it may point anywhere inside
    internal = receiver.url.replace("127.0.0.1", "hooks.internal.test")
    channel, secret = alert_channel_create(account=account, name="internal", kind="webhook", url=internal,
                                           actor="user:rita")
    receiver.secret = secret
    unprotected(account)

    alert_deliveries_send(account_ids=[account.pk])

    delivery = AlertDelivery.objects.get(channel=channel)
    assert receiver.requests == []
    assert delivery.last_error == ("refused: the receiver's host resolves to a private or loopback address "
                                   "(DESK_ALERT_WEBHOOK_ALLOW_PRIVATE allows a receiver inside the desk's network)")

    settings.DESK_ALERT_WEBHOOK_ALLOW_PRIVATE = True
    AlertDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    alert_deliveries_send(account_ids=[account.pk])

    [request] = receiver.requests
    assert receiver.verifies(request) and delivered(channel)


def test_a_name_of_this_machine_that_resolves_elsewhere_is_refused(account, dns, receivers):
    receiver = receivers()
    dns["localhost"] = "10.9.8.7"
    channel, _ = alert_channel_create(account=account, name="local", kind="webhook",
                                      url=receiver.url.replace("127.0.0.1", "localhost"), actor="user:rita")
    unprotected(account)

    alert_deliveries_send(account_ids=[account.pk])

    assert AlertDelivery.objects.get(channel=channel).last_error == \
        "refused: the receiver's host names this machine but resolves elsewhere"


def test_what_a_refusing_receiver_says_is_never_kept_only_its_status(account, broker, clock, receivers, settings):
    settings.DESK_ALERT_CHANNEL_FAILING_AFTER = 1
    receiver = receivers(script=[502])
    receiver.reply = b"upstream db-primary.internal:5432 refused: password authentication failed for user desk"
    channel = webhook(account, receiver)
    unprotected(account)

    run_engine(account, broker)

    delivery = AlertDelivery.objects.get(channel=channel)
    assert delivery.last_error == delivery.attempt_log.get().error == "HTTP 502 Bad Gateway"
    failing = Alert.objects.get(kind="CHANNEL_FAILING")
    assert failing.message.endswith("last: HTTP 502 Bad Gateway")
    assert "db-primary" not in str(failing.details)


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
    assert failing.message.endswith("last: HTTP 500 Internal Server Error")
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
    ({"kind": "webhook", "url": "ftp://example.test/x"}, "Invalid value for url: a webhook needs an https"),
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
