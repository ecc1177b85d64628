"""Many accounts in one desk: a person with several accounts switches between them in the header, on the page they
are on; the chosen account stays chosen from page to page and every action posts it; an account that is not
theirs is refused with 404 and words that say so, never swapped for another one."""

from __future__ import annotations

import json

import pytest

from orders.models import AuditEvent, Order
from orders.web.roles import TRADER
from tests.builders import make_account
from tests.web.page import parse
from tests.web.support import grant, logged_in, make_user, resting_limit

pytestmark = pytest.mark.django_db


@pytest.fixture
def both(account, other_account):
    """tom trades alice and zeta."""
    tom = make_user("tom", TRADER, account)
    grant(tom, TRADER, other_account)
    return logged_in(tom)


def switcher_links(page) -> dict[str, str]:
    links = page.by_id("account-menu").find_all("a")
    return {(a.find(class_="name") or a).text: a.attrs["href"] for a in links}


def nav(page) -> dict[str, str]:
    return {a.text.split()[0]: a.attrs["href"] for a in page.find("nav").find_all("a")}


# -- the switcher ------------------------------------------------------------------------------------------------

def test_a_person_with_one_account_gets_no_switcher(trader_client, other_account):
    page = parse(trader_client.get("/").content)

    assert page.find(id="account-switcher") is None
    assert page.find(class_="account-badge").text == "alice"


def test_a_trader_of_two_accounts_switches_between_them_on_the_page_they_are_on(both):
    for path in ("/", "/risk/", "/audit/"):
        page = parse(both.get(f"{path}?account=zeta").content)

        switcher = page.by_id("account-switcher")
        assert switcher.find("summary").text == "Account: zeta — switch account ▾"
        assert switcher_links(page) == {"alice": f"{path}?account=alice", "zeta": f"{path}?account=zeta"}
        current = [a.find(class_="name").text for a in page.by_id("account-menu").find_all("a")
                   if "aria-current" in a.attrs]
        assert current == ["zeta"]


def test_a_trader_is_offered_no_view_of_all_accounts(both):
    assert parse(both.get("/").content).find(id="all-accounts-link") is None
    assert both.get("/risk/all/").status_code == 403


def test_the_risk_desk_is_offered_every_account_and_all_of_them_at_once(risk_client, account, other_account):
    make_account(name="kappa")

    page = parse(risk_client.get("/risk/?account=zeta").content)

    assert list(switcher_links(page)) == ["alice", "kappa", "zeta", "All 3 accounts · risk view"]
    assert page.by_id("all-accounts-link").attrs["href"] == "/risk/all/"


# -- the chosen account stays chosen -----------------------------------------------------------------------------

def test_the_pages_links_keep_the_chosen_account(both):
    page = parse(both.get("/?account=zeta").content)

    assert nav(page) == {"Desk": "/?account=zeta", "Risk": "/risk/?account=zeta", "Audit": "/audit/?account=zeta",
                         "API": "/v1/docs"}
    assert page.by_id("alarm").find("a").attrs["href"] == "/risk/?account=zeta"


def test_a_link_without_an_account_stays_on_the_one_chosen_last(both):
    both.get("/risk/?account=zeta")

    assert parse(both.get("/").content).find(class_="account-badge").text == "zeta"
    assert parse(both.get("/audit/").content).find(class_="account-badge").text == "zeta"


def test_every_action_of_the_page_posts_its_account(both):
    page = parse(both.get("/?account=zeta").content)

    assert json.loads(page.find("body").attrs["hx-vals"]) == {"account": "zeta"}     # every htmx request of the page
    posts = [e.attrs["hx-post"] for e in page.iter() if "hx-post" in e.attrs]
    assert posts and all(url.endswith("?account=zeta") for url in posts), posts


def test_an_action_lands_on_the_account_it_posts_not_on_the_one_chosen_last(both, other_account, broker):
    theirs = resting_limit(other_account, broker, actor="user:tom")
    both.get("/?account=alice")                                # another tab chose alice since

    response = both.post(f"/orders/{theirs.pk}/cancel/", {"account": "zeta"}, headers={"HX-Request": "true"})

    assert response.status_code == 200
    theirs.refresh_from_db()
    assert theirs.status == "CANCELLED"


# -- an account that is not yours ---------------------------------------------------------------------------------

REFUSAL = ("No account named “{}” is yours to see: it does not exist, or you are not a member of it. "
           "Your accounts: alice.")


@pytest.mark.parametrize("name", ["zeta", "no-such-account"])
@pytest.mark.parametrize("path", ["/", "/risk/", "/audit/"])
def test_a_trader_asking_for_an_account_not_theirs_is_refused_in_the_same_words_whether_it_exists_or_not(
        trader_client, other_account, path, name):
    response = trader_client.get(f"{path}?account={name}")

    assert response.status_code == 404
    page = parse(response.content)
    assert page.by_id("refusal").text == REFUSAL.format(name)
    assert "zeta" not in page.find("header").text


def test_a_trader_cannot_act_on_an_account_not_theirs(trader_client, other_account, broker):
    theirs = resting_limit(other_account, broker, actor="user:oscar")

    for url, data in ((f"/orders/{theirs.pk}/cancel/?account=zeta", {}), ("/orders/cancel-all/", {"account": "zeta"}),
                      ("/positions/flatten-all/?account=zeta", {}),
                      ("/ticket/submit/?account=zeta", {"symbol": "AAPL", "side": "BUY", "quantity": "1",
                                                         "order_type": "MARKET"})):
        response = trader_client.post(url, data, headers={"HX-Request": "true"})
        assert response.status_code == 404, url

    theirs.refresh_from_db()
    assert theirs.status == "OPEN"
    assert Order.objects.filter(account=other_account).count() == 1
    assert not AuditEvent.objects.filter(account=other_account, actor="user:tina").exists()

