"""``manage.py alert_channel``: add a channel (a webhook's secret printed once), list, test and remove them, and a
refusal said in words, never a traceback."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import AlertChannel, AuditEvent
from orders.notify.sealing import secret_open
from tests.fakes.receivers import WebhookReceiver, free_port, start_webhook_receiver

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("alert_channel", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def receiver():
    receiver = WebhookReceiver()
    server = start_webhook_receiver(receiver)
    yield receiver
    server.shutdown()
    server.server_close()


def test_adding_a_webhook_prints_its_secret_once(account, receiver):
    out = run("add", "alice", "ops hook", "--webhook", receiver.url, "--kinds", "position_unprotected,NOT_FLAT")

    channel = AlertChannel.objects.get()
    secret = out.split("signing secret (shown once, store it with the receiver now): ")[1].strip()
    assert secret_open(channel.secret_encrypted) == secret
    assert (channel.kinds, channel.step) == (["NOT_FLAT", "POSITION_UNPROTECTED"], 0)
    listed = run("list", "alice")
    assert "ops hook" in listed and channel.secret_hint in listed and secret not in listed
    assert AuditEvent.objects.get(action="alert_channel.create").actor == "command:alert_channel"


def test_an_email_channel_for_escalations(account):
    out = run("add", "alice", "head of desk", "--email", "head@example.test, deputy@example.test", "--step", "1")

    assert "secret" not in out
    assert AlertChannel.objects.get().recipients == ["head@example.test", "deputy@example.test"]
    assert "email to head@example.test, deputy@example.test; kinds all; step 1; ok" in run("list")


def test_a_test_alert_reaches_the_receiver_signed(account, receiver):
    out = run("add", "alice", "ops hook", "--webhook", receiver.url)
    receiver.secret = out.rsplit(": ", 1)[1].strip()

    assert "ops hook took the test alert (HTTP 200)" in run("test", "alice", "ops hook")
    [request] = receiver.requests
    assert receiver.verifies(request) and request.json["alert"]["kind"] == "TEST"


def test_a_test_that_fails_says_why(account):
    run("add", "alice", "gone", "--webhook", f"http://127.0.0.1:{free_port()}/hook")

    with pytest.raises(CommandError, match="gone did not take the test alert: could not connect to the receiver"):
        run("test", "alice", "gone")


def test_a_test_to_a_cloud_metadata_address_is_refused_before_anything_is_sent(account):
    run("add", "alice", "metadata", "--webhook", "https://169.254.169.254/latest/meta-data/")

    with pytest.raises(CommandError, match="metadata did not take the test alert: refused: the receiver's host "
                                           "resolves to a link-local"):
        run("test", "alice", "metadata")


def test_removing_a_channel(account):
    run("add", "alice", "mail", "--email", "a@example.test")

    assert run("remove", "alice", "mail") == "removed mail\n"
    assert not AlertChannel.objects.exists()
    with pytest.raises(CommandError, match="alice has no alert channel named 'mail'"):
        run("remove", "alice", "mail")


@pytest.mark.parametrize(("args", "message"), [
    (("add", "nobody", "x", "--email", "a@example.test"), "no account named 'nobody'"),
    (("add", "alice", "x", "--webhook", "not a url"), "Invalid value for url: a webhook needs an https"),
    (("add", "alice", "x", "--webhook", "http://hooks.example.test/desk"),
     r"Invalid value for url: a webhook needs an https:// address \(http:// only to this machine"),
    (("add", "alice", "x", "--email", "a@example.test", "--kinds", "FIRE"), "Invalid value for kinds"),
])
def test_a_channel_that_cannot_work_is_refused_in_words(account, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
