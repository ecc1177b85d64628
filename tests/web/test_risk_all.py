"""The risk view of every account (/risk/all/): one list of the alerts of all of them, each naming its account; a
kill switch per account and one for all of them, confirmed in a dialog that names how many, with a receipt and an
audit record per account; pushed live from every account over one socket."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from orders.models import Account, AuditEvent
from orders.services.alerts import alert_acknowledge
from orders.services.risk import kill_switch
from tests.builders import make_account
from tests.web.page import parse
from tests.web.support import logged_in, make_user, raise_alert, resting_limit
from tests.web.test_desk_socket import ORIGIN, cookie_of, opened, receive_until, socket

HTMX = {"HX-Request": "true"}


def cards(page) -> list[tuple[str, str, str]]:
    """Each alert card as (its account, its kind and symbol, its status), in page order."""
    return [(card.attrs["data-account"], card.find("h3").text.split(" ", 1)[1], card.find(class_="status").text)
            for card in page.by_id("all-alerts").find_all("article")]


def rows(page) -> dict[str, str]:
    return {row.attrs["data-account"]: row.attrs["data-state"] for row in page.by_id("account-rows").find_all("li")}


def figures(row) -> dict[str, str]:
    return {dd.attrs["data-figure"]: dd.text for dd in row.find_all("dd")}


# -- the page ----------------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_trader_is_refused_with_words_that_say_why(trader_client):
    response = trader_client.get("/risk/all/")

    assert response.status_code == 403
    assert parse(response.content).by_id("refusal").text == (
        "Only the risk desk sees every account at once: your role does not supervise.")


@pytest.mark.django_db
def test_one_list_holds_the_alerts_of_every_account_each_naming_its_account(risk_client, account, other_account):
    raise_alert(account, symbol="AAPL", key="a")
    answered = raise_alert(other_account, symbol="MSFT", key="z1")
    alert_acknowledge(alert_id=str(answered.pk), actor="user:rita", comment="stop placed by hand")
    raise_alert(other_account, symbol="TSLA", key="z2")

    page = parse(risk_client.get("/risk/all/").content)

    assert cards(page) == [("zeta", "POSITION_UNPROTECTED · TSLA", "OPEN"),      # unacknowledged first, newest first
                           ("alice", "POSITION_UNPROTECTED · AAPL", "OPEN"),
                           ("zeta", "POSITION_UNPROTECTED · MSFT", "ACKNOWLEDGED")]
    assert page.by_id("all-alert-count").text == "3"
    assert page.find("h3").find(class_="account-badge").text == "zeta"
    assert page.find("body").attrs["ws-connect"] == "/ws/risk/all/"


@pytest.mark.django_db
def test_each_account_has_a_row_with_its_state_and_its_own_kill_switch(risk_client, account, other_account, broker):
    resting_limit(other_account, broker, actor="user:oscar")
    raise_alert(account)

    page = parse(risk_client.get("/risk/all/").content)

    assert rows(page) == {"alice": "ACTIVE", "zeta": "ACTIVE"}
    zeta = page.by_id("account-row-zeta")
    assert zeta.find(class_="badge").text == "ACTIVE"
    assert figures(zeta) == {"alerts": "0 open / 0 live", "working": "1", "positions": "0"}
    assert figures(page.by_id("account-row-alice"))["alerts"] == "1 open / 1 live"
    assert zeta.find("form").attrs["hx-confirm"] == "KILL SWITCH: halt zeta and cancel every working order?"


@pytest.mark.django_db
def test_each_rows_flatten_box_names_its_account_to_a_screen_reader(risk_client, account, other_account):
    page = parse(risk_client.get("/risk/all/").content)

    boxes = {name: page.by_id(f"kill-flatten-{name}").parent.text for name in ("alice", "zeta")}
    assert boxes == {"alice": "flatten alice's positions too", "zeta": "flatten zeta's positions too"}


def test_the_kill_switch_for_all_asks_naming_how_many_accounts_and_which(risk_client, account, other_account):
    page = parse(risk_client.get("/risk/all/").content)

    dialog = page.by_id("kill-all-dialog")
    assert page.by_id("kill-all-open").text == "Kill switch · all 2 accounts"
    assert dialog.by_id("kill-all-question").text.startswith("Halt all 2 accounts (alice, zeta) and cancel")
    assert dialog.by_id("kill-all-confirm").text == "Confirm: halt all 2 accounts"
    assert [i.attrs["value"] for i in dialog.find_all("input", name="accounts")] == ["alice", "zeta"]


# -- acting from it ----------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_alert_of_any_account_is_acknowledged_here(risk_client, account, other_account):
    alert = raise_alert(other_account, symbol="MSFT")

    response = risk_client.post(f"/risk/all/alerts/{alert.pk}/acknowledge/", {"comment": "flattened by hand"},
                                headers=HTMX)

    part = parse(response.content)
    assert part.elements[0].attrs["id"] == "all-alerts"
    assert part.find("p", class_="ok").text == "zeta · POSITION_UNPROTECTED MSFT acknowledged."
    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by) == ("ACKNOWLEDGED", "user:rita")
    assert AuditEvent.objects.get(action="alert.acknowledge").account == other_account


@pytest.mark.django_db
def test_an_acknowledgement_without_words_is_refused_in_the_list(risk_client, other_account):
    alert = raise_alert(other_account)

    part = parse(risk_client.post(f"/risk/all/alerts/{alert.pk}/acknowledge/", {"comment": " "}, headers=HTMX).content)

    assert part.find("p", class_="error").text == (
        "zeta · POSITION_UNPROTECTED: Invalid value for comment: say what was done about the alert")
    alert.refresh_from_db()
    assert alert.status == "OPEN"


@pytest.mark.django_db
def test_one_accounts_kill_switch_halts_that_account_alone(risk_client, account, other_account, broker):
    theirs = resting_limit(other_account, broker, actor="user:oscar")
    ours = resting_limit(account, broker)

    response = risk_client.post("/risk/all/kill-switch/", {"account": "zeta"}, headers=HTMX)

    part = parse(response.content)
    assert [e.attrs["id"] for e in part.elements] == ["kill-receipts", "account-rows"]
    assert part.by_id("kill-receipt-zeta").find("h3").text == "zeta: HALTED"
    assert "Cancelled 1 order." in part.by_id("kill-receipt-zeta").text
    assert rows(part) == {"alice": "ACTIVE", "zeta": "HALTED"}
    theirs.refresh_from_db()
    ours.refresh_from_db()
    assert (theirs.status, ours.status) == ("CANCELLED", "OPEN")


@pytest.mark.django_db
def test_the_kill_switch_for_all_halts_each_account_with_a_receipt_and_an_audit_record_each(
        risk_client, account, other_account, broker):
    orders = [resting_limit(account, broker), resting_limit(other_account, broker, actor="user:oscar"),
              resting_limit(other_account, broker, actor="user:oscar", symbol="MSFT")]

    response = risk_client.post("/risk/all/kill-switch/", {"scope": "all", "accounts": ["alice", "zeta"]},
                                headers=HTMX)

    part = parse(response.content)
    assert "Cancelled 1 order." in part.by_id("kill-receipt-alice").text
    assert "Cancelled 2 orders." in part.by_id("kill-receipt-zeta").text
    assert rows(part) == {"alice": "HALTED", "zeta": "HALTED"}
    assert set(Account.objects.values_list("trading_state", flat=True)) == {"HALTED"}
    assert all(o.status == "CANCELLED" for o in [o.__class__.objects.get(pk=o.pk) for o in orders])
    audited = AuditEvent.objects.filter(action="account.kill_switch", actor="user:rita")
    assert sorted((e.account.name, e.result) for e in audited) == [("alice", "ok"), ("zeta", "ok")]
    summary = AuditEvent.objects.get(action="desk.kill_switch_all")
    assert summary.account is None and summary.target == "2 accounts"
    assert summary.details["accounts"] == {"alice": "halted, 1 cancelled, 0 not done",
                                           "zeta": "halted, 2 cancelled, 0 not done"}


@pytest.mark.django_db
def test_the_kill_switch_for_all_halts_the_accounts_confirmed_not_one_added_since(risk_client, account,
                                                                                 other_account):
    make_account(name="kappa")                   # after the dialog named two accounts

    response = risk_client.post("/risk/all/kill-switch/", {"scope": "all", "accounts": ["alice", "zeta"]},
                                headers=HTMX)

    assert rows(parse(response.content)) == {"alice": "HALTED", "kappa": "ACTIVE", "zeta": "HALTED"}


@pytest.mark.django_db
def test_one_account_that_cannot_be_halted_leaves_the_others_halted_and_says_why(risk_client, account,
                                                                                other_account, monkeypatch):
    Account.objects.filter(pk=other_account.pk).update(broker="alpaca")          # no credentials in this process
    for name in ("ALPACA_API_KEY", "ALPACA_API_SECRET"):
        monkeypatch.delenv(name, raising=False)

    response = risk_client.post("/risk/all/kill-switch/", {"scope": "all", "accounts": ["alice", "zeta"]},
                                headers=HTMX)

    part = parse(response.content)
    assert part.by_id("kill-receipt-zeta").attrs["role"] == "alert"
    assert part.by_id("kill-receipt-zeta").find("p").text.startswith(
        "The kill switch was not run: ImproperlyConfigured: GATEWAY_PROVIDER=alpaca needs these variables")
    assert rows(part)["alice"] == "HALTED"
    failed = AuditEvent.objects.get(action="account.kill_switch", account=other_account)
    assert failed.result == "failed" and failed.details["across"] == "all accounts"


@pytest.mark.django_db
def test_a_kill_switch_for_an_account_not_supervised_or_unknown_halts_nothing(risk_client, account):
    response = risk_client.post("/risk/all/kill-switch/", {"scope": "all", "accounts": ["alice", "nope"]},
                                headers=HTMX)

    assert response.status_code == 404
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"


@pytest.mark.django_db
def test_a_trader_cannot_pull_the_kill_switch_for_all(trader_client, account):
    assert trader_client.post("/risk/all/kill-switch/", {"scope": "all", "accounts": ["alice"]}).status_code == 403
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"


# -- pushed live from every account ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_socket_pushes_an_alert_raised_on_any_account(account, other_account):
    client = await database_sync_to_async(lambda: logged_in(make_user("rita", "risk")))()
    communicator = await opened(client, path="/ws/risk/all/")
    first = await communicator.receive_from(timeout=5)
    assert 'id="all-alerts" hx-swap-oob="true"' in first and "No live alerts on any account." in first

    alert = await database_sync_to_async(raise_alert)(other_account, symbol="TSLA")

    html = await receive_until(communicator, f"all-alert-{alert.pk}")
    card = parse(html).by_id(f"all-alert-{alert.pk}")
    assert card.attrs["data-account"] == "zeta" and "TSLA" in card.find("h3").text
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_the_socket_pushes_a_kill_switch_pulled_elsewhere(account, other_account, broker):
    client = await database_sync_to_async(lambda: logged_in(make_user("rita", "risk")))()
    communicator = await opened(client, path="/ws/risk/all/")
    await communicator.receive_from(timeout=5)

    await database_sync_to_async(kill_switch)(account=other_account, broker=broker, actor="user:rex")

    html = await receive_until(communicator, 'data-account="zeta" data-state="HALTED"')
    assert rows(parse(html)) == {"alice": "ACTIVE", "zeta": "HALTED"}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_trader_cannot_open_the_socket_of_all_accounts(account):
    client = await database_sync_to_async(lambda: logged_in(make_user("tina", "trader", account)))()
    connected, code = await socket(cookie_of(client), ORIGIN, path="/ws/risk/all/").connect(timeout=5)

    assert not connected and code == 4401


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_session_still_owing_its_second_factor_cannot_open_the_socket_of_all_accounts(account):
    from tests.web.test_two_factor_socket import password_only

    await database_sync_to_async(make_user)("rita", "risk")
    client = await password_only("rita")

    connected, code = await socket(cookie_of(client), ORIGIN, path="/ws/risk/all/").connect(timeout=5)

    assert not connected and code == 4401
