"""Issue #16's order guards as a trader meets them in Chromium: a frozen feed's quote ageing on the ticket, the
STALE_QUOTE refusal beside the override reason and the order sent with one, and the order-rate throttle's 429
on the ticket in the API's words. Saved at 390x844 and 1440x900 (``test-output/screenshots/``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.browser import People, paper_desk, screenshot, watched
from tests.e2e.desk_process import Desk
from tests.e2e.test_desk_browser import DESK_ENV, TRADER, fill_ticket

pytestmark = pytest.mark.slow

PER_MINUTE, MAX_AGE = 3, 3
GUARDS = ("from decimal import Decimal; from orders.models import Account; "
          "from orders.services.limits import limits_set; "
          f"limits_set(account_id=Account.objects.get(name='demo').pk, actor='test', "
          f"orders_per_minute={PER_MINUTE}, max_quote_age_seconds=Decimal({MAX_AGE}))")


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("guards"), before=lambda desk: desk.manage("shell", "-c", GUARDS),
                    **DESK_ENV) as desk:
        yield desk


@pytest.fixture
def trader(browser, desk, contexts) -> Iterator[Page]:
    with watched(People(browser, desk, contexts)) as people:
        yield people.log_in(TRADER)


def shown_at_both_sizes(page: Page, message, name: str) -> None:
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        message.scroll_into_view_if_needed()
        expect(message).to_be_visible()
        expect(message).to_be_in_viewport()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page overflows"
        screenshot(page, f"guard-{name}-{width}")


def test_a_frozen_feed_ages_on_the_ticket_and_refuses_stale_quote_until_a_reason_is_typed(trader, desk):
    expect(trader.locator("#ticket-quote #quote-age")).to_have_text(re.compile(r"^[01]\.\d s old$"))
    desk.manage("paper_faults", "--freeze-quotes", "on")
    try:
        time.sleep(MAX_AGE + 1.5)
        expect(trader.locator("#ticket-quote #quote-age.stale")).to_contain_text(" s old")   # the live quote
        fill_ticket(trader, quantity="1")
        trader.click("#ticket-submit")

        refusal = trader.locator('#ticket-form label:has([name="override_reason"]) .field-error')
        expect(refusal).to_contain_text("STALE_QUOTE: Order rejected: the quote of AAPL is")
        expect(trader.locator("#ticket-preview #quote-age.stale")).to_be_visible()
        expect(trader.locator('#ticket-preview [data-check="quote_age"]')).to_contain_text("needs a reason")
        shown_at_both_sizes(trader, refusal, "stale-quote")

        trader.fill("input[name=override_reason]", "feed frozen; price checked by phone")
        trader.click("#ticket-submit")
        expect(trader.locator("#ticket-placed")).to_contain_text("Order BUY 1 AAPL MARKET sent")
    finally:
        desk.manage("paper_faults", "--freeze-quotes", "off")


def test_a_ticket_over_the_order_rate_shows_the_429(trader, desk):
    for _ in range(PER_MINUTE + 1):          # the minute's orders spent through /v1, as a script would
        response = requests.post(f"{desk.url}/v1/orders", json={"symbol": "AAPL", "side": "BUY", "quantity": "1",
                                                                "order_type": "LIMIT", "limit_price": "1"},
                                 timeout=10)
        if response.status_code == 429:
            break
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1, response.text

    fill_ticket(trader, quantity="1")
    trader.click("#ticket-submit")

    refusal = trader.locator("#ticket [role=alert]", has_text="RATE_LIMITED")
    expect(trader.locator("#ticket", has_text="RATE_LIMITED")).to_have_count(1)
    expect(trader.get_by_text("RATE_LIMITED", exact=False)).to_have_count(1)      # said once, above the form
    expect(refusal).to_contain_text("RATE_LIMITED: Rate limit exceeded: the account sends at most 3 new orders "
                                    "a minute; send again in")
    shown_at_both_sizes(trader, refusal, "rate-limited")
