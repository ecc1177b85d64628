"""``manage.py create_account --name NAME --broker BROKER [--currency USD] [--timezone UTC] [--cash N]``: open an
account on one of the registry's brokers (paper, alpaca, binance_spot, kraken). Its credentials come from the
environment, as for every broker: an account on a broker this environment is not configured for is refused, naming
each variable it needs. Audited as ``account.create``."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError

from orders.brokers import BROKERS
from orders.domain.errors import DeskError
from orders.domain.money import format_decimal
from orders.services.onboarding import account_create


class Command(BaseCommand):
    help = "Create an account on a broker; grant people roles on it with manage.py grant_role."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True, help="the account's name (letters, digits, '.', '-', '_')")
        parser.add_argument("--broker", required=True, help=f"one of {', '.join(sorted(BROKERS))}")
        parser.add_argument("--currency", default="USD", help="the account's currency (default USD)")
        parser.add_argument("--timezone", default="UTC",
                            help="where its trading day starts at midnight, an IANA name (default UTC)")
        parser.add_argument("--cash", help="paper only: the starting cash (default PAPER_STARTING_CASH)")

    def handle(self, *args, **options):
        try:
            cash = Decimal(options["cash"]) if options["cash"] is not None else None
        except InvalidOperation:
            raise CommandError(f"--cash {options['cash']!r} is not an amount") from None
        try:
            account = account_create(name=options["name"], broker=options["broker"], currency=options["currency"],
                                     timezone=options["timezone"], cash=cash, actor="command:create_account")
        except DeskError as e:
            raise CommandError(e.message) from None
        funding = (f"funded {format_decimal(account.cash)} {account.currency}" if account.is_paper
                   else "its figures are the venue's own, read by the engine")
        self.stdout.write(f"account {account.name} on {account.broker} ({funding}; trading day from midnight "
                          f"{account.timezone})")
        self.stdout.write(f"next: manage.py grant_role USER trader --account {account.name}")
