"""axe-core (vendored under ``tests/e2e/vendor/``, for the tests only) finds no violation on the desk, the risk view,
the audit trail, the login page and the admin's index, in the light theme and (for the desk's own pages) the dark
one; and each page has exactly one h1. A failure lists every violation: its rule, what it asks for, and the
elements that break it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e import screens
from tests.e2e.browser import screenshot
from tests.e2e.screens import PHONE, RISK, TRADER, settle

pytestmark = pytest.mark.slow

busy_desk, people_at = screens.busy_desk, screens.people_at      # the fixtures
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
SIZE = {"width": 1440, "height": 900}
PAGES = {"desk": ("/", TRADER), "risk": ("/risk/", RISK), "audit": ("/audit/", TRADER), "admin": ("/admin/", TRADER),
         "login": ("/login/", None)}


def violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document)).violations.map((v) => ({id: v.id, help: v.help,"
                          " impact: v.impact, targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 8)}))")
    return [f"{v['id']} ({v['impact']}): {v['help']} -> {v['targets']}" for v in found]


def open_page(people_at, name: str, theme: str) -> Page:
    path, who = PAGES[name]
    people = people_at(SIZE)
    if who is None:
        context = people.browser.new_context(viewport=SIZE, base_url=people.desk.url)
        people.contexts.append(context)
        page = context.new_page()
    else:
        page = people.log_in(who)
        page.context.add_init_script(f"localStorage.setItem('desk-theme', '{theme}')")
    page.goto(path)
    settle(page)
    if name != "admin":
        assert page.evaluate("document.documentElement.dataset.theme") == theme
    return page


@pytest.mark.parametrize("name", list(PAGES))
def test_no_accessibility_violations_in_the_light_theme(people_at, name):
    page = open_page(people_at, name, "light")

    found = violations(page)

    screenshot(page, f"a11y-{name}-light")
    assert found == [], f"axe-core on {name}:\n" + "\n".join(found)
    assert page.locator("h1").count() == 1, f"{name} has {page.locator('h1').count()} h1 elements"


@pytest.mark.parametrize("name", ["desk", "risk", "audit"])
def test_no_accessibility_violations_in_the_dark_theme(people_at, name):
    page = open_page(people_at, name, "dark")

    found = violations(page)

    screenshot(page, f"a11y-{name}-dark")
    assert found == [], f"axe-core on {name} (dark):\n" + "\n".join(found)


@pytest.mark.parametrize("name", ["desk", "risk", "audit"])
def test_no_accessibility_violations_on_a_phone(people_at, name):
    """At 390 px wide tables scroll on their own: each such region can be reached and scrolled by keyboard."""
    path, who = PAGES[name]
    page = people_at(PHONE).log_in(who)
    page.goto(path)
    settle(page)

    found = violations(page)

    assert found == [], f"axe-core on {name} at 390 px:\n" + "\n".join(found)
