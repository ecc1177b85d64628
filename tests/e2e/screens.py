"""What the screen and accessibility browser tests share: one desk with something on every page (a position with
its exit legs, a resting limit order, an open alert, a few audit records), the people who look at it, and the
screen sizes a desk must work at."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import LIVE, People, paper_desk, paper_env, place, quote
from tests.e2e.desk_process import Desk
from tests.e2e.second_factor import log_in_page

TRADER = ("demo", "screens-test-trader-pw")
RISK = ("risk", "screens-test-risk-pw")
DESK_ENV = paper_env(trader_password=TRADER[1], risk_password=RISK[1])
SIZES = {"390": {"width": 390, "height": 844}, "1440": {"width": 1440, "height": 900},
         "1920": {"width": 1920, "height": 1080}}
PHONE = SIZES["390"]
ALERT_RAISED = 40_000         # ms: the engine retries a rejected stop leg for 10 s before it alerts


@pytest.fixture(scope="module")
def busy_desk(tmp_path_factory, browser: Browser) -> Iterator[Desk]:
    """A desk whose pages all have rows: a bought AAPL position whose stop the venue keeps refusing (so an open
    POSITION_UNPROTECTED alert, and a working take-profit), and a resting MSFT limit order."""
    with paper_desk(tmp_path_factory.mktemp("screens-desk"), **DESK_ENV) as desk:
        desk.manage("paper_faults", "--reject-next", "200", "--kind", "STOP")
        ask = quote(desk)["ask"]
        place(desk, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10",
              stop_loss=str(ask - 3), take_profit=str(ask + 3))
        bid = quote(desk, "MSFT")["bid"]
        place(desk, symbol="MSFT", side="BUY", order_type="LIMIT", quantity="2", limit_price=str(bid - 20))
        context = browser.new_context(base_url=desk.url)
        try:
            page = context.new_page()
            log_in_page(page, desk, RISK)
            page.goto("/risk/")
            expect(page.locator('#alerts .alert[data-kind="POSITION_UNPROTECTED"]')).to_be_visible(
                timeout=ALERT_RAISED)
        finally:
            context.close()
        yield desk


@pytest.fixture
def people_at(browser, busy_desk, contexts):
    """``people_at(size)``: People whose browsers have that viewport; fails the test on a JavaScript error."""
    crowds: list[People] = []

    def make(size: dict[str, int]) -> People:
        crowds.append(People(browser, busy_desk, contexts, viewport=size))
        return crowds[-1]
    yield make
    errors = [e for crowd in crowds for e in crowd.errors]
    assert errors == [], f"JavaScript errors on the page: {errors}"


def settle(page: Page) -> None:
    """The page's live quote and chart are in (a desk page), and no request is under way."""
    if page.locator("#chart").count():
        expect(page.locator("#ticket-quote b").first).to_be_visible(timeout=LIVE)
        expect(page.locator("#chart-symbol")).not_to_be_empty(timeout=LIVE)
    page.wait_for_load_state("networkidle")
