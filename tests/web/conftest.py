"""The desk's people: tina trades the account, rita watches it from the risk desk (no orders), and
oscar is a trader of another account. Each gets a logged-in ``django.test.Client``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Account
from orders.web.roles import RISK, TRADER
from tests.builders import make_account
from tests.web.support import logged_in, make_user


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Logging in checks a password hash; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def trader(account):
    return make_user("tina", TRADER, account)


@pytest.fixture
def risk_user(account):
    return make_user("rita", RISK)


@pytest.fixture
def trader_client(trader) -> Client:
    return logged_in(trader)


@pytest.fixture
def risk_client(risk_user) -> Client:
    return logged_in(risk_user)


@pytest.fixture
def other_account(db) -> Account:
    return make_account(name="zeta", cash=Decimal("50000"))


@pytest.fixture
def htmx() -> dict[str, str]:
    return {"HX-Request": "true"}




@pytest.fixture
def outsider(other_account):
    """oscar trades another account and is no member of alice's."""
    return make_user("oscar", TRADER, other_account)
