"""``manage.py trading_state`` leaving HALTED asks for a second person's approval: the shell cannot let a halted
account trade again alone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.models import Account, ApprovalRequest
from orders.services.approvals import approval_approve
from orders.services.risk import trading_state_set

pytestmark = pytest.mark.django_db


def test_the_shell_asks_and_a_second_person_approves(account, clock):
    trading_state_set(account=account, state="HALTED", actor="user:rita")
    with pytest.raises(CommandError, match="INVALID_VALUE: Invalid value for reason: say why alice may trade again"):
        call_command("trading_state", "alice", "ACTIVE")

    out = StringIO()
    call_command("trading_state", "alice", "ACTIVE", "--reason", "operator at a shell", stdout=out)

    asked = ApprovalRequest.objects.get()
    assert out.getvalue().strip() == (f"alice: HALTED; ACTIVE waits for a second person's approval on the risk view "
                                      f"(request {asked.pk}, expires at 15:15 UTC)")
    assert asked.requested_by == "command:trading_state"
    approval_approve(account=account, approval_id=str(asked.pk), actor="user:rita", supervisor=True)
    assert Account.objects.get(pk=account.pk).trading_state == "ACTIVE"
