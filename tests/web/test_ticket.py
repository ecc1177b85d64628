"""The order ticket: a preview with the figures a trader decides on, pre-trade limits (a soft one warns and
needs a typed reason, a hard one blocks), one order per ticket however often it is sent, and the domain's
own errors, in the API's words, beside the field they are about."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from orders.models import Account, AuditEvent, Order, PreTradeLimits, TradingState
from orders.templatetags.desk_numbers import price
from tests.web.page import parse
from tests.web.support import logged_in, quote

pytestmark = pytest.mark.django_db

PREVIEW = "/ticket/preview/"
SUBMIT = "/ticket/submit/"


def ticket(**fields) -> dict[str, str]:
    """The ticket form as the browser sends it: BUY 10 AAPL MARKET GTC unless told otherwise."""
    data = {"token": str(uuid.uuid4()), "symbol": "AAPL", "side": "BUY", "order_type": "MARKET", "quantity": "10",
            "time_in_force": "GTC", "limit_price": "", "stop_price": "", "trailing_distance": "",
            "trailing_type": "", "stop_loss": "", "take_profit": "", "override_reason": ""}
    data.update({k: str(v) for k, v in fields.items()})
    return data


def entries():
    return Order.objects.filter(parent__isnull=True)


# -- preview -------------------------------------------------------------------------------------------

def test_the_preview_shows_notional_impact_risk_and_reward(trader_client, broker, clock):
    ask = quote(broker).ask
    response = trader_client.post(PREVIEW, ticket(quantity="10", stop_loss=ask - 2, take_profit=ask + 3))

    assert response.status_code == 200
    preview = parse(response.content).by_id("ticket-preview")
    notional = (ask * 10).quantize(Decimal("0.01"))
    assert preview.by_id("preview-notional").text == f"{notional:,}"          # 1,492.30
    assert preview.by_id("preview-margin").text == f"{notional:,}"
    assert preview.by_id("preview-impact").text == f"100,000.00 → {Decimal('100000.00') - notional:,}"
    assert preview.by_id("preview-risk").text == "20.00"
    assert preview.by_id("preview-reward").text == "30.00"
    assert f"Ask {price(ask)}" in preview.by_id("ticket-quote").text
    assert entries().count() == 0


def test_the_preview_is_a_fragment(trader_client, clock):
    html = trader_client.post(PREVIEW, ticket()).content.decode()

    assert "<html" not in html and [e.attrs["id"] for e in parse(html).elements] == ["ticket-preview", "ticket-submit"]


def test_the_preview_of_a_limit_order_is_priced_at_its_limit(trader_client, broker, clock):
    limit = quote(broker).bid - 5
    preview = parse(trader_client.post(PREVIEW, ticket(order_type="LIMIT", limit_price=limit)).content)

    assert preview.by_id("preview-notional").text == f"{(limit * 10).quantize(Decimal('0.01')):,}"


def test_the_preview_warns_about_a_soft_breach_and_shows_a_hard_one_as_blocked(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_soft=Decimal("5"), max_notional_hard=Decimal("1000"))

    preview = parse(trader_client.post(PREVIEW, ticket(quantity="10")).content)

    warning = preview.find(class_="breach", data_check="max_quantity")
    blocked = preview.find(class_="breach", data_check="max_notional")
    assert warning.attrs["class"] == "warning breach"
    assert warning.text == "Warning: Quantity 10 is above the soft limit 5"
    assert blocked.attrs["class"] == "error breach" and blocked.text.startswith("Blocked: Notional ")


def test_the_risk_desk_can_preview(risk_client, clock):
    assert parse(risk_client.post(PREVIEW, ticket()).content).find(id="preview-notional") is not None


# -- placing -------------------------------------------------------------------------------------------

def test_placing_sends_the_order_and_offers_a_fresh_ticket(trader_client, account, clock):
    data = ticket(quantity="7")

    response = trader_client.post(SUBMIT, data)

    assert response.status_code == 200
    order = entries().get()
    assert (order.symbol, order.side, order.quantity, order.order_type) == ("AAPL", "BUY", 7, "MARKET")
    assert order.client_order_id == f"web-{data['token']}" and order.submitted_by == "user:tina"
    page = parse(response.content)
    assert [e.attrs["id"] for e in page.elements] == ["ticket"]
    assert page.by_id("ticket-placed").text.startswith("Order BUY 7 AAPL MARKET sent")
    assert str(order.id)[:8] in page.by_id("ticket-placed").text
    assert page.find("input", name="token").attrs["value"] != data["token"]
    assert AuditEvent.objects.filter(action="order.submit", target=str(order.id), actor="user:tina").exists()


def test_a_bracket_from_the_ticket_carries_its_stop_loss_and_take_profit(trader_client, broker, clock):
    ask = quote(broker).ask
    trader_client.post(SUBMIT, ticket(stop_loss=ask - 2, take_profit=ask + 2))

    order = entries().get()
    assert (order.stop_loss, order.take_profit) == (ask - 2, ask + 2)
    assert order.exit_legs.count() == 2


def test_the_same_ticket_sent_twice_places_one_order(trader_client, clock):
    data = ticket()

    first = trader_client.post(SUBMIT, data)
    second = trader_client.post(SUBMIT, data)

    assert (first.status_code, second.status_code) == (200, 200)
    order = entries().get()
    for response in (first, second):
        assert str(order.id)[:8] in parse(response.content).by_id("ticket-placed").text


def test_two_tickets_place_two_orders(trader_client, clock):
    trader_client.post(SUBMIT, ticket())
    trader_client.post(SUBMIT, ticket())

    assert entries().count() == 2


# -- pre-trade limits ----------------------------------------------------------------------------------

def test_a_hard_limit_blocks_the_order_with_the_reason_beside_the_field(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_hard=Decimal("100"))

    response = trader_client.post(SUBMIT, ticket(quantity="500"))

    assert response.status_code == 422
    page = parse(response.content)
    assert page.field_errors("quantity") == ["Blocked: Quantity 500 is above the hard limit 100"]
    assert entries().count() == 0


def test_a_hard_limit_cannot_be_overridden(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_hard=Decimal("100"))

    response = trader_client.post(SUBMIT, ticket(quantity="500", override_reason="I really mean it"))

    assert response.status_code == 422 and entries().count() == 0


def test_a_soft_limit_asks_for_a_reason_and_places_nothing(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_soft=Decimal("5"))

    response = trader_client.post(SUBMIT, ticket(quantity="10"))

    assert response.status_code == 422
    page = parse(response.content)
    assert page.field_errors("override_reason") == ["Type a reason to send an order past the warnings above."]
    assert page.find(class_="breach", data_check="max_quantity").text.startswith("Warning: Quantity 10")
    assert entries().count() == 0


def test_a_soft_limit_with_a_reason_places_the_order_and_audits_the_override(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_soft=Decimal("5"))
    data = ticket(quantity="10")
    trader_client.post(SUBMIT, data)                    # warned first, as at the desk

    response = trader_client.post(SUBMIT, {**data, "override_reason": "client order, confirmed by phone"})

    assert response.status_code == 200
    order = entries().get()
    override = AuditEvent.objects.get(action="order.override")
    assert (override.actor, override.target, override.account_id) == ("user:tina", str(order.id), account.pk)
    assert override.details == {"reason": "client order, confirmed by phone",
                                "breaches": ["Quantity 10 is above the soft limit 5"]}


def test_an_override_sent_twice_is_one_order_and_one_audit_entry(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_soft=Decimal("5"))
    data = ticket(quantity="10", override_reason="confirmed")

    trader_client.post(SUBMIT, data)
    trader_client.post(SUBMIT, data)

    assert entries().count() == 1
    assert AuditEvent.objects.filter(action="order.override").count() == 1


def test_a_blank_reason_does_not_count(trader_client, account, clock):
    PreTradeLimits.objects.create(account=account, max_quantity_soft=Decimal("5"))

    response = trader_client.post(SUBMIT, ticket(quantity="10", override_reason="   "))

    assert response.status_code == 422 and entries().count() == 0


# -- errors beside their field -------------------------------------------------------------------------

def test_a_limit_order_without_a_limit_price_shows_invalid_request_beside_the_limit_price(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(order_type="LIMIT"))

    assert response.status_code == 400
    page = parse(response.content)
    assert page.field_errors("limit_price") == ["INVALID_REQUEST: Invalid request: Limit orders require limit_price"]
    assert page.find(class_="error", role="alert") is None           # nothing on the form as a whole
    assert entries().count() == 0


def test_a_stop_order_without_a_stop_price_shows_the_error_beside_the_stop_price(trader_client, clock):
    page = parse(trader_client.post(SUBMIT, ticket(order_type="STOP")).content)

    assert page.field_errors("stop_price") == ["INVALID_REQUEST: Invalid request: Stop orders require stop_price"]


def test_a_take_profit_on_the_losing_side_shows_invalid_value_beside_the_take_profit(trader_client, broker, clock):
    ask = quote(broker).ask

    response = trader_client.post(SUBMIT, ticket(take_profit=ask - 5))

    assert response.status_code == 400
    [error] = parse(response.content).field_errors("take_profit")
    assert error.startswith("INVALID_VALUE: Invalid value for take_profit: take_profit must be above the entry price")
    assert entries().count() == 0


def test_a_stop_loss_above_the_take_profit_shows_invalid_value_beside_the_stop_loss(trader_client, broker, clock):
    ask = quote(broker).ask

    page = parse(trader_client.post(SUBMIT, ticket(stop_loss=ask + 5, take_profit=ask + 1)).content)

    assert page.field_errors("stop_loss") == [
        "INVALID_VALUE: Invalid value for stop_loss: a BUY bracket needs stop_loss below take_profit"]


def test_a_zero_quantity_shows_the_validation_error_beside_the_quantity(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(quantity="0"))

    assert response.status_code == 400
    [error] = parse(response.content).field_errors("quantity")
    assert error.startswith("VALIDATION_ERROR: ")
    assert entries().count() == 0


def test_an_order_the_account_cannot_pay_for_shows_the_rejection_beside_the_quantity(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(quantity="100000"))

    assert response.status_code == 422
    [error] = parse(response.content).field_errors("quantity")
    assert error.startswith("INSUFFICIENT_BALANCE: ")
    assert entries().count() == 0


def test_a_missing_quantity_is_a_form_error_beside_the_quantity(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(quantity=""))

    assert response.status_code == 400
    assert parse(response.content).field_errors("quantity") == ["This field is required."]


def test_an_order_on_a_halted_account_is_refused_with_the_reason_on_the_form(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(trading_state=TradingState.HALTED)

    response = trader_client.post(SUBMIT, ticket())

    assert response.status_code == 422
    alert = parse(response.content).by_id("ticket-form").find(class_="error", role="alert")
    assert alert.text == "ORDER_REJECTED: Order rejected: trading on account alice is halted"
    assert response.content.decode().count("trading on account alice is halted") == 1     # said once, above
    assert entries().count() == 0


def test_a_refused_ticket_keeps_what_was_typed_and_its_token(trader_client, clock):
    data = ticket(order_type="LIMIT", quantity="12", stop_loss="140")

    page = parse(trader_client.post(SUBMIT, data).content)

    assert page.find("input", name="quantity").attrs["value"] == "12"
    assert page.find("input", name="stop_loss").attrs["value"] == "140"
    assert page.find("input", name="token").attrs["value"] == data["token"]
    assert "selected" in page.find("option", value="LIMIT").attrs


# -- who may place -------------------------------------------------------------------------------------

def test_the_risk_desk_cannot_place_an_order(risk_client, clock):
    response = risk_client.post(SUBMIT, ticket())

    assert response.status_code == 403
    assert Order.objects.count() == 0


def test_the_risk_desk_sees_a_read_only_ticket(risk_client):
    page = parse(risk_client.get("/").content)

    assert "disabled" in page.by_id("ticket-submit").attrs
    assert page.by_id("ticket-readonly").text == "Your role cannot place orders. The ticket shows previews only."


def test_a_trader_sees_an_enabled_ticket(trader_client):
    page = parse(trader_client.get("/").content)

    assert "disabled" not in page.by_id("ticket-submit").attrs
    assert page.find(id="ticket-readonly") is None


def test_an_anonymous_post_places_nothing(client, account):
    response = client.post(SUBMIT, ticket())

    assert response.status_code == 302 and Order.objects.count() == 0


def test_a_post_without_the_csrf_token_is_refused(trader, account):
    strict = logged_in(trader)
    strict.handler.enforce_csrf_checks = True

    assert strict.post(SUBMIT, ticket()).status_code == 403
    assert Order.objects.count() == 0


@pytest.mark.parametrize(("state", "note"), [("HALTED", "Trading is halted on this account"),
                                             ("REDUCING", "Reduce-only"), ("ACTIVE", "")])
def test_the_ticket_says_when_the_account_is_halted_or_reduce_only(trader_client, account, state, note):
    Account.objects.filter(pk=account.pk).update(trading_state=state)

    shown = parse(trader_client.get("/").content).by_id("trading-state-note").text

    assert shown.startswith(note) if note else shown == ""


# -- what the page needs to show a refusal (static/js/refusals.js) --------------------------------------

@pytest.mark.parametrize(("fields", "status"), [({"quantity": ""}, 400), ({"order_type": "LIMIT"}, 400),
                                                ({"quantity": "100000"}, 422)])
def test_a_refusal_is_the_ticket_redrawn_without_a_banner_and_says_so_in_a_header(trader_client, clock, fields,
                                                                                    status):
    response = trader_client.post(SUBMIT, ticket(**fields), headers={"HX-Request": "true"})

    assert response.status_code == status and response["X-Desk-Fragment"] == "ticket"
    page = parse(response.content)
    assert page.by_id("ticket-outcome").find(id="ticket-placed") is None
    assert page.by_id("ticket-outcome").attrs["data-order"] == ""


def test_a_venue_that_cannot_be_reached_is_a_503_ticket(trader_client, broker, clock):
    broker.faults.set_unavailable(True)

    response = trader_client.post(SUBMIT, ticket(), headers={"HX-Request": "true"})

    assert response.status_code == 503 and response["X-Desk-Fragment"] == "ticket"
    error = parse(response.content).by_id("ticket-form").find(class_="error", role="alert")
    assert error.text == "PROVIDER_UNAVAILABLE: Provider unavailable: paper venue is unavailable (injected fault)"


def test_a_placed_order_has_its_banner_and_asks_the_socket_to_follow_it(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(quantity="3"), headers={"HX-Request": "true"})

    assert response.status_code == 200 and "X-Desk-Fragment" not in response
    order = entries().get()
    page = parse(response.content)
    assert page.by_id("ticket-outcome").attrs["data-order"] == str(order.id)
    assert page.by_id("ticket-placed").attrs["data-status"] == order.status
    follower = page.find("span", hx_vals=f'{{"follow": "{order.id}"}}')
    assert "ws-send" in follower.attrs and follower.attrs["hx-trigger"] == "load"


@pytest.mark.parametrize("url", [SUBMIT, PREVIEW, "/orders/cancel-all/", "/risk/kill-switch/"])
def test_an_htmx_request_without_a_session_gets_401_and_a_way_back_to_log_in(client, account, url):
    response = client.post(url, ticket(), headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/risk/"})

    assert response.status_code == 401 and response["X-Desk-Notice"] == "session-expired"
    notice = parse(response.content).find(class_="session-expired")
    assert notice.text.startswith("Your session has expired — log in again")
    assert notice.find("a").attrs["href"] == "/login/?next=/risk/"
    assert Order.objects.count() == 0


def test_a_page_without_a_session_still_goes_to_the_login_page(client, account):
    response = client.get("/")

    assert response.status_code == 302 and response["Location"] == "/login/?next=/"


# -- the live preview: hard breach, the button, brackets as traders set them, confirm (issue #14) -------

def button(html: bytes):
    return parse(html).by_id("ticket-submit")


def test_an_order_the_account_cannot_pay_for_is_a_hard_breach_in_the_preview_and_disables_the_button(
        trader_client, clock):
    response = trader_client.post(PREVIEW, ticket(quantity="100000"))

    page = parse(response.content)
    breach = page.find(class_="breach", data_check="venue")
    assert breach.attrs["class"] == "error breach"
    assert breach.text == "Blocked: INSUFFICIENT_BALANCE: Insufficient balance to place order"
    assert page.by_id("preview-impact").attrs["class"] == "neg"              # 100,000.00 → −14.9 M, in red
    assert "disabled" in page.by_id("ticket-submit").attrs
    assert page.by_id("ticket-submit").attrs["hx-swap-oob"] == "true"


def test_an_order_the_account_can_pay_for_leaves_the_button_enabled_and_saying_what_it_does(trader_client, clock):
    assert "disabled" not in button(trader_client.post(PREVIEW, ticket(quantity="10")).content).attrs


@pytest.mark.parametrize("fields, label, side", [
    ({"quantity": "10"}, "Buy 10 AAPL @ MKT", "side-buy"),
    ({"side": "SELL", "quantity": "5", "order_type": "LIMIT", "limit_price": "187.50"}, "Sell 5 AAPL @ 187.50 LMT",
     "side-sell"),
    ({"quantity": "10", "stop_loss": "1", "stop_loss_mode": "OFFSET"}, "Buy 10 AAPL bracket", "side-buy"),
])
def test_the_submit_button_says_what_it_will_do_in_the_sides_colour(trader_client, clock, fields, label, side):
    submit = button(trader_client.post(PREVIEW, ticket(**fields)).content)

    assert submit.text == label
    assert side in submit.attrs["class"].split()


def test_a_negative_quantity_says_it_must_be_positive_in_the_apis_words(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(quantity="-5"))

    assert parse(response.content).field_errors("quantity") == [
        "VALIDATION_ERROR: Validation failed: quantity: must be positive"]
    assert "≥" not in response.content.decode()


def test_the_preview_shows_margin_and_the_r_multiple(trader_client, broker, clock):
    ask = quote(broker).ask
    page = parse(trader_client.post(PREVIEW, ticket(quantity="10", stop_loss=ask - 2, take_profit=ask + 3)).content)

    assert page.by_id("preview-r").text == "1.50 R"
    assert page.by_id("preview-sl").text == price(ask - 2) and page.by_id("preview-tp").text == price(ask + 3)


def test_the_quote_shows_last_change_since_the_open_and_the_spread(trader_client, broker, clock):
    q = quote(broker)
    page = parse(trader_client.post(PREVIEW, ticket()).content)

    assert page.by_id("quote-last").text == price(q.last)
    assert page.by_id("quote-change").text.endswith("%)")
    spread = page.by_id("quote-spread").text
    assert spread.startswith(f"Spread {price(q.ask - q.bid)} · ") and spread.endswith(" bps")


def previewed(client, **fields):
    """The preview as the person saw it, and the ticket they then send (with the preview's anchor)."""
    data = ticket(**fields)
    page = parse(client.post(PREVIEW, data).content)
    anchor = page.find(name="bracket_entry")
    if anchor is not None:
        data["bracket_entry"] = anchor.attrs["value"]
    return page, data


@pytest.mark.parametrize("stop, target", [
    (("OFFSET", "1.5"), ("OFFSET", "3")),
    (("PERCENT", "1"), ("PERCENT", "2")),
    (("PERCENT", "0.75"), ("R", "2")),
])
def test_a_bracket_by_offset_percent_or_r_sends_exactly_the_prices_shown(trader_client, clock, stop, target):
    page, data = previewed(trader_client, quantity="10", stop_loss=stop[1], stop_loss_mode=stop[0],
                           take_profit=target[1], take_profit_mode=target[0])
    shown_stop, shown_target = Decimal(page.by_id("preview-sl").text), Decimal(page.by_id("preview-tp").text)
    assert shown_stop < Decimal(data["bracket_entry"]) < shown_target

    clock.shift(30)                                  # the market moved on: the prices shown are still the ones sent
    response = trader_client.post(SUBMIT, data)

    assert response.status_code == 200, response.content.decode()
    order = entries().get()
    assert (order.stop_loss, order.take_profit) == (shown_stop, shown_target)


def test_a_sell_bracket_by_r_puts_the_stop_above_and_the_target_below(trader_client, broker, clock):
    bid = quote(broker).bid
    page, _ = previewed(trader_client, side="SELL", quantity="10", stop_loss="2", stop_loss_mode="OFFSET",
                        take_profit="3", take_profit_mode="R")

    assert Decimal(page.by_id("preview-sl").text) == bid + 2
    assert Decimal(page.by_id("preview-tp").text) == bid - 6
    assert page.by_id("preview-r").text == "3.00 R"


def test_a_take_profit_in_r_without_a_stop_is_refused_beside_the_take_profit(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(take_profit="2", take_profit_mode="R"))

    [error] = parse(response.content).field_errors("take_profit")
    assert error.startswith("INVALID_VALUE: Invalid value for take_profit: a take-profit in R needs a stop-loss")
    assert entries().count() == 0


def test_sizing_by_risk_sets_the_quantity_to_the_risk_per_trade_over_the_stop_distance(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(risk_per_trade=Decimal("500"))
    page, data = previewed(trader_client, quantity="", size_by_risk="on", stop_loss="1.5", stop_loss_mode="OFFSET")

    assert page.by_id("preview-quantity").text == "333"                       # 500 / 1.5, down to a whole share
    assert page.by_id("preview-risk").text == "499.50"
    assert button(trader_client.post(PREVIEW, data).content).text == "Buy 333 AAPL bracket"
    trader_client.post(SUBMIT, data)
    assert entries().get().quantity == Decimal("333")


def test_a_market_bracket_the_price_moved_against_since_its_preview_is_refused_with_the_new_figures(
        trader_client, broker, clock):
    page, data = previewed(trader_client, quantity="10", stop_loss="1.5", stop_loss_mode="OFFSET")
    ask = Decimal(data["bracket_entry"])
    assert ask == quote(broker).ask
    data["bracket_entry"] = str(ask - 1)              # the preview the person saw was a whole dollar cheaper

    response = trader_client.post(SUBMIT, data)

    assert response.status_code == 422 and entries().count() == 0
    redrawn = parse(response.content)
    [error] = redrawn.field_errors("quantity")
    assert error == (f"ORDER_REJECTED: The price of AAPL moved from {ask - 1} to {ask} since the preview: the "
                     f"exits and size shown no longer hold. Check the new figures and send again")
    assert Decimal(redrawn.find(name="bracket_entry").attrs["value"]) == ask      # the figures at today's price
    assert Decimal(redrawn.by_id("preview-sl").text) == ask - Decimal("1.5")
    refused = AuditEvent.objects.get(action="order.rejected")
    assert refused.details["check"] == "PRICE_MOVED" and refused.actor.startswith("user:")

    data["bracket_entry"] = redrawn.find(name="bracket_entry").attrs["value"]
    assert trader_client.post(SUBMIT, data).status_code == 200
    assert entries().get().stop_loss == ask - Decimal("1.5")


def test_a_market_bracket_the_price_moved_for_since_its_preview_goes_at_the_prices_shown(trader_client, broker,
                                                                                         clock):
    page, data = previewed(trader_client, quantity="10", stop_loss="1.5", stop_loss_mode="OFFSET")
    data["bracket_entry"] = str(Decimal(data["bracket_entry"]) + 1)   # it was dearer then: the risk only shrank

    assert trader_client.post(SUBMIT, data).status_code == 200
    assert entries().get().stop_loss == Decimal(data["bracket_entry"]) - Decimal("1.5")


def test_the_order_sent_after_the_confirm_question_is_the_one_asked_about(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(confirm_notional_above=Decimal("1000"), risk_per_trade=Decimal("500"))
    page, data = previewed(trader_client, quantity="", size_by_risk="on", stop_loss="1.5", stop_loss_mode="OFFSET",
                           take_profit="2", take_profit_mode="R")
    shown = (page.by_id("preview-quantity").text, page.by_id("preview-sl").text, page.by_id("preview-tp").text)

    asked = parse(trader_client.post(SUBMIT, data).content)
    assert (asked.by_id("preview-quantity").text, asked.by_id("preview-sl").text,
            asked.by_id("preview-tp").text) == shown
    assert asked.find(name="bracket_entry").attrs["value"] == data["bracket_entry"]   # the Send carries it back
    confirmed = json.loads(asked.by_id("ticket-confirm-send").attrs["hx-vals"])["confirmed"]

    clock.shift(30)
    sent = trader_client.post(SUBMIT, {**data, "bracket_entry": asked.find(name="bracket_entry").attrs["value"],
                                       "confirmed": confirmed})

    assert sent.status_code == 200 and parse(sent.content).find(id="ticket-confirm") is None
    order = entries().get()
    assert (order.quantity, order.stop_loss, order.take_profit) == tuple(Decimal(x) for x in shown)


def test_a_ticket_refused_while_its_exits_are_resolved_is_in_the_audit_trail(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(risk_per_trade=Decimal("500"))

    trader_client.post(SUBMIT, ticket(quantity="", size_by_risk="on"))

    refused = AuditEvent.objects.get(action="order.rejected")
    assert refused.details["code"] == "INVALID_VALUE"
    assert refused.details["message"] == "Invalid value for stop_loss: sizing by risk needs a stop-loss"
    assert entries().count() == 0


def test_the_live_preview_says_why_it_cannot_size_by_risk(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(risk_per_trade=Decimal("500"))

    page = parse(trader_client.post(PREVIEW, ticket(quantity="", size_by_risk="on")).content)

    assert "sizing by risk needs a stop-loss" in page.by_id("ticket-preview").text


def test_an_order_above_the_accounts_confirm_notional_asks_before_sending(trader_client, account, broker, clock):
    Account.objects.filter(pk=account.pk).update(confirm_notional_above=Decimal("10000"))
    data = ticket(quantity="100")
    notional = (quote(broker).ask * 100).quantize(Decimal("0.01"))

    first = trader_client.post(SUBMIT, data)

    assert first.status_code == 200 and entries().count() == 0
    ask = parse(first.content).by_id("ticket-confirm")
    assert ask.by_id("ticket-confirm-question").text == f"Send BUY 100 AAPL ≈ {notional:,} USD?"
    send = ask.by_id("ticket-confirm-send")
    assert send.attrs["hx-vals"] == '{"confirmed": "BUY 100 AAPL"}'

    trader_client.post(SUBMIT, {**data, "confirmed": "BUY 100 AAPL"})
    assert entries().get().quantity == Decimal("100")


def test_a_confirmation_answers_only_for_the_order_it_was_asked_about(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(confirm_notional_above=Decimal("10000"))

    response = trader_client.post(SUBMIT, ticket(quantity="500", confirmed="BUY 100 AAPL"))

    assert parse(response.content).find(id="ticket-confirm") is not None and entries().count() == 0


def test_an_order_below_the_confirm_notional_goes_at_once(trader_client, account, clock):
    Account.objects.filter(pk=account.pk).update(confirm_notional_above=Decimal("10000"))

    trader_client.post(SUBMIT, ticket(quantity="10"))

    assert entries().count() == 1


def test_the_symbol_is_searched_from_the_venues_own_list(trader_client, broker, clock):
    page = parse(trader_client.get("/").content)

    field = page.by_id("ticket-symbol")
    assert field.attrs["list"] == "ticket-symbols" and "ws-send" in field.attrs
    offered = [o.attrs["value"] for o in page.by_id("ticket-symbols").find_all("option")]
    assert offered == sorted(broker.symbols())


def test_an_unknown_symbol_is_refused_beside_the_symbol(trader_client, clock):
    response = trader_client.post(SUBMIT, ticket(symbol="NOPE"))

    assert response.status_code == 400
    assert parse(response.content).field_errors("symbol")


# -- the account's ticket settings and the admin's labels ---------------------------------------------

@pytest.fixture
def superuser_client():
    from django.contrib.auth import get_user_model

    return logged_in(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))


def test_the_confirm_notional_and_risk_per_trade_are_set_in_the_admin_and_audited(superuser_client, account):
    form = {"name": account.name, "broker": account.broker, "currency": account.currency,
            "trading_state": account.trading_state, "is_default": "on", "auto_flatten_after_seconds": "",
            "confirm_notional_above": "25000", "risk_per_trade": "250", "timezone": "UTC"}

    response = superuser_client.post(f"/admin/orders/account/{account.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert (account.confirm_notional_above, account.risk_per_trade) == (Decimal("25000"), Decimal("250"))
    record = AuditEvent.objects.get(action="account.ticket_settings")
    assert record.actor == "admin:root"
    assert record.details["previous"] == {"confirm_notional_above": None, "risk_per_trade": None}
    superuser_client.post(f"/admin/orders/account/{account.pk}/change/", form)       # nothing changed: no record
    assert AuditEvent.objects.filter(action="account.ticket_settings").count() == 1


def test_the_admin_calls_the_pre_trade_limits_by_their_name(superuser_client):
    index = superuser_client.get("/admin/").content.decode()

    assert "Pre-trade limits" in index and "limitss" not in index


def test_a_symbol_searched_in_lower_case_is_the_venues_symbol(trader_client, clock):
    assert button(trader_client.post(PREVIEW, ticket(symbol="msft")).content).text == "Buy 10 MSFT @ MKT"
