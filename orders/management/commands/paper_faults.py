"""``manage.py paper_faults``: inject faults into the paper venue (shared by web and engine).

    manage.py paper_faults --reject-next 3 --kind STOP --reason INSUFFICIENT_BALANCE
    manage.py paper_faults --unavailable on      # every venue call answers 503 PROVIDER_UNAVAILABLE
    manage.py paper_faults --latency-ms 300
    manage.py paper_faults --latency-ms 3000 --exits-only   # only placing exit legs waits (time to protection)
    manage.py paper_faults --shock AAPL -5       # AAPL 5 % below its price walk from now on (replaces a shock)
    manage.py paper_faults --shock AAPL -5 --cumulative   # 5 % further down from the shock in force
    manage.py paper_faults --shock AAPL 0        # undo AAPL's shock
    manage.py paper_faults --refuse-cancels 1   # the venue refuses the next cancel (the kill switch retries it)
    manage.py paper_faults --freeze-quotes on    # the feed stops: quotes keep their price and time (they age)
    manage.py paper_faults --clear
    manage.py paper_faults                       # show the current faults
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal, InvalidOperation

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.brokers import get_broker
from orders.brokers.paper_market import seconds_since_epoch
from orders.domain.money import format_decimal


class Command(BaseCommand):
    help = "Inject or clear faults in the paper venue."

    def add_arguments(self, parser):
        parser.add_argument("--reject-next", type=int, metavar="N")
        parser.add_argument("--kind", default="*", help="order type the rejections apply to, or * for any")
        parser.add_argument("--reason", default="UNKNOWN", help="reject code, e.g. INSUFFICIENT_BALANCE")
        parser.add_argument("--unavailable", choices=["on", "off"])
        parser.add_argument("--latency-ms", type=int)
        parser.add_argument("--exits-only", action="store_true",
                            help="with --latency-ms: only placing or resizing an exit leg waits (a reduce-only stop "
                                 "or limit), so time to protection shows on a venue that otherwise answers at once")
        parser.add_argument("--shock", nargs=2, metavar=("SYMBOL", "PERCENT"),
                            help="from now on price SYMBOL PERCENT away from its price walk (-5: 5 %% below). "
                                 "Absolute, not cumulative: it replaces SYMBOL's earlier shock, so --shock AAPL -5 "
                                 "twice leaves AAPL 5 %% below its walk, and --shock AAPL 0 undoes it")
        parser.add_argument("--cumulative", action="store_true",
                            help="with --shock: move SYMBOL PERCENT further from the shock in force (compounded: "
                                 "-5 twice is 9.75 %% below the walk)")
        parser.add_argument("--refuse-cancels", type=int, metavar="N",
                            help="the venue refuses the next N cancels (0 stops refusing)")
        parser.add_argument("--freeze-quotes", choices=["on", "off"],
                            help="on: every quote stays the one of now and ages, as from a feed that stopped "
                                 "(orders priced from the market are then refused STALE_QUOTE); off: live again")
        parser.add_argument("--clear", action="store_true", help="remove every fault and shock")

    def handle(self, *args, **options):
        faults = getattr(get_broker(), "faults", None)
        if faults is None:
            raise CommandError("fault injection needs the paper broker")
        if options["refuse_cancels"] is not None and options["refuse_cancels"] < 0:
            raise CommandError("--refuse-cancels N takes a count of 0 or more (0 stops refusing)")
        if options["clear"]:
            faults.clear()
        if options["reject_next"]:
            faults.reject_next(options["reject_next"], kind=options["kind"], reason=options["reason"])
        if options["unavailable"]:
            faults.set_unavailable(options["unavailable"] == "on")
        if options["shock"]:
            self._shock(faults, *options["shock"], cumulative=options["cumulative"])
        elif options["cumulative"]:
            raise CommandError("--cumulative goes with --shock SYMBOL PERCENT")
        if options["latency_ms"] is not None:
            faults.set_latency(options["latency_ms"], exits_only=options["exits_only"])
        elif options["exits_only"]:
            raise CommandError("--exits-only goes with --latency-ms N")
        if options["freeze_quotes"]:
            faults.freeze_quotes(options["freeze_quotes"] == "on", at_second=seconds_since_epoch(timezone.now()))
        if options["refuse_cancels"] is not None:
            faults.refuse_cancels(options["refuse_cancels"])
        self.stdout.write(json.dumps(asdict(faults.state()), indent=2))

    def _shock(self, faults, symbol: str, pct: str, *, cumulative: bool) -> None:
        try:
            percent = Decimal(pct)
        except InvalidOperation:
            raise CommandError(f"PERCENT must be a number, like -5 or 2.5, not {pct!r}") from None
        if not percent.is_finite() or percent <= -100:
            raise CommandError("PERCENT must be above -100 (a price cannot fall to zero or below)")
        get_broker().instrument(symbol)
        in_force = faults.shock(symbol, pct, from_second=seconds_since_epoch(timezone.now()), cumulative=cumulative)
        self.stdout.write(f"{symbol}: {_where(Decimal(in_force))} its price walk from now on")


def _where(percent: Decimal) -> str:
    if percent.is_zero():
        return "at"
    return f"{format_decimal(abs(percent))} % {'below' if percent < 0 else 'above'}"

