"""Logging in: a user name gets five wrong passwords from one address, then it is locked for 15 minutes."""

from __future__ import annotations

import pytest

from orders.models import AuditEvent
from orders.web.views import LOGIN_ATTEMPTS
from tests.web.page import parse
from tests.web.support import PASSWORD

pytestmark = pytest.mark.django_db


def log_in(client, username: str = "tina", password: str = PASSWORD, **extra):
    return client.post("/login/", {"username": username, "password": password, **extra})


def test_a_trader_logs_in_and_lands_on_the_desk(client, trader):
    response = log_in(client)

    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="user.login", actor="user:tina").count() == 1


def test_logging_in_returns_to_the_page_asked_for(client, trader):
    response = log_in(client, next="/risk/")

    assert response["Location"] == "/risk/"


def test_a_wrong_password_shows_the_form_again_with_a_message(client, trader):
    response = log_in(client, password="wrong")

    assert response.status_code == 200
    assert "Please enter a correct username and password" in parse(response.content).by_id("login-form").text


def test_the_sixth_wrong_password_is_refused_with_429_and_says_why(client, trader):
    for _ in range(LOGIN_ATTEMPTS):
        assert log_in(client, password="wrong").status_code == 200

    response = log_in(client, password="wrong")

    assert response.status_code == 429
    assert "Too many failed attempts. Try again in 15 minutes." in parse(response.content).find(role="alert").text


def test_a_locked_user_name_is_refused_even_with_the_right_password(client, trader):
    for _ in range(LOGIN_ATTEMPTS):
        log_in(client, password="wrong")

    response = log_in(client)

    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_the_lock_is_per_user_name(client, trader, risk_user):
    for _ in range(LOGIN_ATTEMPTS + 1):
        log_in(client, password="wrong")

    assert log_in(client, username="rita").status_code == 302


def test_the_user_name_is_matched_without_regard_to_case(client, trader):
    for _ in range(LOGIN_ATTEMPTS):
        log_in(client, username="TINA", password="wrong")

    assert log_in(client, username="tina", password="wrong").status_code == 429


def test_a_successful_login_clears_the_failures(client, trader):
    for _ in range(LOGIN_ATTEMPTS - 1):
        log_in(client, password="wrong")
    assert log_in(client).status_code == 302
    client.post("/logout/")

    for _ in range(LOGIN_ATTEMPTS - 1):
        assert log_in(client, password="wrong").status_code == 200
    assert log_in(client).status_code == 302


def test_the_lock_expires_after_15_minutes(client, trader, clock):
    for _ in range(LOGIN_ATTEMPTS):
        log_in(client, password="wrong")
    assert log_in(client).status_code == 429

    clock.shift(15 * 60 + 1)

    assert log_in(client).status_code == 302


def test_logging_out_needs_a_post_and_ends_the_session(trader_client):
    assert trader_client.get("/logout/").status_code == 405

    response = trader_client.post("/logout/")

    assert response.status_code == 302 and response["Location"] == "/login/"
    assert trader_client.get("/").status_code == 302
