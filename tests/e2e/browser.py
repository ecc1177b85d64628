"""What the browser tests share: Debian's chromium (never a downloaded build), a desk that may answer slowly at
first, people logged in through the login page in browsers of their own, and the checks that a page was never
reloaded. The ``browser`` and ``contexts`` fixtures built on these are in ``conftest.py``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.desk_process import ROOT, Desk, running_desk
from tests.e2e.second_factor import pass_second_step

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LIVE = 10_000                 # ms: the socket connects, a pushed fragment arrives
WIDE = {"width": 1440, "height": 900}        # a laptop
PHONE = {"width": 390, "height": 844}         # a phone


@contextmanager
def launched() -> Iterator[Browser]:
    """Debian's chromium, driven by Playwright; a test fails (saying how to install it) when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser tests drive Debian's chromium package. Install it with "
                    "`bin/install --test` (or `apt-get install chromium`); Playwright's own download is not used.",
                    pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def wait_ready(desk: Desk, timeout: float = 60) -> None:
    """Like ``Desk.wait_ready``, but a slow first answer (a loaded machine) is waited for, not fatal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{desk.url}/readyz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the desk did not become ready on {desk.url}:\n{desk.log('web')[-3000:]}")


def paper_env(*, trader_password: str, risk_password: str) -> dict[str, str]:
    """A paper desk on the embedded default (SQLite, in-memory channels, no Redis), its market always open and
    without native brackets, keyless scripts allowed on the loopback (``place``, ``quote``), cookies over plain
    HTTP, and these passwords for ``desk_setup``'s demo trader and risk login rather than random ones."""
    return {"PAPER_MARKET_HOURS": "always", "PAPER_CAPABILITY_PROFILE": "none", "GATEWAY_API_KEY": "",
            "DESK_ALLOW_KEYLESS": "true", "DESK_SECURE_COOKIES": "false", "DATABASE_URL": "", "REDIS_URL": "",
            "DESK_DEMO_PASSWORD": trader_password, "DESK_RISK_PASSWORD": risk_password}


@contextmanager
def paper_desk(where: Path, *args: str, before: Callable[[Desk], None] | None = None, **env: str) -> Iterator[Desk]:
    """A desk (``rundesk`` and its ``args``) on its own SQLite file in ``where``, answering; ``before`` runs
    once its database is set up, before it starts."""
    env.setdefault("DESK_SQLITE_PATH", str(where / "desk.sqlite3"))
    with running_desk(where, **env) as desk:
        if before is not None:
            before(desk)
        desk.start("rundesk", *args, log_name="web")
        wait_ready(desk)
        yield desk


@contextmanager
def watched(people: People) -> Iterator[People]:
    """``people`` for one test, which fails if any of their pages raised a JavaScript error."""
    yield people
    assert people.errors == [], f"JavaScript errors on the page: {people.errors}"


def quote(desk: Desk, symbol: str = "AAPL") -> dict[str, Decimal]:
    """The desk's bid and ask for ``symbol``, read through /v1."""
    response = requests.get(f"{desk.url}/v1/quotes/{symbol}", timeout=5)
    assert response.status_code == 200, response.text
    return {k: Decimal(response.json()[k]) for k in ("bid", "ask")}


def place(desk: Desk, **order: str) -> dict:
    """An order sent through /v1 (not the page): a page learns of it only by push."""
    response = requests.post(f"{desk.url}/v1/orders", json=order, timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()


class People:
    """Opens a separate browser (context) per person, logged in through the login page and, for those asked, the
    second step (``second_factor.py``); collects the pages' JavaScript errors."""

    def __init__(self, browser: Browser, desk: Desk, contexts: list[BrowserContext], *,
                 viewport: dict[str, int] | None = None) -> None:
        self.browser, self.desk, self.contexts = browser, desk, contexts
        self.viewport = viewport or {"width": 1400, "height": 1000}
        self.errors: list[str] = []

    def log_in(self, credentials: tuple[str, str], *, shot: str | None = None) -> Page:
        context = self.browser.new_context(viewport=self.viewport, base_url=self.desk.url)
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(LIVE)
        page.on("pageerror", lambda error: self.errors.append(f"{credentials[0]}: {error}"))
        page.goto("/login/")
        if shot:
            screenshot(page, shot)
        page.fill("input[name=username]", credentials[0])
        page.fill("input[name=password]", credentials[1])
        with page.expect_navigation():
            page.click("#login-form button[type=submit]")
        pass_second_step(page, self.desk, credentials[0])
        page.wait_for_url(f"{self.desk.url}/")
        expect(page.locator("#connection-state")).to_have_text("live")
        return page


def expire_session(page: Page) -> None:
    """End the page's session as an expired one ends, once every request in flight has been answered: a page's
    first answers may still be saving its session (the account it chose), and a late one would set the cookie
    back after it was cleared."""
    page.wait_for_load_state("networkidle")
    page.context.clear_cookies(name="sessionid")


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page; a desk page once its live quote and its chart are in."""
    if page.locator("#chart").count():
        expect(page.locator("#ticket-quote b").first).to_be_visible()
        expect(page.locator("#chart-symbol")).not_to_be_empty()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def mark_page(page: Page) -> None:
    """Leave a mark in the page's JavaScript state: a reload would wipe it."""
    page.evaluate("window.__sameDocument = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"
