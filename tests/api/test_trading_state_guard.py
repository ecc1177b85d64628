"""/v1/trading-state after the day's loss guard: a trading key can no longer let the account trade (403 in the
envelope, SUPERVISOR_REQUIRED); it may still tighten it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.models import Account
from orders.services.limits import limits_set
from tests.api.support import J, assert_error
from tests.builders import run_engine
from tests.services.test_guards import long_with_far_stop, shock

pytestmark = pytest.mark.django_db


@pytest.fixture
def reduced_by_the_guard(account, broker, clock):
    limits_set(account_id=account.pk, actor="rita", daily_loss_soft=Decimal("100"))
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)
    assert Account.objects.get(pk=account.pk).trading_state == "REDUCING"


def test_a_trading_key_cannot_set_a_guarded_account_active(client, auth, reduced_by_the_guard, account):
    body = assert_error(client.put("/v1/trading-state", {"state": "ACTIVE", "reason": "back to work"},
                                   content_type=J, headers=auth), 403, "UNAUTHORIZED")
    assert body["details"] == {"code": "SUPERVISOR_REQUIRED"}
    assert "only a supervisor (the risk role)" in body["message"]
    assert Account.objects.get(pk=account.pk).trading_state == "REDUCING"


def test_a_trading_key_may_still_halt_a_guarded_account(client, auth, reduced_by_the_guard, account):
    response = client.put("/v1/trading-state", {"state": "HALTED", "reason": "stop for today"}, content_type=J,
                          headers=auth)
    assert response.status_code == 200 and response.json()["trading_state"] == "HALTED"


def test_an_unguarded_account_is_set_active_by_its_key_as_before(client, auth, account):
    client.put("/v1/trading-state", {"state": "REDUCING"}, content_type=J, headers=auth)
    response = client.put("/v1/trading-state", {"state": "ACTIVE"}, content_type=J, headers=auth)
    assert response.status_code == 200 and response.json()["trading_state"] == "ACTIVE"
