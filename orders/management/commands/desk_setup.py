"""``manage.py desk_setup``: the demo account (funded paper balance), a demo login and an API key.

Idempotent: run it on every start. It prints the login and, the first time (or with
``--new-key``), a fresh API key; keys are stored hashed and cannot be shown again."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from orders.models import Account
from orders.services.keys import api_key_create
from orders.web.roles import RISK, TRADER, ensure_groups, grant


class Command(BaseCommand):
    help = "Create the demo account, login and API key if they do not exist yet."

    def add_arguments(self, parser):
        parser.add_argument("--account", default="demo")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo-trader-2026")
        parser.add_argument("--new-key", action="store_true", help="issue a fresh API key even if one exists")

    @transaction.atomic
    def handle(self, *args, **options):
        account, created = Account.objects.get_or_create(
            name=options["account"],
            defaults={"broker": settings.GATEWAY_PROVIDER, "cash": settings.PAPER_STARTING_CASH,
                      "is_default": not Account.objects.filter(is_default=True).exists()})
        ensure_groups()
        user, user_note = self._user(options["username"], options["password"], superuser=True)
        grant(user, TRADER, account)
        risk_user, risk_note = self._user("risk", "risk-desk-2026", superuser=False)
        grant(risk_user, RISK, account)
        self.stdout.write(f"account  {account.name} on {account.broker}"
                          f"{' (paper, funded ' + str(account.cash) + ' ' + account.currency + ')' if created else ''}")
        self.stdout.write(f"login    {user.username} / {user_note}   (trader + admin)")
        self.stdout.write(f"login    {risk_user.username} / {risk_note}   (risk: alerts, kill switch; no orders)")
        if options["new_key"] or not account.api_keys.filter(revoked_at__isnull=True).exists():
            raw = api_key_create(account=account, name="demo key")
            self.stdout.write(f"api key  {raw}   (shown once; stored hashed)")
        else:
            self.stdout.write("api key  already issued (run with --new-key for another)")

    def _user(self, username: str, password: str, *, superuser: bool):
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            return user, "existing user, password unchanged"
        user = User.objects.create_user(username, password=password, is_staff=superuser, is_superuser=superuser)
        return user, f"password {password}"
