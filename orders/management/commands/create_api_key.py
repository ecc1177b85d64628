"""``manage.py create_api_key ACCOUNT [--name N] [--read-only] [--rate-limit N]``: issue a key, print it once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orders.domain.enums import ApiRole
from orders.models import Account
from orders.services.keys import api_key_create


class Command(BaseCommand):
    help = "Issue an API key bound to an account. The key is printed once and stored hashed."

    def add_arguments(self, parser):
        parser.add_argument("account")
        parser.add_argument("--name", default="api key")
        parser.add_argument("--read-only", action="store_true")
        parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute; 0 = unlimited")

    def handle(self, *args, **options):
        account = Account.objects.filter(name=options["account"]).first()
        if account is None:
            raise CommandError(f"no account named {options['account']!r}")
        role = ApiRole.READ_ONLY if options["read_only"] else ApiRole.TRADING
        raw = api_key_create(account=account, name=options["name"], role=role,
                             rate_limit_per_minute=options["rate_limit"], actor="command:create_api_key")
        self.stdout.write(raw)
