"""Four-eyes approvals (services/approvals.py): leaving HALTED, raising a limit and an order above the account's
approval notional wait for a second person with the risk role; the person asking never decides their own request;
requests expire and temporary raises are put back by the engine's tick; everything is audited and counted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.brokers import get_broker
from orders.brokers.paper import PaperBroker
from orders.domain.approvals import (
    ApprovalFailed,
    ApprovalNotPending,
    ApprovalRequired,
    ApproverRequired,
    NotHalted,
    OrderNeedsApproval,
    SelfApproval,
)
from orders.domain.errors import DeskError, Forbidden, InvalidValue
from orders.models import Account, ApprovalRequest, AuditEvent, Order, PreTradeLimits, TradingState
from orders.services import approvals
from orders.services.approvals import (
    ApprovalPending,
    approval_approve,
    approval_cancel,
    approval_reject,
    approvals_expire,
    approvals_waiting,
    limits_ask,
    ticket_send,
    trading_resume_ask,
    trading_state_ask,
)
from orders.services.limits import limits_read, limits_set
from orders.services.risk import kill_switch, trading_state_set
from orders.services.tickets import ticket_submit
from tests.builders import make_order_request, run_engine

pytestmark = pytest.mark.django_db

D = Decimal
Status = ApprovalRequest.Status


def halted(account) -> None:
    trading_state_set(account=account, state=TradingState.HALTED, actor="user:rita", reason="end of day")


def state(account) -> str:
    return Account.objects.values_list("trading_state", flat=True).get(pk=account.pk)


def level(account, name):
    return getattr(PreTradeLimits.objects.get(account=account), name)


def actions(account, prefix="approval.") -> list[tuple[str, str, str]]:
    return [(a.action, a.actor, a.result) for a in
            AuditEvent.objects.filter(account=account, action__startswith=prefix).order_by("at", "id")]


# -- leaving HALTED ------------------------------------------------------------------------------------------

def test_leaving_halted_waits_for_a_second_person(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="the feed is back")

    assert isinstance(asked, ApprovalRequest)
    assert (asked.kind, asked.status, asked.payload) == ("RESUME_TRADING", "PENDING",
                                                         {"state": "ACTIVE", "previous": "HALTED"})
    assert asked.expires_at == timezone.now() + timedelta(minutes=15)
    assert state(account) == "HALTED"
    assert actions(account) == [("approval.request", "user:tom", "ok")]


def test_no_door_leaves_halted_without_the_approval(account, clock):
    halted(account)
    with pytest.raises(ApprovalRequired) as refused:
        trading_state_set(account=account, state="REDUCING", actor="user:rita", reason="x", supervisor=True)
    assert refused.value.status == 403 and refused.value.details == {"code": "APPROVAL_REQUIRED"}
    assert "needs a second person's approval" in refused.value.message
    assert state(account) == "HALTED"


def test_the_person_asking_cannot_approve_their_own_request(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:rita", reason="the feed is back",
                              supervisor=True)
    for door in ("user:rita", "admin:rita"):          # the admin is the same person
        with pytest.raises(SelfApproval) as refused:
            approval_approve(account=account, approval_id=str(asked.pk), actor=door, supervisor=True)
        assert refused.value.details == {"code": "SELF_APPROVAL"}
        assert "you asked for this yourself (user:rita)" in refused.value.message
    with pytest.raises(SelfApproval):
        approval_reject(account=account, approval_id=str(asked.pk), actor="user:rita", supervisor=True,
                        comment="never mind")
    assert state(account) == "HALTED"
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "PENDING"
    assert actions(account)[1:] == [("approval.approve", "user:rita", "refused"),
                                    ("approval.approve", "admin:rita", "refused"),
                                    ("approval.reject", "user:rita", "refused")]


def test_a_second_risk_person_approves_and_the_account_trades_again(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="the feed is back")

    decided = approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                               comment="checked the feed")

    assert state(account) == "ACTIVE"
    assert (decided.status, decided.decided_by, decided.comment) == ("APPROVED", "user:rob", "checked the feed")
    change = AuditEvent.objects.filter(action="account.trading_state").latest("at", "pk")
    assert (change.actor, change.details["reason"], change.details["approval"], change.details["requested_by"]) == (
        "user:rob", "the feed is back", str(asked.pk), "user:tom")
    assert actions(account)[-1] == ("approval.approve", "user:rob", "ok")
    assert approvals_waiting(account=account) == []


def test_only_the_risk_role_decides(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    with pytest.raises(ApproverRequired):
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:tina", supervisor=False)
    assert state(account) == "HALTED"


def test_asking_to_leave_halted_needs_a_reason(account, clock):
    halted(account)
    with pytest.raises(InvalidValue) as refused:
        trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="  ")
    assert refused.value.message == ("Invalid value for reason: say why alice may trade again: the second person "
                                     "who approves it reads this")
    assert not ApprovalRequest.objects.exists()


def test_asking_again_answers_the_same_request_and_another_state_waits_for_it(account, clock):
    halted(account)
    first = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    assert trading_state_ask(account=account, state="ACTIVE", actor="key:abc", reason="retry").pk == first.pk
    with pytest.raises(ApprovalPending) as refused:
        trading_state_ask(account=account, state="REDUCING", actor="user:tom", reason="only closing")
    assert "user:tom already asked to set alice ACTIVE" in refused.value.message
    assert ApprovalRequest.objects.count() == 1


def test_other_changes_of_the_state_are_made_at_once(account, clock):
    assert trading_state_ask(account=account, state="REDUCING", actor="key:abc").trading_state == "REDUCING"
    assert trading_state_ask(account=account, state="HALTED", actor="key:abc").trading_state == "HALTED"
    assert not ApprovalRequest.objects.exists()


def test_asking_to_trade_again_only_asks_and_never_sets_a_state(account, clock):
    trading_state_set(account=account, state="REDUCING", actor="user:rita")
    with pytest.raises(NotHalted) as refused:
        trading_resume_ask(account=account, state="ACTIVE", actor="user:tina", reason="let me trade")
    assert (refused.value.status, refused.value.code) == (409, "NOT_HALTED")
    assert refused.value.message == ("alice is REDUCING, not HALTED: only a HALTED account is asked to trade again "
                                     "here. The risk desk sets any other trading state")
    halted(account)
    with pytest.raises(InvalidValue, match="must be one of ACTIVE, REDUCING"):
        trading_resume_ask(account=account, state="HALTED", actor="user:tina", reason="x")
    asked = trading_resume_ask(account=account, state="REDUCING", actor="user:tina", reason="close what is left")
    assert (asked.kind, asked.payload["state"], state(account)) == ("RESUME_TRADING", "REDUCING", "HALTED")


def test_a_new_halt_cancels_the_requests_to_trade_again_asked_before_it(account, broker, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="the feed is back")
    clock.shift(60)
    kill_switch(account=account, broker=broker, actor="user:ann")         # a newer halt, on a HALTED account

    cancelled = ApprovalRequest.objects.get(pk=asked.pk)
    assert (cancelled.status, cancelled.decided_by, cancelled.decided_at, cancelled.comment) == (
        "CANCELLED", "user:ann", timezone.now(), "alice was HALTED again by user:ann: kill switch")
    with pytest.raises(ApprovalNotPending) as late:
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True)
    assert late.value.message == ("This request is no longer waiting: it was cancelled by user:ann (alice was "
                                  "HALTED again by user:ann: kill switch)")
    assert state(account) == "HALTED" and approvals_waiting(account=account) == []
    cancel = AuditEvent.objects.get(action="approval.cancel")
    assert (cancel.actor, cancel.target, cancel.details["requested_by"]) == ("user:ann", str(asked.pk), "user:tom")
    again = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="after the kill switch")
    assert again.pk != asked.pk and again.status == "PENDING"


def test_a_rejected_request_says_why_and_cannot_be_approved_after(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    with pytest.raises(InvalidValue):
        approval_reject(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True, comment=" ")
    approval_reject(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                    comment="the loss is not understood yet")
    with pytest.raises(ApprovalNotPending) as late:
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:ann", supervisor=True)
    assert late.value.message == "This request is no longer waiting: it was rejected by user:rob"
    assert late.value.status == 409
    assert state(account) == "HALTED"


def test_only_the_person_asking_withdraws_a_request(account, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    with pytest.raises(Forbidden) as refused:
        approval_cancel(account=account, approval_id=str(asked.pk), actor="user:rob")
    assert refused.value.details == {"code": "NOT_REQUESTER"}
    assert approval_cancel(account=account, approval_id=str(asked.pk), actor="user:tom").status == "CANCELLED"
    assert actions(account)[-1] == ("approval.cancel", "user:tom", "ok")


def test_a_request_of_another_account_is_not_found(account, clock):
    other = Account.objects.create(name="bob", cash=D("1000"))
    trading_state_set(account=other, state="HALTED", actor="user:rita")
    asked = trading_state_ask(account=other, state="ACTIVE", actor="user:tom", reason="back")
    with pytest.raises(Exception) as refused:
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True)
    assert refused.value.code == "APPROVAL_NOT_FOUND" and refused.value.status == 404
    assert state(other) == "HALTED"


# -- expiry ----------------------------------------------------------------------------------------------------

def test_the_engine_expires_a_request_nobody_decided_in_time(account, broker, clock):
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    run_engine(account, broker, seconds=14 * 60 + 59, clock=clock)
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "PENDING"

    clock.shift(1)
    with pytest.raises(ApprovalNotPending) as late:        # due: refused now, even before the engine marks it
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True)
    assert late.value.message == "This request is no longer waiting: it was expired"
    run_engine(account, broker, clock=clock)

    expired = ApprovalRequest.objects.get(pk=asked.pk)
    assert (expired.status, expired.decided_at) == ("EXPIRED", timezone.now())
    assert actions(account)[-1] == ("approval.expire", "engine", "ok")
    assert state(account) == "HALTED"
    assert approvals_waiting(account=account) == []


def test_how_long_a_request_waits_is_the_accounts(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", approval_ttl_minutes=5)
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
    assert asked.expires_at - asked.requested_at == timedelta(minutes=5)
    with pytest.raises(InvalidValue):
        limits_set(account_id=account.pk, actor="user:rita", approval_ttl_minutes=0)


def test_a_request_waits_at_most_a_day_and_a_longer_wait_needs_a_second_person(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", approval_ttl_minutes=10)
    with pytest.raises(InvalidValue) as refused:
        limits_set(account_id=account.pk, actor="user:rita", approval_ttl_minutes=1441)
    assert refused.value.message == ("Invalid value for approval_ttl_minutes: a request waits 1 to 1440 minutes "
                                     "(24 hours)")
    with pytest.raises(InvalidValue, match="approval_ttl_minutes: cannot be empty"):
        limits_ask(account_id=account.pk, actor="user:tom", approval_ttl_minutes=None)

    assert limits_ask(account_id=account.pk, actor="user:tom", approval_ttl_minutes=5).approval is None
    asked = limits_ask(account_id=account.pk, actor="user:tom", approval_ttl_minutes=1440)
    assert asked.raised == ["approval_ttl_minutes"] and level(account, "approval_ttl_minutes") == 5


def test_a_long_username_is_kept_to_its_column_and_is_still_the_same_person(account, clock):
    long = "user:" + "r" * 150                  # a username may be 150 characters long
    halted(account)
    asked = trading_state_ask(account=account, state="ACTIVE", actor=long, reason="back", supervisor=True)
    assert asked.requested_by == long[:150]
    with pytest.raises(SelfApproval):
        approval_approve(account=account, approval_id=str(asked.pk), actor=long, supervisor=True)
    decided = approval_reject(account=account, approval_id=str(asked.pk), actor="user:" + "s" * 150,
                              supervisor=True, comment="not yet")
    assert len(decided.decided_by) == 150
    assert max(len(actor) for actor in AuditEvent.objects.values_list("actor", flat=True)) == 150


# -- limits ----------------------------------------------------------------------------------------------------

def test_lowering_a_limit_is_done_at_once(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    done = limits_ask(account_id=account.pk, actor="user:tom", max_notional_hard=D("20000"),
                      daily_orders_hard=100)           # a limit where there was none lowers too
    assert done.approval is None
    assert (level(account, "max_notional_hard"), level(account, "daily_orders_hard")) == (D("20000"), 100)
    assert not ApprovalRequest.objects.exists()


def test_raising_a_limit_waits_and_the_approval_raises_it(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"), max_quantity_hard=D("100"))
    asked = limits_ask(account_id=account.pk, actor="user:tom", reason="index rebalance",
                       max_notional_hard=D("80000"), max_quantity_hard=D("50"))

    assert asked.raised == ["max_notional_hard"]
    assert asked.approval.payload == {"levels": {"max_notional_hard": "80000"},
                                      "previous": {"max_notional_hard": "50000"}, "minutes": None}
    assert level(account, "max_notional_hard") == D("50000")      # still the old cap
    assert level(account, "max_quantity_hard") == D("50")         # the lowered one is set

    approval_approve(account=account, approval_id=str(asked.approval.pk), actor="user:rob", supervisor=True)
    assert level(account, "max_notional_hard") == D("80000")
    assert limits_read(account.pk)[0].max_notional == (None, D("80000"))
    change = AuditEvent.objects.filter(action="limits.set").latest("at", "pk")
    assert (change.actor, change.details["changed"], change.details["requested_by"]) == (
        "user:rob", {"max_notional_hard": {"from": "50000", "to": "80000"}}, "user:tom")


def test_removing_a_limit_is_a_raise(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", daily_loss_hard=D("400"))
    asked = limits_ask(account_id=account.pk, actor="user:tom", daily_loss_hard=None)
    assert asked.raised == ["daily_loss_hard"] and level(account, "daily_loss_hard") == D("400")


def test_no_door_raises_a_limit_without_the_approval(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_quantity_hard=D("100"))
    with pytest.raises(ApprovalRequired) as refused:
        limits_set(account_id=account.pk, actor="admin:root", max_quantity_hard=D("1000"))
    assert refused.value.message == ("Forbidden: Raising max_quantity_hard from 100 to 1000 needs a second person's "
                                     "approval: ask for it, and someone else with the risk role approves it")
    assert level(account, "max_quantity_hard") == D("100")


def test_a_raise_for_a_while_is_put_back_by_the_engine(account, broker, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"), daily_orders_hard=10)
    asked = limits_ask(account_id=account.pk, actor="user:tom", reason="rebalance", minutes=30,
                       max_notional_hard=D("80000"), daily_orders_hard=20)
    approved = approval_approve(account=account, approval_id=str(asked.approval.pk), actor="user:rob",
                                supervisor=True)
    assert approved.override_until == timezone.now() + timedelta(minutes=30)
    limits_set(account_id=account.pk, actor="user:rita", daily_orders_hard=15)     # lowered by hand meanwhile

    run_engine(account, broker, seconds=29 * 60, clock=clock)
    assert level(account, "max_notional_hard") == D("80000")
    run_engine(account, broker, seconds=60, clock=clock)

    assert level(account, "max_notional_hard") == D("50000")       # back to what it was
    assert level(account, "daily_orders_hard") == 15                # a level changed since is left as it is
    assert ApprovalRequest.objects.get(pk=asked.approval.pk).reverted_at == timezone.now()
    revert = AuditEvent.objects.get(action="approval.revert")
    assert (revert.actor, revert.details["restored"], revert.details["left"]) == (
        "engine", {"max_notional_hard": "50000"}, ["daily_orders_hard"])
    run_engine(account, broker, seconds=60, clock=clock)
    assert AuditEvent.objects.filter(action="approval.revert").count() == 1


def test_a_raise_for_a_while_goes_back_to_the_level_in_force_when_approved(account, broker, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    asked = limits_ask(account_id=account.pk, actor="user:tom", minutes=30, max_notional_hard=D("80000"))
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("40000"))    # lowered while it waits
    approval_approve(account=account, approval_id=str(asked.approval.pk), actor="user:rob", supervisor=True)
    assert level(account, "max_notional_hard") == D("80000")

    run_engine(account, broker, seconds=30 * 60, clock=clock)

    assert level(account, "max_notional_hard") == D("40000")       # not the 50000 it was when asked
    revert = AuditEvent.objects.get(action="approval.revert")
    assert revert.details["restored"] == {"max_notional_hard": "40000"}


def test_a_raise_approved_over_a_running_one_supersedes_it_and_goes_back_to_the_first_level(account, broker, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    first = limits_ask(account_id=account.pk, actor="user:tom", minutes=30, max_notional_hard=D("80000")).approval
    approval_approve(account=account, approval_id=str(first.pk), actor="user:rob", supervisor=True)
    clock.shift(10 * 60)
    second = limits_ask(account_id=account.pk, actor="user:tom", minutes=60, max_notional_hard=D("90000")).approval
    approval_approve(account=account, approval_id=str(second.pk), actor="user:ann", supervisor=True)

    superseded = ApprovalRequest.objects.get(pk=first.pk)
    assert superseded.reverted_at == timezone.now()                 # it holds no level any more
    assert superseded.result["superseded"]["max_notional_hard"]["approval"] == str(second.pk)
    supersede = AuditEvent.objects.get(action="approval.supersede")
    assert (supersede.actor, supersede.target, supersede.details["levels"]) == (
        "user:ann", str(first.pk), ["max_notional_hard"])

    run_engine(account, broker, seconds=20 * 60, clock=clock)       # the first raise's time is up
    assert level(account, "max_notional_hard") == D("90000")
    run_engine(account, broker, seconds=40 * 60, clock=clock)       # the second's

    assert level(account, "max_notional_hard") == D("50000")       # not the first raise's 80000
    assert list(AuditEvent.objects.filter(action="approval.revert").values_list("target", flat=True)) == [
        str(second.pk)]


def test_a_level_changed_under_a_raise_for_a_while_stays_when_its_time_is_up(account, broker, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"), daily_orders_hard=10)
    asked = limits_ask(account_id=account.pk, actor="user:tom", minutes=30, max_notional_hard=D("80000"),
                       daily_orders_hard=20).approval
    approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True)
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("60000"))    # a later decision

    running = ApprovalRequest.objects.get(pk=asked.pk)
    assert set(running.result["superseded"]) == {"max_notional_hard"} and running.reverted_at is None
    run_engine(account, broker, seconds=30 * 60, clock=clock)

    assert (level(account, "max_notional_hard"), level(account, "daily_orders_hard")) == (D("60000"), 10)


def test_an_order_rate_of_zero_is_no_limit_so_setting_it_is_a_raise(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", orders_per_second=5, orders_per_minute=100)
    with pytest.raises(ApprovalRequired):
        limits_set(account_id=account.pk, actor="admin:root", orders_per_second=0)
    asked = limits_ask(account_id=account.pk, actor="user:tom", orders_per_second=0, orders_per_minute=0)
    assert asked.raised == ["orders_per_second", "orders_per_minute"]
    assert (level(account, "orders_per_second"), level(account, "orders_per_minute")) == (5, 100)


def test_a_raise_for_a_while_must_raise_something_and_last_a_sensible_time(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("50000"))
    with pytest.raises(InvalidValue, match="only a raise is for a while"):
        limits_ask(account_id=account.pk, actor="user:tom", minutes=30, max_notional_hard=D("10000"))
    with pytest.raises(InvalidValue, match="1 to 1440 minutes"):
        limits_ask(account_id=account.pk, actor="user:tom", minutes=0, max_notional_hard=D("90000"))


def test_a_raised_soft_level_must_still_sit_below_its_hard_one_when_approved(account, clock):
    limits_set(account_id=account.pk, actor="user:rita", daily_loss_soft=D("100"), daily_loss_hard=D("400"))
    asked = limits_ask(account_id=account.pk, actor="user:tom", daily_loss_soft=D("300"))
    limits_set(account_id=account.pk, actor="user:rita", daily_loss_hard=D("250"))
    with pytest.raises(ApprovalFailed) as failed:
        approval_approve(account=account, approval_id=str(asked.approval.pk), actor="user:rob", supervisor=True)
    assert "the soft daily loss level would no longer be below the hard one" in failed.value.message
    assert level(account, "daily_loss_soft") == D("100")
    assert ApprovalRequest.objects.get(pk=asked.approval.pk).status == "PENDING"


# -- orders above the approval notional ----------------------------------------------------------------------

@pytest.fixture
def approval_above(account):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=D("10000"))


def large(**changes):
    return make_order_request(quantity=D("100"), client_order_id="web-large-1", **changes)   # ≈ 14,900


class PlacingPaper(PaperBroker):
    """The paper venue, with something done by someone else while it answers an order (``meanwhile``): another
    person, or the engine, acting while an approved order is being placed."""
    meanwhile = None

    def submit_order(self, ticket):
        act, self.meanwhile = self.meanwhile, None
        if act is not None:
            act()
        return super().submit_order(ticket)


@pytest.fixture
def venue() -> PlacingPaper:
    return PlacingPaper(get_broker().config)


def attempt(call) -> str:
    try:
        call()
    except DeskError as e:
        return e.message
    return "done"


def test_a_large_order_waits_and_is_placed_only_when_approved(account, broker, clock, approval_above):
    asked = ticket_send(account=account, request=large(), broker=broker, actor="user:tom")

    assert isinstance(asked, ApprovalRequest) and asked.kind == "LARGE_ORDER"
    assert asked.payload["order"]["quantity"] == "100" and asked.payload["label"] == "Buy 100 AAPL @ MKT"
    assert D(asked.payload["notional"]) > D("10000")
    assert not Order.objects.exists()
    assert ticket_send(account=account, request=large(), broker=broker, actor="user:tom").pk == asked.pk

    with pytest.raises(SelfApproval):
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:tom", supervisor=True,
                         broker=broker)
    assert not Order.objects.exists()

    decided = approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                               broker=broker, comment="fine")
    order = Order.objects.get()
    assert (order.client_order_id, order.quantity, order.submitted_by) == ("web-large-1", D("100"), "user:tom")
    assert decided.result == {"order_id": str(order.id), "status": order.status}


def test_a_large_order_being_placed_is_neither_withdrawn_nor_rejected_meanwhile(account, venue, clock,
                                                                                approval_above):
    asked = ticket_send(account=account, request=large(), broker=venue, actor="user:tom")
    seen = []
    venue.meanwhile = lambda: seen.extend([
        ApprovalRequest.objects.get(pk=asked.pk).status,
        attempt(lambda: approval_cancel(account=account, approval_id=str(asked.pk), actor="user:tom")),
        attempt(lambda: approval_reject(account=account, approval_id=str(asked.pk), actor="user:ann",
                                        supervisor=True, comment="too big")),
        attempt(lambda: approval_approve(account=account, approval_id=str(asked.pk), actor="user:ann",
                                         supervisor=True, broker=venue)),
        [a.pk for a in approvals_waiting(account=account)],
    ])

    decided = approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                               broker=venue)

    placing = ("This request is being approved by user:rob: its order is being placed now, so it can no longer be "
               "withdrawn, rejected or approved again")
    assert seen == ["APPROVING", placing, placing, placing, [asked.pk]]
    assert (decided.status, decided.decided_by) == ("APPROVED", "user:rob")
    assert ApprovalRequest.objects.get(pk=asked.pk).result == {"order_id": str(Order.objects.get().id),
                                                               "status": decided.result["status"]}


def test_a_request_due_while_its_order_is_placed_is_not_expired_and_ends_approved(account, venue, clock,
                                                                                  approval_above):
    asked = ticket_send(account=account, request=large(), broker=venue, actor="user:tom")
    clock.shift(14 * 60)
    expired = []

    def the_venue_answers_after_the_request_is_due():
        clock.shift(2 * 60)
        expired.append(approvals_expire(account_ids=[account.pk], now=timezone.now()))

    venue.meanwhile = the_venue_answers_after_the_request_is_due
    decided = approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                               broker=venue)

    assert expired == [0]
    assert (decided.status, decided.decided_at) == ("APPROVED", timezone.now())        # when it was placed
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "APPROVED" and Order.objects.count() == 1


class ProcessDied(BaseException):
    """The web process placing an approved order is killed (nothing it was doing is finished or caught)."""


def test_a_request_left_approving_by_a_process_that_died_before_placing_waits_again(account, venue, clock,
                                                                                   approval_above):
    asked = ticket_send(account=account, request=large(), broker=venue, actor="user:tom")

    def dies():
        raise ProcessDied

    venue.meanwhile = dies
    with pytest.raises(ProcessDied):
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True, broker=venue)
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "APPROVING" and not Order.objects.exists()

    run_engine(account, venue, seconds=60, clock=clock)          # a slow venue is still answering: left alone
    assert ApprovalRequest.objects.get(pk=asked.pk).status == "APPROVING"

    run_engine(account, venue, seconds=61, clock=clock)
    waiting = ApprovalRequest.objects.get(pk=asked.pk)
    assert (waiting.status, waiting.decided_by, waiting.decided_at) == ("PENDING", "", None)
    assert approvals_waiting(account=account) == [waiting]
    assert actions(account)[-1] == ("approval.recover", "engine", "ok")
    assert AuditEvent.objects.filter(action="approval.recover").get().details["outcome"] == (
        "not placed, waiting again")

    decided = approval_approve(account=account, approval_id=str(asked.pk), actor="user:ann", supervisor=True,
                               broker=venue)
    assert decided.status == "APPROVED" and Order.objects.count() == 1


def test_a_request_left_approving_after_its_order_was_placed_is_closed_approved_with_it(account, broker, clock,
                                                                                       approval_above, monkeypatch):
    asked = ticket_send(account=account, request=large(), broker=broker, actor="user:tom")
    place = approvals._place

    def places_then_dies(*args, **kwargs):
        place(*args, **kwargs)
        raise ProcessDied

    monkeypatch.setattr(approvals, "_place", places_then_dies)
    claimed_at = timezone.now()
    with pytest.raises(ProcessDied):
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                         broker=broker)
    order = Order.objects.get()

    run_engine(account, broker, seconds=121, clock=clock)

    closed = ApprovalRequest.objects.get(pk=asked.pk)
    assert (closed.status, closed.decided_by, closed.decided_at) == ("APPROVED", "user:rob", claimed_at)
    assert closed.result == {"order_id": str(order.id), "status": closed.result["status"]}
    assert Order.objects.count() == 1 and approvals_waiting(account=account) == []
    assert [a for a in actions(account) if a[0] in ("approval.approve", "approval.recover")] == [
        ("approval.approve", "user:rob", "ok"), ("approval.recover", "engine", "ok")]


def test_a_large_order_has_its_checks_run_again_when_approved(account, broker, clock, approval_above):
    asked = ticket_send(account=account, request=large(), broker=broker, actor="user:tom")
    limits_set(account_id=account.pk, actor="user:rita", max_notional_hard=D("12000"))      # since asked

    with pytest.raises(ApprovalFailed) as failed:
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                         broker=broker)
    assert failed.value.message.startswith("Not approved: Order rejected: Notional")
    assert "above the hard limit 12000" in failed.value.message
    assert failed.value.details["code"] == "ORDER_REJECTED"
    assert not Order.objects.exists()
    waiting = ApprovalRequest.objects.get(pk=asked.pk)
    assert (waiting.status, waiting.decided_by) == ("PENDING", "")           # waits again, for anyone to decide
    assert actions(account)[-1] == ("approval.approve", "user:rob", "failed")


def test_a_large_order_is_not_placed_on_an_account_halted_since(account, broker, clock, approval_above):
    asked = ticket_send(account=account, request=large(), broker=broker, actor="user:tom")
    halted(account)
    with pytest.raises(ApprovalFailed, match="trading on account alice is halted"):
        approval_approve(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True,
                         broker=broker)
    assert not Order.objects.exists()


def test_an_order_below_the_approval_notional_is_placed_at_once(account, broker, clock, approval_above):
    result = ticket_send(account=account, request=make_order_request(quantity=D("10")), broker=broker,
                         actor="user:tom")
    assert result.order.quantity == D("10") and not ApprovalRequest.objects.exists()


def test_a_scripts_large_order_is_refused_with_the_reason(account, broker, clock, approval_above):
    with pytest.raises(OrderNeedsApproval) as refused:
        ticket_submit(account=account, request=large(), broker=broker, actor="key:abc")
    assert refused.value.status == 422 and refused.value.details["reject_code"] == "APPROVAL_REQUIRED"
    assert "needs a second person's approval" in refused.value.message
    assert not Order.objects.exists()


def test_reducing_a_position_never_waits_for_approval(account, broker, clock, approval_above):
    for _ in range(2):
        ticket_submit(account=account, request=make_order_request(quantity=D("50")), broker=broker, actor="key:abc")
    run_engine(account, broker, seconds=1, clock=clock)
    result = ticket_send(account=account, broker=broker, actor="user:tom",
                         request=make_order_request(quantity=D("100"), side="SELL", reduce_only=True))
    assert result.order.reduce_only and not ApprovalRequest.objects.exists()


# -- counted -----------------------------------------------------------------------------------------------------

def test_every_outcome_is_counted(account, broker, clock, client, django_capture_on_commit_callbacks):
    from tests.test_metrics import scrape, value

    before = scrape(client)
    halted(account)
    with django_capture_on_commit_callbacks(execute=True):
        asked = trading_state_ask(account=account, state="ACTIVE", actor="user:tom", reason="back")
        approval_reject(account=account, approval_id=str(asked.pk), actor="user:rob", supervisor=True, comment="no")
        again = trading_state_ask(account=account, state="ACTIVE", actor="user:rob", reason="back")
    with pytest.raises(SelfApproval):
        approval_approve(account=account, approval_id=str(again.pk), actor="user:rob", supervisor=True)
    after = scrape(client)

    def counted(outcome: str) -> float:
        name = "desk_approvals_total"
        return (value(after, name, kind="RESUME_TRADING", outcome=outcome)
                - value(before, name, kind="RESUME_TRADING", outcome=outcome))

    assert [counted(o) for o in ("requested", "rejected", "self_refused", "approved")] == [2, 1, 1, 0]
