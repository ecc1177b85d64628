"""Every page is one view: a full page for a browser, and for an htmx request (``HX-Request``) only the
partial that the page refreshes, rendered from the same template."""

from __future__ import annotations

import pytest

from tests.web.page import parse
from tests.web.support import logged_in, make_user, raise_alert

pytestmark = pytest.mark.django_db

PAGES = [
    ("/", "blotter"),
    ("/risk/", "alerts"),
    ("/audit/", "audit-table"),
]


@pytest.mark.parametrize(("url", "partial"), PAGES)
def test_a_browser_gets_the_whole_page(trader_client, url, partial):
    response = trader_client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<!doctype html>") and "<html" in html
    page = parse(html)
    page.by_id(partial)
    assert page.find("nav") is not None
    assert "PAPER TRADING" in page.by_id("broker-badge").text


@pytest.mark.parametrize(("url", "partial"), PAGES)
def test_an_htmx_request_gets_only_the_partial(trader_client, htmx, url, partial):
    response = trader_client.get(url, headers=htmx)

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<nav" not in html
    assert [element.attrs.get("id") for element in parse(html).elements] == [partial]


@pytest.mark.parametrize(("url", "partial"), PAGES)
def test_the_answer_varies_with_the_htmx_header_so_no_cache_mixes_them_up(trader_client, htmx, url, partial):
    for response in (trader_client.get(url), trader_client.get(url, headers=htmx)):
        assert "HX-Request" in response["Vary"]


def test_a_restored_history_entry_of_the_audit_filters_gets_the_whole_page(trader_client, htmx):
    """The audit filters push their URL; when htmx restores such an entry from the server it asks with
    ``HX-History-Restore-Request`` and needs the page, not the table."""
    response = trader_client.get("/audit/?actor=tina", headers={**htmx, "HX-History-Restore-Request": "true"})

    assert "<html" in response.content.decode()


@pytest.mark.parametrize(("url", "partial"), PAGES)
def test_the_page_and_its_fragment_show_the_same_partial(trader_client, htmx, account, url, partial):
    raise_alert(account)
    full = parse(trader_client.get(url).content).by_id(partial).text
    fragment = parse(trader_client.get(url, headers=htmx).content).by_id(partial).text

    assert fragment == full


@pytest.mark.parametrize("url", ["/", "/risk/", "/audit/", "/audit.csv", "/chart/?symbol=AAPL"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_the_login_page_is_a_whole_page_for_a_browser(client):
    response = client.get("/login/")

    assert response.status_code == 200
    page = parse(response.content)
    assert "<html" in response.content.decode()
    form = page.by_id("login-form")
    assert form.find("input", name="username") is not None and form.find("input", name="password") is not None
    assert page.find("nav") is None                       # nothing to navigate to before logging in


def test_the_login_page_answers_htmx_with_its_form_and_a_full_page_redirect(client, htmx):
    """An htmx action of a page whose session has expired is redirected here: the answer is the form only,
    and ``HX-Redirect`` makes the browser load the login page and come back to the page afterwards."""
    response = client.get("/login/?next=/ticket/submit/", headers={**htmx, "HX-Current-URL": "http://testserver/risk/"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and [e.attrs.get("id") for e in parse(html).elements] == ["login-form"]
    assert response["HX-Redirect"] == "/login/?next=%2Frisk%2F"


def test_a_page_lists_the_role_of_the_user(trader_client, risk_client):
    assert "tina (trader)" in parse(trader_client.get("/").content).find(class_="who").text
    assert "rita (risk)" in parse(risk_client.get("/").content).find(class_="who").text


def test_the_desk_page_connects_its_socket_for_the_account_it_shows(trader_client):
    body = parse(trader_client.get("/").content).find("body")

    assert body.attrs["ws-connect"] == "/ws/desk/?account=alice"
    assert body.attrs["hx-ext"] == "ws"
    assert "X-CSRFToken" in body.attrs["hx-headers"]


def test_the_risk_page_connects_the_risk_variant_of_the_socket(risk_client):
    body = parse(risk_client.get("/risk/").content).find("body")

    assert body.attrs["ws-connect"] == "/ws/desk/?view=risk&account=alice"


def test_a_trader_sees_only_the_accounts_they_are_a_member_of(trader_client, other_account):
    response = trader_client.get("/?account=zeta")     # refused, never swapped for theirs (test_account_switcher.py)

    assert response.status_code == 404
    assert "zeta" not in parse(response.content).find("header").text


def test_the_risk_desk_can_open_any_account(risk_client, other_account):
    assert parse(risk_client.get("/?account=zeta").content).find(class_="account-badge").text == "zeta"


def test_a_user_who_is_a_member_of_no_account_is_refused(db):
    response = logged_in(make_user("nobody")).get("/")

    assert response.status_code == 403
