"""Issue #12: whichever door a change comes through — the desk's forms, /v1, the kill switch, the engine, the admin
or a management command — three observers converge on it within 2 s, with no reload:

* a trader's desk page (``demo`` on ``/``),
* a risk view (``risk`` on ``/risk/``),
* a strategy's ``/v1/ws`` client (keyless on loopback).

The pages always see the change by push. The stream sees it by push where the protocol has a frame for it (orders
filled and cancelled: ``order`` frames; alerts raised and escalated: ``error`` frames); where it has none (an alert
acknowledged or resolved, the trading state, a breaker) /v1/ws stays protocol-clean and the strategy reads the new
state from /v1 (``GET /v1/alerts``, ``/v1/trading-state``, ``/v1/circuit-breakers``) — asserted here within the
same 2 s, and that no non-protocol frame reached the stream.

One scenario, one desk process (web + engine) on its own SQLite file, so the engine's own changes (an alert
raised when a stop leg is refused, escalated after ``DESK_ALERT_ESCALATE_MINUTES``, resolved when the position
goes flat) are timed from the moment /v1 first reports them."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from playwright.sync_api import Page, expect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.e2e.browser import assert_not_reloaded, mark_page, paper_desk, screenshot
from tests.e2e.desk_process import Desk
from tests.e2e.second_factor import log_in_page
from tests.e2e.test_desk_browser import DESK_ENV, RISK, TRADER, fill_ticket, quote

pytestmark = pytest.mark.slow

WITHIN = 2_000                # ms: every observer shows a change this soon after it is made
ENGINE_WAIT = 40              # s: the engine gives a refused stop leg 10 s of retries before it alerts
PROTOCOL_TYPES = {"order", "position", "account", "trade", "quote", "candle", "connection", "data_staleness",
                  "error", "ping", "rate_limit"}


# -- the /v1/ws observer -------------------------------------------------------------------------------

class StreamObserver:
    """A strategy on /v1/ws: every frame kept with the time it arrived; the server's pings answered."""

    def __init__(self, url: str) -> None:
        self.socket = connect(url, open_timeout=10)
        self.frames: list[tuple[float, dict]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.socket:
                frame = json.loads(text)
                with self.lock:
                    self.frames.append((time.monotonic(), frame))
                if frame.get("type") == "ping":
                    self.socket.send(json.dumps({"type": "pong"}))
        except ConnectionClosed:
            return

    def mark(self) -> int:
        with self.lock:
            return len(self.frames)

    def wait_for(self, predicate: Callable[[dict], bool], *, since: int, timeout: float = WITHIN / 1000,
                 what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for _, frame in self.frames[since:]:
                    if predicate(frame):
                        return frame
            if time.monotonic() > deadline:
                with self.lock:
                    seen = [(f.get("type"), f.get("event") or f.get("code")) for _, f in self.frames[since:]]
                raise AssertionError(f"/v1/ws: no {what} within {timeout} s; got {seen}")
            time.sleep(0.02)

    def types(self) -> set[str]:
        with self.lock:
            return {frame["type"] for _, frame in self.frames}

    def close(self) -> None:
        self.socket.close()


def order_frame(order_id: str, event: str) -> Callable[[dict], bool]:
    return lambda f: f.get("type") == "order" and f.get("event") == event and f["order"]["id"] == order_id


def alert_frame(alert_id: str, *, escalated: bool = False) -> Callable[[dict], bool]:
    return lambda f: (f.get("type") == "error" and f.get("code") == "POSITION_UNPROTECTED"
                      and f.get("details", {}).get("alert_id") == alert_id
                      and bool(f["details"].get("escalated")) == escalated)


# -- reading /v1 (what a strategy reads where the stream has no frame) ----------------------------------

class Api:
    def __init__(self, desk: Desk) -> None:
        self.url = f"{desk.url}/v1"

    def get(self, path: str, **params):
        response = requests.get(f"{self.url}/{path}", params=params, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    def send(self, method: str, path: str, body: dict | None = None, *, expect_status: int | None = 200):
        response = requests.request(method, f"{self.url}/{path}", json=body, timeout=10)
        if expect_status is not None:
            assert response.status_code == expect_status, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def alert(self, alert_id: str) -> dict:
        return next(a for a in self.get("alerts") if a["id"] == alert_id)


def reads_within(read: Callable[[], object], wanted, *, what: str, timeout: float = WITHIN / 1000):
    """Poll a /v1 read until it answers ``wanted``: the stream observer's view of a change without a frame."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value == wanted:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"/v1: {what} is {value!r}, not {wanted!r}, {timeout} s after the change")
        time.sleep(0.05)


def wait_until(read: Callable[[], object], *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = read()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


# -- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture
def desk(tmp_path) -> Iterator[Desk]:
    env = {**DESK_ENV, "DESK_ALERT_ESCALATE_MINUTES": "1"}
    with paper_desk(tmp_path, **env) as desk:
        yield desk


@pytest.fixture
def pages(browser, desk) -> Iterator[dict[str, Page]]:
    opened, errors = [], []

    def log_in(credentials, *, path: str = "/", admin: bool = False) -> Page:
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, base_url=desk.url)
        opened.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: errors.append(f"{credentials[0]} {path}: {error}"))
        log_in_page(page, desk, credentials, admin=admin)
        page.wait_for_url(f"{desk.url}/admin/" if admin else f"{desk.url}/")
        if path != "/" and not admin:
            page.goto(path)
        if not admin:
            expect(page.locator("#connection-state")).to_have_text("live")
            mark_page(page)
        return page

    yield {"trader": log_in(TRADER), "risk": log_in(RISK, path="/risk/"), "admin": log_in(TRADER, admin=True)}
    for context in opened:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture
def stream(desk) -> Iterator[StreamObserver]:
    observer = StreamObserver(f"ws://127.0.0.1:{desk.port}/v1/ws")
    yield observer
    observer.close()


# -- what each page shows ------------------------------------------------------------------------------

def both(pages, check: Callable[[Page], None]) -> None:
    for name in ("trader", "risk"):
        check(pages[name])


def shows_order(pages, order_id: str, status: str) -> None:
    both(pages, lambda page: expect(page.locator(f"#done-{order_id} .status")).to_have_text(status, timeout=WITHIN))


def shows_state(pages, state: str) -> None:
    expect(pages["trader"].locator("#trading-state-badge")).to_have_text(state, timeout=WITHIN)
    expect(pages["risk"].locator("#state-now")).to_have_text(state, timeout=WITHIN)
    expect(pages["risk"].locator("#trading-state-badge")).to_have_text(state, timeout=WITHIN)


def shows_breaker(pages, state: str) -> None:
    expect(pages["trader"].locator("#breaker-badge")).to_have_attribute("data-state", state, timeout=WITHIN)
    expect(pages["risk"].locator("#breaker-badge")).to_have_attribute("data-state", state, timeout=WITHIN)
    expect(pages["risk"].locator("#breaker-adapter")).to_have_attribute("data-state", state, timeout=WITHIN)


def alert_on(page: Page, alert_id: str):
    return page.locator(f"#alerts-bar #alert-{alert_id}")


# -- the doors -----------------------------------------------------------------------------------------

def set_state_from_the_risk_view(risk: Page, state: str) -> None:
    risk.once("dialog", lambda dialog: dialog.accept())
    risk.select_option("#trading-state select[name=state]", state)
    risk.fill("#trading-state input[name=reason]", "three observers")
    risk.click("#trading-state button[type=submit]")


def approve_on_the_risk_view(risk: Page, comment: str) -> None:
    """Leaving HALTED waits for a second person (four eyes): the risk page, which did not ask, approves it."""
    card = risk.locator("#approvals .approval-card[data-kind=RESUME_TRADING]")
    expect(card).to_be_visible(timeout=WITHIN)
    card.locator("input[name=comment]").fill(comment)
    card.get_by_role("button", name="Approve").click()
    expect(risk.locator("#approval-result")).to_contain_text("Approved: Let demo trade again")


def account_pk(desk: Desk) -> int:
    with sqlite3.connect(desk.var_dir / "desk.sqlite3", timeout=10) as db:
        return db.execute("SELECT id FROM orders_account WHERE name = 'demo'").fetchone()[0]


def let_the_reset_cooldown_pass(desk: Desk) -> None:
    """The protocol refuses a reset within 60 s of the previous one; the test moves that reset back rather than
    wait a minute per door."""
    earlier = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(desk.var_dir / "desk.sqlite3", timeout=10) as db:
        db.execute("UPDATE orders_circuitbreaker SET last_reset_at = ? WHERE last_reset_at IS NOT NULL", (earlier,))


def trip_the_adapter_breaker(desk: Desk, api: Api) -> None:
    """The venue goes down: three refused entries open the adapter breaker (the system's own door)."""
    desk.manage("paper_faults", "--unavailable", "on")
    for n in range(3):
        api.send("POST", "orders", {"symbol": "AAPL", "side": "BUY", "quantity": "1", "order_type": "MARKET",
                                    "client_order_id": f"outage-{time.monotonic_ns()}-{n}"}, expect_status=503)


# -- the scenario --------------------------------------------------------------------------------------

def test_every_change_through_every_door_reaches_the_desk_the_risk_view_and_the_stream(desk, pages, stream):
    trader, risk, admin = pages["trader"], pages["risk"], pages["admin"]
    api = Api(desk)
    desk.manage("paper_faults", "--reject-next", "1000", "--kind", "STOP")

    # -- an order filled, through /v1 (the engine fills it); its refused stop leg: an alert raised by the engine
    entries = {}
    for symbol in ("AAPL", "MSFT", "GOOGL"):
        ask = quote(desk, symbol)["ask"]
        since = stream.mark()
        handle = api.send("POST", "orders", {
            "symbol": symbol, "side": "BUY", "quantity": "2", "order_type": "MARKET",
            "stop_loss": str((ask * Decimal("0.97")).quantize(Decimal("0.01"))),
            "take_profit": str((ask * Decimal("1.03")).quantize(Decimal("0.01")))}, expect_status=201).json()
        entries[symbol] = handle["id"]
        stream.wait_for(order_frame(handle["id"], "ORDER_FILLED"), since=since, timeout=5, what="ORDER_FILLED")
        shows_order(pages, handle["id"], "FILLED")
    screenshot(trader, "three-01-desk-filled-from-v1")

    since = stream.mark()
    alerts = wait_until(lambda: len(found := [a for a in api.get("alerts") if a["status"] == "OPEN"
                                                       and a["kind"] == "POSITION_UNPROTECTED"]) == 3 and found,
                        timeout=ENGINE_WAIT, what="three POSITION_UNPROTECTED alerts")
    alert_ids = {a["symbol"]: a["id"] for a in alerts}
    for alert_id in alert_ids.values():
        stream.wait_for(alert_frame(alert_id), since=since, what="the alert's error frame")
        both(pages, lambda page, alert_id=alert_id: expect(alert_on(page, alert_id)).to_have_attribute(
            "data-status", "OPEN", timeout=WITHIN))
    expect(risk.locator("#alarm")).to_be_visible()
    screenshot(risk, "three-02-risk-alerts-raised")

    # -- an alert escalated by the engine, DESK_ALERT_ESCALATE_MINUTES (1) after it was raised
    since = stream.mark()
    wait_until(lambda: all(api.alert(a).get("escalated_at") for a in alert_ids.values()), timeout=90,
               what="the alerts escalated")
    for alert_id in alert_ids.values():
        stream.wait_for(alert_frame(alert_id, escalated=True), since=since, what="the escalated error frame")
        both(pages, lambda page, alert_id=alert_id: expect(alert_on(page, alert_id).locator(".badge.escalated"))
             .to_be_visible(timeout=WITHIN))
    screenshot(trader, "three-03-desk-alerts-escalated")

    # -- an alert acknowledged: from the risk view, through /v1, in the admin
    ack = risk.locator(f'form.ack:has(#ack-{alert_ids["AAPL"]})')
    ack.locator("input[name=comment]").fill("stop placed by hand")
    ack.locator("button[type=submit]").click()
    api.send("POST", f'alerts/{alert_ids["MSFT"]}/acknowledge', {"comment": "strategy re-placed its stop"})
    admin.goto(f'/admin/orders/alert/{alert_ids["GOOGL"]}/change/')
    admin.fill("textarea[name=ack_comment]", "acknowledged in the admin")
    admin.click("input[name=_save]")
    for symbol in ("AAPL", "MSFT", "GOOGL"):
        alert_id = alert_ids[symbol]
        both(pages, lambda page, alert_id=alert_id: expect(alert_on(page, alert_id)).to_have_attribute(
            "data-status", "ACKNOWLEDGED", timeout=WITHIN))
        reads_within(lambda alert_id=alert_id: api.alert(alert_id)["status"], "ACKNOWLEDGED",
                     what=f"{symbol}'s alert")
    expect(risk.locator("#alerts")).to_contain_text("acknowledged by admin:demo")
    expect(risk.locator("#alarm")).to_be_hidden()
    screenshot(risk, "three-04-risk-alerts-acknowledged")

    # -- an alert resolved by the engine: the position goes flat (closed through /v1)
    position_id = next(p["id"] for p in api.get("positions") if p["symbol"] == "AAPL")
    api.send("DELETE", f"positions/{position_id}")
    wait_until(lambda: api.alert(alert_ids["AAPL"])["status"] == "RESOLVED", timeout=10, what="the alert resolved")
    both(pages, lambda page: expect(alert_on(page, alert_ids["AAPL"])).to_have_count(0, timeout=WITHIN))
    expect(risk.locator("#alerts table.blotter")).to_contain_text("RESOLVED", timeout=WITHIN)

    # -- the trading state: from the risk view, through /v1, in the admin, by a management command
    set_state_from_the_risk_view(risk, "REDUCING")
    shows_state(pages, "REDUCING")
    reads_within(lambda: api.get("trading-state")["trading_state"], "REDUCING", what="the trading state")

    api.send("PUT", "trading-state", {"state": "ACTIVE", "reason": "strategy resumes"})
    shows_state(pages, "ACTIVE")

    admin.goto(f"/admin/orders/account/{account_pk(desk)}/change/")
    admin.select_option("select[name=trading_state]", "HALTED")
    admin.click("input[name=_save]")
    shows_state(pages, "HALTED")
    reads_within(lambda: api.get("trading-state")["trading_state"], "HALTED", what="the trading state")

    asked = desk.manage("trading_state", "demo", "ACTIVE", "--reason", "operator at a shell").stdout
    assert "ACTIVE waits for a second person's approval on the risk view" in asked
    approve_on_the_risk_view(risk, "the operator called")
    shows_state(pages, "ACTIVE")
    reads_within(lambda: api.get("trading-state")["trading_state"], "ACTIVE", what="the trading state")

    # -- orders: filled from the desk's ticket; cancelled from the desk, through /v1 and by the kill switch
    since = stream.mark()
    token = fill_ticket(trader, quantity="1", order_type="MARKET")
    trader.click("#ticket-submit")
    expect(trader.locator("#ticket-placed")).to_be_visible()
    [ticket_order] = api.get("orders", client_order_id=f"web-{token}")
    stream.wait_for(order_frame(ticket_order["id"], "ORDER_FILLED"), since=since, what="ORDER_FILLED")
    shows_order(pages, ticket_order["id"], "FILLED")

    resting = {}
    for door in ("desk", "v1", "kill-switch"):
        bid = quote(desk, "MSFT")["bid"]
        resting[door] = api.send("POST", "orders", {
            "symbol": "MSFT", "side": "BUY", "quantity": "1", "order_type": "LIMIT",
            "limit_price": str(bid - 5)}, expect_status=201).json()["id"]
    both(pages, lambda page: expect(page.locator(f'#order-{resting["kill-switch"]}')).to_be_visible(timeout=WITHIN))

    since = stream.mark()
    trader.once("dialog", lambda dialog: dialog.accept())
    trader.click(f'#order-{resting["desk"]} button:has-text("Cancel")')
    stream.wait_for(order_frame(resting["desk"], "ORDER_CANCELLED"), since=since, what="ORDER_CANCELLED")
    shows_order(pages, resting["desk"], "CANCELLED")

    since = stream.mark()
    api.send("DELETE", f'orders/{resting["v1"]}')
    stream.wait_for(order_frame(resting["v1"], "ORDER_CANCELLED"), since=since, what="ORDER_CANCELLED")
    shows_order(pages, resting["v1"], "CANCELLED")

    # -- the kill switch from the risk view: the trading state HALTED, the working order cancelled
    since = stream.mark()
    risk.once("dialog", lambda dialog: dialog.accept())
    risk.click("#kill-button")
    expect(risk.locator("#kill-receipt")).to_contain_text("Account demo is HALTED.")
    stream.wait_for(order_frame(resting["kill-switch"], "ORDER_CANCELLED"), since=since, what="ORDER_CANCELLED")
    shows_order(pages, resting["kill-switch"], "CANCELLED")
    shows_state(pages, "HALTED")
    reads_within(lambda: api.get("trading-state")["trading_state"], "HALTED", what="the trading state")
    screenshot(trader, "three-05-desk-after-kill-switch")

    # -- the kill switch through /v1, after the account was let trade again (asked through /v1: 202, approved)
    asked = api.send("PUT", "trading-state", {"state": "ACTIVE", "reason": "strategy resumes"}, expect_status=202)
    assert asked.json()["status"] == "PENDING"
    approve_on_the_risk_view(risk, "strategy checked")
    shows_state(pages, "ACTIVE")
    api.send("POST", "kill-switch", {})
    shows_state(pages, "HALTED")
    reads_within(lambda: api.get("trading-state")["trading_state"], "HALTED", what="the trading state")
    api.send("PUT", "trading-state", {"state": "ACTIVE", "reason": "strategy resumes again"}, expect_status=202)
    approve_on_the_risk_view(risk, "strategy checked again")
    shows_state(pages, "ACTIVE")

    # -- a breaker tripped by a venue outage, and reset from the risk view, through /v1, in the admin, by a command
    def breaker_reads(state: str) -> None:
        reads_within(lambda: api.get("circuit-breakers")["adapter"]["state"], state, what="the adapter breaker")

    for door in ("risk view", "v1", "admin", "command"):
        trip_the_adapter_breaker(desk, api)
        shows_breaker(pages, "open")
        breaker_reads("open")
        if door == "risk view":
            screenshot(risk, "three-06-risk-breaker-open")
            screenshot(trader, "three-07-desk-breaker-open")
        desk.manage("paper_faults", "--unavailable", "off")
        if door == "risk view":
            risk.once("dialog", lambda dialog: dialog.accept())
            risk.click("#breakers-reset")
        elif door == "v1":
            api.send("POST", "circuit-breakers/reset")
        elif door == "admin":
            admin.goto("/admin/orders/circuitbreaker/")
            admin.click("#action-toggle")
            admin.select_option("select[name=action]", "reset")
            admin.click("button[name=index]")
            expect(admin.locator(".messagelist")).to_contain_text("Breakers of demo reset")
        else:
            desk.manage("breakers_reset", "demo")
        shows_breaker(pages, "closed")
        breaker_reads("closed")
        let_the_reset_cooldown_pass(desk)
    screenshot(risk, "three-08-risk-breakers-reset")

    # -- nothing was reloaded, and /v1/ws carried the protocol's frames only
    for page in (trader, risk):
        assert_not_reloaded(page)
    assert stream.types() <= PROTOCOL_TYPES, stream.types()
    screenshot(trader, "three-09-desk-end")
