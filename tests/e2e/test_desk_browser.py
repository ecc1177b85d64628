"""The desk in a real browser: headless Chromium (Debian's ``chromium`` package, driven by Playwright)
against ``manage.py rundesk`` on its own SQLite file and port, logged in as the demo trader ("demo") and
the risk desk ("risk") that ``desk_setup`` creates, with the passwords the tests choose for them.

Every page the scenarios pass through is saved as a screenshot under ``test-output/screenshots/``.
Chromium is never downloaded: without /usr/bin/chromium these tests fail and say how to install it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

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
    quote,
    screenshot,
    watched,
)
from tests.e2e.desk_process import Desk

pytestmark = pytest.mark.slow

TRADER = ("demo", "browser-test-trader-pw")
RISK = ("risk", "browser-test-risk-pw")
DESK_ENV = paper_env(trader_password=TRADER[1], risk_password=RISK[1])
NUMBER = re.compile(r"^\d+\.\d\d$")
LEG_GIVES_UP = 30_000         # ms: the engine retries a rejected leg for 10 s (RETRY_WINDOW) before alerting


# -- processes and browser -----------------------------------------------------------------------------

@pytest.fixture
def desk(tmp_path) -> Iterator[Desk]:
    with paper_desk(tmp_path, **DESK_ENV) as desk:
        yield desk


@pytest.fixture
def people(browser, desk, contexts) -> Iterator[People]:
    with watched(People(browser, desk, contexts)) as crowd:
        yield crowd


# -- the desk's API, to check what the browser did -----------------------------------------------------

def api(desk: Desk, path: str, **params) -> list | dict:
    response = requests.get(f"{desk.url}/v1/{path}", params=params, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def fill_ticket(page: Page, *, quantity: str, order_type: str = "MARKET", limit_price: Decimal | None = None,
                stop_loss: Decimal | None = None, take_profit: Decimal | None = None) -> str:
    """Fill the ticket in; returns its token (the order's client id is ``web-<token>``)."""
    page.select_option("#ticket-type", order_type)
    page.fill("#ticket-quantity", quantity)
    if limit_price is not None:
        page.fill("#ticket-limit", str(limit_price))
    if stop_loss is not None:
        page.fill("#ticket-sl", str(stop_loss))
    if take_profit is not None:
        page.fill("#ticket-tp", str(take_profit))
    return page.input_value("#ticket-form input[name=token]")


# -- scenarios -----------------------------------------------------------------------------------------

def test_a_bracket_from_the_ticket_shows_its_fill_position_and_legs_without_a_reload(people, desk):
    page = people.log_in(TRADER, shot="01-login")
    screenshot(page, "02-desk-empty")
    mark_page(page)
    ask = quote(desk)["ask"]

    token = fill_ticket(page, quantity="10", stop_loss=ask - 3, take_profit=ask + 3)
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-risk")).to_have_text(NUMBER)           # the quote moves: about 30.00 each
    expect(page.locator("#preview-reward")).to_have_text(NUMBER)
    page.click("#ticket-submit")

    expect(page.locator("#ticket-placed")).to_contain_text("Order BUY 10 AAPL MARKET sent")
    position = page.locator('#positions-body tr.position[data-symbol="AAPL"]')
    expect(position).to_be_visible()
    expect(position.locator("td").nth(2)).to_have_text("10")
    expect(page.locator("#fills-body tr.trade")).to_have_count(1)
    legs = page.locator("#working-body tr.order .tag")
    expect(legs).to_have_count(2)
    assert sorted(legs.all_inner_texts()) == ["SL", "TP"]
    entry = api(desk, "orders", client_order_id=f"web-{token}")
    assert [(o["status"], o["filled_quantity"]) for o in entry] == [("FILLED", "10")]
    expect(page.locator(f'#done-{entry[0]["id"]} .status')).to_have_text("FILLED")
    assert_not_reloaded(page)
    page.wait_for_timeout(2000)                                           # the chart redraws its lines
    screenshot(page, "03-desk-bracket-filled")


def test_a_double_click_on_place_order_places_one_order(people, desk):
    page = people.log_in(TRADER)
    bid = quote(desk)["bid"]
    token = fill_ticket(page, quantity="5", order_type="LIMIT", limit_price=bid - 5)

    page.dblclick("#ticket-submit")

    expect(page.locator("#ticket-placed")).to_contain_text("Order BUY 5 AAPL LIMIT sent")
    expect(page.locator("#working-body tr.order")).to_have_count(1)
    page.wait_for_timeout(1500)                                           # a second request would be in by now
    assert len(api(desk, "orders", client_order_id=f"web-{token}")) == 1
    assert len(api(desk, "orders")) == 1
    assert page.input_value("#ticket-form input[name=token]") != token   # the next ticket is a new order
    screenshot(page, "04-desk-after-double-click")


def test_a_failed_stop_leg_alerts_the_risk_desk_who_acknowledges_it(people, desk):
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    expect(risk.locator("#no-alerts")).to_be_visible()
    mark_page(risk)
    desk.manage("paper_faults", "--reject-next", "50", "--kind", "STOP")
    trader = people.log_in(TRADER)
    ask = quote(desk)["ask"]

    fill_ticket(trader, quantity="10", stop_loss=ask - 3, take_profit=ask + 3)
    trader.click("#ticket-submit")
    expect(trader.locator("#ticket-placed")).to_be_visible()

    alert = risk.locator('#alerts .alert[data-kind="POSITION_UNPROTECTED"]')
    expect(alert).to_be_visible(timeout=LEG_GIVES_UP)
    expect(alert).to_have_attribute("data-status", "OPEN")
    expect(alert).to_contain_text("AAPL")
    expect(risk.locator("#alarm")).to_be_visible()
    assert_not_reloaded(risk)
    expect(trader.locator('#alerts-bar .alert[data-status="OPEN"]')).to_be_visible(timeout=LIVE)
    count = trader.locator("#alert-count")              # the nav's count, on a page that was open before
    expect(count).to_have_text("1")
    expect(count).to_have_attribute("title", "1 live alert, 1 unacknowledged")
    screenshot(trader, "05-desk-unprotected-alert")
    screenshot(risk, "06-risk-alert-open")
    # the risk page was never clicked: the browser keeps it silent, and the banner says how to hear the alarm
    expect(risk.locator("#sound-on")).to_be_visible()
    expect(trader.locator("#sound-on")).to_be_hidden()            # the trader has clicked on that page
    risk.set_viewport_size(PHONE)
    screenshot(risk, "06-risk-alarm-sound-off-390")
    risk.set_viewport_size(WIDE)
    risk.click("#sound-on")
    expect(risk.locator("#sound-on")).to_be_hidden()
    expect(risk.locator("#alarm")).to_be_visible()

    risk.fill("form.ack input[name=comment]", "stop placed by hand at the venue")
    risk.click("form.ack button[type=submit]")

    expect(alert).to_have_attribute("data-status", "ACKNOWLEDGED")
    expect(risk.locator("#alerts")).to_contain_text("acknowledged by user:risk")
    expect(risk.locator("#alarm")).to_be_hidden()
    expect(count).to_have_attribute("title", "1 live alert, 0 unacknowledged", timeout=LIVE)    # pushed, grey
    expect(count).to_have_class(re.compile(r"\bquiet\b"))
    [acknowledged] = [a for a in api(desk, "alerts") if a["kind"] == "POSITION_UNPROTECTED"]
    assert acknowledged["status"] == "ACKNOWLEDGED"
    screenshot(risk, "07-risk-alert-acknowledged")


def test_the_kill_switch_shows_a_receipt_and_empties_the_working_orders(people, desk):
    trader = people.log_in(TRADER)
    bid = quote(desk)["bid"]
    for gap in ("5", "6"):
        fill_ticket(trader, quantity="3", order_type="LIMIT", limit_price=bid - Decimal(gap))
        trader.click("#ticket-submit")
        expect(trader.locator("#ticket-placed")).to_contain_text("LIMIT sent — OPEN")
    expect(trader.locator("#working-body tr.order")).to_have_count(2)
    mark_page(trader)
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()
    risk.on("dialog", accept)
    risk.click("#kill-button")

    receipt = risk.locator("#kill-receipt")
    expect(receipt).to_contain_text("Account demo is HALTED. Cancelled 2 orders.")
    assert dialogs == ["KILL SWITCH: halt demo and cancel every working order?"]
    expect(risk.locator("#state-now")).to_have_text("HALTED")
    expect(risk.locator("#trading-state-badge")).to_have_text("HALTED")
    screenshot(risk, "08-risk-kill-switch-receipt")
    expect(trader.locator("#working-body tr.order")).to_have_count(0)
    expect(trader.locator("#working-body tr.empty")).to_have_text("No working orders")
    expect(trader.locator("#trading-state-badge")).to_have_text("HALTED")
    assert_not_reloaded(trader)
    assert [o["status"] for o in api(desk, "orders")] == ["CANCELLED", "CANCELLED"]
    screenshot(trader, "09-desk-after-kill-switch")
    trader.goto("/audit/")
    expect(trader.locator("#audit-table")).to_contain_text("account.kill_switch")
    screenshot(trader, "10-audit")


def test_the_risk_desk_cannot_place_an_order_from_the_page_or_by_posting(people, desk):
    risk = people.log_in(RISK)
    expect(risk.locator("#ticket-submit")).to_be_disabled()
    expect(risk.locator("#ticket-readonly")).to_have_text(
        "Your role cannot place orders. The ticket shows previews only.")
    expect(risk.locator('#blotter button:has-text("Cancel all")')).to_have_count(0)
    fill_ticket(risk, quantity="10")
    screenshot(risk, "11-desk-read-only-for-risk")
    csrf = risk.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    form = {"token": risk.input_value("#ticket-form input[name=token]"), "symbol": "AAPL", "side": "BUY",
            "order_type": "MARKET", "quantity": "10", "time_in_force": "GTC"}

    preview = risk.request.post("/ticket/preview/", form=form, headers={"X-CSRFToken": csrf})
    refused = risk.request.post("/ticket/submit/", form=form, headers={"X-CSRFToken": csrf})

    assert preview.status == 200 and "preview-notional" in preview.text()     # the token itself is good
    assert refused.status == 403
    assert "CSRF verification failed" not in refused.text()                   # refused for the role, not the token
    assert "Not allowed" in refused.text()
    assert api(desk, "orders") == []
