"""Time to protection in a real browser (Debian's chromium, Playwright) against a ``rundesk``: the paper venue
takes 3 s to place each exit leg (``paper_faults --latency-ms 3000 --exits-only``), so a bracket's position waits
about 6 s for its stop and target: the risk view is pushed PROTECTION_SLOW and "protected after 6… s". Then, with
``flatten_unprotected_after_seconds`` 10 and 6 s a leg, a position that waits 12 s is flattened at market and its
line leaves the time-to-protection card.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/protection-time-*``."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import (
    LIVE,
    PHONE,
    WIDE,
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

RISK = ("risk", "protection-time-risk-pw")
DESK_ENV = paper_env(trader_password="protection-time-trader-pw", risk_password=RISK[1])
SLOW_LEGS = LIVE + 15_000        # ms: two legs at 6 s each, then the push


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("protection-time-desk"), **DESK_ENV) as desk:
        yield desk


def bracket(desk: Desk, symbol: str) -> dict:
    ask = quote(desk, symbol)["ask"]
    return place(desk, symbol=symbol, side="BUY", order_type="MARKET", quantity="2",
                 stop_loss=str(ask - 10), take_profit=str(ask + 10))


def test_a_slow_venue_shows_protection_slow_then_a_12_s_wait_is_flattened(people, desk):
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    mark_page(risk)
    desk.manage("paper_faults", "--latency-ms", "3000", "--exits-only")

    bracket(desk, "AAPL")

    line = risk.locator('#protection tr.protection-row[data-symbol="AAPL"]')
    expect(line).to_contain_text(re.compile(r"protected after [6-9]\.\d+ s"), timeout=SLOW_LEGS)      # pushed
    expect(risk.locator("#alerts")).to_contain_text("PROTECTION_SLOW")
    expect(risk.locator("#alerts")).to_contain_text(re.compile(r"AAPL protected after [6-9]"))
    expect(risk.locator("#protection-p99")).to_have_text(re.compile(r"^[6-9]\.\d+ s$"))
    screenshot(risk, "protection-time-slow-1440")
    risk.set_viewport_size(PHONE)
    risk.wait_for_timeout(300)
    assert risk.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    screenshot(risk, "protection-time-slow-390")
    risk.set_viewport_size(WIDE)

    desk.manage("shell", "-c", "from decimal import Decimal; from orders.models import Account; "
                "from orders.services.limits import limits_set; "
                "limits_set(account_id=Account.objects.get(name='demo').pk, actor='test', "
                "flatten_unprotected_after_seconds=Decimal('10'))")
    desk.manage("paper_faults", "--latency-ms", "6000", "--exits-only")
    bracket(desk, "MSFT")

    expect(risk.locator("#alerts")).to_contain_text(re.compile(r"MSFT protected after 1\d s"), timeout=SLOW_LEGS)
    expect(risk.locator('#protection tr.protection-row[data-symbol="MSFT"]')).to_have_count(0, timeout=LIVE)
    desk.manage("paper_faults", "--clear")
    assert_not_reloaded(risk)
    screenshot(risk, "protection-time-flattened-1440")
    risk.set_viewport_size(PHONE)
    risk.wait_for_timeout(300)
    screenshot(risk, "protection-time-flattened-390")
