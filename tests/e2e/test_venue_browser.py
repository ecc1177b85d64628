"""The venue's truth (issue #13) in a real browser: ``manage.py rundesk`` (web server and engine) on its own
SQLite file and port with ``GATEWAY_PROVIDER=kraken``, pointed at the fake Kraken (``tests.fakes.kraken``, its own
process on 127.0.0.1, whose account starts with a distinctive 234,995 USD), and the demo trader ("demo") and the
risk desk ("risk") logged in to headless Chromium (Debian's ``chromium``, driven by Playwright). What a user sees:

* the desk's account figures are the venue's (234,995.00), never the paper 100,000;
* a balance put at the venue from outside appears in the positions table, marked external, without a reload;
* a venue quantity that drifts raises POSITION_MISMATCH on the risk view, live, with both quantities; one click
  ("Adopt the venue's quantity", confirmed) resolves it and the desk shows the venue's quantity;
* the risk view's Venue card says when the figures were read and when (and by whom) the dead man's switch was
  armed, and follows the engine without a reload;
* the ticket offers the venue's own pairs, and the one held.

Screenshots of the desk and the risk view at 390×844 and 1440×900 are saved under
``test-output/screenshots/venue-*.png``. The engine polls the venue every second (``DESK_VENUE_POLL_SECONDS=1``);
every wait below polls the page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.browser import LIVE, SCREENSHOTS, assert_not_reloaded, mark_page, paper_desk
from tests.e2e.desk_process import Desk
from tests.fakes import FakeVenue
from tests.fakes.kraken import API_KEY, API_SECRET

pytestmark = pytest.mark.slow

TRADER = ("demo", "venue-browser-trader-pw")
RISK = ("risk", "venue-browser-risk-pw")
SIZES = {"390x844": {"width": 390, "height": 844}, "1440x900": {"width": 1440, "height": 900}}
VENUE_CASH = "234995"                   # the fake's USD: nothing like the paper venue's 100,000
# The engine refreshes the venue's books every second (DESK_VENUE_POLL_SECONDS=1), but the Kraken adapter reuses
# its last BalanceEx/TradeBalance for 20 s (``KrakenBroker.account_read_seconds``, Kraken's private-call budget)
# unless an order changed: a balance changed from outside shows within 20 s, and a drift is raised a second later
# (the same difference on two refreshes in a row).
VENUE_READ = 30_000                     # ms: the adapter's next read of the balances, a refresh and the push
DEADMAN_SECONDS = "30"                  # the engine re-arms Kraken's switch every 10 s
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


# -- processes and browser -----------------------------------------------------------------------------

@pytest.fixture
def fake(request) -> Iterator[FakeVenue]:
    """The fake Kraken, holding 234,995 USD and whatever else a test parametrizes it with (``{"XBT": "0.5"}``)."""
    balances = {"USD": VENUE_CASH, **getattr(request, "param", {})}
    with FakeVenue("kraken", *(f"--balance={asset}={amount}" for asset, amount in balances.items())) as venue:
        yield venue


@pytest.fixture
def desk(tmp_path, fake) -> Iterator[Desk]:
    env = {"GATEWAY_PROVIDER": "kraken", "KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET": API_SECRET,
           "KRAKEN_BASE_URL": fake.url, "KRAKEN_WS_AUTH_URL": f"{fake.ws_url}/v2", "KRAKEN_QUOTE_ASSET": "USD",
           "KRAKEN_DEADMAN_SECONDS": DEADMAN_SECONDS, "DESK_VENUE_POLL_SECONDS": "1",
           "GATEWAY_API_KEY": "", "DESK_ALLOW_KEYLESS": "true", "DESK_SECURE_COOKIES": "false",
           "DATABASE_URL": "", "REDIS_URL": "",
           # desk_setup's logins get these passwords rather than random ones
           "DESK_DEMO_PASSWORD": TRADER[1], "DESK_RISK_PASSWORD": RISK[1]}
    with paper_desk(tmp_path, **env) as desk:
        yield desk


def screenshots(page: Page, name: str) -> list[Path]:
    """The whole page at a phone's size, then at a laptop's (where the page is left)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.wait_for_timeout(300)                    # the layout (and the chart) follow the new width
        path = SCREENSHOTS / f"{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    return saved


def figure(page: Page, name: str):
    """The account figure shown beside ``name`` (Balance, Equity, ...) in the blotter."""
    return page.locator(f'#account-figures dt:text-is("{name}") + dd')


def assert_recent(shown: str, *, time_only: bool = False, within: float = 120) -> None:
    """A time the page shows (UTC, the desk's TIME_ZONE) is of the last ``within`` seconds, not "never"."""
    now = datetime.now(UTC)
    when = (datetime.combine(now.date(), datetime.strptime(shown, "%H:%M:%S").time(), tzinfo=UTC) if time_only
            else datetime.strptime(shown, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    if when > now + timedelta(seconds=5):              # a time of day shown just before midnight, read just after
        when -= timedelta(days=1)
    assert -5 <= (now - when).total_seconds() <= within, f"{shown} is not of the last {within:.0f} s (now {now})"


def position_row(page: Page, symbol: str):
    return page.locator(f'#positions-body tr.position[data-symbol="{symbol}"]')


# -- scenarios -----------------------------------------------------------------------------------------

def test_the_desk_shows_the_venues_figures_and_a_position_put_there_from_outside(people, desk, fake):
    trader = people.log_in(TRADER)

    expect(figure(trader, "Balance")).to_have_text("234,995.00", timeout=VENUE_READ)
    expect(figure(trader, "Equity")).to_have_text("234,995.00")
    expect(trader.locator("#account-figures")).not_to_contain_text("100,000")
    expect(trader.locator("#positions-body tr.empty")).to_have_text("Flat")
    # the ticket offers Kraken's own pairs against the account's currency (an empty list left nothing to trade)
    expect(trader.locator("#ticket-symbols option[value='XBTUSD']")).to_have_count(1)
    mark_page(trader)

    fake.control("balance", asset="XBT", amount="0.5")         # bought elsewhere: at 30,000 that is 15,000 more

    row = position_row(trader, "XBTUSD")
    expect(row).to_be_visible(timeout=VENUE_READ)
    expect(row.locator("td").first).to_have_text("XBTUSD external")
    expect(row.locator(".badge.external")).to_have_text("external")
    expect(row.locator("td").nth(1)).to_have_text("LONG")
    expect(row.locator("td").nth(2)).to_have_text("0.5")
    expect(figure(trader, "Balance")).to_have_text("234,995.00")
    expect(figure(trader, "Equity")).to_have_text("249,995.00", timeout=VENUE_READ)
    assert_not_reloaded(trader)
    screenshots(trader, "venue-01-desk-external-position")


@pytest.mark.parametrize("fake", [{"XBT": "0.5"}], indirect=True, ids=["venue-holds-0.5-XBT"])
def test_a_drifting_quantity_is_raised_live_and_the_risk_desk_adopts_the_venues(people, desk, fake):
    trader = people.log_in(TRADER)
    row = position_row(trader, "XBTUSD")              # adopted when the engine reconciled at its start
    expect(row.locator("td").nth(2)).to_have_text("0.5", timeout=LIVE)
    expect(row.locator(".badge.external")).to_have_text("external")
    mark_page(trader)

    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    expect(risk.locator("#no-alerts")).to_be_visible()
    venue = risk.locator("#venue")
    expect(venue.locator("h2")).to_have_text("Venue: kraken")
    expect(risk.locator("#venue-read-at")).to_have_text(TIMESTAMP)
    expect(risk.locator("#venue-reconciled-at")).to_have_text(TIMESTAMP)
    expect(risk.locator("#venue-deadman")).to_have_text(re.compile(
        rf"^armed \d\d:\d\d:\d\d UTC by \S+: cancels every order {DEADMAN_SECONDS} s after the last arming$"))
    assert_recent(risk.locator("#venue-read-at").inner_text())
    assert_recent(risk.locator("#venue-reconciled-at").inner_text())
    assert_recent(risk.locator("#venue-deadman").inner_text().split()[1], time_only=True)
    mark_page(risk)

    fake.control("balance", asset="XBT", amount="0.3")         # 0.2 sold outside the desk

    alert = risk.locator('#alerts .alert[data-kind="POSITION_MISMATCH"]')
    expect(alert).to_be_visible(timeout=VENUE_READ)
    expect(alert).to_have_attribute("data-status", "OPEN")
    expect(alert).to_contain_text("XBTUSD: the desk holds 0.5, kraken holds 0.3")
    adopt = risk.locator("form.adopt")
    expect(adopt.locator("span")).to_have_text("XBTUSD: desk 0.5, venue 0.3")
    expect(risk.locator("#alarm")).to_be_visible()
    assert_not_reloaded(risk)
    expect(trader.locator('#alerts-bar .alert[data-kind="POSITION_MISMATCH"]')).to_be_visible(timeout=LIVE)
    expect(row.locator("td").nth(2)).to_have_text("0.5")              # the desk keeps its own until told
    screenshots(trader, "venue-02-desk-position-mismatch")
    screenshots(risk, "venue-03-risk-position-mismatch")

    dialogs: list[str] = []

    def accept(dialog):
        dialogs.append(dialog.message)
        dialog.accept()
    risk.on("dialog", accept)
    adopt.get_by_role("button", name="Adopt the venue's quantity").click()

    expect(risk.locator("#alerts")).not_to_contain_text("desk 0.5, venue 0.3", timeout=LIVE)
    assert dialogs == ["Set the desk's XBTUSD position to the venue's 0.3 (the desk has 0.5)?"]
    expect(alert).to_have_count(0)
    expect(risk.locator("#no-alerts")).to_be_visible()
    expect(risk.locator("#alarm")).to_be_hidden()
    history = risk.locator("#alerts table.blotter tbody tr").filter(has_text="POSITION_MISMATCH")
    expect(history).to_have_count(1)
    expect(history).to_contain_text("RESOLVED")
    expect(history).to_contain_text("user:risk adopted the venue's quantity 0.3")
    assert_not_reloaded(risk)

    expect(row.locator("td").nth(2)).to_have_text("0.3", timeout=LIVE)
    expect(row.locator(".badge.external")).to_have_text("external")
    expect(trader.locator('#alerts-bar .alert[data-kind="POSITION_MISMATCH"]')).to_have_count(0)
    assert_not_reloaded(trader)
    screenshots(trader, "venue-04-desk-after-adopt")
    screenshots(risk, "venue-05-risk-after-adopt")

    trader.wait_for_timeout(2500)                     # two more refreshes: the two agree, nothing is raised again
    expect(risk.locator("#no-alerts")).to_be_visible()
    expect(row.locator("td").nth(2)).to_have_text("0.3")


def served_text(page: Page, path: str, element_id: str) -> str:
    """What a fresh load of ``path`` (the page's own session, not the page itself) shows in ``element_id``."""
    html = page.request.get(path).text()
    found = re.search(rf'id="{element_id}"[^>]*>(.*?)</dd>', html, re.S)
    if not found:
        pytest.fail(f"#{element_id} is not on {path}")
    return re.sub(r"\s+", " ", found.group(1)).strip()


def test_the_venue_card_follows_the_engine_without_a_reload(people, desk):
    risk = people.log_in(RISK)
    risk.goto("/risk/")
    expect(risk.locator("#connection-state")).to_have_text("live")
    deadman = risk.locator("#venue-deadman")
    expect(deadman).to_have_text(re.compile(r"^armed "))
    shown = deadman.inner_text().strip()
    mark_page(risk)

    # the engine re-arms the switch every 10 s (a third of its 30 s timeout): a fresh load shows the new arming
    deadline = time.monotonic() + 20
    while served_text(risk, "/risk/", "venue-deadman") == shown:
        if time.monotonic() > deadline:
            pytest.fail("the engine did not re-arm the dead man's switch within 20 s")
        risk.wait_for_timeout(500)

    expect(deadman).not_to_have_text(shown, timeout=LIVE)         # the open page is told as well
    expect(deadman).to_have_text(re.compile(r"^armed "))
    assert_not_reloaded(risk)
