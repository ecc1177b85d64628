"""The day's loss guard in a real browser (Debian's chromium, Playwright) against a ``rundesk``: the risk desk sets
the levels in the risk view, a long position loses past the hard level (``paper_faults --shock AAPL -3``), and the
open risk view is shown, pushed as the engine halts the account, the hard level reached and the halt's receipt (the
resting entry cancelled, the stop kept); letting the account trade again without a reason is refused in the card.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/loss-guard-*``."""

from __future__ import annotations

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

TRADER = ("demo", "loss-guard-trader-pw")
RISK = ("risk", "loss-guard-risk-pw")
DESK_ENV = paper_env(trader_password=TRADER[1], risk_password=RISK[1])


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("loss-guard-desk"), **DESK_ENV) as desk:
        yield desk


def test_a_hard_loss_halts_the_account_and_the_risk_view_shows_the_receipt(people, desk):
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    mark_page(risk)
    risk.on("dialog", lambda dialog: dialog.accept())        # hx-confirm

    risk.locator("#guard-daily_loss_soft").fill("100")
    risk.locator("#guard-daily_loss_hard").fill("300")
    risk.locator("#guard-save").click()
    expect(risk.locator("#guards")).to_contain_text("Levels saved.")
    expect(risk.locator("#guard-start")).not_to_have_text("not measured yet", timeout=LIVE)

    ask = quote(desk, "AAPL")["ask"]
    place(desk, symbol="AAPL", side="BUY", order_type="MARKET", quantity="100",
          stop_loss=str((ask * 88 / 100).quantize(ask)), take_profit=str((ask * 112 / 100).quantize(ask)))
    resting = place(desk, symbol="AAPL", side="BUY", order_type="LIMIT", quantity="5",
                    limit_price=str((ask * 80 / 100).quantize(ask)))
    desk.manage("paper_faults", "--shock", "AAPL", "-3")

    expect(risk.locator("#guard-level")).to_have_text("hard level reached", timeout=LIVE)       # pushed
    receipt = risk.locator("#guard-receipt")
    expect(receipt).to_contain_text("is HALTED, working entries cancelled, stops kept")
    expect(receipt.locator('[data-outcome="cancelled"]')).to_contain_text(resting["id"][:8])
    expect(receipt.locator('[data-outcome="kept"] [data-role="stop-loss"]')).to_have_count(1)
    expect(risk.locator("#state-now")).to_have_text("HALTED")
    expect(risk.locator("#alerts")).to_contain_text("LOSS_LIMIT")

    risk.locator('#trading-state select[name="state"]').select_option("ACTIVE")
    risk.locator('#trading-state button[type="submit"]').click()
    expect(risk.locator("#trading-state .error")).to_contain_text("say why demo may trade again")
    expect(risk.locator("#state-now")).to_have_text("HALTED")
    assert_not_reloaded(risk)

    screenshot(risk, "loss-guard-risk-1440")
    risk.set_viewport_size(PHONE)
    risk.wait_for_timeout(300)
    assert risk.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    screenshot(risk, "loss-guard-risk-390")
