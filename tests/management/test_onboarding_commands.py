"""``manage.py create_account`` and ``manage.py grant_role``: an account opened on any broker of the registry,
its credentials from the environment; a person given a role on it, who then sees it on the desk. Anything unknown
(broker, person, role, account) is refused with a message and a non-zero exit, and nothing is created."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.core.management.base import BaseCommand

from orders.management.commands.grant_role import Command as GrantRole
from orders.models import Account, AuditEvent, DeskMembership
from tests.builders import make_account
from tests.web.support import logged_in, make_user

pytestmark = pytest.mark.django_db


def run(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def refused(name: str, *args: str) -> str:
    with pytest.raises(CommandError) as refusal:
        run(name, *args)
    return str(refusal.value)


def exit_status(command: BaseCommand, *argv: str, capsys) -> tuple[int, str]:
    """The command as a shell runs it (``manage.py …``): its exit status and what it wrote to stderr. (Its closing
    of every database connection on the way out is left out: the test's own connection holds the test database.)"""
    with mock.patch("django.core.management.base.connections.close_all"), pytest.raises(SystemExit) as exited:
        command.run_from_argv(["manage.py", *argv])
    return exited.value.code, capsys.readouterr().err


@pytest.fixture
def no_alpaca_keys(monkeypatch):
    for name in ("ALPACA_API_KEY", "ALPACA_API_SECRET"):
        monkeypatch.delenv(name, raising=False)


# -- create_account ----------------------------------------------------------------------------------------------

def test_it_opens_a_paper_account_funded_with_the_starting_cash(settings):
    settings.PAPER_STARTING_CASH = Decimal("25000")

    output = run("create_account", "--name", "fund-b", "--broker", "paper", "--timezone", "America/New_York")

    account = Account.objects.get(name="fund-b")
    assert (account.broker, account.cash, account.currency, account.timezone) == (
        "paper", Decimal("25000"), "USD", "America/New_York")
    assert "account fund-b on paper (funded 25000 USD" in output
    assert "grant_role USER trader --account fund-b" in output


def test_the_account_is_audited_as_created_by_the_command():
    run("create_account", "--name", "fund-b", "--broker", "paper", "--cash", "5000", "--currency", "EUR")

    event = AuditEvent.objects.get(action="account.create")
    assert (event.account.name, event.actor, event.target) == ("fund-b", "command:create_account", "fund-b")
    assert event.details == {"broker": "paper", "currency": "EUR", "timezone": "UTC", "cash": "5000"}


def test_a_real_broker_takes_its_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", "PKTEST")
    monkeypatch.setenv("ALPACA_API_SECRET", "not-a-real-secret")

    output = run("create_account", "--name", "us-stocks", "--broker", "alpaca")

    account = Account.objects.get(name="us-stocks")
    assert (account.broker, account.cash) == ("alpaca", Decimal("0"))
    assert "its figures are the venue's own" in output


def test_a_broker_this_environment_has_no_credentials_for_is_refused_naming_each_variable(no_alpaca_keys):
    message = refused("create_account", "--name", "us-stocks", "--broker", "alpaca")

    assert "alpaca is not configured in this environment" in message
    assert "ALPACA_API_KEY: NOT SET" in message and "ALPACA_API_SECRET: NOT SET" in message
    assert not Account.objects.filter(name="us-stocks").exists()


def test_an_unknown_broker_is_refused_listing_the_registry():
    message = refused("create_account", "--name", "x", "--broker", "ibkr")

    assert message == "Invalid value for broker: must be one of alpaca, binance_spot, kraken, paper"
    assert not Account.objects.exists()


def test_a_broker_name_short_of_the_registrys_is_answered_with_the_right_one():
    assert "(did you mean binance_spot?)" in refused("create_account", "--name", "x", "--broker", "binance")


def test_a_name_taken_already_is_refused_and_the_account_left_as_it_was():
    make_account(name="alice", cash=Decimal("100000"))

    assert refused("create_account", "--name", "alice", "--broker", "paper", "--cash", "1") == (
        "an account named 'alice' exists already")
    assert Account.objects.get(name="alice").cash == Decimal("100000")


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--timezone", "Mars/Olympus", "Invalid value for timezone: an IANA time zone name"),
    ("--currency", "usd", "Invalid value for currency: 3-8 capital letters"),
    ("--name", "two words", "Invalid value for name: 1-64 letters, digits"),
    ("--cash", "lots", "--cash 'lots' is not an amount"),
    ("--cash", "-1", "Invalid value for cash: must be zero or more"),
])
def test_a_bad_value_is_refused_and_nothing_is_created(option, value, said):
    arguments = {"--name": "fund-b", "--broker": "paper", option: value}

    assert refused("create_account", *[part for pair in arguments.items() for part in pair]).startswith(said)
    assert not Account.objects.exists()


def test_cash_is_refused_for_a_real_venue(monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", "PKTEST")
    monkeypatch.setenv("ALPACA_API_SECRET", "not-a-real-secret")

    assert "only a paper account is funded by the desk" in refused(
        "create_account", "--name", "us", "--broker", "alpaca", "--cash", "10")


# -- grant_role --------------------------------------------------------------------------------------------------

@pytest.fixture
def fund_b():
    return make_account(name="fund-b")


def test_a_trader_granted_an_account_sees_it_on_the_desk(fund_b):
    person = make_user("tom")

    output = run("grant_role", "tom", "trader", "--account", "fund-b")

    assert output == "tom now has the trader role on fund-b\n"
    assert DeskMembership.objects.filter(user=person, account=fund_b).exists()
    page = logged_in(person).get("/?account=fund-b")
    assert page.status_code == 200 and b'class="account-badge"' in page.content


def test_the_grant_is_audited_on_its_account(fund_b):
    make_user("tom")

    run("grant_role", "tom", "trader", "--account", "fund-b")

    event = AuditEvent.objects.get(action="user.role_grant")
    assert (event.account, event.actor, event.target) == (fund_b, "command:grant_role", "tom")
    assert event.details == {"role": "trader", "account": "fund-b", "role_added": True, "membership_added": True}


@pytest.mark.parametrize("role", ["risk", "admin"])
def test_a_desk_wide_role_named_on_one_account_is_refused_rather_than_granted_everywhere(fund_b, role):
    make_user("tom")

    assert refused("grant_role", "tom", role, "--account", "fund-b") == (
        f"Invalid value for account: the {role} role supervises every account, the kill switch for all included: "
        "grant it without --account")
    assert not get_user_model().objects.get(username="tom").groups.exists()


def test_a_second_grant_of_the_same_says_so_and_audits_nothing(fund_b):
    make_user("tom")
    run("grant_role", "tom", "trader", "--account", "fund-b")

    assert run("grant_role", "tom", "trader", "--account", "fund-b") == (
        "tom already had the trader role on fund-b: nothing changed\n")
    assert AuditEvent.objects.filter(action="user.role_grant").count() == 1


def test_a_risk_role_needs_no_account():
    make_user("rita")

    assert run("grant_role", "rita", "risk") == "rita now has the risk role\n"
    assert get_user_model().objects.get(username="rita").groups.filter(name="risk").exists()


def test_a_trader_without_an_account_is_refused():
    make_user("tom")

    assert refused("grant_role", "tom", "trader") == (
        "Invalid value for account: a trader trades only the accounts they are a member of: name the account")
    assert not get_user_model().objects.get(username="tom").groups.exists()


@pytest.mark.parametrize(("argv", "said"), [
    (("nobody", "trader", "--account", "fund-b"), "no person logs in as 'nobody'"),
    (("tom", "superuser", "--account", "fund-b"), "Invalid value for role: must be one of trader, risk, admin"),
    (("tom", "trader", "--account", "fund-z"), "no account named 'fund-z' (manage.py create_account makes one)"),
])
def test_an_unknown_person_role_or_account_exits_non_zero_and_creates_nothing(fund_b, capsys, argv, said):
    make_user("tom")
    groups_before = set(Group.objects.values_list("name", flat=True))

    status, stderr = exit_status(GrantRole(), "grant_role", *argv, capsys=capsys)

    assert status == 1
    assert said in stderr
    assert set(Group.objects.values_list("name", flat=True)) == groups_before
    assert not DeskMembership.objects.exists()
    assert list(Account.objects.values_list("name", flat=True)) == ["fund-b"]
    assert not AuditEvent.objects.filter(action="user.role_grant").exists()
