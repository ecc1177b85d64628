"""A breaker tripped or reset, a pre-trade limit set, an API key issued or revoked: each is one service call that
writes the row, its audit record and a desk-only outbox event in one transaction — if the change is rolled back,
no page is told of it; if it commits, every open page is."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from orders.domain.errors import InvalidValue, ResetCooldown
from orders.events import DESK_KIND
from orders.models import ApiKey, AuditEvent, Event, PreTradeLimits
from orders.services.breakers import ADAPTER, breaker_record_failure, breaker_snapshot, breakers_reset
from orders.services.keys import api_key_create, api_key_revoke
from orders.services.limits import limits_read, limits_set

pytestmark = pytest.mark.django_db


def desk_events(account, what: str) -> list[dict]:
    return [e.payload for e in Event.objects.filter(account=account, kind=DESK_KIND).order_by("id")
            if e.payload["what"] == what]


def trip(account) -> None:
    for _ in range(3):
        breaker_record_failure(account_id=account.pk, name=ADAPTER, reason="venue down")


def test_a_trip_is_told_to_the_desk_with_the_count_that_led_to_it(account):
    trip(account)

    told = desk_events(account, "breaker")
    assert [(e["state"], e["failure_count"], e["opened"]) for e in told] == [
        ("closed", 1, False), ("closed", 2, False), ("open", 3, True)]
    assert AuditEvent.objects.filter(action="breaker.open", target=ADAPTER).count() == 1


def test_a_reset_is_told_for_both_breakers_and_audited_with_who_did_it(account):
    trip(account)

    snapshot = breakers_reset(account=account, actor="user:rita")

    assert snapshot["adapter"]["state"] == "closed"
    resets = [e for e in desk_events(account, "breaker") if e["state"] == "closed" and "was_open" in e]
    assert [(e["name"], e["was_open"]) for e in resets] == [("adapter", True), ("exit_order", False)]
    assert AuditEvent.objects.get(action="breaker.reset").actor == "user:rita"


def test_a_reset_refused_in_its_cooldown_tells_nobody(account):
    breakers_reset(account=account, actor="user:rita")
    trip(account)
    before = len(desk_events(account, "breaker"))

    with pytest.raises(ResetCooldown):
        breakers_reset(account=account, actor="user:rita")

    assert len(desk_events(account, "breaker")) == before
    assert breaker_snapshot(account=account)["adapter"]["state"] == "open"


def test_limits_set_writes_the_row_an_audit_of_what_changed_and_an_event_and_applies_at_once(account):
    limits_set(account_id=account.pk, actor="admin:root", max_quantity_hard=Decimal("50"))

    limits_set(account_id=account.pk, actor="user:rita", max_quantity_hard=Decimal("20"), daily_orders_soft=10)

    assert limits_read(account.pk)[0].max_quantity == (None, Decimal("20"))
    audit = AuditEvent.objects.filter(action="limits.set").order_by("at").last()
    assert audit.actor == "user:rita"
    assert audit.details["changed"]["max_quantity_hard"] == {"from": "50", "to": "20"}   # as set, not as stored
    assert [e["changed"] for e in desk_events(account, "limits")] == [
        ["max_quantity_hard"], ["daily_orders_soft", "max_quantity_hard"]]


def test_limits_set_refuses_a_negative_or_unknown_limit_and_changes_nothing(account):
    with pytest.raises(InvalidValue) as negative:
        limits_set(account_id=account.pk, actor="admin:root", max_notional_hard=Decimal("-1"))
    with pytest.raises(InvalidValue) as unknown:
        limits_set(account_id=account.pk, actor="admin:root", max_leverage=Decimal("2"))

    assert negative.value.details["field"] == "max_notional_hard"
    assert "max_leverage" in unknown.value.message
    assert not PreTradeLimits.objects.exists()
    assert desk_events(account, "limits") == []


def test_an_issued_and_revoked_key_are_audited_and_told_without_the_key_itself(account):
    raw = api_key_create(account=account, name="bot", actor="command:create_api_key")
    key = ApiKey.objects.get(account=account)

    assert api_key_revoke(key=key, actor="admin:root") is True
    assert api_key_revoke(key=key, actor="admin:root") is False          # already revoked: told once

    assert [e["change"] for e in desk_events(account, "api_key")] == ["created", "revoked"]
    assert [(a.action, a.actor) for a in AuditEvent.objects.filter(action__startswith="api_key").order_by("at")] == [
        ("api_key.create", "command:create_api_key"), ("api_key.revoke", "admin:root")]
    everything = str(list(Event.objects.values_list("payload", flat=True))) + str(
        list(AuditEvent.objects.values_list("details", flat=True)))
    assert raw not in everything and raw.split("_", 2)[2] not in everything      # the secret (it may hold "_" itself)


def test_a_change_rolled_back_leaves_no_event_behind(account):
    with pytest.raises(RuntimeError), transaction.atomic():
        limits_set(account_id=account.pk, actor="admin:root", max_quantity_hard=Decimal("5"))
        raise RuntimeError("the caller's transaction fails")

    assert desk_events(account, "limits") == []
    assert not PreTradeLimits.objects.exists()
