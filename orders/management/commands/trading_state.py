"""``manage.py trading_state ACCOUNT [STATE] [--reason R]``: show or set an account's trading state.

The same call as the risk view's form and ``PUT /v1/trading-state`` (audited, and pushed to every open desk and
risk view), for an operator at a shell when the web is not at hand. Leaving HALTED needs a second person: the
command asks for it (a reason is required), and someone with the risk role approves it on the risk view."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orders.domain.errors import DeskError
from orders.models import Account, ApprovalRequest, TradingState
from orders.services.approvals import trading_state_ask


class Command(BaseCommand):
    help = "Show or set an account's trading state (ACTIVE, REDUCING, HALTED)."

    def add_arguments(self, parser):
        parser.add_argument("account")
        parser.add_argument("state", nargs="?", type=str.upper, choices=TradingState.values)
        parser.add_argument("--reason", default="", help="recorded in the audit trail")

    def handle(self, *args, **options):
        account = Account.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"no account named {options['account']!r}")
        if options["state"]:
            try:
                done = trading_state_ask(account=account, state=options["state"], actor="command:trading_state",
                                         reason=options["reason"], supervisor=True)   # whoever runs the desk's shell
            except DeskError as e:
                raise CommandError(f"{e.code}: {e.message}") from e
            if isinstance(done, ApprovalRequest):
                account.refresh_from_db(fields=["trading_state"])
                self.stdout.write(f"{account.name}: {account.trading_state}; {options['state']} waits for a second "
                                  f"person's approval on the risk view (request {done.pk}, expires at "
                                  f"{done.expires_at:%H:%M} UTC)")
                return
        self.stdout.write(f"{account.name}: {account.trading_state}")
