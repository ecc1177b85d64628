"""Two-factor login in Chromium, on a desk that desk_setup started as bin/run does: the risk officer's first login
sets up an authenticator (a QR code and its secret, a wrong first code refused on the page, ten recovery codes),
later logins need the code the app shows, a password alone reaches neither the risk view nor the admin, a
recovery code lets the officer in once, and a trader without an authenticator logs in with the password alone.
The codes are computed from the secret the page shows, as the app computes them. The pages are checked at 390
and 1440 px and with axe-core."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.browser import People, paper_desk, screenshot, watched
from tests.e2e.desk_process import Desk
from tests.e2e.second_factor import (
    CODE,
    SETUP,
    Authenticator,
    authenticators_of,
    code_at,
    pass_second_step,
    secret_key,
)
from tests.e2e.test_accessibility import violations

pytestmark = pytest.mark.slow

TRADER = ("tina", "two-factor-trader-pw")
ADMIN = ("demo", "two-factor-admin-pw")
RISK = ("risk", "two-factor-risk-pw")
DESK_ENV = {"PAPER_MARKET_HOURS": "always", "GATEWAY_API_KEY": "", "DESK_ALLOW_KEYLESS": "true",
            "DESK_SECURE_COOKIES": "false", "DATABASE_URL": "", "REDIS_URL": "",
            "DESK_DEMO_PASSWORD": ADMIN[1], "DESK_RISK_PASSWORD": RISK[1]}
A_TRADER = (f"from django.contrib.auth import get_user_model; from orders.models import Account; "
            f"from orders.web.roles import grant; "
            f"grant(get_user_model().objects.create_user('{TRADER[0]}', password='{TRADER[1]}'), 'trader', "
            f"Account.objects.get(name='demo'))")
PHONE, WIDE = {"width": 390, "height": 844}, {"width": 1440, "height": 900}


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("two-factor-desk"), before=lambda d: d.manage("shell", "-c", A_TRADER),
                    **DESK_ENV) as desk:
        yield desk


def password_only(browser: Browser, desk: Desk, contexts, credentials, *, viewport=WIDE) -> Page:
    """A page where ``credentials`` have just been given at the login page, and nothing more."""
    context = browser.new_context(viewport=viewport, base_url=desk.url)
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto("/login/")
    page.fill("input[name=username]", credentials[0])
    page.fill("input[name=password]", credentials[1])
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    return page


def usable_at(page: Page, name: str) -> None:
    """At 390 and 1440 px: nothing wider than the screen, the form's field and button in view; no axe violation,
    one h1."""
    for size in (PHONE, WIDE):
        page.set_viewport_size(size)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"{name} overflows"
        expect(page.locator("input[name=code]")).to_be_visible()
        page.locator("button[type=submit].primary").scroll_into_view_if_needed()
        expect(page.locator("button[type=submit].primary")).to_be_in_viewport()
        screenshot(page, f"two-factor-{name}-{size['width']}")
    assert violations(page) == []
    assert page.locator("h1").count() == 1


def risk_set_up(browser, desk, contexts) -> None:
    """The risk officer's authenticator, set up at a first login if no test has done it yet."""
    if RISK[0] not in authenticators_of(desk):
        page = password_only(browser, desk, contexts, RISK)
        pass_second_step(page, desk, RISK[0])
        page.wait_for_url(f"{desk.url}/")


def test_the_first_login_of_the_risk_desk_sets_up_its_authenticator_on_the_page(browser, desk, contexts):
    page = password_only(browser, desk, contexts, RISK, viewport=PHONE)

    expect(page).to_have_url(f"{desk.url}{SETUP}?next=%2F")
    expect(page.locator("h1")).to_have_text("Set up two-factor login")
    expect(page.locator("#totp-qr")).to_be_visible()
    assert page.evaluate("document.getElementById('totp-qr').naturalWidth") > 0       # drawn, not fetched
    assert page.locator("#totp-qr").get_attribute("src").startswith("data:image/svg+xml")
    expect(page.locator("nav")).to_have_count(0)
    usable_at(page, "setup")
    key = secret_key(page.locator("#totp-secret").inner_text())

    page.fill("input[name=code]", "000000")
    page.click("#setup-form button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text(re.compile("That code is not right"))
    page.goto("/risk/")
    expect(page).to_have_url(re.compile(re.escape(f"{desk.url}{SETUP}")))           # still nothing but set-up

    page.wait_for_timeout(1_100)                                                     # the back-off after a wrong code
    person = authenticators_of(desk)
    person[RISK[0]] = Authenticator(key)
    page.fill("input[name=code]", person[RISK[0]].next_code())
    page.click("#setup-form button[type=submit]")

    expect(page.locator("#recovery-codes li")).to_have_count(10)
    person[RISK[0]].recovery_codes = page.locator("#recovery-codes li").all_inner_texts()
    screenshot(page, "two-factor-recovery-codes-390")
    page.click("#setup-continue")
    page.goto("/risk/")
    expect(page).to_have_url(f"{desk.url}/risk/")
    expect(page.locator("#connection-state")).to_have_text("live")


def test_a_password_alone_reaches_neither_the_risk_view_nor_the_admin_and_the_code_lets_the_officer_in(
        browser, desk, contexts):
    risk_set_up(browser, desk, contexts)
    page = password_only(browser, desk, contexts, RISK)
    expect(page).to_have_url(f"{desk.url}{CODE}?next=%2F")
    usable_at(page, "code")

    for path in ("/risk/", "/admin/", "/admin/orders/order/", "/audit/"):
        page.goto(path)
        expect(page).to_have_url(re.compile(re.escape(f"{desk.url}{CODE}?next=")))
        expect(page.locator("h1")).to_have_text("Enter your code")
    expect(page.locator("#alerts")).to_have_count(0)

    page.goto("/risk/")
    page.fill("input[name=code]", authenticators_of(desk)[RISK[0]].next_code())
    page.click("#code-form button[type=submit]")
    expect(page).to_have_url(f"{desk.url}/risk/")
    expect(page.locator("#connection-state")).to_have_text("live")


def test_a_code_the_app_showed_a_minute_ago_is_refused_on_the_page(browser, desk, contexts):
    risk_set_up(browser, desk, contexts)
    page = password_only(browser, desk, contexts, RISK)
    authenticator = authenticators_of(desk)[RISK[0]]

    page.fill("input[name=code]", code_at(authenticator.key, authenticator.last_step - 3))
    page.click("#code-form button[type=submit]")

    expect(page.get_by_role("alert")).to_have_text(
        "That code is not right: enter the 6 digits your authenticator app shows now.")
    expect(page.locator("input[name=code]")).to_have_attribute("aria-invalid", "true")
    page.goto("/risk/")
    expect(page).to_have_url(re.compile(re.escape(f"{desk.url}{CODE}")))


def test_a_recovery_code_lets_the_risk_desk_in_once(browser, desk, contexts):
    risk_set_up(browser, desk, contexts)
    recovery = authenticators_of(desk)[RISK[0]].recovery_codes[-1]

    first = password_only(browser, desk, contexts, RISK)
    first.fill("input[name=code]", recovery)
    first.click("#code-form button[type=submit]")
    expect(first).to_have_url(f"{desk.url}/")

    again = password_only(browser, desk, contexts, RISK)
    again.fill("input[name=code]", recovery)
    again.click("#code-form button[type=submit]")
    expect(again.get_by_role("alert")).to_have_text("That recovery code is not right, or it has been used already.")
    again.goto("/risk/")
    expect(again).to_have_url(re.compile(re.escape(f"{desk.url}{CODE}")))


def test_a_trader_without_an_authenticator_logs_in_with_the_password_alone(browser, desk, contexts):
    with watched(People(browser, desk, contexts)) as people:
        page = people.log_in(TRADER)

    expect(page).to_have_url(f"{desk.url}/")
    page.click("a.who")                                                   # their name: the security page
    expect(page).to_have_url(f"{desk.url}/account/security/")
    expect(page.locator("#two-factor-state")).to_contain_text("Off")
    assert violations(page) == []
    page.click("#two-factor-setup")
    expect(page.locator("#totp-qr")).to_be_visible()
    expect(page.locator("nav")).to_be_visible()                           # in, so the desk's frame stays
