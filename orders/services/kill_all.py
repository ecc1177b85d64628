"""The kill switch for every account a person supervises, pulled at once from the risk view of all accounts.

Each account's kill switch is ``risk.kill_switch`` itself (halt, cancel every working order, flatten if asked),
so each is audited on its own account (``account.kill_switch``) and followed to flatness by the engine. One
account whose switch fails (its venue unreachable, its broker not configured in this process) does not stop the
others: it is audited as failed on its account and reported beside their receipts. The whole pull is recorded
once more, account-less, as ``desk.kill_switch_all`` with each account's outcome."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from orders.brokers.base import Broker
from orders.domain.errors import DeskError
from orders.models import Account
from orders.services.audit import audit_record
from orders.services.risk import KillSwitchReceipt, kill_switch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AccountKill:
    """One account's part of the pull: its receipt, or why its kill switch was not run."""
    account: str
    receipt: KillSwitchReceipt | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.receipt is not None and not self.receipt.failures


def kill_switch_all(*, accounts: list[Account], broker_for: Callable[[Account], Broker], actor: str,
                    flatten: bool = False) -> list[AccountKill]:
    """The kill switch on each of ``accounts`` in turn (``broker_for`` gives an account's broker); one outcome per
    account, in their order."""
    outcomes = [_kill_one(account, broker_for=broker_for, actor=actor, flatten=flatten) for account in accounts]
    audit_record(account_id=None, actor=actor, action="desk.kill_switch_all", target=f"{len(accounts)} accounts",
                 result="ok" if all(o.ok for o in outcomes) else "partial", flatten=flatten,
                 accounts={o.account: ("failed: " + o.error) if o.error else
                           f"halted, {len(o.receipt.cancelled)} cancelled, {len(o.receipt.failures)} not done"
                           for o in outcomes})
    return outcomes


def _kill_one(account: Account, *, broker_for: Callable[[Account], Broker], actor: str,
              flatten: bool) -> AccountKill:
    try:
        receipt = kill_switch(account=account, broker=broker_for(account), actor=actor, flatten=flatten)
    except DeskError as e:
        error = e.message
    except Exception as e:          # one account's failure must not leave the others running
        log.exception("kill switch for all accounts: %s failed", account.name)
        error = f"{type(e).__name__}: {e}"
    else:
        return AccountKill(account=account.name, receipt=receipt)
    audit_record(account_id=account.pk, actor=actor, action="account.kill_switch", target=account.name,
                 result="failed", flatten=flatten, error=error, across="all accounts")
    return AccountKill(account=account.name, error=error)
