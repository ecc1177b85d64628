"""The risk view: live alerts stay until someone says what was done about them; the kill switch halts the
account, cancels what is working and hands back a receipt; the trading state is set by the risk desk only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from orders.models import Account, Alert, AuditEvent, Order, Position
from orders.services.alerts import alerts_escalate
from tests.builders import run_engine
from tests.web.page import parse
from tests.web.support import open_position, quote, raise_alert, resting_limit

pytestmark = pytest.mark.django_db


def fragment(response, partial: str, *, also: tuple[str, ...] = ()):
    """The partial an action answers with, plus the ``also`` elements it redraws out of band."""
    assert response.status_code == 200, response.content
    html = response.content.decode()
    assert "<html" not in html
    part = parse(html)
    assert [e.attrs["id"] for e in part.elements] == [partial, *also]
    assert all(e.attrs.get("hx-swap-oob") == "true" for e in part.elements[1:])
    return part


KILL_SWITCH = {"partial": "kill-switch", "also": ("trading-state", "trading-state-badge")}


def acknowledge(client, alert, comment="stop re-placed by hand", **headers):
    return client.post(f"/risk/alerts/{alert.pk}/acknowledge/", {"comment": comment}, headers=headers)


# -- alerts --------------------------------------------------------------------------------------------

def test_an_open_alert_is_listed_with_a_form_to_acknowledge_it(risk_client, account):
    alert = raise_alert(account)

    page = parse(risk_client.get("/risk/").content)

    item = page.by_id(f"alert-{alert.pk}")
    assert item.attrs["data-status"] == "OPEN" and "AAPL position has no stop-loss" in item.text
    assert page.by_id(f"ack-{alert.pk}").attrs["name"] == "comment"
    assert page.find(id="no-alerts") is None


def test_an_escalated_alert_says_so_until_it_is_acknowledged(risk_client, account, clock, settings):
    settings.DESK_ALERT_ESCALATE_MINUTES = 5
    alert = raise_alert(account)
    clock.shift(301)
    alerts_escalate(account_ids=[account.pk], now=timezone.now())

    badge = parse(risk_client.get("/risk/").content).by_id(f"alert-{alert.pk}").find("span", class_="escalated")
    assert badge.text.startswith("ESCALATED · unacknowledged since")

    acknowledge(risk_client, alert)
    assert parse(risk_client.get("/risk/").content).by_id(f"alert-{alert.pk}").find("span", class_="escalated") is None


def test_no_alerts_says_so(risk_client):
    assert parse(risk_client.get("/risk/").content).by_id("no-alerts").text == "No live alerts."


def test_the_desk_page_shows_the_live_alerts_too(trader_client, account):
    alert = raise_alert(account)

    page = parse(trader_client.get("/").content)

    assert page.by_id("alerts-bar").find(id=f"alert-{alert.pk}") is not None
    assert page.by_id("alert-count").text == "1"


def test_the_risk_desk_acknowledges_an_alert_with_a_comment(risk_client, htmx, account):
    alert = raise_alert(account)

    part = fragment(acknowledge(risk_client, alert, **htmx), "alerts")

    alert.refresh_from_db()
    assert (alert.status, alert.acknowledged_by, alert.ack_comment) == (
        "ACKNOWLEDGED", "user:rita", "stop re-placed by hand")
    assert part.by_id(f"alert-{alert.pk}").attrs["data-status"] == "ACKNOWLEDGED"
    assert "acknowledged by user:rita" in part.text and "“stop re-placed by hand”" in part.text
    assert part.find("form", class_="ack") is None
    event = AuditEvent.objects.get(action="alert.acknowledge")
    assert (event.actor, event.target, event.details) == ("user:rita", str(alert.pk),
                                                          {"comment": "stop re-placed by hand"})


def test_an_acknowledgement_needs_a_comment(risk_client, account):
    alert = raise_alert(account)

    part = fragment(acknowledge(risk_client, alert, comment="   "), "alerts")

    alert.refresh_from_db()
    assert alert.status == "OPEN"
    assert "say what was done about the alert" in part.find("p", class_="error").text


def test_an_alert_of_another_account_cannot_be_acknowledged_from_this_one(risk_client, other_account):
    alert = raise_alert(other_account)

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/acknowledge/?account=alice", {"comment": "x"}),
                    "alerts")

    alert.refresh_from_db()
    assert alert.status == "OPEN"
    assert part.find("p", class_="error").text == "Alert not found"


def test_a_trader_cannot_acknowledge_an_alert(trader_client, account):
    alert = raise_alert(account)

    assert acknowledge(trader_client, alert).status_code == 403
    alert.refresh_from_db()
    assert alert.status == "OPEN"


def test_a_trader_sees_the_alert_without_a_usable_acknowledge_button(trader_client, account):
    raise_alert(account)

    form = parse(trader_client.get("/risk/").content).find("form", class_="ack")

    assert "disabled" in form.find("button").attrs


def test_the_history_keeps_resolved_alerts(risk_client, account):
    alert = raise_alert(account)
    Alert.objects.filter(pk=alert.pk).update(status="RESOLVED", resolution="position closed")

    page = parse(risk_client.get("/risk/").content)

    assert page.by_id("no-alerts") is not None
    assert "position closed" in page.by_id("alerts").find("table").text


# -- kill switch ---------------------------------------------------------------------------------------

def test_the_kill_switch_halts_cancels_and_shows_a_receipt(risk_client, htmx, account, broker):
    orders = [resting_limit(account, broker), resting_limit(account, broker, symbol="MSFT")]

    part = fragment(risk_client.post("/risk/kill-switch/", headers=htmx), **KILL_SWITCH)

    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in orders])} == {"CANCELLED"}
    receipt = part.by_id("kill-receipt")
    assert receipt.attrs["role"] == "status"
    assert "Account alice is HALTED. Cancelled 2 orders." in receipt.text
    assert AuditEvent.objects.get(action="account.kill_switch").actor == "user:rita"
    assert part.by_id("state-now").text == "HALTED"                      # the state shown beside it follows
    assert part.by_id("trading-state-badge").text == "HALTED"            # and so does the top bar
    assert [o.attrs["value"] for o in part.by_id("trading-state").find_all("option")] == [
        "ACTIVE", "REDUCING", "HALTED"]


def test_the_kill_switch_keeps_the_stop_of_an_open_position_unless_asked_to_flatten(risk_client, account, broker,
                                                                                      clock):
    ask = quote(broker).ask
    open_position(account, broker, clock, stop_loss=ask - 3)
    run_engine(account, broker, seconds=1, clock=clock)

    receipt = fragment(risk_client.post("/risk/kill-switch/"), **KILL_SWITCH).by_id("kill-receipt")

    assert "kept 1 exit order of open positions" in receipt.text
    assert receipt_lines(receipt, "kept") == [("stop-loss", "SELL 10 AAPL")]


def receipt_lines(receipt, outcome: str) -> list[tuple[str, str]]:
    """(role, "SIDE QTY SYMBOL") of each order the receipt lists as ``outcome``."""
    found = receipt.find("ul", **{"data-outcome": outcome})
    if found is None:
        return []
    return [(li.find("b", class_="role").text, li.find("span", class_="what").text) for li in found.find_all("li")]


def test_the_receipt_names_each_order_by_its_role(risk_client, account, broker, clock):
    ask = quote(broker).ask
    open_position(account, broker, clock, stop_loss=ask - 3, take_profit=ask + 3)
    run_engine(account, broker, seconds=1, clock=clock)
    resting_limit(account, broker, symbol="MSFT", quantity="4")

    receipt = fragment(risk_client.post("/risk/kill-switch/"), **KILL_SWITCH).by_id("kill-receipt")

    assert receipt_lines(receipt, "cancelled") == [("entry", "BUY 4 MSFT")]
    assert sorted(receipt_lines(receipt, "kept")) == [("stop-loss", "SELL 10 AAPL"), ("take-profit", "SELL 10 AAPL")]
    assert "protective stops" not in receipt.text


def test_a_flattening_kill_switch_names_the_closing_orders_and_the_exits_it_cancelled(risk_client, account, broker,
                                                                                        clock):
    ask = quote(broker).ask
    open_position(account, broker, clock, stop_loss=ask - 3, take_profit=ask + 3)
    run_engine(account, broker, seconds=1, clock=clock)

    receipt = fragment(risk_client.post("/risk/kill-switch/", {"flatten": "on"}), **KILL_SWITCH).by_id(
        "kill-receipt")

    assert sorted(receipt_lines(receipt, "cancelled")) == [("stop-loss", "SELL 10 AAPL"),
                                                           ("take-profit", "SELL 10 AAPL")]
    assert receipt_lines(receipt, "closing") == [("closing order", "SELL 10 AAPL")]


def test_the_api_s_kill_switch_answer_keeps_its_shape(account, broker, clock):
    from orders.services.risk import kill_switch
    from orders.wire import KillSwitchOut
    order = resting_limit(account, broker)

    answer = KillSwitchOut.of(kill_switch(account=account, broker=broker, actor="test")).to_wire()

    assert set(answer) == {"account", "trading_state", "cancelled_order_ids", "cancelled_count", "kept_order_ids",
                           "closing_order_ids", "failures"}
    assert (answer["cancelled_order_ids"], answer["cancelled_count"]) == ([str(order.id)], 1)


# -- the kill switch from any page (Ctrl+Shift+K opens base.html's dialog) -------------------------------

@pytest.mark.parametrize("url", ["/", "/risk/", "/audit/"])
def test_every_page_gives_the_risk_desk_a_kill_switch_dialog_that_posts_it(risk_client, url):
    dialog = parse(risk_client.get(url).content).by_id("kill-dialog")

    form = dialog.find("form", id="kill-dialog-form")
    assert form.attrs["hx-post"].startswith("/risk/kill-switch/?account=alice")
    assert form.find("input", name="flatten").attrs["type"] == "checkbox"
    assert form.find("button", id="kill-dialog-confirm").text.startswith("Confirm")


@pytest.mark.parametrize("url", ["/", "/risk/", "/audit/"])
def test_a_trader_s_kill_switch_dialog_says_the_risk_role_is_needed(trader_client, url):
    dialog = parse(trader_client.get(url).content).by_id("kill-dialog")

    assert dialog.find("form", id="kill-dialog-form") is None
    assert "needs the risk role" in dialog.by_id("kill-dialog-refused").text


def test_the_dialog_s_kill_switch_answers_with_the_receipt_alone(risk_client, htmx, account, broker):
    order = resting_limit(account, broker)

    response = risk_client.post("/risk/kill-switch/?account=alice", {"from": "dialog"}, headers=htmx)

    part = fragment(response, "kill-receipt", also=("trading-state-badge",))
    assert receipt_lines(part.by_id("kill-receipt"), "cancelled") == [("entry", "BUY 10 AAPL")]
    assert part.by_id("trading-state-badge").text == "HALTED"
    order.refresh_from_db()
    assert order.status == "CANCELLED"


def test_the_kill_switch_can_flatten_every_position(risk_client, account, broker, clock):
    open_position(account, broker, clock)

    receipt = fragment(risk_client.post("/risk/kill-switch/", {"flatten": "on"}), **KILL_SWITCH).by_id(
        "kill-receipt")

    assert "sent 1 closing order." in receipt.text


def test_a_trader_cannot_use_the_kill_switch(trader_client, account, broker):
    order = resting_limit(account, broker)

    assert trader_client.post("/risk/kill-switch/").status_code == 403
    order.refresh_from_db()
    assert order.status == "OPEN"
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"


def test_a_trader_is_not_shown_the_kill_switch(trader_client):
    page = parse(trader_client.get("/risk/").content)

    assert page.find(id="kill-button") is None and page.find(id="kill-form") is None


# -- trading state -------------------------------------------------------------------------------------

def test_the_risk_desk_sets_the_trading_state(risk_client, htmx, account):
    part = fragment(risk_client.post("/risk/trading-state/", {"state": "REDUCING", "reason": "end of day"},
                                     headers=htmx), "trading-state", also=("trading-state-badge",))

    assert Account.objects.get(pk=account.pk).trading_state == "REDUCING"
    assert part.by_id("state-now").text == "REDUCING"
    assert part.by_id("trading-state-badge").text == "REDUCING"
    assert AuditEvent.objects.get(action="account.trading_state").details == {
        "previous": "ACTIVE", "state": "REDUCING", "reason": "end of day"}


def test_an_unknown_trading_state_is_refused_with_the_reason(risk_client, account):
    part = fragment(risk_client.post("/risk/trading-state/", {"state": "PARTY"}), "trading-state")

    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
    assert part.find("p", class_="error").text.startswith("Invalid value for state: must be one of ACTIVE")


def test_a_trader_cannot_set_the_trading_state(trader_client, account):
    assert trader_client.post("/risk/trading-state/", {"state": "HALTED"}).status_code == 403
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"


# -- alert cards: the position, why, and one-click answers ---------------------------------------------------

RESULT = {"partial": "alerts", "also": ("alert-result",)}    # the result stays when a push redraws the alerts


def unprotected_alert(account, broker, clock) -> Alert:
    """A filled AAPL long of 10 whose stop-loss the paper venue keeps refusing (POSITION_UNPROTECTED)."""
    broker.faults.reject_next(100, kind="STOP")
    ask = quote(broker).ask
    open_position(account, broker, clock, stop_loss=ask - 1, take_profit=ask + 3)
    for _ in range(4):
        run_engine(account, broker, seconds=5, clock=clock)
    return Alert.objects.get(account=account, kind="POSITION_UNPROTECTED", status="OPEN")


def test_an_alert_card_shows_the_position_its_p_and_l_and_why(risk_client, account, broker, clock):
    alert = unprotected_alert(account, broker, clock)

    card = parse(risk_client.get("/risk/").content).by_id(f"alert-card-{alert.pk}")

    assert card.by_id(f"alert-position-{alert.pk}").text.startswith("LONG 10 @ ")
    pnl = card.by_id(f"alert-pnl-{alert.pk}")
    assert pnl.text and "pnl-" in pnl.attrs["class"]
    assert card.by_id(f"alert-reason-{alert.pk}").text == (
        "stop-loss: Order rejected: rejected by injected fault (5 attempts)")
    assert card.by_id(f"flatten-{alert.pk}").text == "Flatten this position"
    assert card.by_id(f"replace-{alert.pk}").text == "Re-place the stop-loss"
    assert "hx-confirm" in card.by_id(f"replace-{alert.pk}").attrs


def test_re_placing_the_stop_from_the_alert_places_it_and_says_so(risk_client, htmx, account, broker, clock):
    alert = unprotected_alert(account, broker, clock)
    broker.faults.clear()

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/replace-exits/", headers=htmx), **RESULT)

    assert part.find("p", class_="ok").text == "AAPL: stop-loss placed again."
    assert part.find(id=f"alert-card-{alert.pk}") is None                  # resolved: no longer live
    assert Order.objects.filter(parent_id=alert.entry_id, leg_role="stop_loss", status="OPEN").count() == 1
    assert AuditEvent.objects.get(action="position.exits_replace").actor == "user:rita"


def test_a_stop_refused_again_shows_the_venue_s_error_on_the_page(risk_client, account, broker, clock):
    alert = unprotected_alert(account, broker, clock)

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/replace-exits/"), **RESULT)

    assert part.find("p", class_="error").text.startswith(
        "AAPL: the stop-loss was refused again: Order rejected: rejected by")
    assert part.find(id=f"alert-card-{alert.pk}") is not None


def test_flattening_from_the_alert_sends_the_closing_order(risk_client, account, broker, clock):
    alert = unprotected_alert(account, broker, clock)

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/flatten/"), **RESULT)

    assert part.find("p", class_="ok").text.startswith("Flattening AAPL: SELL 10 at market sent")
    closing = Order.objects.get(account=account, leg_role="close")
    assert (closing.side, closing.quantity, closing.submitted_by) == ("SELL", 10, "user:rita")
    run_engine(account, broker, seconds=1, clock=clock)
    assert not Position.objects.filter(account=account, symbol="AAPL").exclude(quantity=0).exists()


def test_flattening_a_flat_position_says_why_not(risk_client, account):
    alert = raise_alert(account)

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/flatten/"), **RESULT)

    assert part.find("p", class_="error").text.startswith("AAPL not flattened: ")


@pytest.mark.parametrize("action", ["flatten", "replace-exits"])
def test_a_trader_cannot_use_the_alert_s_actions(trader_client, account, broker, clock, action):
    alert = unprotected_alert(account, broker, clock)

    assert trader_client.post(f"/risk/alerts/{alert.pk}/{action}/").status_code == 403
    assert not Order.objects.filter(account=account, leg_role="close").exists()
    assert not AuditEvent.objects.filter(action="position.exits_replace").exists()
    card = parse(trader_client.get("/risk/").content).by_id(f"alert-card-{alert.pk}")
    assert "disabled" in card.by_id(f"flatten-{alert.pk}").attrs and "disabled" in card.by_id(
        f"replace-{alert.pk}").attrs


def test_an_alert_of_another_account_cannot_be_flattened_from_this_one(risk_client, other_account):
    alert = raise_alert(other_account)

    part = fragment(risk_client.post(f"/risk/alerts/{alert.pk}/flatten/?account=alice"), **RESULT)

    assert part.find("p", class_="error").text == "No such alert on this account"
