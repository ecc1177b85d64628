"""Every way the ticket can be refused, driven in Chromium as a trader meets it: the message is on the ticket
in the API's words (beside its field, or above the form) and the green banner of the order placed just before
is gone. Then the banner of an order that goes through follows it by push, and fills and stop-outs show as
notifications. Each refusal is saved as a screenshot at 390x844 and 1440x900 (``test-output/screenshots/``).

One desk serves the whole module (starting one costs seconds); a test that changes it (a fault, the trading
state) puts it back."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import LIVE, SCREENSHOTS, People, expire_session, paper_desk, screenshot, watched
from tests.e2e.desk_process import Desk
from tests.e2e.test_desk_browser import DESK_ENV, TRADER, fill_ticket, quote

pytestmark = pytest.mark.slow

SOFT_QUANTITY, HARD_QUANTITY = 5, 100
# leaving HALTED needs a second person (four eyes): the test's own shell asks and the risk desk's ``risk`` approves
RESUME = ("from orders.models import Account; from orders.services.approvals import approval_approve, "
          "trading_state_ask; demo = Account.objects.get(name='demo'); "
          "asked = trading_state_ask(account=demo, state='ACTIVE', actor='command:test', reason='refusal test over'); "
          "approval_approve(account=demo, approval_id=str(asked.pk), actor='user:risk', supervisor=True)")
LIMITS = ("from decimal import Decimal; from orders.models import Account; "
          "from orders.services.limits import limits_set; "
          f"limits_set(account_id=Account.objects.get(name='demo').pk, actor='test', "
          f"max_quantity_soft=Decimal({SOFT_QUANTITY}), max_quantity_hard=Decimal({HARD_QUANTITY}))")


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    """The demo account with a soft quantity limit of 5 and a hard one of 100."""
    with paper_desk(tmp_path_factory.mktemp("refusals"), before=lambda desk: desk.manage("shell", "-c", LIMITS),
                    **DESK_ENV) as desk:
        yield desk


@pytest.fixture
def people(browser, desk, contexts) -> Iterator[People]:
    with watched(People(browser, desk, contexts)) as crowd:
        yield crowd


@pytest.fixture
def trader(people) -> Page:
    """The trader's desk with the green banner of an order just placed (BUY 1 AAPL at market)."""
    page = people.log_in(TRADER)
    fill_ticket(page, quantity="1")
    page.click("#ticket-submit")
    expect(page.locator("#ticket-placed")).to_contain_text("Order BUY 1 AAPL MARKET sent")
    return page


def refused(page: Page, message, name: str, *, quoted: bool = True) -> None:
    """The message is on screen at both sizes, no banner is left, and both sizes are saved (once the live quote
    is back in the ticket, unless told it is not)."""
    expect(page.locator("#ticket-placed")).to_have_count(0)
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        message.scroll_into_view_if_needed()
        expect(message).to_be_visible()
        expect(message).to_be_in_viewport()
        if quoted:
            screenshot(page, f"refusal-{name}-{width}")
        else:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"refusal-{name}-{width}.png"), full_page=True)


def field_error(page: Page, name: str):
    return page.locator(f'#ticket-form label:has([name="{name}"]) .field-error')


def form_error(page: Page):
    return page.locator("#ticket-form > p.error[role=alert]")


def on_ticket(page: Page):
    return page.locator("#ticket-outcome p.error[role=alert]")


# -- refusals the desk draws on the ticket -------------------------------------------------------------

def test_a_hard_limit_block_is_shown_beside_the_quantity(trader):
    fill_ticket(trader, quantity="500")
    trader.click("#ticket-submit")

    message = field_error(trader, "quantity")
    expect(message).to_have_text(f"Blocked: Quantity 500 is above the hard limit {HARD_QUANTITY}")
    refused(trader, message, "hard-limit")


def test_a_soft_limit_without_a_reason_asks_for_one_beside_the_reason(trader):
    fill_ticket(trader, quantity="10")
    trader.click("#ticket-submit")

    message = field_error(trader, "override_reason")
    expect(message).to_have_text("Type a reason to send an order past the warnings above.")
    expect(trader.locator('.breach[data-check="max_quantity"]')).to_contain_text(
        f"Quantity 10 is above the soft limit {SOFT_QUANTITY}")
    refused(trader, message, "override-required")

    # the ticket changes: the refusal was said of the ticket as sent, so it no longer stands as the truth
    trader.fill("#ticket-quantity", "500")
    expect(message).to_have_class(re.compile(r"\boutdated\b"))
    expect(trader.locator('.breach[data-check="max_quantity"]')).to_contain_text(         # the live preview's word
        f"Quantity 500 is above the hard limit {HARD_QUANTITY}")
    trader.fill("#ticket-form [name=override_reason]", "desk lead agreed")
    expect(message).to_have_count(0)                    # the reason it asked for is being typed


def test_a_limit_order_without_a_price_is_refused_beside_the_limit_price(trader):
    fill_ticket(trader, quantity="1", order_type="LIMIT")
    trader.click("#ticket-submit")

    message = field_error(trader, "limit_price")
    expect(message).to_have_text("INVALID_REQUEST: Invalid request: Limit orders require limit_price")
    refused(trader, message, "limit-without-price")


def test_an_order_on_a_halted_account_is_refused_above_the_form(trader, desk):
    desk.manage("trading_state", "demo", "HALTED", "--reason", "refusal test")
    try:
        fill_ticket(trader, quantity="1")
        trader.click("#ticket-submit")

        message = form_error(trader)
        expect(message).to_have_text("ORDER_REJECTED: Order rejected: trading on account demo is halted")
        refused(trader, message, "halted")
    finally:
        desk.manage("shell", "-c", RESUME)


def test_an_order_the_venue_rejects_shows_its_reason(trader, desk):
    desk.manage("paper_faults", "--reject-next", "1", "--kind", "MARKET", "--reason", "MARKET_CLOSED")
    try:
        fill_ticket(trader, quantity="1")
        trader.click("#ticket-submit")

        message = form_error(trader)
        expect(message).to_have_text("MARKET_CLOSED: Order rejected: rejected by injected fault")
        refused(trader, message, "venue-rejected")
    finally:
        desk.manage("paper_faults", "--clear")


def test_a_venue_that_cannot_be_reached_is_a_5xx_shown_above_the_form(trader, desk):
    desk.manage("paper_faults", "--unavailable", "on")
    try:
        fill_ticket(trader, quantity="1")
        with trader.expect_response("**/ticket/submit/**") as answer:
            trader.click("#ticket-submit")
        assert answer.value.status == 503

        message = form_error(trader)
        expect(message).to_have_text(
            "PROVIDER_UNAVAILABLE: Provider unavailable: paper venue is unavailable (injected fault)")
    finally:
        desk.manage("paper_faults", "--clear")
    refused(trader, message, "5xx-venue-unavailable", quoted=False)   # its preview has no quote


# -- refusals the page draws: no ticket came back ------------------------------------------------------

def test_a_server_error_page_is_not_swapped_in_but_said_on_the_ticket(trader):
    trader.route("**/ticket/submit/**", lambda route: route.fulfill(
        status=500, content_type="text/html", body="<!doctype html><h1>Server Error (500)</h1>"))
    fill_ticket(trader, quantity="1")
    trader.click("#ticket-submit")

    message = on_ticket(trader)
    expect(message).to_contain_text("The desk could not complete the request (server error) — HTTP 500")
    expect(message).to_contain_text("check the blotter")
    expect(trader.locator("#ticket-form")).to_be_visible()                # the error page was not swapped in
    trader.unroute("**/ticket/submit/**")
    refused(trader, message, "5xx-page")


def test_a_network_failure_is_said_on_the_ticket(trader):
    trader.route("**/ticket/submit/**", lambda route: route.abort("internetdisconnected"))
    fill_ticket(trader, quantity="1")
    trader.click("#ticket-submit")

    message = on_ticket(trader)
    expect(message).to_contain_text("No answer from the desk (network failure): nothing was confirmed.")
    trader.unroute("**/ticket/submit/**")
    refused(trader, message, "network")


def test_an_expired_session_says_so_with_a_link_to_log_in_again(trader, desk):
    expire_session(trader)
    fill_ticket(trader, quantity="1")
    with trader.expect_response("**/ticket/submit/**") as answer:
        trader.click("#ticket-submit")
    assert answer.value.status == 401

    message = on_ticket(trader)
    expect(message).to_have_text("Your session has expired — log in again.")
    expect(trader.locator("#login-form")).to_have_count(0)               # the login page is not in the ticket
    refused(trader, message, "session-expired")
    trader.get_by_role("link", name="log in again").click()
    trader.wait_for_url(f"{desk.url}/login/?next=/")


# -- an order that goes through: its banner follows it, its fills are notified -------------------------

def test_the_banner_follows_the_order_to_filled_and_the_fill_is_notified(people, desk):
    page = people.log_in(TRADER)
    page.evaluate("""window.__noTarget = [];
        document.addEventListener("htmx:oobErrorNoTarget", e => window.__noTarget.push(e.detail.content.id))""")
    fill_ticket(page, quantity="2")
    page.click("#ticket-submit")

    banner = page.locator("#ticket-placed")
    expect(banner).to_contain_text("Order BUY 2 AAPL MARKET sent")
    expect(banner).to_have_attribute("data-status", "FILLED", timeout=LIVE)
    expect(banner).to_contain_text("FILLED @ ")
    toast = page.locator("#toasts .toast-fill[role=status]")
    expect(toast).to_have_text(f"Bought 2 AAPL @ {banner.inner_text().split(' @ ')[1].split(' ')[0]}")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(toast).to_be_in_viewport()
    screenshot(page, "notification-fill-390")
    expect(toast).to_have_count(0, timeout=LIVE)                          # gone by itself after a few seconds
    assert page.evaluate("window.__noTarget") == []                       # every push found its place


def test_a_stop_loss_that_fills_is_notified_as_a_stop_out(people, desk):
    page = people.log_in(TRADER)
    bid = quote(desk)["bid"]
    fill_ticket(page, quantity="1", stop_loss=bid - 1)
    page.click("#ticket-submit")
    expect(page.locator("#ticket-placed")).to_have_attribute("data-status", "FILLED", timeout=LIVE)
    expect(page.locator("#working-body tr.order .tag", has_text="SL")).to_have_count(1)

    desk.manage("paper_faults", "--shock", "AAPL", "-10")
    try:
        stop = page.locator("#toasts .toast-stop[role=status]")
        expect(stop).to_contain_text("Stopped out: sold 1 AAPL @ ", timeout=30_000)
        page.set_viewport_size({"width": 390, "height": 844})
        screenshot(page, "notification-stop-out-390")
    finally:
        desk.manage("paper_faults", "--clear")
