"""``manage.py run_engine``: one engine acts for an account; a second one refuses, or stands by saying who
holds the lease and takes over when it lapses; a lost database is waited for, not a reason to exit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import InternalError, OperationalError

from orders.management.commands import run_engine
from orders.models import EngineLease

pytestmark = pytest.mark.django_db(transaction=True)   # the engine's loop closes connections between ticks


@pytest.fixture(autouse=True)
def engine_signals(monkeypatch):
    """The engine command installs SIGINT/SIGTERM handlers; keep pytest's. Retries come at once."""
    monkeypatch.setattr("orders.management.commands.run_engine.signal.signal", lambda *args: None)
    monkeypatch.setattr(run_engine, "RETRY_FIRST_SECONDS", 0.01)


def held_by_another_engine(account, *, for_seconds: float) -> EngineLease:
    now = datetime.now(UTC)
    return EngineLease.objects.create(account=account, owner="other-host:42:cafe", heartbeat_at=now,
                                      expires_at=now + timedelta(seconds=for_seconds))


def test_it_refuses_to_start_while_another_engine_holds_the_lease_and_names_it(account):
    held_by_another_engine(account, for_seconds=60)

    with pytest.raises(CommandError, match="already run by engine other-host:42:cafe.*--wait"):
        call_command("run_engine", "--once", stdout=StringIO())


def test_a_waiting_engine_says_who_it_stands_by_for_and_when_it_takes_over(account):
    held_by_another_engine(account, for_seconds=1)
    out = StringIO()

    call_command("run_engine", "--wait", "--once", stdout=out)

    printed = out.getvalue()
    assert "standing by for alice: account alice is run by engine other-host:42:cafe" in printed
    assert "takes over alice: the lease of other-host:42:cafe lapsed" in printed
    assert printed.index("standing by") < printed.index("takes over") < printed.index("running for alice")
    assert not EngineLease.objects.exists()      # released when it stopped


def test_it_waits_for_a_lost_database_and_keeps_its_lease(account, monkeypatch, caplog):
    ticks = []

    def tick(**kwargs):
        ticks.append(kwargs)
        if len(ticks) == 2:                     # the first tick of the loop, after the catch-up
            raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(run_engine, "engine_tick", tick)
    out = StringIO()
    with caplog.at_level(logging.INFO, logger=run_engine.__name__):
        call_command("run_engine", "--once", stdout=out)

    said = caplog.text
    assert "lost the database (terminating connection due to administrator command); retrying in 0.01 s" in said
    assert "reconnected to the database" in said
    assert "lease on alice kept" in said
    assert len(ticks) == 4                      # catch-up, failed tick, catch-up again, one tick
    assert out.getvalue().count("running for alice") == 2


def test_it_keeps_retrying_with_backoff_while_the_database_stays_away(account, monkeypatch, caplog):
    refusals = iter([OperationalError("connection refused")] * 3)
    connect = run_engine.connection.ensure_connection

    def ensure_connection():
        error = next(refusals, None)
        if error is not None:
            raise error
        connect()

    def tick(**kwargs):
        monkeypatch.setattr(run_engine.connection, "ensure_connection", ensure_connection)
        monkeypatch.setattr(run_engine, "engine_tick", lambda **kwargs: None)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(run_engine, "engine_tick", tick)
    with caplog.at_level(logging.INFO, logger=run_engine.__name__):
        call_command("run_engine", "--once", stdout=StringIO())

    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "engine: lost the database (server closed the connection unexpectedly); retrying in 0.01 s"
    assert [m.rsplit("retrying in ", 1)[1] for m in said[1:4]] == ["0.02 s", "0.04 s", "0.08 s"]
    assert said[4].startswith("engine: reconnected to the database after")


def test_a_statement_the_database_keeps_refusing_backs_off_instead_of_ending_the_engine(account, monkeypatch,
                                                                                         caplog):
    """A failover onto a server still read-only refuses every write: the engine waits longer each time and goes
    on once the database takes writes again, rather than exiting with a traceback."""
    refusals = iter([InternalError("cannot execute UPDATE in a read-only transaction")] * 3)

    def tick(**kwargs):
        error = next(refusals, None)
        if error is not None:
            raise error

    monkeypatch.setattr(run_engine, "engine_tick", tick)
    with caplog.at_level(logging.INFO, logger=run_engine.__name__):
        call_command("run_engine", "--once", stdout=StringIO())

    refused = [r.getMessage() for r in caplog.records if "refused a statement" in r.getMessage()]
    assert [m.rsplit("retrying in ", 1)[1] for m in refused] == ["0.01 s", "0.02 s", "0.04 s"]
    assert "read-only transaction" in refused[0]


def test_a_lease_taken_by_another_engine_during_the_outage_makes_a_waiting_engine_stand_by(account, monkeypatch,
                                                                                          caplog):
    calls = []

    def tick(**kwargs):
        calls.append(1)
        if len(calls) == 1:                     # the catch-up: meanwhile another engine took the account
            EngineLease.objects.filter(account=account).update(
                owner="other-host:42:cafe", expires_at=datetime.now(UTC) + timedelta(seconds=1))
            raise OperationalError("the connection is lost")

    monkeypatch.setattr(run_engine, "engine_tick", tick)
    out = StringIO()
    with caplog.at_level(logging.INFO, logger=run_engine.__name__):
        call_command("run_engine", "--wait", "--once", stdout=out)

    assert "lost the lease on alice to engine other-host:42:cafe; standing by" in caplog.text
    assert "standing by for alice: account alice is run by engine other-host:42:cafe" in out.getvalue()
    assert "takes over alice" in out.getvalue()
