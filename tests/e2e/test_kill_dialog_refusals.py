"""The kill switch's dialog when its request is refused or gets no answer, driven in Chromium as the risk officer
meets it: the message is in the dialog, drawn above the page (a notification in the page would sit under the
modal dialog's backdrop, unseen), and Confirm can be pressed again.

Screenshots at 390x844 and 1440x900 go to ``test-output/screenshots/kill-dialog-*``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import People, expire_session, paper_desk, paper_env, screenshot, watched
from tests.e2e.desk_process import Desk

pytestmark = pytest.mark.slow

RISK = ("risk", "kill-dialog-risk-pw")
DESK_ENV = paper_env(trader_password="kill-dialog-trader-pw", risk_password=RISK[1])
KILL_SWITCH = "**/risk/kill-switch/**"
DJANGO_500 = '<!doctype html><html lang="en"><head><title>Server Error (500)</title></head><body>' \
             "<h1>Server Error (500)</h1><p></p></body></html>"
DJANGO_403 = '<!doctype html><html lang="en"><head><title>403 Forbidden</title></head><body>' \
             "<h1>403 Forbidden</h1><p></p></body></html>"
# the element a person's click at the middle of the message would reach: the message itself, not a backdrop
ON_TOP = """m => { const r = m.getBoundingClientRect();
  return m.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }"""


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("kill-dialog-desk"), **DESK_ENV) as desk:
        yield desk


@pytest.fixture
def risk(browser, desk, contexts) -> Iterator[Page]:
    """The risk officer on the desk page, the kill switch's dialog open (Ctrl+Shift+K)."""
    with watched(People(browser, desk, contexts, viewport={"width": 1440, "height": 900})) as people:
        page = people.log_in(RISK)
        page.keyboard.press("Control+Shift+K")
        expect(page.locator("#kill-dialog")).to_be_visible()
        yield page


def confirm(page: Page, status: int | None) -> Locator:
    """Press Confirm; the refusal shown in the dialog."""
    if status is None:
        with page.expect_event("requestfailed", predicate=lambda request: "/risk/kill-switch/" in request.url):
            page.locator("#kill-dialog-confirm").click()
    else:
        with page.expect_response(KILL_SWITCH) as answer:
            page.locator("#kill-dialog-confirm").click()
        assert answer.value.status == status
    return page.locator("#kill-dialog #kill-dialog-result p.error")


def seen_and_usable_again(page: Page, message: Locator, name: str) -> None:
    """The message is in the dialog, above everything, at both sizes (saved); Confirm can be pressed again."""
    for width, height in ((390, 844), (1440, 900)):
        page.set_viewport_size({"width": width, "height": height})
        message.scroll_into_view_if_needed()
        expect(message).to_be_visible()
        assert message.evaluate(ON_TOP), f"something covers the refusal at {width} px"
        screenshot(page, f"kill-dialog-{name}-{width}")
    expect(page.locator("#kill-dialog-form")).to_be_visible()
    expect(page.locator("#kill-dialog-confirm")).to_be_enabled()
    expect(page.locator("#toasts .toast")).to_have_count(0)         # not also under the backdrop


def test_an_expired_session_is_said_in_the_dialog_with_a_link_to_log_in_again(risk, desk):
    expire_session(risk)

    message = confirm(risk, 401)

    expect(message).to_have_text("Your session has expired — log in again.")
    seen_and_usable_again(risk, message, "session-expired")
    expect(risk.locator("#trading-state-badge")).not_to_have_text("HALTED")
    risk.locator("#kill-dialog").get_by_role("link", name="log in again").click()
    risk.wait_for_url(f"{desk.url}/login/?next=/")


def test_a_refusal_for_the_role_is_said_in_the_dialog(risk):
    risk.route(KILL_SWITCH, lambda route: route.fulfill(status=403, content_type="text/html", body=DJANGO_403))

    message = confirm(risk, 403)

    expect(message).to_have_text("Forbidden: your role may not do this — HTTP 403 Forbidden.")
    seen_and_usable_again(risk, message, "forbidden")


def test_no_answer_is_said_in_the_dialog_and_that_part_may_be_done(risk):
    risk.route(KILL_SWITCH, lambda route: route.abort("connectionreset"))

    message = confirm(risk, None)

    expect(message).to_contain_text("No answer from the desk (network failure): nothing was confirmed.")
    expect(message).to_contain_text("Part of it may be done already (the account halted, some orders cancelled)")
    seen_and_usable_again(risk, message, "no-answer")


def test_a_server_error_says_part_may_be_done_and_confirm_again_finishes_it(risk):
    risk.route(KILL_SWITCH, lambda route: route.fulfill(status=500, content_type="text/html", body=DJANGO_500),
               times=1)

    message = confirm(risk, 500)

    expect(message).to_have_text("The desk could not complete the request (server error) — HTTP 500 Internal "
                                 "Server Error. Part of it may be done already (the account halted, some orders "
                                 "cancelled): confirm again to finish it, and check the blotter.")
    seen_and_usable_again(risk, message, "server-error")
    risk.locator("#kill-dialog-confirm").click()
    expect(risk.locator("#kill-dialog #kill-receipt")).to_contain_text("Account demo is HALTED.")
    expect(message).to_have_count(0)
    expect(risk.locator("#kill-dialog-done button")).to_be_focused()
