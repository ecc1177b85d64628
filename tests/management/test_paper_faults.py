"""``manage.py paper_faults --shock``: a shock is measured from the price walk and replaces the symbol's last
one (absolute); ``--cumulative`` compounds it onto the shock in force. The help says so."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.brokers import get_broker
from orders.management.commands.paper_faults import Command


def faults(*args: str) -> str:
    out = StringIO()
    call_command("paper_faults", *args, stdout=out)
    return out.getvalue()


def shock_in_force(symbol: str = "AAPL") -> str:
    return get_broker().faults.state().shocks[symbol]["pct"]


def test_a_second_shock_replaces_the_first():
    assert "AAPL: 5 % below its price walk from now on" in faults("--shock", "AAPL", "-5")
    faults("--shock", "AAPL", "-5")

    assert shock_in_force() == "-5"


def test_a_cumulative_shock_compounds_onto_the_one_in_force():
    faults("--shock", "AAPL", "-5")

    said = faults("--shock", "AAPL", "-5", "--cumulative")

    assert shock_in_force() == "-9.75"
    assert "AAPL: 9.75 % below its price walk from now on" in said


def test_a_cumulative_shock_of_an_unshocked_symbol_is_the_shock_itself():
    assert "MSFT: 2.5 % above" in faults("--shock", "MSFT", "2.5", "--cumulative")


def test_a_shock_of_zero_puts_the_price_back_on_its_walk():
    faults("--shock", "AAPL", "-5")

    assert "AAPL: at its price walk" in faults("--shock", "AAPL", "0")


def test_the_venue_prices_the_symbol_by_the_shock_in_force(broker, clock):
    from_walk = broker.quote("AAPL", now=timezone.now() + timedelta(seconds=5))
    faults("--shock", "AAPL", "-5")
    faults("--shock", "AAPL", "-5", "--cumulative")

    shocked = broker.quote("AAPL", now=timezone.now() + timedelta(seconds=5))

    assert abs(shocked.bid / from_walk.bid - Decimal("0.9025")) < Decimal("0.001")


@pytest.mark.parametrize(("args", "message"), [
    (("--shock", "AAPL", "lots"), "PERCENT must be a number"),
    (("--shock", "AAPL", "-100"), "PERCENT must be above -100"),
    (("--cumulative",), "--cumulative goes with --shock"),
])
def test_it_refuses_what_it_cannot_do(args, message):
    with pytest.raises(CommandError, match=message):
        faults(*args)


def test_the_help_says_a_shock_is_absolute_and_how_to_compound_one():
    parser = Command().create_parser("manage.py", "paper_faults")
    text = " ".join(parser.format_help().split())

    assert "Absolute, not cumulative: it replaces SYMBOL's earlier shock" in text
    assert "--shock AAPL 0 undoes it" in text
    assert "-5 twice is 9.75 % below the walk" in text


def test_the_venue_refuses_the_next_cancels_it_is_told_to():
    said = faults("--refuse-cancels", "2")

    assert '"cancel_refusals": 2' in said
    assert [get_broker().faults.take_cancel_refusal() for _ in range(3)] == [True, True, False]


def test_a_negative_count_of_refused_cancels_is_refused_and_nothing_changes():
    faults("--shock", "AAPL", "-5")

    with pytest.raises(CommandError, match="--refuse-cancels N takes a count of 0 or more"):
        faults("--refuse-cancels", "-1", "--shock", "AAPL", "-2")

    assert shock_in_force() == "-5" and get_broker().faults.state().cancel_refusals == 0
