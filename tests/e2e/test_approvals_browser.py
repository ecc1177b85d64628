"""Four-eyes approvals in a real browser (Debian's chromium, Playwright) against a ``rundesk``: the demo account is
HALTED; a person asks on the risk view to let it trade again, sees their request waiting for a second person with
no Approve button (and is refused, in the card, when they try to approve it anyway); a second person with the risk
role, watching the risk view in another browser, sees the request arrive by push and approves it with a comment;
the first page is shown the account ACTIVE by push, the request gone. Once asked by the risk desk (``risk``,
approved by ``rob``), once by a trader (``tom``, approved by ``risk``). Then an order above the account's approval
notional is sent from the desk's ticket: the ticket says it was sent for approval, and it is placed when approved.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/approvals-*``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.browser import (
    LIVE,
    PHONE,
    WIDE,
    People,
    assert_not_reloaded,
    mark_page,
    paper_desk,
    paper_env,
    screenshot,
)
from tests.e2e.desk_process import Desk
from tests.e2e.test_accessibility import violations
from tests.e2e.test_desk_browser import fill_ticket

pytestmark = pytest.mark.slow

RISK = ("risk", "approvals-risk-pw")
ROB = ("rob", "approvals-rob-pw")           # the second person with the risk role
TOM = ("tom", "approvals-tom-pw")           # a trader of demo
DESK_ENV = paper_env(trader_password="approvals-demo-pw", risk_password=RISK[1])


def people_of_the_desk(desk: Desk) -> None:
    """rob, a second person with the risk role, and tom, a trader of demo: made with the desk's own commands."""
    for name, password in (ROB, TOM):
        desk.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                                   f"get_user_model().objects.create_user({name!r}, password={password!r})")
    desk.manage("grant_role", ROB[0], "risk")
    desk.manage("grant_role", TOM[0], "trader", "--account", "demo")


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("approvals-desk"), before=people_of_the_desk, **DESK_ENV) as desk:
        yield desk


def on_the_risk_view(people: People, credentials) -> Page:
    page = people.log_in(credentials)
    page.goto("/risk/")
    expect(page.locator("#connection-state")).to_have_text("live")
    expect(page.locator("#approvals")).to_be_visible()
    mark_page(page)
    return page


def halted(desk: Desk) -> None:
    desk.manage("trading_state", "demo", "HALTED", "--reason", "approvals test")
    assert requests.get(f"{desk.url}/v1/trading-state", timeout=5).json()["trading_state"] == "HALTED"


def both_sizes(page: Page, name: str) -> None:
    """The page at a phone's width (no sideways scroll) and a desk's, both saved."""
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    screenshot(page, f"{name}-390")
    page.set_viewport_size(WIDE)
    page.wait_for_timeout(200)
    screenshot(page, f"{name}-1440")


def ask_to_trade_again(page: Page, reason: str) -> None:
    ask = page.locator("#resume-ask")
    ask.locator("select[name=state]").select_option("ACTIVE")
    ask.locator("input[name=reason]").fill(reason)
    ask.locator("button[type=submit]").click()
    expect(page.locator("#approval-result")).to_contain_text("Sent for approval: waiting for a second person")


def request_card(page: Page):
    return page.locator("#approvals .approval-card[data-kind=RESUME_TRADING]")


def approve(page: Page, comment: str) -> None:
    card = request_card(page)
    card.locator("input[name=comment]").fill(comment)
    card.get_by_role("button", name="Approve").click()
    expect(page.locator("#approval-result")).to_contain_text("Approved: Let demo trade again: HALTED → ACTIVE.")


def shows_active(page: Page) -> None:
    expect(page.locator("#state-now")).to_have_text("ACTIVE", timeout=LIVE)
    expect(page.locator("#trading-state-badge")).to_have_text("ACTIVE", timeout=LIVE)
    expect(request_card(page)).to_have_count(0, timeout=LIVE)
    expect(page.locator("#no-approvals")).to_be_visible()


def test_the_risk_desk_asks_and_a_second_risk_person_approves_live(people, desk):
    halted(desk)
    asker, second, trader = (on_the_risk_view(people, who) for who in (RISK, ROB, TOM))

    ask_to_trade_again(asker, "the venue's outage is over")

    mine = request_card(asker)
    expect(mine).to_have_attribute("data-mine", "yes")
    expect(mine.locator(".waiting")).to_have_text("Waiting for a second person: you asked for this, so someone "
                                                  "else with the risk role approves or rejects it.")
    expect(mine.get_by_role("button", name="Approve")).to_have_count(0)
    expect(asker.locator("#state-now")).to_have_text("HALTED")

    # the same person approving anyway (the form is not there: sent by hand) is refused, and told so in the card
    asker.evaluate("""id => htmx.ajax('POST', `/risk/approvals/${id}/decide/?account=demo`,
                                      {target: '#approvals-slot', swap: 'innerHTML', values: {decision: 'approve'}})""",
                   mine.get_attribute("id").removeprefix("approval-"))
    expect(asker.locator("#approval-result .error")).to_have_text(
        "Forbidden: you asked for this yourself (user:risk): a second person with the risk role must approve or "
        "reject it")
    expect(asker.locator("#state-now")).to_have_text("HALTED")
    both_sizes(asker, "approvals-asked-waiting")

    theirs = request_card(second)                   # pushed to the second person's page, as theirs to decide
    expect(theirs).to_be_visible(timeout=LIVE)
    expect(theirs).to_contain_text("Let demo trade again: HALTED → ACTIVE")
    expect(theirs).to_contain_text("“the venue's outage is over”")
    expect(request_card(trader).locator(".waiting")).to_have_text("Waiting for a person with the risk role.",
                                                                  timeout=LIVE)
    assert violations(second) == []
    both_sizes(second, "approvals-second-person")

    approve(second, "checked the venue's status page")

    for page in (asker, trader):                    # the account trades again, pushed to every open page
        shows_active(page)
        assert_not_reloaded(page)
    expect(asker.locator("#approval-history")).to_contain_text(
        "APPROVED Let demo trade again: HALTED → ACTIVE by user:rob")
    both_sizes(asker, "approvals-approved")
    assert requests.get(f"{desk.url}/v1/trading-state", timeout=5).json()["trading_state"] == "ACTIVE"


def test_a_trader_asks_and_the_risk_desk_approves_live(people, desk):
    halted(desk)
    trader, risk = (on_the_risk_view(people, who) for who in (TOM, RISK))

    ask_to_trade_again(trader, "my strategy's bug is fixed")
    expect(request_card(trader).get_by_role("button", name="Approve")).to_have_count(0)
    expect(request_card(risk)).to_contain_text("Asked by user:tom", timeout=LIVE)

    request_card(risk).get_by_role("button", name="Reject").click()        # a reject must say why
    expect(risk.locator("#approval-result .error")).to_have_text(
        "Invalid value for comment: say why it is rejected: the person who asked reads this")
    expect(request_card(risk)).to_be_visible()
    approve(risk, "fix reviewed")

    shows_active(trader)
    assert_not_reloaded(trader)


def test_an_order_above_the_approval_notional_waits_on_the_ticket_and_is_placed_when_approved(people, desk):
    risk = on_the_risk_view(people, RISK)
    limit = risk.locator("#limit-ask")
    limit.locator("select[name=name]").select_option("approval_notional_above")
    limit.locator("input[name=value]").fill("5000")
    limit.get_by_role("button", name="Set, or ask to raise").click()
    expect(risk.locator("#approval-result")).to_contain_text("approval_notional_above is now 5000.")

    trader = people.log_in(TOM)
    mark_page(trader)
    token = fill_ticket(trader, quantity="100")
    trader.click("#ticket-submit")
    queued = trader.locator("#ticket-queued")
    expect(queued).to_contain_text("Sent for approval: Buy 100 AAPL @ MKT ≈")
    expect(queued).to_contain_text("waits for a second person with the risk role")
    both_sizes(trader, "approvals-ticket-sent")

    card = risk.locator("#approvals .approval-card[data-kind=LARGE_ORDER]")
    expect(card).to_contain_text("Buy 100 AAPL @ MKT ≈", timeout=LIVE)
    card.locator("input[name=comment]").fill("size agreed")
    card.get_by_role("button", name="Approve").click()
    expect(risk.locator("#approval-result")).to_contain_text("Approved: Buy 100 AAPL @ MKT")
    [order] = requests.get(f"{desk.url}/v1/orders", params={"client_order_id": f"web-{token}"},
                           timeout=5).json()
    assert (order["symbol"], order["quantity"]) == ("AAPL", "100")
    expect(trader.locator(f"#done-{order['id']}, #order-{order['id']}")).to_be_visible(timeout=LIVE)
    # the ticket's banner was pushed the decision: the order placed, as the banner of any order the ticket placed
    expect(trader.locator("#ticket-placed")).to_contain_text("Order BUY 100 AAPL MARKET sent", timeout=LIVE)
    expect(trader.locator("#ticket-queued")).to_have_count(0)

    fill_ticket(trader, quantity="120")
    trader.click("#ticket-submit")
    expect(trader.locator("#ticket-queued")).to_contain_text("Sent for approval: Buy 120 AAPL @ MKT ≈")
    card = risk.locator("#approvals .approval-card[data-kind=LARGE_ORDER]")
    card.locator("input[name=comment]").fill("too big for today")
    card.get_by_role("button", name="Reject").click()
    rejected = trader.locator("#ticket-queued[data-status=REJECTED]")
    expect(rejected).to_contain_text("Rejected by user:risk: Buy 120 AAPL @ MKT ≈", timeout=LIVE)
    expect(rejected).to_contain_text("was not placed — “too big for today”.")
    assert_not_reloaded(trader)
