"""The desk, the risk view and the audit page on a phone (390×844), a laptop (1440×900) and a desktop monitor
(1920×1080): nothing scrolls sideways, and on the phone every control of the desk and of the risk view can be
clicked (Playwright's click proves it visible, enabled, still and not covered by anything, the topbar included).

Confirm dialogs are dismissed, so the clicks change nothing that matters; links and the log-out button are
checked to receive the pointer (a trial click) without leaving the page. Screenshots of every page at every size
are saved under ``test-output/screenshots/screens-*.png``."""

from __future__ import annotations

import pytest
from playwright.sync_api import Error, Locator, Page, expect

from tests.e2e import screens
from tests.e2e.browser import LIVE, screenshot
from tests.e2e.screens import PHONE, RISK, SIZES, TRADER, settle

busy_desk, people_at = screens.busy_desk, screens.people_at      # the fixtures

pytestmark = pytest.mark.slow

PAGES = {"desk": ("/", TRADER), "risk": ("/risk/", RISK), "audit": ("/audit/", TRADER)}
CONTROLS = "button, a[href], input:not([type=hidden]), select, textarea, summary"
CLICK_MS = 4000

# Each visible control as a CSS path from its nearest ancestor with an id (rows are re-rendered by pushes: a path
# still finds the new copy), with what to call it in a failure.
VISIBLE_CONTROLS = """(selector) => {
  const path = (el) => {
    const steps = [];
    for (let node = el; node && node !== document.body; node = node.parentElement) {
      if (node.id && /^[A-Za-z][\\w-]*$/.test(node.id)) { steps.unshift("#" + node.id); return steps.join(" > "); }
      const same = Array.from(node.parentElement.children).filter((c) => c.tagName === node.tagName);
      steps.unshift(node.tagName.toLowerCase() + ":nth-of-type(" + (same.indexOf(node) + 1) + ")");
    }
    return "body > " + steps.join(" > ");
  };
  return Array.from(document.querySelectorAll(selector)).filter((el) => {
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden";
  }).map((el) => ({
    path: path(el),
    leaves: el.tagName === "A" || (el.type === "submit" && el.form && el.form.method === "post"
                                    && !el.form.hasAttribute("hx-post")),
    disabled: el.disabled === true,
    name: (el.tagName.toLowerCase() + (el.type ? "[" + el.type + "]" : "") + " "
           + (el.getAttribute("aria-label") || el.name || el.textContent.trim() || el.id || "").trim().slice(0, 40)),
  }));
}"""

# the controls that stick out past the right edge of the window (the deepest ones), to say what widens the page
WIDE_ELEMENTS = """() => Array.from(document.querySelectorAll("body *")).filter((el) => {
  const box = el.getBoundingClientRect();
  const scrolls = (node) => node && node !== document.body
    && (["auto", "scroll", "hidden"].includes(getComputedStyle(node).overflowX) || scrolls(node.parentElement));
  return box.right > innerWidth + 1 && box.width > 0 && !scrolls(el.parentElement)
         && !Array.from(el.children).some((c) => c.getBoundingClientRect().right > innerWidth + 1);
}).slice(0, 12).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                    + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "")
                    + " right=" + Math.round(el.getBoundingClientRect().right))"""

# once scrolled into view, a control is inside the window without the page scrolled sideways
IN_WINDOW = """(el) => {
  const box = el.getBoundingClientRect();
  return scrollX === 0 && box.left >= -1 && box.right <= innerWidth + 1;
}"""
# a disabled control cannot take a click: it must still be the topmost thing at its centre
UNCOVERED = """(el) => {
  const box = el.getBoundingClientRect();
  const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
  return !!top && (top === el || el.contains(top));
}"""


def open_page(people, size: dict[str, int], page_name: str) -> Page:
    path, who = PAGES[page_name]
    page = people(size).log_in(who)
    if path != "/":
        page.goto(path)
    settle(page)
    return page


def sideways(page: Page) -> tuple[int, int]:
    return page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page_name", list(PAGES))
def test_nothing_scrolls_sideways(people_at, page_name, size):
    page = open_page(people_at, SIZES[size], page_name)
    screenshot(page, f"screens-{page_name}-{size}")

    width, window = sideways(page)
    assert width <= window, (f"{page_name} at {size} px is {width} px wide; sticking out: "
                             f"{page.evaluate(WIDE_ELEMENTS)}")


def click_everything(page: Page) -> tuple[list[str], list[str]]:
    """Click every visible control of the page, including those a click reveals (a Modify form); returns what
    was clicked and what could not be."""
    clicked: dict[str, str] = {}
    failures: list[str] = []
    start = page.url
    for _ in range(8):
        todo = [c for c in page.evaluate(VISIBLE_CONTROLS, CONTROLS) if c["path"] not in clicked]
        if not todo:
            break
        for control in todo:
            clicked[control["path"]] = control["name"]
            target = page.locator(control["path"])
            if target.count() != 1 or not target.is_visible():
                continue                                # an earlier click replaced or hid it
            try:
                click(target, control)
            except Error as e:
                failures.append(f"{control['name']!r} ({control['path']}): {e.message.splitlines()[0]}")
            if page.url != start:                       # a control left the page: come back for the rest
                failures.append(f"{control['name']!r} ({control['path']}) left the page for {page.url}")
                page.goto(start)
                settle(page)
    return list(clicked.values()), failures


def click(target: Locator, control: dict) -> None:
    target.scroll_into_view_if_needed(timeout=CLICK_MS)
    if not target.evaluate(IN_WINDOW):
        raise Error("off-screen: reached only by scrolling the page sideways")
    if control["disabled"]:
        if not target.evaluate(UNCOVERED):
            raise Error("disabled, and covered by something else")
        return
    if control["leaves"]:
        target.click(trial=True, timeout=CLICK_MS)      # receives the pointer; not followed
        return
    target.click(timeout=CLICK_MS)
    if target.evaluate("(el) => el.tagName") == "SELECT":
        target.press("Escape")
    target.page.wait_for_timeout(150)                   # what the click asked for (an htmx swap) lands


@pytest.mark.parametrize("page_name", ["desk", "risk"])
def test_every_control_can_be_clicked_on_a_phone(people_at, page_name):
    page = open_page(people_at, PHONE, page_name)
    dialogs: list[str] = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()
    page.on("dialog", dismiss)

    clicked, failures = click_everything(page)

    screenshot(page, f"screens-{page_name}-390-clicked")
    assert failures == [], "\n".join(failures)
    # the page was really exercised: its main controls were among those clicked
    expected = {"desk": ["Place order", "Preview", "Cancel all", "Flatten all", "Modify", "Apply", "Close"],
                "risk": ["Acknowledge", "Kill switch", "Set", "Reset breakers"]}[page_name]
    missing = [name for name in expected if not any(name in c for c in clicked)]
    assert missing == [], f"never clicked: {missing}; clicked: {clicked}"
    assert dialogs, "no confirm dialog was raised: the dangerous buttons were not clicked"
    expect(page.locator("#connection-state")).to_have_text("live", timeout=LIVE)
    assert sideways(page)[0] <= PHONE["width"]


def chart_requests(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if "/chart/" in request.url else None)
    return seen


def test_the_chart_is_fetched_once_on_load_and_once_per_symbol_change(people_at):
    page = people_at(SIZES["1440"]).log_in(TRADER)
    fetched = chart_requests(page)
    page.reload()
    settle(page)
    expect(page.locator("#connection-state")).to_have_text("live")
    page.wait_for_timeout(3000)           # the socket's first push of every section is in, and 1.5 s more

    assert len(fetched) == 1, fetched
    page.locator("#ticket-symbol").fill("MSFT")           # searched from the venue's list, then left
    page.locator("#ticket-symbol").press("Tab")
    expect(page.locator("#chart-symbol")).to_have_text("MSFT")
    page.wait_for_timeout(3000)

    assert len(fetched) == 2, fetched
    assert "symbol=MSFT" in fetched[1]


def test_the_chart_takes_the_dark_theme_live(people_at):
    page = people_at(SIZES["1440"]).log_in(TRADER)
    page.context.add_init_script("localStorage.setItem('desk-theme', 'light')")
    page.reload()
    settle(page)
    text_colour = "() => document.getElementById('chart').chart.options().layout.textColor"
    grid_colour = "() => document.getElementById('chart').chart.options().grid.horzLines.color"
    css = "(name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim()"
    assert page.evaluate(text_colour) == page.evaluate(css, "--fg")
    price = "(p) => document.getElementById('chart').chart.options().localization.priceFormatter(p)"
    assert [page.evaluate(price, p) for p in (49070.35, 150.2, 0.00012345)] == ["49,070.35", "150.20", "0.00012345"]

    page.click("#theme-toggle")

    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(page.locator("#chart")).to_have_attribute("data-theme", "dark")
    assert page.evaluate(text_colour) == page.evaluate(css, "--fg") == "#e5e7eb"      # light text on the dark card
    assert page.evaluate(grid_colour) == page.evaluate(css, "--line") == "#1f2a44"    # a grid that stays back
    page.locator(".chart-card").screenshot(path=str(screenshot(page, "screens-desk-dark-1440").with_name(
        "screens-chart-dark-1440.png")))
