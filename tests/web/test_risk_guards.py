"""The risk view's loss guards: today's start and peak equity, loss and drawdown against the levels, a form the
risk desk sets the levels with (audited), the receipt of a hard halt, and a resume only the risk desk may give,
with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from orders.domain.guards import GuardLevels
from orders.engine import engine_tick
from orders.models import Account, ApprovalRequest, AuditEvent, PreTradeLimits
from orders.services.approvals import approval_approve
from orders.services.guards import guard_check
from orders.services.limits import limits_set
from tests.builders import run_engine
from tests.services.test_guards import long_with_far_stop, shock
from tests.web.page import parse
from tests.web.support import logged_in
from tests.web.test_admin import account_form
from tests.web.test_desk_socket import first_draw, opened, receive_until, swapped

pytestmark = pytest.mark.django_db

D = Decimal


def guards_fragment(response, status=200):
    assert response.status_code == status, response.content
    html = response.content.decode()
    assert "<html" not in html
    part = parse(html)
    assert [e.attrs["id"] for e in part.elements] == ["guards"]
    return part


def halted_by_the_guard(account, broker, clock):
    limits_set(account_id=account.pk, actor="rita", daily_loss_soft=D("100"), daily_loss_hard=D("400"))
    entry = long_with_far_stop(account, broker, clock)
    shock(broker, "-3")
    run_engine(account, broker, seconds=2, clock=clock)
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    return entry


def test_the_risk_view_shows_the_days_start_loss_and_levels(risk_client, account, broker, clock):
    limits_set(account_id=account.pk, actor="rita", daily_loss_soft=D("100"), daily_loss_hard=D("400"))
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)

    guards = parse(risk_client.get("/risk/").content).by_id("guards")

    assert guards.by_id("guard-start").text == "99,997.00"           # at the first tick: the fill's
    assert guards.by_id("guard-level").text == "soft level reached"
    assert [td.text for td in guards.by_id("guard-loss").find_all("td")] == ["Loss", "148.00", "100.00", "400.00"]
    assert [td.text for td in guards.by_id("guard-drawdown").find_all("td")][2:] == ["none", "none"]
    assert guards.by_id("guard-daily_loss_soft").attrs["value"] == "100"


def test_the_risk_desk_sets_the_levels_and_the_change_is_audited(risk_client, htmx, account):
    part = guards_fragment(risk_client.post("/risk/guards/", {
        "daily_loss_soft": "500", "daily_loss_hard": "1000", "drawdown_soft": "", "drawdown_hard": "1500",
        "flatten_on_hard_halt": "on"}, headers=htmx))

    row = PreTradeLimits.objects.get(account=account)
    assert (row.daily_loss_soft, row.daily_loss_hard, row.drawdown_soft, row.drawdown_hard) == (
        D("500"), D("1000"), None, D("1500"))
    assert row.flatten_on_hard_halt
    assert part.find("p", class_="ok").text == "Levels saved."
    assert part.by_id("guard-daily_loss_hard").attrs["value"] == "1000"
    audit = AuditEvent.objects.get(action="limits.set")
    assert audit.actor == "user:rita"
    assert audit.details["changed"]["daily_loss_hard"] == {"from": None, "to": "1000"}


def test_a_level_that_is_not_an_amount_is_refused_beside_the_form(risk_client, htmx, account):
    part = guards_fragment(risk_client.post("/risk/guards/", {"daily_loss_soft": "lots"}, headers=htmx),
                           status=422)

    assert part.find("p", class_="error").text == "Loss soft: “lots” is not an amount"      # as labelled
    assert part.by_id("guard-daily_loss_soft").attrs["value"] == "lots"        # what was typed stays
    assert not AuditEvent.objects.filter(action="limits.set").exists()


def test_a_soft_level_at_or_above_the_hard_one_is_refused(risk_client, htmx, account):
    response = risk_client.post("/risk/guards/", {"drawdown_soft": "900", "drawdown_hard": "500"}, headers=htmx)
    part = guards_fragment(response, status=422)

    assert response["X-Desk-Fragment"] == "guards"
    assert part.find("p", class_="error").text == (
        "Invalid value for drawdown_soft: the soft drawdown level must be below the hard one (500)")
    assert not PreTradeLimits.objects.filter(account=account, drawdown_hard__isnull=False).exists()


def test_a_negative_level_is_refused(risk_client, htmx, account):
    part = guards_fragment(risk_client.post("/risk/guards/", {"daily_loss_hard": "-5"}, headers=htmx), status=422)
    assert "must be zero or more" in part.find("p", class_="error").text


@pytest.mark.parametrize("typed", ["1e18", "1e999999", "NaN", "Infinity"])
def test_a_level_too_large_to_keep_is_refused_and_the_engine_still_reads_the_limits(risk_client, htmx, account,
                                                                                     broker, clock, typed):
    part = guards_fragment(risk_client.post("/risk/guards/", {"daily_loss_hard": typed}, headers=htmx), status=422)

    assert part.find("p", class_="error").text.strip() != ""
    assert not PreTradeLimits.objects.filter(account=account, daily_loss_hard__isnull=False).exists()
    engine_tick(accounts=[account], broker=broker)             # the row is still readable by the engine
    assert risk_client.get("/risk/").status_code == 200


def test_a_trader_can_neither_set_the_levels_nor_see_the_form(trader_client, account):
    assert trader_client.post("/risk/guards/", {"daily_loss_hard": "1"}).status_code == 403
    assert not PreTradeLimits.objects.filter(account=account, daily_loss_hard__isnull=False).exists()
    assert parse(trader_client.get("/risk/").content).by_id("guards").find("form") is None


def test_the_risk_view_shows_the_hard_halt_and_its_receipt(risk_client, account, broker, clock):
    entry = halted_by_the_guard(account, broker, clock)

    page = parse(risk_client.get("/risk/").content)
    receipt = page.by_id("guard-receipt")

    assert "HALTED" in receipt.text and "Cancelled 1 order" in receipt.text
    kept = receipt.find("ul", **{"data-outcome": "kept"})
    assert sorted(li.attrs["data-role"] for li in kept.find_all("li")) == ["stop-loss", "take-profit"]
    assert str(entry.id) not in receipt.text       # the entry filled: only its exits are listed
    card = page.find("article", class_="alert-card")
    assert card.find("h3").text == "LOSS_LIMIT"                # about the account, not about one position
    assert card.find("dl") is None and "flat" not in card.find("h3").text


def test_resuming_a_guard_halt_needs_a_reason_from_the_risk_desk(risk_client, trader_client, htmx, account, broker,
                                                                 clock):
    halted_by_the_guard(account, broker, clock)
    assert trader_client.post("/risk/trading-state/", {"state": "ACTIVE", "reason": "x"}).status_code == 403

    refused = parse(risk_client.post("/risk/trading-state/", {"state": "ACTIVE", "reason": " "},
                                     headers=htmx).content)
    assert refused.find("p", class_="error").text == (
        "Invalid value for reason: say why alice may trade again: the second person who approves it reads this")
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"

    # leaving HALTED is asked for here and approved by a second person (four eyes, tests/web/test_approvals.py)
    risk_client.post("/risk/trading-state/", {"state": "ACTIVE", "reason": "loss understood, new budget"},
                     headers=htmx)
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"
    approval_approve(account=account, approval_id=str(ApprovalRequest.objects.get().pk), actor="user:rob",
                     supervisor=True)
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
    audit = AuditEvent.objects.filter(action="account.trading_state").latest("at", "pk")
    assert (audit.actor, audit.details["after_guard"], audit.details["requested_by"]) == ("user:rob", "HARD",
                                                                                          "user:rita")


# -- pushed to an open risk view ---------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_open_risk_view_is_shown_new_levels_and_a_level_reached(risk_client, account, broker):
    communicator = await opened(risk_client, path="/ws/desk/?view=risk&account=alice")
    await first_draw(communicator)

    await database_sync_to_async(limits_set)(account_id=account.pk, actor="user:rita", daily_loss_soft=D("100"))
    levels = swapped(await receive_until(communicator, 'id="guards"'))["guards"]
    assert levels.by_id("guard-daily_loss_soft").attrs["value"] == "100"

    def lose(equity: str) -> None:
        guard_check(account=account, broker=broker, equity=D(equity), levels=GuardLevels(daily_loss_soft=D("100")),
                    flatten=False, now=timezone.now())

    await database_sync_to_async(lose)("100000")
    await database_sync_to_async(lose)("99850")
    reached = swapped(await receive_until(communicator, 'id="guard-level"'))["guards"]
    assert reached.by_id("guard-level").text == "soft level reached"
    assert reached.by_id("guard-start").text == "100,000.00"
    await communicator.disconnect()


def test_an_admin_lets_a_halted_account_trade_again_in_the_admin_with_its_reason(account, broker, clock):
    halted_by_the_guard(account, broker, clock)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = logged_in(admin)

    refused = client.post(f"/admin/orders/account/{account.pk}/change/",
                          account_form(Account.objects.get(pk=account.pk), trading_state="ACTIVE"))
    assert "Say why alice may trade more (HALTED → ACTIVE)." in refused.content.decode()
    assert not ApprovalRequest.objects.exists()

    client.post(f"/admin/orders/account/{account.pk}/change/",
                account_form(Account.objects.get(pk=account.pk), trading_state="ACTIVE",
                             state_reason="desk lead checked the book"))
    assert Account.objects.get(pk=account.pk).trading_state == "HALTED"         # asked: a second person approves
    approval_approve(account=account, approval_id=str(ApprovalRequest.objects.get().pk), actor="user:rita",
                     supervisor=True)

    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
    audit = AuditEvent.objects.filter(action="account.trading_state").latest("at", "pk")
    assert (audit.details["reason"], audit.details["after_guard"]) == ("desk lead checked the book", "HARD")
