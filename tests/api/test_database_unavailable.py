"""While the database is out of reach every request answers 503, never 500: /v1 in the protocol's envelope
(DATABASE_UNAVAILABLE, retryable, Retry-After), the desk's pages with a plain "temporarily unavailable" page.
A pooled /v1 thread checks its connection before every call, so it reconnects by itself."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError

from orders.api import common, dbguard
from orders.web.roles import TRADER
from tests.web.support import logged_in, make_user

pytestmark = pytest.mark.django_db


def database_gone(*args, **kwargs):
    raise OperationalError("terminating connection due to administrator command")


@pytest.mark.parametrize("error", [OperationalError("the connection is lost"),
                                   InterfaceError("connection already closed")])
def test_a_v1_request_answers_503_database_unavailable_in_the_envelope(client, account, monkeypatch, error):
    def fails(*args, **kwargs):
        raise error

    monkeypatch.setattr("orders.api.orders.selectors.order_list", fails)

    response = client.get("/v1/orders")

    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert response.json() == {
        "code": "DATABASE_UNAVAILABLE",
        "message": "Database unavailable: the desk cannot reach its database right now; retry in a few seconds",
        "details": {"retryable": True, "retry_after_seconds": 2}}


def test_a_desk_page_answers_a_plain_temporarily_unavailable_page(account, monkeypatch):
    page = logged_in(make_user("tina", TRADER, account))
    page.raise_request_exception = False
    monkeypatch.setattr("orders.web.views.blotter_context", database_gone)

    response = page.get("/")

    assert response.status_code == 503
    assert response["Retry-After"] == "2"
    assert "The desk is temporarily unavailable" in response.content.decode()


def test_a_500_outside_a_view_becomes_503_when_the_database_does_not_answer(account, monkeypatch):
    page = logged_in(make_user("tina", TRADER, account))
    page.raise_request_exception = False
    monkeypatch.setattr("orders.web.views.blotter_context", lambda *args: 1 / 0)
    monkeypatch.setattr(dbguard, "is_database_reachable", lambda: False)

    assert page.get("/").status_code == 503


def test_a_lost_connection_in_a_middleware_answers_503_even_once_the_database_is_back(account, monkeypatch):
    # the two-factor gate reads the session's user before any view runs; a server still starting up refuses it,
    # and may be up again by the time the answer is written: the request that failed still gets 503, never 500
    page = logged_in(make_user("tina", TRADER, account))
    page.raise_request_exception = False
    monkeypatch.setattr("orders.web.two_factor.is_second_factor_missing", database_gone)

    response = page.get("/")

    assert dbguard.is_database_reachable()
    assert response.status_code == 503
    assert "The desk is temporarily unavailable" in response.content.decode()


def test_any_other_error_stays_a_500(account, monkeypatch):
    page = logged_in(make_user("tina", TRADER, account))
    page.raise_request_exception = False
    monkeypatch.setattr("orders.web.views.blotter_context", lambda *args: 1 / 0)

    assert page.get("/").status_code == 500


def test_the_database_is_reachable_in_the_tests():
    assert dbguard.is_database_reachable()


def test_a_pooled_call_checks_its_threads_connection_first(monkeypatch):
    calls = []
    monkeypatch.setattr(common, "close_old_connections", lambda: calls.append("checked"))

    common.fresh_connection(lambda: calls.append("ran"))()

    assert calls == ["checked", "ran"]


def test_the_unavailable_page_needs_no_database_and_no_request():
    response = dbguard.unavailable_page()

    assert response.status_code == 503
    assert b"<title>Temporarily unavailable" in response.content

