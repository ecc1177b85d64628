"""Every size and shape limit answers in the protocol's envelope, with a 4xx, and leaves nothing behind:
identifiers a person can read back, bounded free text, bounded parameter lists, bodies of the right shape."""

from __future__ import annotations

import uuid

import pytest

from orders.models import Account, AuditEvent, Order, TradingState
from tests.api.support import J, assert_error, submit

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["nul\x00byte", "two\nlines", "tab\there", " ", " padded", "padded ", "bell\x07"])
@pytest.mark.parametrize("field", ["client_order_id", "oco_group_id"])
def test_identifiers_take_only_printable_characters_without_padding(client, account, field, value):
    body = assert_error(submit(client, expect=None, **{field: value}), 400, "VALIDATION_ERROR")

    assert body["details"][field][0]["code"] == "characters"
    assert not Order.objects.exists()


def test_a_refused_identifier_with_a_nul_byte_is_in_the_audit_trail_written_out(client, account):
    assert_error(submit(client, expect=None, client_order_id="nul\x00byte"), 400, "VALIDATION_ERROR")

    refused = AuditEvent.objects.get(action="order.rejected")
    assert refused.details["client_order_id"] == "nul\\x00byte"
    assert refused.details["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("value", ["strategy-7 entry #1", "ünïcødé-ok", "a" * 64])
def test_ordinary_identifiers_are_accepted(client, account, value):
    assert submit(client, client_order_id=value, quantity="1").json()["client_order_id"] == value


def test_a_kill_switch_body_that_is_not_an_object_is_refused_and_nothing_halts(client, account):
    for raw in ("[null,null]", "[]", "1", '"flatten"'):
        assert_error(client.post("/v1/kill-switch", raw, content_type=J), 400, "INVALID_REQUEST")

    assert Account.objects.get(pk=account.pk).trading_state == TradingState.ACTIVE


def test_free_text_is_bounded(client, account):
    too_long = "x" * 501

    response = client.put("/v1/trading-state", {"state": "REDUCING", "reason": too_long}, content_type=J)

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"
    assert Account.objects.get(pk=account.pk).trading_state == TradingState.ACTIVE
    unknown = client.post(f"/v1/alerts/{uuid.uuid4()}/acknowledge", {"comment": too_long}, content_type=J)
    assert unknown.status_code == 400


def test_an_unknown_alert_is_a_404_that_says_alert(client, account):
    alert_id = uuid.uuid4()

    body = assert_error(client.post(f"/v1/alerts/{alert_id}/acknowledge", {"comment": "seen"}, content_type=J),
                        404, "ALERT_NOT_FOUND")

    assert body["details"] == {"resource": "alert", "id": str(alert_id)}


def test_too_many_status_values_are_a_400(client, account):
    body = assert_error(client.get("/v1/orders?" + "&".join(["status=FILLED"] * 30)), 400, "INVALID_VALUE")

    assert body["details"]["field"] == "status"


def test_too_many_query_parameters_are_a_400_not_a_500(client, account):
    query = "&".join(f"p{n}=1" for n in range(1500))

    assert_error(client.get(f"/v1/orders?{query}"), 400, "INVALID_REQUEST")
