"""``manage.py breakers_reset ACCOUNT``: reset both circuit breakers of an account, as
``POST /v1/circuit-breakers/reset`` does (refused within 60 s of the previous reset), audited and pushed to every
open desk and risk view; prints the breakers afterwards."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from orders.domain.errors import DeskError
from orders.models import Account
from orders.services.breakers import breakers_reset


class Command(BaseCommand):
    help = "Reset both circuit breakers (adapter, exit_order) of an account."

    def add_arguments(self, parser):
        parser.add_argument("account")

    def handle(self, *args, **options):
        account = Account.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"no account named {options['account']!r}")
        try:
            snapshot = breakers_reset(account=account, actor="command:breakers_reset")
        except DeskError as e:
            raise CommandError(f"{e.code}: {e.message}") from e
        self.stdout.write(json.dumps(snapshot, indent=2))
