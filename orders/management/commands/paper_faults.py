"""``manage.py paper_faults``: inject faults into the paper venue (shared by web and engine).

    manage.py paper_faults --reject-next 3 --kind STOP --reason INSUFFICIENT_BALANCE
    manage.py paper_faults --unavailable on      # every venue call answers 503 PROVIDER_UNAVAILABLE
    manage.py paper_faults --latency-ms 300
    manage.py paper_faults --shock AAPL -5       # move AAPL's price 5 % down from now on
    manage.py paper_faults --clear
    manage.py paper_faults                       # show the current faults
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.brokers import get_broker
from orders.brokers.paper_market import seconds_since_epoch


class Command(BaseCommand):
    help = "Inject or clear faults in the paper venue."

    def add_arguments(self, parser):
        parser.add_argument("--reject-next", type=int, metavar="N")
        parser.add_argument("--kind", default="*", help="order type the rejections apply to, or * for any")
        parser.add_argument("--reason", default="UNKNOWN", help="reject code, e.g. INSUFFICIENT_BALANCE")
        parser.add_argument("--unavailable", choices=["on", "off"])
        parser.add_argument("--latency-ms", type=int)
        parser.add_argument("--shock", nargs=2, metavar=("SYMBOL", "PERCENT"),
                            help="move SYMBOL's price by PERCENT from now on")
        parser.add_argument("--clear", action="store_true")

    def handle(self, *args, **options):
        faults = getattr(get_broker(), "faults", None)
        if faults is None:
            raise CommandError("fault injection needs the paper broker")
        if options["clear"]:
            faults.clear()
        if options["reject_next"]:
            faults.reject_next(options["reject_next"], kind=options["kind"], reason=options["reason"])
        if options["unavailable"]:
            faults.set_unavailable(options["unavailable"] == "on")
        if options["shock"]:
            symbol, pct = options["shock"]
            broker = get_broker()
            broker.instrument(symbol)
            faults.shock(symbol, pct, from_second=seconds_since_epoch(timezone.now()))
        if options["latency_ms"] is not None:
            faults.set_latency(options["latency_ms"])
        self.stdout.write(json.dumps(asdict(faults.state()), indent=2))
