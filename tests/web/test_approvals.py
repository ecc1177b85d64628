"""The risk view's approval queue (four eyes): a person asks to let a HALTED account trade again, to raise a limit
or to place a large order; their own request shows as waiting for a second person, with no Approve button; a second
person with the risk role approves or rejects it with a comment; every refusal is said in the card. Pushed to every
open risk view as its own person sees it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from channels.db import database_sync_to_async

from orders.models import Account, ApprovalRequest, Order, PreTradeLimits, TradingState
from orders.services.approvals import approval_approve, limits_ask, ticket_send, trading_state_ask
from orders.services.limits import limits_set
from orders.services.risk import trading_state_set
from orders.web.roles import RISK, TRADER
from tests.builders import make_order_request
from tests.web.page import parse
from tests.web.support import logged_in, make_user

pytestmark = pytest.mark.django_db

D = Decimal
RESUME = "/risk/approvals/resume/"
LIMITS = "/risk/approvals/limits/"


def decide(approval_id) -> str:
    return f"/risk/approvals/{approval_id}/decide/"


@pytest.fixture
def rob(account):
    return make_user("rob", RISK)


@pytest.fixture
def rob_client(rob):
    return logged_in(rob)


@pytest.fixture
def halted(account):
    trading_state_set(account=account, state=TradingState.HALTED, actor="user:rita", reason="kill switch")


def state(account) -> str:
    return Account.objects.values_list("trading_state", flat=True).get(pk=account.pk)


def card(response):
    """The approvals card an action answers with (a fragment), and beside it, out of band, what the action did."""
    html = response.content.decode()
    assert "<html" not in html
    part = parse(html)
    assert [e.attrs["id"] for e in part.elements] == ["approvals", "approval-result"]
    assert part.by_id("approval-result").attrs["hx-swap-oob"] == "true"
    return part


def queue_of(client):
    return parse(client.get("/risk/").content).by_id("approvals")


# -- asking ----------------------------------------------------------------------------------------------------

def test_a_trader_asks_to_let_a_halted_account_trade_again(trader_client, account, halted, clock):
    shown = queue_of(trader_client)
    assert shown.by_id("resume-ask").find("select").attrs["name"] == "state"

    answer = card(trader_client.post(RESUME, {"state": "ACTIVE", "reason": "the feed is back"}))

    asked = ApprovalRequest.objects.get()
    assert (asked.requested_by, asked.kind, asked.payload["state"]) == ("user:tina", "RESUME_TRADING", "ACTIVE")
    assert answer.find(class_="ok").text == "Sent for approval: waiting for a second person with the risk role."
    mine = answer.by_id(f"approval-{asked.pk}")
    assert mine.attrs["data-mine"] == "yes"
    assert "Waiting for a second person" in mine.by_id(f"approval-waiting-{asked.pk}").text
    assert mine.find(id=f"approval-approve-{asked.pk}") is None
    assert answer.find(id="resume-ask") is None                     # one request at a time
    assert state(account) == "HALTED"


def test_asking_without_a_reason_is_refused_in_the_card(trader_client, account, halted, clock):
    response = trader_client.post(RESUME, {"state": "ACTIVE", "reason": " "})
    assert response.status_code == 400 and response["X-Desk-Fragment"] == "approvals"
    assert "say why alice may trade again" in card(response).find(class_="error").text
    assert not ApprovalRequest.objects.exists()


def test_the_ask_to_trade_again_never_changes_a_state_that_is_not_halted(trader_client, rob_client, account,
                                                                          halted, clock):
    card(trader_client.post(RESUME, {"state": "REDUCING", "reason": "close what is left"}))
    approval_approve(account=account, approval_id=str(ApprovalRequest.objects.get().pk), actor="user:rob",
                     supervisor=True)                               # the approvers chose REDUCING

    response = trader_client.post(RESUME, {"state": "ACTIVE", "reason": "let me trade"})

    assert response.status_code == 409 and response["X-Desk-Fragment"] == "approvals"
    assert card(response).find(class_="error").text == (
        "alice is REDUCING, not HALTED: only a HALTED account is asked to trade again here. The risk desk sets any "
        "other trading state")
    assert state(account) == "REDUCING" and ApprovalRequest.objects.count() == 1
    trading_state_set(account=account, state=TradingState.ACTIVE, actor="user:rita")
    assert trader_client.post(RESUME, {"state": "REDUCING", "reason": "x"}).status_code == 409
    assert state(account) == "ACTIVE"


def test_a_person_with_a_150_character_username_asks(account, halted, clock):
    long = make_user("t" * 150, TRADER, account)
    answer = card(logged_in(long).post(RESUME, {"state": "ACTIVE", "reason": "the feed is back"}))
    asked = ApprovalRequest.objects.get()
    assert asked.requested_by == f"user:{long.username}"[:150]
    assert answer.by_id(f"approval-{asked.pk}").attrs["data-mine"] == "yes"


def test_the_risk_desks_trading_state_form_sends_leaving_halted_for_approval(risk_client, account, halted, clock):
    page = parse(risk_client.post("/risk/trading-state/", {"state": "ACTIVE", "reason": "loss understood"}).content)
    assert page.by_id("state-pending").text == ("Sent for approval: Let alice trade again: HALTED → ACTIVE. It waits "
                                                "for a second person with the risk role.")
    assert page.by_id("state-now").text == "HALTED" and state(account) == "HALTED"


# -- deciding --------------------------------------------------------------------------------------------------

def test_the_person_asking_sees_no_approve_button_and_cannot_approve_by_hand(risk_client, rob_client, account,
                                                                          halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:rita", reason="back", supervisor=True)
    assert queue_of(risk_client).find(id=f"approval-approve-{asked.pk}") is None
    assert queue_of(rob_client).find(id=f"approval-approve-{asked.pk}") is not None

    response = risk_client.post(decide(asked.pk), {"decision": "approve", "comment": "me"})

    assert response.status_code == 403 and response["X-Desk-Fragment"] == "approvals"
    assert card(response).find(class_="error").text.startswith(
        "Forbidden: you asked for this yourself (user:rita): a second person with the risk role must approve")
    assert state(account) == "HALTED"


def test_a_second_risk_person_approves_with_a_comment(rob_client, account, halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tina", reason="feed back")

    answer = card(rob_client.post(decide(asked.pk), {"decision": "approve", "comment": "checked the feed"}))

    assert answer.find(class_="ok").text == "Approved: Let alice trade again: HALTED → ACTIVE."
    assert answer.find(id=f"approval-{asked.pk}") is None
    assert "APPROVED Let alice trade again: HALTED → ACTIVE by user:rob" in answer.by_id("approval-history").text
    assert state(account) == "ACTIVE"


def test_a_trader_cannot_decide(trader_client, account, halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:rita", reason="back", supervisor=True)
    assert queue_of(trader_client).by_id(f"approval-{asked.pk}").find(id=f"approval-approve-{asked.pk}") is None
    response = trader_client.post(decide(asked.pk), {"decision": "approve"})
    assert response.status_code == 403
    assert "only a person with the risk role (or an admin)" in card(response).find(class_="error").text
    assert state(account) == "HALTED"


def test_rejecting_needs_a_comment_and_is_shown_in_the_history(rob_client, account, halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tina", reason="back")
    refused = rob_client.post(decide(asked.pk), {"decision": "reject", "comment": ""})
    assert refused.status_code == 400
    assert "say why it is rejected" in card(refused).find(class_="error").text

    answer = card(rob_client.post(decide(asked.pk), {"decision": "reject", "comment": "loss not understood"}))
    assert answer.find(class_="ok").text == "Rejected: Let alice trade again: HALTED → ACTIVE."
    assert "“loss not understood”" in answer.by_id("approval-history").text
    assert state(account) == "HALTED"


def test_a_request_decided_meanwhile_is_refused_409(rob_client, risk_client, account, halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tina", reason="back")
    rob_client.post(decide(asked.pk), {"decision": "approve"})
    late = risk_client.post(decide(asked.pk), {"decision": "approve"})
    assert late.status_code == 409
    assert card(late).find(class_="error").text == "This request is no longer waiting: it was approved by user:rob"


def test_an_unknown_request_is_refused_404(rob_client, account, clock):
    response = rob_client.post(decide(uuid.uuid4()), {"decision": "approve"})
    assert response.status_code == 404 and "Approval request not found" in card(response).find(class_="error").text


def test_the_person_asking_withdraws_it(trader_client, account, halted, clock):
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tina", reason="back")
    answer = card(trader_client.post(f"/risk/approvals/{asked.pk}/withdraw/"))
    assert answer.find(class_="ok").text == "Withdrawn: Let alice trade again: HALTED → ACTIVE."
    assert ApprovalRequest.objects.get().status == "CANCELLED"
    assert answer.find(id="resume-ask") is not None                 # may ask again


# -- limits ----------------------------------------------------------------------------------------------------

def test_the_limit_form_names_each_limit_in_words_and_sends_its_name(risk_client, rob_client, account, clock):
    from orders.services.limits import LEVELS

    options = queue_of(risk_client).by_id("limit-name").find_all("option")

    assert [o.attrs["value"] for o in options] == list(LEVELS)
    shown = {o.attrs["value"]: o.text for o in options}
    assert shown["max_quantity_hard"] == "Max quantity, hard"
    assert shown["flatten_unprotected_after_seconds"] == "Flatten unprotected after (s)"
    assert not [text for text in shown.values() if "_" in text]             # no column name shown to a person


def test_a_lower_limit_applies_at_once_and_a_higher_one_waits(risk_client, rob_client, account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    lowered = card(risk_client.post(LIMITS, {"name": "max_notional_hard", "value": "40000"}))
    assert lowered.find(class_="ok").text == "max_notional_hard is now 40000."

    raised = card(risk_client.post(LIMITS, {"name": "max_notional_hard", "value": "90000", "minutes": "30",
                                            "reason": "rebalance"}))
    assert raised.find(class_="ok").text == ("Sent for approval: max_notional_hard 40000 → 90000, for 30 minutes.")
    assert PreTradeLimits.objects.get(account=account).max_notional_hard == D("40000")

    asked = ApprovalRequest.objects.get()
    answer = card(rob_client.post(decide(asked.pk), {"decision": "approve", "comment": "ok for the rebalance"}))
    assert PreTradeLimits.objects.get(account=account).max_notional_hard == D("90000")
    assert "max_notional_hard 40000 → 90000, for 30 minutes: until 15:30:00 UTC" in answer.by_id(
        "approval-overrides").text


def test_a_raise_for_a_while_changed_since_says_it_is_not_put_back(risk_client, rob_client, account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    asked = limits_ask(account_id=account.pk, actor="user:rita", minutes=30, max_notional_hard=D("90000"))
    approval_approve(account=account, approval_id=str(asked.approval.pk), actor="user:rob", supervisor=True)

    answer = card(rob_client.post(LIMITS, {"name": "max_notional_hard", "value": "60000"}))

    assert answer.find(id="approval-overrides") is None
    assert ("max_notional_hard 50000 → 90000, for 30 minutes by user:rob at 15:00:00 UTC · max_notional_hard "
            "changed since (that change stays), not put back") in answer.by_id("approval-history").text


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "max_leverage", "value": "2"}, "Invalid value for name: must be one of"),
    ({"name": "max_notional_hard", "value": "lots"}, "Invalid value for max_notional_hard: must be a number"),
    ({"name": "daily_orders_hard", "value": "1.5"}, "Invalid value for daily_orders_hard: must be a whole number"),
    ({"name": "max_notional_hard", "value": "5", "minutes": "soon"}, "Invalid value for minutes: must be a whole"),
    ({"name": "max_notional_hard", "value": "-5"}, "Invalid value for max_notional_hard: must be zero or more"),
])
def test_a_bad_limit_is_refused_in_the_card(risk_client, account, clock, fields, message):
    response = risk_client.post(LIMITS, fields)
    assert response.status_code == 400 and card(response).find(class_="error").text.startswith(message)


def test_only_the_risk_desk_sets_limits(trader_client, account, clock):
    assert trader_client.post(LIMITS, {"name": "max_notional_hard", "value": "5"}).status_code == 403
    assert queue_of(trader_client).find(id="limit-ask") is None


def test_raising_a_guard_level_from_its_form_waits_for_approval(risk_client, account, clock):
    limits_set(account_id=account.pk, actor="user:rita", daily_loss_soft=D("100"), daily_loss_hard=D("400"))
    page = parse(risk_client.post("/risk/guards/", {"daily_loss_soft": "100", "daily_loss_hard": "600",
                                                    "drawdown_soft": "", "drawdown_hard": ""}).content)
    assert page.by_id("guard-pending").text.startswith("Sent for approval: daily_loss_hard 400 → 600.")
    assert PreTradeLimits.objects.get(account=account).daily_loss_hard == D("400")


# -- large orders ----------------------------------------------------------------------------------------------

def ticket(**fields) -> dict[str, str]:
    data = {"token": str(uuid.uuid4()), "symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "100",
            "time_in_force": "GTC", "limit_price": "", "stop_price": "", "trailing_distance": "",
            "trailing_type": "", "stop_loss": "", "take_profit": "", "override_reason": ""}
    data.update(fields)
    return data


def test_a_large_order_from_the_ticket_is_sent_for_approval(trader_client, rob_client, account, clock):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=D("10000"))
    preview = parse(trader_client.post("/ticket/preview/", ticket()).content)
    assert "sent for a second person's approval" in preview.by_id("preview-approval").text

    data = ticket()
    page = parse(trader_client.post("/ticket/submit/", data).content)

    assert page.by_id("ticket-queued").text.startswith("Sent for approval: Buy 100 AAPL @ MKT ≈ 14,923.00 USD")
    assert page.find(id="ticket-placed") is None and not Order.objects.exists()
    asked = ApprovalRequest.objects.get()
    assert queue_of(rob_client).by_id(f"approval-{asked.pk}").find("p", class_="approval-text").text == (
        "Buy 100 AAPL @ MKT ≈ 14,923.00 USD")

    answer = card(rob_client.post(decide(asked.pk), {"decision": "approve", "comment": "fine"}))
    order = Order.objects.get()
    assert order.client_order_id == f"web-{data['token']}" and order.submitted_by == "user:tina"
    assert answer.find(class_="ok").text.startswith(f"Approved: Buy 100 AAPL @ MKT ≈ 14,923.00 USD (order "
                                                    f"{str(order.id)[:8]}")


def test_the_ticket_of_a_large_order_follows_its_request_live(trader_client, account, clock):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=D("10000"))

    page = parse(trader_client.post("/ticket/submit/", ticket()).content)

    asked = ApprovalRequest.objects.get()
    assert page.by_id("ticket-queued").attrs["data-status"] == "PENDING"
    follows = [json.loads(span.attrs["hx-vals"]) for span in page.find_all("span") if "ws-send" in span.attrs]
    assert follows == [{"follow_approval": str(asked.pk)}]


def test_a_large_order_being_placed_shows_no_button_to_anyone(trader_client, rob_client, account, broker, clock):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=D("10000"))
    asked = ticket_send(account=account, request=make_order_request(quantity=D("100")), broker=broker,
                        actor="user:tina")
    ApprovalRequest.objects.filter(pk=asked.pk).update(status="APPROVING", decided_by="user:rob")  # as while placed

    for client in (trader_client, rob_client):
        shown = queue_of(client).by_id(f"approval-{asked.pk}")
        placing = shown.by_id(f"approval-placing-{asked.pk}")
        assert placing.text == "Approved by user:rob: its order is being placed now."
        assert shown.find("button") is None


# -- pushed ----------------------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_every_open_risk_view_sees_a_request_come_and_go_as_its_person(risk_client, rob_client, account):
    from tests.web.test_desk_socket import first_draw, opened, receive_until, swapped

    await database_sync_to_async(trading_state_set)(account=account, state="HALTED", actor="user:rita")
    ritas = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    robs = await opened(rob_client, path="/ws/desk/?view=risk&account=alice")
    for communicator in (ritas, robs):
        assert swapped(await first_draw(communicator))["approvals"].find(id="no-approvals") is not None

    asked = await database_sync_to_async(trading_state_ask)(account=account, state="ACTIVE", actor="user:rita",
                                                            reason="back", supervisor=True)
    on_ritas = swapped(await receive_until(ritas, f'id="approval-{asked.pk}"'))["approvals"]
    on_robs = swapped(await receive_until(robs, f'id="approval-{asked.pk}"'))["approvals"]
    assert on_ritas.find(id=f"approval-approve-{asked.pk}") is None
    assert on_ritas.find(id=f"approval-waiting-{asked.pk}") is not None
    assert on_robs.find(id=f"approval-approve-{asked.pk}") is not None

    await database_sync_to_async(approval_approve)(account=account, approval_id=str(asked.pk), actor="user:rob",
                                                   supervisor=True)
    gone = swapped(await receive_until(ritas, 'id="no-approvals"'))       # with the state it set, in one redraw
    assert gone["approvals"].find(id=f"approval-{asked.pk}") is None
    assert gone["trading-state-badge"].text == "ACTIVE"
    for communicator in (ritas, robs):
        await communicator.disconnect()
