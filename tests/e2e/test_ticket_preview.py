"""The ticket in a real browser (issue #14, points 2-5): the preview follows the keys without a click on Preview, an
order the account cannot pay for is blocked before it is sent, the button says what it will do, a bracket set by
percent and by R is sent at exactly the prices shown, an order above the account's confirm notional is asked
about first, and the symbol is searched from the venue's list while its quote keeps coming over the socket.

One desk for the module (each test opens its own browser); screenshots at 390x844 and 1440x900."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import PHONE, WIDE, People, expire_session, paper_desk, screenshot
from tests.e2e.desk_process import Desk
from tests.e2e.test_desk_browser import DESK_ENV, TRADER, api

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("ticket-preview"), **DESK_ENV) as desk:
        yield desk


def account_set(desk: Desk, **fields: str | None) -> None:
    """Set the demo account's ticket settings through the service the admin uses (audited)."""
    values = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    desk.manage("shell", "-c", (
        "from decimal import Decimal; from orders.models import Account; "
        "from orders.services.tickets import account_ticket_settings_set as s; "
        "a = Account.objects.get(name='demo'); "
        f"v = dict({values}); "
        "s(account=a, actor='test', confirm_notional_above=Decimal(v['confirm']) if v.get('confirm') else None, "
        "risk_per_trade=Decimal(v['risk']) if v.get('risk') else None)"))


def both_sizes(people: People, page: Page, name: str) -> None:
    """The page as it stands at 1440x900, then at 390x844 (the same document, resized)."""
    page.set_viewport_size(WIDE)
    screenshot(page, f"{name}-1440")
    page.set_viewport_size(PHONE)
    page.locator("#ticket").scroll_into_view_if_needed()
    screenshot(page, f"{name}-390")
    page.set_viewport_size(WIDE)


def preview_ask(page: Page) -> Decimal:
    return Decimal(page.locator("#ticket-preview #ticket-quote b").nth(2).inner_text())


# -- scenarios -----------------------------------------------------------------------------------------

def test_typing_a_quantity_updates_the_preview_and_the_button_without_clicking_preview(people, desk):
    page = people.log_in(TRADER)
    expect(page.locator("#ticket-quote b").first).to_be_visible()          # the live quote, before any key

    page.locator("#ticket-quantity").press_sequentially("37")
    typed = time.monotonic()
    expect(page.locator("#ticket-submit")).to_have_text("Buy 37 AAPL @ MKT", timeout=2000)
    elapsed = time.monotonic() - typed

    notional = Decimal(page.locator("#preview-notional").inner_text().replace(",", ""))
    assert notional == (preview_ask(page) * 37).quantize(Decimal("0.01"))
    assert elapsed < 1.0, f"the preview took {elapsed:.2f} s after the last key"
    expect(page.locator("#ticket-submit")).to_have_class("primary side-buy")
    page.check("input[name=side][value=SELL]")
    expect(page.locator("#ticket-submit")).to_have_text("Sell 37 AAPL @ MKT")
    expect(page.locator("#ticket-submit")).to_have_class("primary side-sell")
    page.select_option("#ticket-type", "LIMIT")
    page.fill("#ticket-limit", "187.50")
    expect(page.locator("#ticket-submit")).to_have_text("Sell 37 AAPL @ 187.50 LMT")
    both_sizes(people, page, "ticket-preview-live")


def test_an_order_the_account_cannot_pay_for_is_blocked_before_it_is_sent(people, desk):
    page = people.log_in(TRADER)
    page.fill("#ticket-quantity", "100000")

    breach = page.locator('#ticket-preview .breach[data-check="venue"]')
    expect(breach).to_have_text("Blocked: INSUFFICIENT_BALANCE: Insufficient balance to place order")
    expect(page.locator("#ticket-submit")).to_be_disabled()
    expect(page.locator("#preview-impact")).to_have_class("neg")
    both_sizes(people, page, "ticket-hard-breach")

    page.fill("#ticket-quantity", "10")
    expect(breach).to_have_count(0)
    expect(page.locator("#ticket-submit")).to_be_enabled()


def test_a_bracket_by_percent_and_by_r_is_sent_at_exactly_the_prices_shown(people, desk):
    page = people.log_in(TRADER)
    token = page.input_value("#ticket-form input[name=token]")
    page.fill("#ticket-quantity", "10")
    page.select_option("#ticket-sl-mode", "PERCENT")
    page.fill("#ticket-sl", "1")
    page.select_option("#ticket-tp-mode", "R")
    page.fill("#ticket-tp", "2")

    expect(page.locator("#preview-r")).to_have_text("2.00 R")
    expect(page.locator("#ticket-submit")).to_have_text("Buy 10 AAPL bracket")
    stop, target = (Decimal(page.locator(f"#preview-{leg}").inner_text()) for leg in ("sl", "tp"))
    assert stop < preview_ask(page) < target
    both_sizes(people, page, "ticket-bracket-percent-r")
    page.wait_for_timeout(1500)                        # the market moves on; what was shown is what is sent
    page.click("#ticket-submit")

    expect(page.locator("#ticket-placed")).to_contain_text("Order BUY 10 AAPL MARKET sent")
    [entry] = api(desk, "orders", client_order_id=f"web-{token}")
    assert (Decimal(entry["stop_loss"]), Decimal(entry["take_profit"])) == (stop, target)


def test_an_order_above_the_accounts_confirm_notional_is_asked_about_before_it_is_sent(people, desk):
    account_set(desk, confirm="10000")
    try:
        page = people.log_in(TRADER)
        token = page.input_value("#ticket-form input[name=token]")
        page.fill("#ticket-quantity", "100")
        expect(page.locator("#ticket-submit")).to_have_text("Buy 100 AAPL @ MKT")
        page.click("#ticket-submit")

        question = page.locator("#ticket-confirm-question")
        expect(question).to_have_text(re.compile(r"^Send BUY 100 AAPL ≈ \d{2},\d{3}\.\d\d USD\?$"))
        assert api(desk, "orders", client_order_id=f"web-{token}") == []
        both_sizes(people, page, "ticket-confirm")
        page.click("#ticket-confirm-back")
        expect(question).to_have_count(0)
        assert api(desk, "orders", client_order_id=f"web-{token}") == []

        page.click("#ticket-submit")
        page.click("#ticket-confirm-send")
        expect(page.locator("#ticket-placed")).to_contain_text("Order BUY 100 AAPL MARKET sent")
        assert len(api(desk, "orders", client_order_id=f"web-{token}")) == 1
    finally:
        account_set(desk, confirm=None)


def test_the_symbol_is_searched_from_the_venues_list_and_its_quote_keeps_coming(people, desk):
    page = people.log_in(TRADER)
    offered = page.locator("#ticket-symbols option")
    assert "MSFT" in [offered.nth(i).get_attribute("value") for i in range(offered.count())]

    symbol = page.locator("#ticket-symbol")
    symbol.fill("")
    symbol.press_sequentially("MSFT")
    symbol.press("Tab")                                 # the keyboard alone: type, then leave the field

    expect(page.locator('#ticket-quote[data-symbol="MSFT"]')).to_be_visible()   # pushed by the socket
    expect(page.locator("#chart-symbol")).to_have_text("MSFT")
    page.fill("#ticket-quantity", "3")
    expect(page.locator("#ticket-submit")).to_have_text("Buy 3 MSFT @ MKT")
    expect(page.locator("#quote-spread")).to_contain_text("bps")
    expect(page.locator("#quote-last")).not_to_be_empty()
    both_sizes(people, page, "ticket-symbol-search")


def test_a_preview_the_desk_refuses_is_said_in_the_preview_and_leaves_the_button_to_the_server(people, desk):
    page = people.log_in(TRADER)
    expire_session(page)
    page.fill("#ticket-quantity", "4")

    expect(page.locator("#ticket-preview-refused")).to_have_text(
        "No preview: Your session has expired — log in again.")
    expect(page.locator("#ticket-submit")).to_be_enabled()
    expect(page.locator("#ticket-outcome")).to_be_empty()           # the ticket's outcome is the submission's
