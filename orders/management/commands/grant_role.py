"""``manage.py grant_role USER ROLE [--account NAME]``: give a person a role (trader, risk, admin) and, with
``--account``, membership of that account. A trader needs ``--account``: they trade only the accounts they are a
member of; the risk and admin roles supervise every account and are granted without it. Nothing unknown is
created: an unknown person, role or account is an error. Audited as ``user.role_grant``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orders.domain.errors import DeskError
from orders.domain.roles import ROLES
from orders.services.onboarding import role_grant


class Command(BaseCommand):
    help = "Grant a person a role, on an account when one is named."

    def add_arguments(self, parser):
        parser.add_argument("user", help="the person's login (username)")
        parser.add_argument("role", help=f"one of {', '.join(ROLES)}")
        parser.add_argument("--account", help="the account a trader trades (required for a trader; "
                                                 "risk and admin cover every account)")

    def handle(self, *args, **options):
        try:
            granted = role_grant(username=options["user"], role=options["role"], account_name=options["account"],
                                 actor="command:grant_role")
        except DeskError as e:
            raise CommandError(e.message) from None
        on = f" on {granted.account}" if granted.account else ""
        if not granted.changed:
            self.stdout.write(f"{granted.username} already had the {granted.role} role{on}: nothing changed")
            return
        self.stdout.write(f"{granted.username} now has the {granted.role} role{on}")
