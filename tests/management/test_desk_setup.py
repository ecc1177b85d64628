"""``manage.py desk_setup``: the demo logins get random passwords on the first start, shown once; a
password may be chosen on the command line or in the environment instead, and must be when the desk is
served beyond loopback."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from orders.models import Account

pytestmark = pytest.mark.django_db

PUBLISHED = {"demo-trader-2026", "risk-desk-2026"}     # the fixed passwords of earlier versions


@pytest.fixture(autouse=True)
def _nothing_chosen(monkeypatch, settings):
    """No password chosen by the caller's environment; a loopback desk; a fast password hasher."""
    for name in ("DESK_DEMO_PASSWORD", "DESK_RISK_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    settings.IS_LOOPBACK_DEPLOYMENT = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def beyond_loopback(settings):
    settings.GATEWAY_HOST = "203.0.113.5"
    settings.IS_LOOPBACK_DEPLOYMENT = False


def desk_setup(*args: str) -> str:
    out = StringIO()
    call_command("desk_setup", *args, stdout=out)
    return out.getvalue()


def shown_passwords(output: str) -> dict[str, str]:
    return dict(re.findall(r"^login +(\S+) / password (\S+) +\(shown once[^)]*\)", output, re.MULTILINE))


def can_log_in(username: str, password: str) -> bool:
    return Client().post("/login/", {"username": username, "password": password}).status_code == 302


def usernames() -> set[str]:
    return set(get_user_model().objects.values_list("username", flat=True))


# -- generated passwords -------------------------------------------------------------------------------

def test_the_first_start_creates_both_logins_with_random_passwords_and_shows_them():
    shown = shown_passwords(desk_setup())

    assert set(shown) == {"demo", "risk"}
    assert all(len(password) >= 16 for password in shown.values())
    assert shown["demo"] != shown["risk"] and not PUBLISHED & set(shown.values())
    assert can_log_in("demo", shown["demo"]) and can_log_in("risk", shown["risk"])


def test_the_first_start_says_both_logins_set_up_two_factor_at_their_first_login():
    output = desk_setup()
    shown = shown_passwords(output)

    assert "2fa      demo and risk also give a code from an authenticator app" in output
    for username in ("demo", "risk"):
        client = Client()
        client.post("/login/", {"username": username, "password": shown[username]})
        assert client.get("/")["Location"] == "/account/two-factor/?next=%2F", username


def test_each_new_desk_draws_new_passwords():
    first = shown_passwords(desk_setup())
    get_user_model().objects.all().delete()

    second = shown_passwords(desk_setup())

    assert first["demo"] != second["demo"] and first["risk"] != second["risk"]


def test_a_later_start_shows_no_password_and_changes_none():
    first = shown_passwords(desk_setup())

    output = desk_setup()

    assert shown_passwords(output) == {}
    assert not any(password in output for password in first.values())
    assert output.count("existing user, password unchanged") == 2
    assert can_log_in("demo", first["demo"]) and can_log_in("risk", first["risk"])


# -- chosen passwords ----------------------------------------------------------------------------------

def test_passwords_chosen_in_the_environment_are_used_and_not_printed(monkeypatch):
    monkeypatch.setenv("DESK_DEMO_PASSWORD", "demo-from-the-environment")
    monkeypatch.setenv("DESK_RISK_PASSWORD", "risk-from-the-environment")

    output = desk_setup()

    assert can_log_in("demo", "demo-from-the-environment") and can_log_in("risk", "risk-from-the-environment")
    assert "from-the-environment" not in output
    assert "password as chosen (DESK_DEMO_PASSWORD)" in output


def test_a_password_may_come_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "risk-password"
    secret.write_text("risk-from-a-secret-file\n")
    monkeypatch.setenv("DESK_RISK_PASSWORD_FILE", str(secret))

    desk_setup()

    assert can_log_in("risk", "risk-from-a-secret-file")


def test_passwords_on_the_command_line_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("DESK_DEMO_PASSWORD", "demo-from-the-environment")

    desk_setup("--password", "demo-on-the-command-line", "--risk-password", "risk-on-the-command-line")

    assert can_log_in("demo", "demo-on-the-command-line")
    assert not can_log_in("demo", "demo-from-the-environment")
    assert can_log_in("risk", "risk-on-the-command-line")


def test_a_chosen_password_the_validators_reject_is_refused():
    with pytest.raises(CommandError, match=r"--risk-password: .*too short"):
        desk_setup("--risk-password", "short")

    assert usernames() == set()


# -- beyond loopback -----------------------------------------------------------------------------------

def test_beyond_loopback_it_refuses_to_generate_passwords_and_names_the_variables(beyond_loopback):
    with pytest.raises(CommandError) as refusal:
        desk_setup()

    message = str(refusal.value)
    assert "GATEWAY_HOST=203.0.113.5 is not loopback" in message
    assert "DESK_DEMO_PASSWORD" in message and "DESK_RISK_PASSWORD" in message
    assert usernames() == set()
    assert not Account.objects.exists()


def test_beyond_loopback_it_names_only_the_password_still_missing(beyond_loopback, monkeypatch):
    monkeypatch.setenv("DESK_DEMO_PASSWORD", "demo-from-the-environment")

    with pytest.raises(CommandError) as refusal:
        desk_setup()

    assert "DESK_RISK_PASSWORD" in str(refusal.value)
    assert "DESK_DEMO_PASSWORD" not in str(refusal.value)


def test_beyond_loopback_chosen_passwords_create_the_logins(beyond_loopback, monkeypatch):
    monkeypatch.setenv("DESK_DEMO_PASSWORD", "demo-from-the-environment")
    monkeypatch.setenv("DESK_RISK_PASSWORD", "risk-from-the-environment")

    output = desk_setup()

    assert shown_passwords(output) == {}
    assert can_log_in("demo", "demo-from-the-environment") and can_log_in("risk", "risk-from-the-environment")


def test_beyond_loopback_existing_logins_need_no_password(settings):
    first = shown_passwords(desk_setup())
    settings.GATEWAY_HOST, settings.IS_LOOPBACK_DEPLOYMENT = "203.0.113.5", False

    output = desk_setup()

    assert output.count("existing user, password unchanged") == 2
    assert can_log_in("demo", first["demo"])


def test_logins_left_with_a_published_password_by_an_earlier_version_get_a_fresh_one():
    User = get_user_model()
    User.objects.create_user("demo", password="demo-trader-2026", is_staff=True, is_superuser=True)
    User.objects.create_user("risk", password="risk-desk-2026")

    shown = shown_passwords(desk_setup())

    assert set(shown) == {"demo", "risk"} and not PUBLISHED & set(shown.values())
    assert not can_log_in("demo", "demo-trader-2026") and not can_log_in("risk", "risk-desk-2026")
    assert can_log_in("demo", shown["demo"]) and can_log_in("risk", shown["risk"])
    assert shown_passwords(desk_setup()) == {}                    # rotated once, then left alone


def test_beyond_loopback_a_published_password_is_refused_until_one_is_chosen(beyond_loopback):
    get_user_model().objects.create_user("risk", password="risk-desk-2026")

    with pytest.raises(CommandError, match="DESK_RISK_PASSWORD"):
        desk_setup("--password", "a-chosen-demo-password-1")

    assert get_user_model().objects.get(username="risk").check_password("risk-desk-2026")


# -- the account -------------------------------------------------------------------------------------------

def test_on_the_paper_venue_the_account_is_funded_and_says_so(settings):
    settings.GATEWAY_PROVIDER = "paper"
    output = desk_setup()
    account = Account.objects.get(name="demo")
    assert account.cash == settings.PAPER_STARTING_CASH
    assert "(paper, funded 100000 USD)" in output


def test_on_a_real_broker_the_account_is_not_funded_and_does_not_claim_to_be(settings):
    """Its balance is the venue's: the desk neither invents one nor prints 'paper, funded'."""
    settings.GATEWAY_PROVIDER = "alpaca"
    output = desk_setup()
    account = Account.objects.get(name="demo")
    assert (account.broker, account.cash) == ("alpaca", 0)
    assert "funded" not in output and "paper" not in output
    assert "the venue's own" in output
