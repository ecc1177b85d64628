"""The admin inspects orders, fills, positions, exit legs, alerts and the audit trail, and cannot change
them: those change only through the desk's services, with their outbox events and audit records."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.domain.money import format_decimal
from orders.models import Account, AuditEvent, Order
from orders.services.orders import order_submit
from tests.builders import make_order_request
from tests.web.page import parse
from tests.web.support import logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client() -> Client:
    return logged_in(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))


@pytest.fixture
def order(account, broker, clock) -> Order:
    return order_submit(account=account, request=make_order_request(quantity=3), broker=broker, actor="x").order


def test_an_order_can_be_inspected_in_the_admin(superuser_client, order):
    page = superuser_client.get(f"/admin/orders/order/{order.pk}/change/")

    assert page.status_code == 200
    assert "AAPL" in page.content.decode()


@pytest.mark.parametrize("model", ["order", "fill", "position", "exitleg", "auditevent", "approvalrequest",
                                   "circuitbreaker", "alert", "alertdelivery"])
def test_every_inspected_record_lists_and_opens_in_the_admin(superuser_client, account, broker, clock, model):
    from tests.web.support import open_position

    open_position(account, broker, clock, quantity="3", stop_loss="100", take_profit="300")
    listed = superuser_client.get(f"/admin/orders/{model}/")

    assert listed.status_code == 200
    if model in ("order", "fill", "position", "exitleg", "auditevent"):          # what the position left behind
        link = parse(listed.content).by_id("result_list").find("tbody").find("a")
        assert superuser_client.get(link.attrs["href"]).status_code == 200


def test_amounts_and_quantities_read_as_the_api_writes_them(superuser_client, account, broker, clock):
    from tests.web.support import open_position

    entry = open_position(account, broker, clock, quantity="3")
    fill = entry.fills.get()
    listed = superuser_client.get("/admin/orders/fill/").content.decode()
    shown = superuser_client.get(f"/admin/orders/order/{entry.pk}/change/").content.decode()

    assert '<td class="field-quantity_plain">3</td>' in listed
    assert f'<td class="field-price_plain">{format_decimal(fill.price)}</td>' in listed
    at = (listed + shown).find("3.0000000000")
    assert at < 0, (listed + shown)[at - 300:at + 100]
    assert '<div class="readonly">3</div>' in shown


def test_an_order_cannot_be_edited_or_deleted_in_the_admin(superuser_client, order):
    edit = superuser_client.post(f"/admin/orders/order/{order.pk}/change/", {"quantity": "300"})
    delete = superuser_client.post(f"/admin/orders/order/{order.pk}/delete/", {"post": "yes"})

    assert edit.status_code == 403
    assert delete.status_code == 403
    assert Order.objects.get(pk=order.pk).quantity == 3


@pytest.mark.parametrize("model", ["order", "fill", "position", "auditevent", "exitleg", "alert"])
def test_the_admin_offers_no_way_to_add_trading_records(superuser_client, model):
    assert superuser_client.get(f"/admin/orders/{model}/add/").status_code == 403


def test_the_audit_trail_cannot_be_rewritten_in_the_admin(superuser_client, order):
    record = AuditEvent.objects.get(action="order.submit")

    superuser_client.post(f"/admin/orders/auditevent/{record.pk}/delete/", {"post": "yes"})

    assert AuditEvent.objects.filter(pk=record.pk).exists()


def test_accounts_stay_editable_in_the_admin(superuser_client, account):
    assert superuser_client.get(f"/admin/orders/account/{account.pk}/change/").status_code == 200
    assert superuser_client.get("/admin/orders/account/add/").status_code == 200


# -- what the admin changes goes through the services: audited, and told to every open page -------------

def desk_told(account, what: str) -> list[dict]:
    from orders.events import DESK_KIND
    from orders.models import Event

    return [e.payload for e in Event.objects.filter(account=account, kind=DESK_KIND).order_by("id")
            if e.payload["what"] == what]


def account_form(account, **changes) -> dict:
    form = {"name": account.name, "broker": account.broker, "currency": account.currency,
            "trading_state": account.trading_state, "is_default": "on" if account.is_default else "",
            "auto_flatten_after_seconds": "", "timezone": account.timezone}
    return {**form, **changes}


def test_a_trading_state_set_in_the_admin_is_audited_and_pushed(superuser_client, account):
    response = superuser_client.post(f"/admin/orders/account/{account.pk}/change/",
                                     account_form(account, trading_state="HALTED"))

    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert account.trading_state == "HALTED"
    assert [(e["state"], e["previous"]) for e in desk_told(account, "trading_state")] == [("HALTED", "ACTIVE")]
    assert AuditEvent.objects.get(action="account.trading_state").actor == "admin:root"


def test_cash_cannot_be_typed_in_the_admin(superuser_client, account):
    before = account.cash

    superuser_client.post(f"/admin/orders/account/{account.pk}/change/", {**account_form(account), "cash": "1"})

    account.refresh_from_db()
    assert account.cash == before


def test_cash_is_shown_as_the_desk_shows_it(superuser_client, account):
    from decimal import Decimal

    Account.objects.filter(pk=account.pk).update(cash=Decimal("1234567.125"))

    change = superuser_client.get(f"/admin/orders/account/{account.pk}/change/").content.decode()
    listed = superuser_client.get("/admin/orders/account/").content.decode()

    assert "1,234,567.125 USD" in change and "1,234,567.125 USD" in listed
    assert "1234567.1250000000" not in change + listed
    assert 'name="cash"' not in change and 'name="cash"' in superuser_client.get(
        "/admin/orders/account/add/").content.decode()                     # typed only when added


def test_limits_set_in_the_admin_apply_at_once_and_are_audited_and_pushed(superuser_client, account):
    from decimal import Decimal

    from orders.services.limits import limits_read

    response = superuser_client.post("/admin/orders/pretradelimits/add/", {
        "account": account.pk, "max_quantity_hard": "25", "protection_slow_seconds": "2", "flat_within_seconds": "10",
        "approval_ttl_minutes": "15"})                                     # prefilled with their defaults

    assert response.status_code == 302, response.content.decode()[:2000]
    assert limits_read(account.pk)[0].max_quantity == (None, Decimal("25"))
    assert desk_told(account, "limits") == [{"type": "desk", "what": "limits", "changed": ["max_quantity_hard"],
                                             "timestamp": desk_told(account, "limits")[0]["timestamp"]}]
    assert AuditEvent.objects.get(action="limits.set").actor == "admin:root"


def test_a_key_issued_in_the_admin_is_shown_once_and_revoked_by_the_action(superuser_client, account):
    from orders.models import ApiKey

    added = superuser_client.post("/admin/orders/apikey/add/", {"account": account.pk, "name": "bot",
                                                                "role": "trading"}, follow=True)
    key = ApiKey.objects.get(name="bot")
    assert f"tdk_{key.prefix}_" in added.content.decode()           # the message with the key, shown once

    superuser_client.post("/admin/orders/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert [e["change"] for e in desk_told(account, "api_key")] == ["created", "revoked"]
    assert superuser_client.post(f"/admin/orders/apikey/{key.pk}/delete/", {"post": "yes"}).status_code == 403


def test_an_alert_is_acknowledged_in_the_admin_with_a_comment(superuser_client, account):
    from orders.models import Alert
    from tests.web.support import raise_alert

    alert = raise_alert(account)

    empty = superuser_client.post(f"/admin/orders/alert/{alert.pk}/change/", {"ack_comment": ""})
    assert empty.status_code == 200 and "This field is required" in empty.content.decode()
    superuser_client.post(f"/admin/orders/alert/{alert.pk}/change/", {"ack_comment": "flattened by hand"})

    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.ack_comment) == (
        Alert.Status.ACKNOWLEDGED, "admin:root", "flattened by hand")
    assert [e["status"] for e in desk_told(account, "alert")] == ["ACKNOWLEDGED"]
    edit_again = superuser_client.post(f"/admin/orders/alert/{alert.pk}/change/", {"ack_comment": "again"})
    assert edit_again.status_code == 403


def test_breakers_are_reset_by_the_admin_action_and_a_second_reset_is_refused_visibly(superuser_client, account):
    from orders.services.breakers import ADAPTER, breaker_record_failure, breaker_snapshot

    for _ in range(3):
        breaker_record_failure(account_id=account.pk, name=ADAPTER, reason="down")
    selected = {"action": "reset", "_selected_action": [b.pk for b in account.breakers.all()]}

    first = superuser_client.post("/admin/orders/circuitbreaker/", selected, follow=True)
    second = superuser_client.post("/admin/orders/circuitbreaker/", selected, follow=True)

    assert breaker_snapshot(account=account)["adapter"]["state"] == "closed"
    assert "Breakers of alice reset (adapter, exit_order)." in first.content.decode()
    assert "Breakers of alice not reset: Circuit breaker re-tripped within cooldown period" in (
        second.content.decode())
    assert [e["state"] for e in desk_told(account, "breaker")][-2:] == ["closed", "closed"]


def test_a_limit_changed_in_the_admin_is_audited_with_who_changed_what_from_what_to_what(superuser_client, account):
    from orders.models import PreTradeLimits
    from orders.services.limits import LEVELS

    superuser_client.post("/admin/orders/pretradelimits/add/", {"account": account.pk, "max_quantity_hard": "25",
                                                                "protection_slow_seconds": "2",
                                                                "flat_within_seconds": "10",
                                                                "approval_ttl_minutes": "15"})
    row = PreTradeLimits.objects.get(account=account)
    form = {"account": account.pk, **{name: getattr(row, name) or "" for name in LEVELS}}

    # lowered, and a limit where there was none: at once (a raise waits for a second person, see below)
    response = superuser_client.post(f"/admin/orders/pretradelimits/{row.pk}/change/", {
        **form, "max_quantity_hard": "20", "max_notional_soft": "100000"})

    assert response.status_code == 302, response.content.decode()[:2000]
    change = AuditEvent.objects.filter(action="limits.set").order_by("at", "pk").last()
    assert (change.actor, change.account_id) == ("admin:root", account.pk)
    assert change.details == {"changed": {"max_quantity_hard": {"from": "25", "to": "20"},
                                          "max_notional_soft": {"from": None, "to": "100000"}}}
    shown = parse(superuser_client.get("/audit/?action=limits.set").content).by_id("audit-table")
    assert [line.text for line in shown.find("tbody").find("tr").find_all("div")] == [
        'changed = {"max_notional_soft": {"from": null, "to": "100000"}, '
        '"max_quantity_hard": {"from": "25", "to": "20"}}']


def test_a_limit_raised_in_the_admin_waits_for_a_second_persons_approval(superuser_client, account):
    from decimal import Decimal

    from orders.models import ApprovalRequest, PreTradeLimits
    from orders.services.limits import LEVELS, limits_set

    row = limits_set(account_id=account.pk, actor="user:rita", max_quantity_hard=Decimal("25"))
    form = {"account": account.pk, **{name: getattr(row, name) if getattr(row, name) is not None else ""
                                      for name in LEVELS}}
    form["flatten_on_hard_halt"] = ""

    response = superuser_client.post(f"/admin/orders/pretradelimits/{row.pk}/change/",
                                     {**form, "max_quantity_hard": "40"}, follow=True)

    assert "Sent for approval: max_quantity_hard 25 → 40. A second person with the risk role approves it on the " \
           "risk view." in response.content.decode()
    assert "changed successfully" not in response.content.decode()          # nothing was changed yet
    assert PreTradeLimits.objects.get(account=account).max_quantity_hard == Decimal("25")
    asked = ApprovalRequest.objects.get()
    assert (asked.kind, asked.requested_by, asked.payload["levels"]) == ("RAISE_LIMIT", "admin:root",
                                                                          {"max_quantity_hard": "40"})


def test_leaving_halted_in_the_admin_waits_for_a_second_persons_approval(superuser_client, account):
    from orders.models import ApprovalRequest
    from orders.services.risk import trading_state_set

    trading_state_set(account=account, state="HALTED", actor="user:rita")
    response = superuser_client.post(f"/admin/orders/account/{account.pk}/change/",
                                     account_form(Account.objects.get(pk=account.pk), trading_state="ACTIVE",
                                                  state_reason="the venue is back"),
                                     follow=True)

    assert "Sent for approval: Let alice trade again: HALTED → ACTIVE." in response.content.decode()
    assert "changed successfully" not in response.content.decode()          # nothing was changed yet
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    asked = ApprovalRequest.objects.get()
    assert (asked.requested_by, asked.reason) == ("admin:root", "the venue is back")


def test_loosening_the_trading_state_in_the_admin_needs_a_reason_beside_it(superuser_client, account):
    from orders.models import ApprovalRequest
    from orders.services.risk import trading_state_set

    trading_state_set(account=account, state="REDUCING", actor="user:rita")
    response = superuser_client.post(f"/admin/orders/account/{account.pk}/change/",
                                     account_form(Account.objects.get(pk=account.pk), trading_state="ACTIVE"))

    assert response.status_code == 200                   # the form again, nothing saved
    assert "Say why alice may trade more (REDUCING → ACTIVE)." in response.content.decode()
    assert Account.objects.get(pk=account.pk).trading_state == "REDUCING"
    assert not ApprovalRequest.objects.exists()

    superuser_client.post(f"/admin/orders/account/{account.pk}/change/",
                          account_form(Account.objects.get(pk=account.pk), trading_state="ACTIVE",
                                       state_reason="spread is normal again"))
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
    audit = AuditEvent.objects.filter(action="account.trading_state").latest("at", "pk")
    assert (audit.actor, audit.details["reason"]) == ("admin:root", "spread is normal again")


def test_tightening_the_trading_state_in_the_admin_needs_no_reason(superuser_client, account):
    response = superuser_client.post(f"/admin/orders/account/{account.pk}/change/",
                                     account_form(account, trading_state="HALTED"), follow=True)

    assert "changed successfully" in response.content.decode()
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    assert AuditEvent.objects.get(action="account.trading_state").details["reason"] == "set in the admin"


def test_the_reason_is_not_asked_when_an_account_is_added(superuser_client):
    page = superuser_client.get("/admin/orders/account/add/").content.decode()

    assert 'name="state_reason"' not in page and 'name="trading_state"' in page


def test_the_reason_is_asked_right_under_the_trading_state(superuser_client, account):
    page = parse(superuser_client.get(f"/admin/orders/account/{account.pk}/change/").content)

    names = [e.attrs["name"] for e in page.find_all() if e.tag in ("input", "select", "textarea")
             and e.attrs.get("name") in ("name", "trading_state", "state_reason", "is_default", "timezone")]
    assert names == ["name", "trading_state", "state_reason", "is_default", "timezone"]


@pytest.mark.parametrize("path", ["/admin/login/", "/admin/", "/admin/orders/account/"])
def test_admin_pages_name_the_desks_icon_so_the_browser_asks_for_no_favicon(superuser_client, path):
    client = Client() if path == "/admin/login/" else superuser_client
    page = client.get(path).content.decode()

    assert '<link rel="icon" href="data:,">' in page and "Django administration" in page
