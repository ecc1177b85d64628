"""Two-factor login: the risk and admin roles give a code from an authenticator app after their password, and a
trader once they have set one up; until then their session reaches nothing but that step, the admin site
included. Setting up shows a QR code and the secret, takes a first code and shows ten recovery codes once; a
recovery code lets a person in once; wrong codes count with wrong passwords, five locking the name."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.domain.roles import ADMIN, RISK, TRADER
from orders.models import Account, AuditEvent
from orders.services.two_factor import SETUP_EXPIRES, authenticator_secret, recovery_codes_renew
from tests.test_metrics import scrape, value
from tests.web.page import parse
from tests.web.support import PASSWORD, authenticator, code_now, logged_in, make_user

pytestmark = pytest.mark.django_db

SETUP, CODE = "/account/two-factor/", "/login/code/"
PAGES = ["/", "/risk/", "/audit/", "/account/security/", "/admin/", "/admin/orders/order/"]
LOCKED = "Too many failed attempts. Try again in 15 minutes."
STEP = 30        # seconds: an authenticator shows a new code every step


def person(role: str, username: str = "pat"):
    """Someone of ``role``: a trader of the account, a risk officer, an admin (group), a superuser, or staff (who
    may use the admin site, with no role)."""
    if role == "superuser":
        return get_user_model().objects.create_superuser(username, password=PASSWORD)
    if role == "staff":
        return get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    return make_user(username, role, Account.objects.get() if role == TRADER else None)


def log_in(client, username: str = "pat", **fields):
    return client.post("/login/", {"username": username, "password": PASSWORD, **fields})


def give(client, code: str, *, next_page: str = "/"):
    return client.post(CODE, {"code": code, "next": next_page})


def alert(response) -> str:
    found = parse(response.content).find(role="alert")
    return found.text if found is not None else ""


def logged_in_as(client) -> str | None:
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id).username if user_id else None


def secret_shown(response) -> str:
    return parse(response.content).by_id("totp-secret").text


def is_never_cached(response) -> bool:
    directives = {part.strip() for part in response.get("Cache-Control", "").split(",")}
    return {"no-store", "no-cache", "private"} <= directives


def recovery_codes(response) -> list[str]:
    return [item.text for item in parse(response.content).by_id("recovery-codes").find_all("li")]


def set_up(client, user) -> list[str]:
    """Go through the set-up page as a person does: read the secret, give the app's code; the recovery codes."""
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(SETUP, {"code": code_now(device), "next": "/"})
    assert response.status_code == 200, alert(response)
    return recovery_codes(response)


# -- who is asked ------------------------------------------------------------------------------------------

def test_a_trader_without_an_authenticator_logs_in_with_the_password_alone(client, trader):
    response = log_in(client, "tina")

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


@pytest.mark.parametrize("role", [RISK, ADMIN, "superuser", "staff"])
def test_a_supervisor_without_an_authenticator_is_sent_to_set_one_up_and_reaches_nothing_else(client, account,
                                                                                               role):
    person(role)

    response = log_in(client, next="/risk/")

    assert response.status_code == 302 and response["Location"] == f"{SETUP}?next=%2Frisk%2F"
    for page in PAGES:
        refused = client.get(page)
        assert refused.status_code == 302 and refused["Location"].startswith(f"{SETUP}?next="), page


@pytest.mark.parametrize("role", [RISK, ADMIN, "superuser", TRADER])
def test_someone_with_an_authenticator_gives_its_code_before_reaching_anything(client, account, clock, role):
    user = person(role)
    device = authenticator(user)

    response = log_in(client, next="/audit/")

    assert response.status_code == 302 and response["Location"] == f"{CODE}?next=%2Faudit%2F"
    for page in PAGES:
        refused = client.get(page)
        assert refused.status_code == 302 and refused["Location"].startswith(f"{CODE}?next="), page
    answered = give(client, code_now(device), next_page="/audit/")
    assert answered.status_code == 302 and answered["Location"] == "/audit/"
    assert client.get("/audit/").status_code == 200
    assert client.get("/").status_code == 200


def test_the_admin_login_leads_to_the_same_code_step(client, account, clock):
    user = person("superuser", "sam")
    device = authenticator(user)

    response = client.post("/admin/login/", {"username": "sam", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302

    refused = client.get("/admin/")
    assert refused.status_code == 302 and refused["Location"] == f"{CODE}?next=%2Fadmin%2F"
    assert give(client, code_now(device), next_page="/admin/")["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_staff_without_a_role_give_a_code_before_the_admin_site(client, account):
    person("staff", "stan")

    response = client.post("/admin/login/", {"username": "stan", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302

    refused = client.get("/admin/")
    assert refused.status_code == 302 and refused["Location"] == f"{SETUP}?next=%2Fadmin%2F"
    assert client.get("/admin/auth/user/")["Location"].startswith(f"{SETUP}?next=")


def test_a_role_given_while_logged_in_asks_for_the_second_factor_at_the_next_page(trader, trader_client):
    assert trader_client.get("/").status_code == 200

    Group.objects.get_or_create(name=RISK)[0].user_set.add(trader)

    response = trader_client.get("/")
    assert response.status_code == 302 and response["Location"] == f"{SETUP}?next=%2F"


def test_an_htmx_request_of_a_session_owing_its_code_moves_the_whole_page_to_the_step(client, account, htmx):
    person(RISK)
    log_in(client)

    response = client.post("/risk/kill-switch/", headers={**htmx, "HX-Current-URL": "http://testserver/risk/"})

    assert response.status_code == 401
    assert response["HX-Redirect"] == f"{SETUP}?next=%2Frisk%2F"


def test_an_authenticator_an_admin_removed_no_longer_counts_for_the_session(account, clock):
    user = person(RISK)
    client = logged_in(user)
    assert client.get("/risk/").status_code == 200

    TOTPDevice.objects.filter(user=user).delete()

    response = client.get("/risk/")
    assert response.status_code == 302 and response["Location"] == f"{SETUP}?next=%2Frisk%2F"


def test_an_admin_removes_a_lost_authenticator_and_the_next_login_sets_up_a_new_one(account, clock):
    rita = person(RISK, "rita")
    lost = authenticator(rita)
    admin = logged_in(person("superuser", "sam"))

    listed = admin.get("/admin/otp_totp/totpdevice/")
    removed = admin.post(f"/admin/otp_totp/totpdevice/{lost.pk}/delete/", {"post": "yes"})

    assert listed.status_code == 200 and "rita" in listed.content.decode()
    assert removed.status_code == 302 and not TOTPDevice.objects.filter(pk=lost.pk).exists()
    assert log_in(Client(), "rita")["Location"] == f"{SETUP}?next=%2F"


def test_the_admin_shows_no_authenticator_secret_and_no_recovery_codes(account, clock):
    rita = person(RISK, "rita")
    device = authenticator(rita)
    codes = recovery_codes_renew(user=rita)
    admin = logged_in(person("superuser", "sam"))
    totp = f"/admin/otp_totp/totpdevice/{device.pk}"

    listed = admin.get("/admin/otp_totp/totpdevice/")
    changed = admin.get(f"{totp}/change/")
    recovery = admin.get(f"/admin/otp_static/staticdevice/{StaticDevice.objects.get(user=rita).pk}/change/")

    assert listed.status_code == changed.status_code == recovery.status_code == 200
    assert device.key not in changed.content.decode()
    assert authenticator_secret(device).replace(" ", "") not in changed.content.decode()
    assert f"{totp}/config/" not in listed.content.decode() + changed.content.decode()
    assert admin.get(f"{totp}/config/").status_code == 403
    assert admin.get(f"{totp}/qrcode/").status_code == 403
    assert not any(code in recovery.content.decode() for code in codes)


# -- setting up --------------------------------------------------------------------------------------------

def test_the_setup_page_shows_a_qr_code_drawn_here_and_the_secret_as_text(client, account):
    user = person(RISK)
    log_in(client)

    response = client.get(SETUP)

    page = parse(response.content)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert response.status_code == 200
    assert len(page.find_all("h1")) == 1
    assert page.by_id("totp-qr").attrs["src"].startswith("data:image/svg+xml")
    assert page.by_id("totp-qr").attrs["alt"]
    assert page.by_id("totp-secret").text == authenticator_secret(device)
    assert page.by_id("otpauth-link").attrs["href"].startswith("otpauth://totp/tradingdesk%3Apat?secret=")
    assert page.field_label("code") is not None
    assert page.find("nav") is None            # nothing to go to before the code


def test_a_reload_of_the_setup_page_keeps_the_secret_already_scanned(client, account):
    person(RISK)
    log_in(client)

    first = parse(client.get(SETUP).content).by_id("totp-secret").text
    again = parse(client.get(SETUP).content).by_id("totp-secret").text

    assert first == again


def test_a_secret_shown_to_one_session_never_confirms_the_set_up_of_another(account, clock):
    """Someone with only the password opens the set-up page and copies its secret; when the person opens it
    themselves they are shown another, and a code of the copied secret does not turn two-factor login on."""
    user = person(RISK)
    intruder, owner = Client(), Client()
    log_in(intruder)
    copied_page = intruder.get(SETUP)
    copied = TOTPDevice.objects.get(user=user, confirmed=False)
    assert secret_shown(copied_page) == authenticator_secret(copied)
    log_in(owner)

    shown = secret_shown(owner.get(SETUP))
    refused = owner.post(SETUP, {"code": code_now(copied)})

    assert shown != secret_shown(copied_page)
    assert "That code is not right" in alert(refused)
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    clock.shift(2)                                                       # past the authenticator's back-off
    set_up(owner, user)
    assert TOTPDevice.objects.get(user=user).key != copied.key
    assert "not right" in alert(give(intruder, code_now(copied)))       # the copied secret lets nobody in


def test_a_code_from_a_set_up_another_session_replaced_is_refused_unchecked(account, clock):
    user = person(RISK)
    first, second = Client(), Client()
    log_in(first)
    log_in(second)
    first.get(SETUP)
    replaced = TOTPDevice.objects.get(user=user, confirmed=False)
    second.get(SETUP)

    response = first.post(SETUP, {"code": code_now(replaced)})

    assert response.status_code == 200
    assert "was opened again elsewhere" in alert(response)
    assert secret_shown(response) != authenticator_secret(replaced)     # a new secret to add instead
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert not AuditEvent.objects.filter(action="user.two_factor_failed").exists()


def test_a_set_up_left_open_expires_after_ten_minutes(client, account, clock):
    user = person(RISK)
    log_in(client)
    first = secret_shown(client.get(SETUP))
    left_open = TOTPDevice.objects.get(user=user, confirmed=False)
    clock.shift(SETUP_EXPIRES.total_seconds() - 1)
    assert secret_shown(client.get(SETUP)) == first

    clock.shift(2)
    response = client.post(SETUP, {"code": code_now(left_open)})

    assert "expired" in alert(response)
    assert secret_shown(response) != first
    assert not TOTPDevice.objects.filter(pk=left_open.pk).exists()
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_an_abandoned_set_up_is_deleted_once_expired(account, clock):
    rob = person(RISK, "rob")
    person(RISK)
    abandoned = Client()
    log_in(abandoned, "rob")
    abandoned.get(SETUP)
    clock.shift(SETUP_EXPIRES.total_seconds() + 1)

    other = Client()
    log_in(other)
    other.get(SETUP)

    assert not TOTPDevice.objects.filter(user=rob).exists()


def test_the_first_code_turns_two_factor_on_and_shows_ten_recovery_codes_once(client, account, clock):
    user = person(RISK)
    log_in(client)

    codes = set_up(client, user)

    assert len(set(codes)) == 10
    assert TOTPDevice.objects.get(user=user).confirmed
    assert client.get("/risk/").status_code == 200
    assert client.get(SETUP)["Location"] == "/account/security/"        # never shown again
    security = client.get("/account/security/")
    assert not any(code in security.content.decode() for code in codes)
    assert "Recovery codes left: 10 of 10" in parse(security.content).by_id("codes-left").text
    assert AuditEvent.objects.filter(action="user.two_factor_setup", actor="user:pat").count() == 1


def test_a_wrong_first_code_is_refused_and_leaves_two_factor_off(client, account, clock):
    user = person(RISK)
    log_in(client)
    client.get(SETUP)

    response = client.post(SETUP, {"code": "000000"})

    assert response.status_code == 200
    assert "That code is not right" in alert(response)
    assert parse(response.content).by_id("totp-qr") is not None          # the same page, to try again
    assert not TOTPDevice.objects.get(user=user).confirmed
    assert client.get("/risk/")["Location"].startswith(SETUP)
    clock.shift(2)                                                       # past the authenticator's back-off
    assert len(set_up(client, user)) == 10


def test_someone_owing_a_code_cannot_set_up_another_authenticator(client, account):
    user = person(RISK)
    authenticator(user)
    log_in(client)

    assert client.get(SETUP)["Location"] == f"{CODE}?next=%2F"
    assert client.post(SETUP, {"code": "123456"})["Location"] == f"{CODE}?next=%2F"
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_a_trader_turns_two_factor_on_from_the_security_page_and_needs_it_from_then_on(trader, trader_client, clock):
    page = parse(trader_client.get("/account/security/").content)
    assert page.by_id("two-factor-state").text.startswith("Off")
    assert page.by_id("two-factor-setup").attrs["href"] == SETUP

    set_up(trader_client, trader)
    trader_client.post("/logout/")

    response = log_in(trader_client, "tina")
    assert response["Location"] == f"{CODE}?next=%2F"
    assert trader_client.get("/")["Location"].startswith(CODE)


def test_the_name_in_the_top_bar_leads_to_the_security_page(trader_client):
    who = parse(trader_client.get("/").content).find(class_="who")

    assert (who.tag, who.attrs["href"]) == ("a", "/account/security/")


def test_new_recovery_codes_replace_the_old_ones(risk_user, risk_client):
    old = recovery_codes_renew(user=risk_user)

    response = risk_client.post("/account/security/")

    new = recovery_codes(response)
    assert len(new) == 10 and not set(new) & set(old)
    assert set(StaticToken.objects.filter(device__user=risk_user).values_list("token", flat=True)) == set(new)


def test_new_recovery_codes_keep_a_session_a_recovery_code_let_in(client, account, clock):
    user = person(RISK)
    authenticator(user)
    codes = recovery_codes_renew(user=user)
    log_in(client)
    give(client, codes[0])

    assert len(recovery_codes(client.post("/account/security/"))) == 10
    assert client.get("/risk/").status_code == 200


def test_the_pages_showing_secrets_or_codes_are_never_cached(client, account, clock):
    user = person(RISK)
    log_in(client)
    setup_page = client.get(SETUP)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    codes_page = client.post(SETUP, {"code": code_now(device), "next": "/"})
    security_page = client.get("/account/security/")
    renewed = client.post("/account/security/")
    client.post("/logout/")
    log_in(client)
    code_page = client.get(CODE)

    assert recovery_codes(codes_page) and recovery_codes(renewed)
    for response in (setup_page, codes_page, security_page, renewed, code_page):
        assert response.status_code == 200 and is_never_cached(response), response.get("Cache-Control")


# -- codes at login ----------------------------------------------------------------------------------------

def test_a_code_is_taken_with_spaces_as_an_app_shows_it(client, account, clock):
    device = authenticator(person(RISK))
    log_in(client)
    code = code_now(device)

    assert give(client, f"{code[:3]} {code[3:]}")["Location"] == "/"


def test_a_wrong_code_is_refused_with_a_message_and_audited(client, account, clock):
    authenticator(person(RISK))
    log_in(client)

    response = give(client, "000000")

    assert response.status_code == 200
    assert alert(response) == "That code is not right: enter the 6 digits your authenticator app shows now."
    assert client.get("/risk/")["Location"].startswith(CODE)
    failed = AuditEvent.objects.get(action="user.two_factor_failed")
    assert (failed.actor, failed.result, failed.details["method"]) == ("user:pat", "refused", "totp")


def test_a_code_given_too_soon_after_a_wrong_one_waits(client, account, clock):
    device = authenticator(person(RISK))
    log_in(client)
    give(client, "000000")

    response = give(client, code_now(device))

    assert alert(response) == "Too many wrong codes in a row: wait 1 s, then try again."
    clock.shift(1)
    assert give(client, code_now(device))["Location"] == "/"


def test_a_code_lets_in_only_once(account, clock):
    device = authenticator(person(RISK))
    first, second = Client(), Client()
    log_in(first)
    code = code_now(device)
    assert give(first, code)["Location"] == "/"

    log_in(second)
    assert "not right" in alert(give(second, code))
    clock.shift(STEP + 2)
    assert give(second, code_now(device))["Location"] == "/"


def test_a_recovery_code_lets_in_once(client, account, clock):
    user = person(RISK)
    authenticator(user)
    codes = recovery_codes_renew(user=user)
    log_in(client)

    assert give(client, codes[0].upper())["Location"] == "/"
    used = AuditEvent.objects.get(action="user.recovery_code_used")
    assert used.details["recovery_codes_left"] == 9
    client.post("/logout/")

    log_in(client)
    response = give(client, codes[0])
    assert alert(response) == "That recovery code is not right, or it has been used already."
    assert client.get("/risk/")["Location"].startswith(CODE)


def test_five_wrong_codes_lock_the_name_end_the_session_and_refuse_the_password(client, account, clock):
    device = authenticator(person(RISK))
    log_in(client)

    statuses = []
    for _ in range(5):
        statuses.append(give(client, "000000").status_code)
        clock.shift(20)                                                  # past the authenticator's back-off
    assert statuses == [200, 200, 200, 200, 429]
    assert logged_in_as(client) is None

    again = log_in(client)
    assert again.status_code == 429 and alert(again) == LOCKED
    locked = give(client, code_now(device))
    assert locked.status_code == 302 and locked["Location"].startswith("/login/")
    lockout = AuditEvent.objects.get(action="user.lockout")
    assert (lockout.target, lockout.result) == ("pat", "locked")


def test_the_password_again_does_not_forgive_wrong_codes(client, account, clock):
    authenticator(person(RISK))
    log_in(client)
    for _ in range(3):
        give(client, "000000")
        clock.shift(20)

    assert log_in(client).status_code == 302                             # the password is right ...
    give(client, "000000")
    clock.shift(20)
    assert give(client, "000000").status_code == 429                     # ... but the failures still add up


def test_the_code_forgives_the_names_failures(client, account, clock):
    device = authenticator(person(RISK))
    for _ in range(4):
        log_in(client, password="wrong")
    log_in(client)
    assert give(client, code_now(device))["Location"] == "/"
    client.post("/logout/")

    assert [log_in(client, password="wrong").status_code for _ in range(4)] == [200] * 4


def test_wrong_codes_and_wrong_passwords_count_together(client, account, clock):
    authenticator(person(RISK))
    for _ in range(3):
        log_in(client, password="wrong")
    log_in(client)
    give(client, "000000")
    clock.shift(20)

    assert give(client, "000000").status_code == 429


# -- what is counted ---------------------------------------------------------------------------------------

def test_each_step_of_logging_in_is_counted_by_outcome(client, account, clock):
    user = person(RISK)
    device = authenticator(user)
    codes = recovery_codes_renew(user=user)
    before = scrape(client)

    log_in(client, password="wrong")
    log_in(client)
    give(client, "000000")
    clock.shift(2)
    give(client, code_now(device))
    client.post("/logout/")
    log_in(client)
    give(client, codes[0])

    after = scrape(client)
    counted = {outcome: value(after, "desk_logins_total", outcome=outcome)
               - value(before, "desk_logins_total", outcome=outcome)
               for outcome in ("password_ok", "password_failed", "otp_ok", "otp_failed", "recovery_used")}
    assert counted == {"password_ok": 2, "password_failed": 1, "otp_ok": 1, "otp_failed": 1, "recovery_used": 1}
