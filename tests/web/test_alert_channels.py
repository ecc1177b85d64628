"""The risk view's alert channels card: the account's channels (a webhook's secret only by its hint) and the newest
deliveries with each try's outcome, redrawn live as the engine sends; the admin adds a channel and shows its
secret once, never on its change page."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client

from orders.models import Alert, AlertChannel, AuditEvent
from orders.services.alerts import alert_raise
from orders.services.channels import alert_channel_create
from tests.builders import run_engine
from tests.fakes.receivers import WebhookReceiver, start_webhook_receiver
from tests.web.page import parse
from tests.web.support import logged_in
from tests.web.test_desk_socket import first_draw, opened, receive_until, swapped


@pytest.fixture
def receiver():
    receiver = WebhookReceiver(script=[500, 502])
    server = start_webhook_receiver(receiver)
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture
def superuser_client(db) -> Client:
    return logged_in(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))


def hook(account, receiver) -> tuple[AlertChannel, str]:
    channel, secret = alert_channel_create(account=account, name="ops hook", kind="webhook", url=receiver.url,
                                           kinds=["POSITION_UNPROTECTED"], actor="user:rita")
    receiver.secret = secret
    return channel, secret


def unprotected(account) -> Alert:
    return alert_raise(account_id=account.pk, kind=Alert.Kind.POSITION_UNPROTECTED, symbol="AAPL",
                       dedupe_key="unprotected:AAPL", message="AAPL is not protected", details={})


def channels_card(client):
    return parse(client.get("/risk/").content).by_id("channels")


@pytest.mark.django_db
def test_the_risk_view_lists_the_channels_and_each_deliverys_tries(risk_client, account, broker, clock, receiver):
    channel, secret = hook(account, receiver)
    alert_channel_create(account=account, name="on-call mail", kind="email", recipients=["oncall@example.test"],
                         step=1, actor="user:rita")
    unprotected(account)
    run_engine(account, broker)
    for _ in range(2):
        clock.shift(3600)
        run_engine(account, broker)

    page = risk_client.get("/risk/").content.decode()
    card = channels_card(risk_client)
    row = card.by_id(f"channel-{channel.pk}")
    assert "ops hook" in row.text and f"secret {channel.secret_hint}" in row.text
    assert "POSITION_UNPROTECTED" in row.text and "when raised" in row.text
    assert f"http://127.0.0.1:{receiver.url.split(':')[2].split('/')[0]}/…" in row.text    # never the path
    assert "oncall@example.test" in card.text and "when escalated" in card.text
    mail, delivery = card.find_all("tr", class_="delivery-row")           # newest first: escalated an hour on
    assert "on-call mail" in mail.text and "escalated" in mail.text and mail.attrs["data-status"] == "delivered"
    assert delivery.attrs["data-status"] == "delivered"
    assert re.search(r"delivered \d\d:\d\d:\d\d UTC", delivery.text), delivery.text
    assert "POSITION_UNPROTECTED AAPL" in delivery.text and "ops hook" in delivery.text
    assert delivery.find("span", class_="delivery-tries").text == "(500 → 502 → 200)"
    assert secret not in page


@pytest.mark.django_db
def test_a_failing_try_shows_its_error_and_when_it_is_tried_again(risk_client, account, broker, clock, receiver):
    hook(account, receiver)
    unprotected(account)

    run_engine(account, broker)

    delivery = channels_card(risk_client).find("tr", class_="delivery-row")
    assert delivery.attrs["data-status"] == "pending"
    assert delivery.find("td", class_="delivery-error").text == "HTTP 500 Internal Server Error"
    assert re.search(r"retry at 15:00:0\d UTC", delivery.text), delivery.text


@pytest.mark.django_db
def test_an_account_without_channels_says_how_to_add_one(risk_client, account):
    card = channels_card(risk_client)
    assert "No alert channels: alerts reach only open desks" in card.by_id("no-channels").text
    assert "manage.py alert_channel add" in card.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_open_risk_view_is_shown_each_try_as_the_engine_makes_it(risk_client, account, broker, receiver):
    await database_sync_to_async(hook)(account, receiver)
    communicator = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    await first_draw(communicator)

    await database_sync_to_async(unprotected)(account)
    await database_sync_to_async(run_engine)(account, broker)

    card = swapped(await receive_until(communicator, '(?s)data-status="pending".*HTTP 500'))["channels"]
    assert card.find("tr", class_="delivery-row").find("td", class_="delivery-error").text == \
        "HTTP 500 Internal Server Error"
    await communicator.disconnect()


@pytest.mark.django_db
def test_a_webhook_added_in_the_admin_shows_its_secret_once_and_never_again(superuser_client, account, receiver):
    added = superuser_client.post("/admin/orders/alertchannel/add/", {
        "account": account.pk, "name": "ops hook", "kind": "webhook", "url": receiver.url, "recipients": "",
        "step": 0}, follow=True)

    channel = AlertChannel.objects.get(name="ops hook")
    [message] = [li for li in parse(added.content).find_all("li") if "shown once, copy it now" in li.text]
    secret = message.text.rsplit(": ", 1)[1].strip()
    assert secret.startswith("whsec_") and secret.endswith(channel.secret_hint[1:])
    change = superuser_client.get(f"/admin/orders/alertchannel/{channel.pk}/change/").content.decode()
    listing = superuser_client.get("/admin/orders/alertchannel/").content.decode()
    assert channel.secret_hint in change
    assert secret not in change and secret not in listing and channel.secret_encrypted not in change
    assert AuditEvent.objects.get(action="alert_channel.create").actor == "admin:root"


@pytest.mark.django_db
def test_the_admin_refuses_a_channel_that_cannot_work_beside_its_field(superuser_client, account):
    refused = superuser_client.post("/admin/orders/alertchannel/add/", {
        "account": account.pk, "name": "mail", "kind": "email", "recipients": "someone at example", "step": 0})

    assert refused.status_code == 200
    assert "Invalid value for recipients: not an e-mail address" in refused.content.decode()
    assert not AlertChannel.objects.exists()


@pytest.mark.django_db
def test_a_channel_changed_in_the_admin_keeps_its_secret_and_is_audited(superuser_client, account, receiver):
    channel, secret = hook(account, receiver)

    superuser_client.post(f"/admin/orders/alertchannel/{channel.pk}/change/", {
        "name": "ops hook", "url": receiver.url, "recipients": "", "kinds": ["LOSS_LIMIT", "NOT_FLAT"], "step": 1})

    changed = AlertChannel.objects.get(pk=channel.pk)
    assert (changed.kinds, changed.step, changed.enabled) == (["LOSS_LIMIT", "NOT_FLAT"], 1, False)
    assert changed.secret_encrypted == channel.secret_encrypted
    assert AuditEvent.objects.filter(action="alert_channel.update", actor="admin:root").exists()
