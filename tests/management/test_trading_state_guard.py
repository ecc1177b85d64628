"""``manage.py trading_state`` is run by whoever runs the desk's shell: it may let a guarded account trade again,
with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account
from orders.services.limits import limits_set
from tests.builders import run_engine
from tests.services.test_guards import long_with_far_stop, shock

pytestmark = pytest.mark.django_db


def test_the_shell_resumes_a_guarded_account_only_with_a_reason(account, broker, clock):
    limits_set(account_id=account.pk, actor="rita", daily_loss_soft=Decimal("100"))
    long_with_far_stop(account, broker, clock)
    shock(broker, "-1")
    run_engine(account, broker, seconds=2, clock=clock)

    with pytest.raises(CommandError, match="INVALID_VALUE: Invalid value for reason: say why alice may trade again"):
        call_command("trading_state", "alice", "ACTIVE")
    call_command("trading_state", "alice", "ACTIVE", "--reason", "cleared with the risk officer")

    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
