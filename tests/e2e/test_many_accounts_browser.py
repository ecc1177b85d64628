"""Many accounts in one desk, in a real browser (Debian's chromium, Playwright) against a ``rundesk`` whose second
account was opened with ``manage.py create_account`` and whose trader was given both with ``manage.py grant_role``:
the trader switches accounts in the header (by mouse and by keyboard, on a phone too) and the account stays chosen
from the desk to the risk view; the risk desk watches every account on one page, which is pushed a
POSITION_UNPROTECTED raised on the second account, and pulls the kill switch for all of them: one confirm naming
how many, a receipt per account.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/many-accounts-*``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.browser import LIVE, PHONE, assert_not_reloaded, mark_page, paper_desk, paper_env, quote, screenshot
from tests.e2e.desk_process import Desk
from tests.e2e.test_accessibility import violations

pytestmark = pytest.mark.slow

TRADER = ("tom", "many-accounts-tom-pw")
RISK = ("risk", "many-accounts-risk-pw")
DESK_ENV = paper_env(trader_password="many-accounts-demo-pw", risk_password=RISK[1])
ALERT_RAISED = 20_000         # ms: a stop refused for balance is reported at once


def open_second_account(desk: Desk) -> None:
    """fund-b beside the demo account, and tom, who trades both: made with the desk's own commands."""
    desk.manage("create_account", "--name", "fund-b", "--broker", "paper", "--timezone", "America/New_York")
    desk.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                               f"get_user_model().objects.create_user({TRADER[0]!r}, password={TRADER[1]!r})")
    for account in ("demo", "fund-b"):
        desk.manage("grant_role", TRADER[0], "trader", "--account", account)


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("many-accounts-desk"), before=open_second_account, **DESK_ENV) as desk:
        yield desk


def no_sideways_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"


def test_a_trader_switches_accounts_in_the_header_and_the_account_stays_chosen(people):
    tom = people.log_in(TRADER)
    switcher = tom.locator("#account-switcher")
    expect(switcher.locator(".account-badge")).to_have_text("demo")

    switcher.locator("summary").click()
    menu = tom.locator("#account-menu")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("link")).to_have_text(["demo paper", "fund-b paper"])
    expect(menu.locator("a[aria-current=page]")).to_have_text("demo paper")
    expect(tom.locator("#all-accounts-link")).to_have_count(0)          # a trader watches no one else's accounts
    assert violations(tom) == []
    screenshot(tom, "many-accounts-switcher-1440")

    menu.get_by_role("link", name="fund-b").click()
    tom.wait_for_url("**/?account=fund-b")
    expect(tom.locator("#account-switcher .account-badge")).to_have_text("fund-b")
    expect(tom.locator("#connection-state")).to_have_text("live")

    tom.get_by_role("link", name="Risk", exact=True).click()            # the account rides along
    tom.wait_for_url("**/risk/?account=fund-b")
    expect(tom.locator("#account-switcher .account-badge")).to_have_text("fund-b")

    summary = tom.locator("#account-switcher summary")                  # by keyboard: open, Escape closes it
    summary.focus()
    tom.keyboard.press("Enter")
    expect(tom.locator("#account-menu")).to_be_visible()
    tom.keyboard.press("Escape")
    expect(tom.locator("#account-menu")).to_be_hidden()
    expect(summary).to_be_focused()

    tom.set_viewport_size(PHONE)
    summary.click()
    expect(tom.locator("#account-menu")).to_be_in_viewport()
    no_sideways_scroll(tom)
    screenshot(tom, "many-accounts-switcher-390")

    tom.goto("/?account=nobodys")
    expect(tom.locator("#refusal")).to_have_text("No account named “nobodys” is yours to see: it does not exist, "
                                                 "or you are not a member of it. Your accounts: demo, fund-b.")


def place_on(desk: Desk, key: str, **order: str) -> dict:
    response = requests.post(f"{desk.url}/v1/orders", json=order, headers={"Authorization": f"Bearer {key}"},
                             timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_risk_desk_watches_every_account_is_pushed_an_alert_of_the_second_and_halts_them_all(people, desk):
    risk = people.log_in(RISK)
    risk.locator("#account-switcher summary").click()
    risk.locator("#all-accounts-link").click()                          # from the switcher: every account at once
    risk.wait_for_url("**/risk/all/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    expect(risk.locator("#no-alerts")).to_have_text("No live alerts on any account.")
    mark_page(risk)

    fund_b_key = desk.manage("create_api_key", "fund-b", "--name", "e2e script").stdout.strip()
    desk.manage("paper_faults", "--reject-next", "1", "--kind", "STOP", "--reason", "INSUFFICIENT_BALANCE")
    ask = quote(desk, "AAPL")["ask"]
    place_on(desk, fund_b_key, symbol="AAPL", side="BUY", order_type="MARKET", quantity="10",
             stop_loss=str(ask - 3), take_profit=str(ask + 3))

    card = risk.locator('article.alert-card[data-account="fund-b"][data-kind="POSITION_UNPROTECTED"]')
    expect(card).to_be_visible(timeout=ALERT_RAISED)                    # pushed to the open page
    expect(card.locator("h3")).to_have_text("fund-b POSITION_UNPROTECTED · AAPL")
    expect(risk.locator('#account-row-fund-b [data-figure="alerts"]')).to_have_text("1 open / 1 live", timeout=LIVE)
    assert_not_reloaded(risk)

    risk.locator("#kill-all-open").click()
    dialog = risk.locator("#kill-all-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#kill-all-question")).to_contain_text("Halt all 2 accounts (demo, fund-b)")
    expect(risk.locator("#kill-all-confirm")).to_be_focused()
    assert violations(risk) == []
    screenshot(risk, "many-accounts-kill-all-dialog-1440")
    risk.locator("#kill-all-confirm").click()

    expect(dialog).to_be_hidden()
    for account in ("demo", "fund-b"):
        expect(risk.locator(f"#kill-receipt-{account} h3")).to_have_text(f"{account}: HALTED")
        expect(risk.locator(f"#account-row-{account}")).to_have_attribute("data-state", "HALTED")
    expect(risk.locator("#kill-receipts")).to_be_focused()
    assert_not_reloaded(risk)
    assert violations(risk) == []
    screenshot(risk, "many-accounts-risk-all-1440")

    risk.set_viewport_size(PHONE)
    risk.wait_for_timeout(300)
    no_sideways_scroll(risk)
    screenshot(risk, "many-accounts-risk-all-390")
