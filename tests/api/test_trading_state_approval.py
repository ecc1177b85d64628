"""PUT /v1/trading-state leaving HALTED: a script cannot let the account trade again alone. It is answered 202 with
the request that waits for a second person (a risk person approves it on the risk view); the account stays HALTED
until then. Every other change is answered 200 as before, and every refusal in the envelope."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.approvals import ApprovalNotPending
from orders.models import ApprovalRequest
from orders.services.approvals import approval_approve
from orders.services.limits import limits_set
from tests.api.support import J, assert_error, submit

pytestmark = pytest.mark.django_db


def put(client, headers=None, **body):
    return client.put("/v1/trading-state", body, content_type=J, headers=headers or {})


def state(client) -> str:
    return client.get("/v1/trading-state").json()["trading_state"]


def test_leaving_halted_is_answered_202_with_the_request_waiting(client, auth, account):
    assert put(client, auth, state="HALTED", reason="end of day").status_code == 200

    response = put(client, auth, state="ACTIVE", reason="the strategy restarts")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "account", "kind", "status", "requested_by", "requested_at", "expires_at", "reason",
                         "payload", "message"}
    assert (body["account"], body["kind"], body["status"], body["reason"]) == (
        "alice", "RESUME_TRADING", "PENDING", "the strategy restarts")
    assert body["payload"] == {"state": "ACTIVE", "previous": "HALTED"}
    assert body["requested_by"].startswith("key:")
    assert body["requested_at"].endswith("Z") and body["expires_at"].endswith("Z")
    assert "second person" in body["message"]
    assert state(client) == "HALTED"


def test_asking_again_answers_the_same_request(client, auth, account):
    put(client, auth, state="HALTED")
    first = put(client, auth, state="ACTIVE", reason="restart").json()
    again = put(client, auth, state="ACTIVE", reason="restart, retried")
    assert again.status_code == 202 and again.json()["id"] == first["id"]
    assert ApprovalRequest.objects.count() == 1


def test_a_request_without_a_reason_is_refused_in_the_envelope(client, auth, account):
    put(client, auth, state="HALTED")
    body = assert_error(put(client, auth, state="ACTIVE"), 400, "INVALID_VALUE")
    assert body["message"] == ("Invalid value for reason: say why alice may trade again: the second person who "
                               "approves it reads this")
    assert body["details"]["field"] == "reason"
    assert not ApprovalRequest.objects.exists()


def test_another_state_asked_while_one_waits_is_refused_409(client, auth, account):
    put(client, auth, state="HALTED")
    first = put(client, auth, state="ACTIVE", reason="restart").json()
    body = assert_error(put(client, auth, state="REDUCING", reason="only closing"), 409, "APPROVAL_PENDING")
    assert body["details"] == {"approval_id": first["id"]}


def test_the_account_trades_again_once_a_second_person_approves(client, auth, account):
    put(client, auth, state="HALTED")
    asked = put(client, auth, state="REDUCING", reason="close what is left").json()

    approval_approve(account=account, approval_id=asked["id"], actor="user:rita", supervisor=True)

    assert state(client) == "REDUCING"
    assert put(client, auth, state="ACTIVE").status_code == 200        # not leaving HALTED: at once, as before


def test_halting_again_cancels_the_request_to_trade_again(client, auth, account):
    put(client, auth, state="HALTED")
    asked = put(client, auth, state="ACTIVE", reason="restart").json()
    assert put(client, auth, state="HALTED", reason="the feed broke again").status_code == 200

    assert ApprovalRequest.objects.get(pk=asked["id"]).status == "CANCELLED"
    with pytest.raises(ApprovalNotPending):
        approval_approve(account=account, approval_id=asked["id"], actor="user:rita", supervisor=True)
    assert state(client) == "HALTED"
    again = put(client, auth, state="ACTIVE", reason="restart, the feed is back")
    assert again.status_code == 202 and again.json()["id"] != asked["id"]


def test_the_202_answer_is_documented(client, db):
    operation = client.get("/v1/openapi.json").json()["paths"]["/v1/trading-state"]["put"]
    assert {"200", "202"} <= set(operation["responses"])


def test_a_scripts_order_above_the_approval_notional_is_refused_with_the_reason(client, auth, account):
    limits_set(account_id=account.pk, actor="user:rita", approval_notional_above=Decimal("1000"))
    body = assert_error(submit(client, expect=None, headers=auth, quantity="100"), 422, "ORDER_REJECTED")
    assert body["details"]["reject_code"] == "APPROVAL_REQUIRED"
    assert body["details"]["approval_notional_above"] == "1000"
    assert "send it from the desk's ticket" in body["message"]
    assert submit(client, expect=201, headers=auth, quantity="1").status_code == 201
