"""An alert nobody acknowledges is raised again, once, as escalated after DESK_ALERT_ESCALATE_MINUTES:
pushed, audited and logged at CRITICAL. Acknowledged or resolved alerts are never escalated."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Alert, AuditEvent, Event
from orders.services.alerts import alert_acknowledge, alert_raise, alerts_escalate, alerts_resolve
from tests.builders import run_engine

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def five_minutes(settings):
    settings.DESK_ALERT_ESCALATE_MINUTES = 5


def raise_alert(account) -> Alert:
    return alert_raise(account_id=account.pk, kind=Alert.Kind.POSITION_UNPROTECTED, symbol="AAPL",
                       dedupe_key=f"unprotected:{account.pk}:AAPL", message="AAPL is not protected",
                       details={"symbol": "AAPL"})


def pushed(account) -> list[dict]:
    return [e.payload for e in Event.objects.filter(account=account, kind="error").order_by("id")]


def test_an_alert_left_open_is_escalated_after_the_set_minutes(account, clock, caplog):
    alert = raise_alert(account)
    clock.shift(5 * 60 - 1)
    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []

    clock.shift(1)
    with caplog.at_level(logging.CRITICAL):
        escalated = alerts_escalate(account_ids=[account.pk], now=timezone.now())

    assert [a.pk for a in escalated] == [alert.pk]
    assert Alert.objects.get(pk=alert.pk).escalated_at == timezone.now()
    frame = pushed(account)[-1]
    assert frame["code"] == "POSITION_UNPROTECTED"
    assert frame["details"]["escalated"] is True and frame["details"]["unacknowledged_seconds"] == 300
    assert "unacknowledged for 5 min" in frame["message"]
    assert AuditEvent.objects.filter(action="alert.escalate", target=str(alert.pk)).exists()
    assert any(r.levelno == logging.CRITICAL and str(alert.pk) in r.getMessage() for r in caplog.records)


def test_an_alert_is_escalated_once(account, clock):
    raise_alert(account)
    clock.shift(600)
    alerts_escalate(account_ids=[account.pk], now=timezone.now())
    clock.shift(600)

    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []
    assert len(pushed(account)) == 2          # raised, escalated


def test_acknowledged_and_resolved_alerts_are_not_escalated(account, clock):
    alert = raise_alert(account)
    alert_acknowledge(alert_id=str(alert.pk), actor="user:risk", comment="stop placed by hand")
    clock.shift(600)
    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []

    alerts_resolve(account_id=account.pk, symbol="AAPL", kind=Alert.Kind.POSITION_UNPROTECTED, resolution="flat")
    second = raise_alert(account)
    alerts_resolve(account_id=account.pk, symbol="AAPL", kind=Alert.Kind.POSITION_UNPROTECTED, resolution="flat")
    clock.shift(600)
    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []
    assert Alert.objects.get(pk=second.pk).escalated_at is None


def test_zero_minutes_never_escalates(account, clock, settings):
    settings.DESK_ALERT_ESCALATE_MINUTES = 0
    raise_alert(account)
    clock.shift(24 * 3600)

    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []


def test_the_engine_escalates_on_its_tick(account, broker, clock):
    alert = raise_alert(account)

    run_engine(account, broker, seconds=301, clock=clock)

    assert Alert.objects.get(pk=alert.pk).escalated_at is not None


def test_only_the_engines_accounts_are_escalated(account, clock):
    from tests.builders import make_account

    other = make_account(name="bob")
    raise_alert(other)
    clock.shift(timedelta(minutes=10).total_seconds())

    assert alerts_escalate(account_ids=[account.pk], now=timezone.now()) == []


def test_the_api_lists_when_an_alert_was_escalated(client, account, clock):
    raise_alert(account)
    clock.shift(300)
    alerts_escalate(account_ids=[account.pk], now=timezone.now())

    listed = client.get("/v1/alerts").json()

    assert listed[0]["escalated_at"] == "2026-03-02T15:05:00.000000Z"      # the clock's 15:00 + 5 min
    assert listed[0]["status"] == "OPEN"
