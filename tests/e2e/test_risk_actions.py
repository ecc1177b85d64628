"""The blotter and the risk view in a real browser (Debian's chromium, Playwright) against one ``rundesk`` for
the module: the blotter's filters hold for rows the socket pushes later; a modify form holds the order's own
values and shows a refusal in its row; an unprotected position's alert is answered in one click (re-place the
stop, flatten); and the kill switch is Ctrl+Shift+K plus one confirm from the desk page, its receipt naming
each order by its role.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/risk-actions-*``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Page, expect

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

TRADER = ("demo", "risk-actions-trader-pw")
RISK = ("risk", "risk-actions-risk-pw")
DESK_ENV = paper_env(trader_password=TRADER[1], risk_password=RISK[1])
ALERT_RAISED = 20_000         # ms: a stop refused for balance is reported at once


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("risk-actions-desk"), **DESK_ENV) as desk:
        yield desk


def resting(desk: Desk, symbol: str, quantity: str = "2", side: str = "BUY") -> dict:
    q = quote(desk, symbol)
    price = q["bid"] - 20 if side == "BUY" else q["ask"] + 20
    return place(desk, symbol=symbol, side=side, order_type="LIMIT", quantity=quantity, limit_price=str(price))


def accept_confirms(page: Page) -> list[str]:
    """Accept every confirm() the page asks (htmx's hx-confirm); returns their messages."""
    asked: list[str] = []

    def accept(dialog):
        asked.append(dialog.message)
        dialog.accept()
    page.on("dialog", accept)
    return asked


# what of the blotter, the alert cards and the kill switch runs past the window's right edge, outside any
# element that scrolls or clips it
PAST_THE_EDGE = """() => [...document.querySelectorAll('.blotter-card *, #alerts *, #kill-dialog *, #kill-switch *')]
  .filter(e => {
    if (e.getBoundingClientRect().right <= innerWidth + 1 || !e.checkVisibility()) return false;
    for (let p = e.parentElement; p; p = p.parentElement) {
      if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return false;
    }
    return true;
  })
  .map(e => `${e.tagName}#${e.id}.${e.className} "${e.textContent.trim().slice(0, 30)}"`)"""


def shots(page: Page, name: str) -> None:
    """The page at 1440x900 and at 390x844 (then back)."""
    page.set_viewport_size(WIDE)
    screenshot(page, f"risk-actions-{name}-1440")
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(300)
    wide = page.evaluate(PAST_THE_EDGE)
    assert wide == [], f"the blotter, the alerts or the kill switch run past the window's edge: {wide}"
    # the chart drawn at 1440 follows the window down too
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    screenshot(page, f"risk-actions-{name}-390")
    page.set_viewport_size(WIDE)


# -- the blotter ---------------------------------------------------------------------------------------

def test_the_blotter_s_filters_hold_for_rows_pushed_after_they_were_set(people, desk):
    page = people.log_in(TRADER)
    mark_page(page)
    page.fill("#filter-symbol", "msf")                       # a prefix, any case
    page.select_option("#filter-side", "SELL")

    aapl = resting(desk, "AAPL", side="SELL")
    msft_buy = resting(desk, "MSFT", side="BUY")
    msft_sell = resting(desk, "MSFT", side="SELL")

    for order in (aapl, msft_buy, msft_sell):                # every row arrives by push …
        expect(page.locator(f'#order-{order["id"]}')).to_have_count(1)
    expect(page.locator(f'#order-{msft_sell["id"]}')).to_be_visible()          # … only the filter's shows
    expect(page.locator(f'#order-{aapl["id"]}')).to_be_hidden()
    expect(page.locator(f'#order-{msft_buy["id"]}')).to_be_hidden()
    expect(page.locator(f'#order-{msft_sell["id"]} td.tif')).to_have_text("GTC")
    expect(page.locator(f'#order-{msft_sell["id"]} td.copy-id').first).to_have_attribute("title", msft_sell["id"])
    assert_not_reloaded(page)
    shots(page, "blotter-filtered")

    page.select_option("#filter-status", "CANCELLED")
    expect(page.locator(f'#order-{msft_sell["id"]}')).to_be_hidden()
    requests.delete(f"{desk.url}/v1/orders/{msft_sell['id']}", timeout=10)
    expect(page.locator(f'#done-{msft_sell["id"]}')).to_be_visible(timeout=LIVE)    # pushed into finished
    page.click("#blotter-filters button[type=reset]")
    expect(page.locator(f'#order-{aapl["id"]}')).to_be_visible()
    requests.delete(f"{desk.url}/v1/orders/{aapl['id']}", timeout=10)
    requests.delete(f"{desk.url}/v1/orders/{msft_buy['id']}", timeout=10)


def test_a_modify_form_holds_the_order_s_values_and_shows_a_refusal_in_its_row(people, desk):
    order = resting(desk, "NVDA", quantity="3")
    page = people.log_in(TRADER)
    confirms = accept_confirms(page)
    row = page.locator(f'#order-{order["id"]}')

    row.locator("summary", has_text="Modify").click()
    expect(row.locator("input[name=quantity]")).to_have_value("3")
    limit = requests.get(f"{desk.url}/v1/orders/{order['id']}", timeout=5).json()["limit_price"]
    expect(row.locator("input[name=limit_price]")).to_have_value(limit)
    row.locator("input[name=quantity]").fill("-1")
    other = resting(desk, "TSLA")                                # its push redraws the working orders …
    expect(page.locator(f'#order-{other["id"]}')).to_have_count(1)
    expect(row.locator("input[name=quantity]")).to_be_visible()  # … and the open form keeps what was typed
    expect(row.locator("input[name=quantity]")).to_have_value("-1")
    row.locator("button", has_text="Apply").click()

    refusal = page.locator(f'#order-{order["id"]} p.modify-error')
    expect(refusal).to_be_visible()
    expect(refusal).to_contain_text("Modify refused: ")
    assert confirms == ["Modify this order?"]
    shots(page, "modify-refused")

    row = page.locator(f'#order-{order["id"]}')
    row.locator("input[name=quantity]").fill("5")
    row.locator("button", has_text="Apply").click()
    expect(page.locator("#blotter p.ok")).to_have_text("Order modified.")
    expect(page.locator(f'#order-{order["id"]} td').nth(4)).to_have_text("5")
    for done in (order, other):
        requests.delete(f"{desk.url}/v1/orders/{done['id']}", timeout=10)


# -- the risk view's alert cards -----------------------------------------------------------------------

def refuse_next_stops(desk: Desk, count: int) -> None:
    """The venue refuses the next ``count`` stop orders for want of balance: a refusal the engine reports at
    once (POSITION_UNPROTECTED) and tries again only a minute later, so what follows within that minute is the
    risk desk's doing, not the engine's retry."""
    desk.manage("paper_faults", "--reject-next", str(count), "--kind", "STOP", "--reason", "INSUFFICIENT_BALANCE")


def test_the_risk_desk_flattens_a_position_and_re_places_a_refused_stop_from_their_alerts(people, desk):
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    confirms = accept_confirms(risk)
    mark_page(risk)
    refuse_next_stops(desk, 2)
    for symbol in ("AAPL", "MSFT"):
        ask = quote(desk, symbol)["ask"]
        place(desk, symbol=symbol, side="BUY", order_type="MARKET", quantity="10", stop_loss=str(ask - 3),
              take_profit=str(ask + 3))
    cards = {s: risk.locator("article.alert-card", has=risk.locator("h3", has_text=f"POSITION_UNPROTECTED · {s}"))
             for s in ("AAPL", "MSFT")}
    expect(cards["MSFT"]).to_be_visible(timeout=ALERT_RAISED)          # pushed to the open page
    expect(cards["AAPL"]).to_be_visible(timeout=ALERT_RAISED)
    aapl = cards["AAPL"]
    expect(aapl.locator("[id^=alert-position-]")).to_contain_text("LONG 10 @ ")
    expect(aapl.locator("[id^=alert-pnl-]")).not_to_be_empty()
    expect(aapl.locator("ul.alert-reasons")).to_contain_text("stop-loss: Order rejected: rejected by injected fault")
    shots(risk, "alerts")

    cards["MSFT"].get_by_role("button", name="Flatten this position").click()
    expect(risk.locator("#alert-result p.ok")).to_contain_text("Flattening MSFT: SELL 10 at market sent")
    expect(cards["MSFT"]).to_have_count(0, timeout=LIVE)                # flat: the alert resolves

    refuse_next_stops(desk, 1)
    aapl.get_by_role("button", name="Re-place the stop-loss").click()  # the venue refuses once more
    expect(risk.locator("#alert-result p.error")).to_contain_text(
        "AAPL: the stop-loss was refused again: Order rejected")
    expect(cards["AAPL"]).to_be_visible()
    shots(risk, "replace-refused")

    cards["AAPL"].get_by_role("button", name="Re-place the stop-loss").click()
    expect(risk.locator("#alert-result p.ok")).to_have_text("AAPL: stop-loss placed again.")
    expect(cards["AAPL"]).to_have_count(0)                              # resolved
    stops = [o for o in requests.get(f"{desk.url}/v1/orders", params={"symbol": "AAPL"}, timeout=5).json()
             if o["order_type"] == "STOP" and o["status"] == "OPEN"]
    assert [o["quantity"] for o in stops] == ["10"]
    assert confirms == ["Flatten 10 MSFT at market?", "Place the stop-loss of AAPL again now?",
                        "Place the stop-loss of AAPL again now?"]
    assert_not_reloaded(risk)
    shots(risk, "alerts-answered")
    risk.goto("/audit/?action=position.exits_replace")
    expect(risk.locator("#audit-table")).to_contain_text("position.exits_replace")


# -- the kill switch -------------------------------------------------------------------------------------

def test_the_kill_switch_by_hotkey_from_the_desk_page_names_each_order_by_its_role(people, desk):
    ask = quote(desk, "AMZN")["ask"]
    place(desk, symbol="AMZN", side="BUY", order_type="MARKET", quantity="4", stop_loss=str(ask - 5),
          take_profit=str(ask + 5))
    entry = resting(desk, "GOOGL", quantity="3")
    risk = people.log_in(RISK)                                  # the desk page
    expect(risk.locator('#working-body tr.order[data-symbol="AMZN"] .tag')).to_have_count(2, timeout=LIVE)
    mark_page(risk)

    risk.locator("#ticket-quantity").focus()                    # from any focus, even a text field
    risk.keyboard.press("Control+Shift+K")
    dialog = risk.locator("#kill-dialog")
    expect(dialog).to_be_visible()
    expect(risk.locator("#kill-dialog-confirm")).to_be_focused()
    shots(risk, "kill-dialog")
    risk.keyboard.press("Enter")                                # the one confirm

    receipt = dialog.locator("#kill-receipt")
    expect(receipt).to_contain_text("Account demo is HALTED.")
    cancelled = receipt.locator('ul[data-outcome="cancelled"]')
    expect(cancelled.locator("li", has_text="GOOGL")).to_have_text(f"entry BUY 3 GOOGL {entry['id'][:8]}")
    kept = receipt.locator('ul[data-outcome="kept"]')
    expect(kept.locator("li", has_text="AMZN")).to_have_count(2)
    expect(kept).to_contain_text("stop-loss SELL 4 AMZN")
    expect(kept).to_contain_text("take-profit SELL 4 AMZN")
    expect(receipt).not_to_contain_text("protective stops")
    expect(risk.locator("#trading-state-badge")).to_have_text("HALTED")
    expect(risk.locator(f'#order-{entry["id"]}')).to_have_count(0, timeout=LIVE)    # pushed off the blotter
    assert_not_reloaded(risk)
    shots(risk, "kill-receipt")
    risk.locator("#kill-dialog-done button").click()
    expect(dialog).to_be_hidden()
