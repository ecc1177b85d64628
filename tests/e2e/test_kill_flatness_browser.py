"""The kill switch proves flatness in a real browser (Debian's chromium, Playwright) against a ``rundesk``: the
paper venue refuses the first cancel (``paper_faults --refuse-cancels 1``), the risk view's kill switch card
shows the venue being checked, then, pushed as the engine retries the cancel, "Flat after … s (1 cancel
retried)".

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/kill-flatness-*``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import (
    LIVE,
    PHONE,
    assert_not_reloaded,
    mark_page,
    paper_desk,
    paper_env,
    place,
    quote,
    screenshot,
)
from tests.e2e.desk_process import Desk

pytestmark = pytest.mark.slow

TRADER = ("demo", "kill-flatness-trader-pw")
RISK = ("risk", "kill-flatness-risk-pw")
DESK_ENV = paper_env(trader_password=TRADER[1], risk_password=RISK[1])


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("kill-flatness-desk"), **DESK_ENV) as desk:
        yield desk


def test_the_kill_switch_retries_a_refused_cancel_and_shows_the_account_flat(people, desk):
    bid = quote(desk, "AAPL")["bid"]
    entry = place(desk, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="3", limit_price=str(bid - 20))
    desk.manage("paper_faults", "--refuse-cancels", "1")
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    mark_page(risk)
    risk.on("dialog", lambda dialog: dialog.accept())        # hx-confirm

    risk.locator("#kill-button").click()

    receipt = risk.locator("#kill-receipt")
    expect(receipt).to_contain_text("Account demo is HALTED.")
    expect(receipt.locator(".receipt-failures")).to_contain_text(entry["id"][:8])     # the refused cancel
    expect(receipt.locator(".kill-run-note")).to_contain_text("refused cancels are retried")
    status = risk.locator("#kill-run-status")
    expect(status).to_have_attribute("data-status", "FLAT", timeout=LIVE)             # pushed, no reload
    expect(status).to_have_text(re.compile(r"^Flat after \d+(\.\d)? s \(1 cancel retried\)$"))
    expect(risk.locator(f'#order-{entry["id"]}')).to_have_count(0, timeout=LIVE)
    assert_not_reloaded(risk)

    screenshot(risk, "kill-flatness-risk-1440")
    risk.set_viewport_size(PHONE)
    risk.wait_for_timeout(300)
    assert risk.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    screenshot(risk, "kill-flatness-risk-390")
