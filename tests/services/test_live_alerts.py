"""The live alerts every screen and the stream's replay show are bounded to a page, and an alert nobody has
answered is never pushed out of that page by newer ones somebody already acknowledged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.domain.paging import DEFAULT_PAGE
from orders.models import Alert
from orders.selectors import live_alerts

pytestmark = pytest.mark.django_db


def alerts(account, count: int, *, status: str, start, prefix: str) -> list[Alert]:
    return Alert.objects.bulk_create([
        Alert(account=account, kind="POSITION_UNPROTECTED", symbol=f"{prefix}{n}", dedupe_key=f"{prefix}{n}",
              message="no stop-loss", status=status, raised_at=start + timedelta(seconds=n)) for n in range(count)])


def test_old_open_alerts_stay_in_the_page_ahead_of_newer_acknowledged_ones(account):
    now = timezone.now()
    old_open = alerts(account, 3, status="OPEN", start=now - timedelta(days=1), prefix="open")
    alerts(account, DEFAULT_PAGE, status="ACKNOWLEDGED", start=now - timedelta(hours=1), prefix="ack")
    alerts(account, 5, status="RESOLVED", start=now, prefix="done")

    shown = live_alerts(account_id=account.pk)

    assert len(shown) == DEFAULT_PAGE
    assert {a.symbol for a in old_open} <= {a.symbol for a in shown}
    assert not [a for a in shown if a.status == "RESOLVED"]
    assert [a.raised_at for a in shown] == sorted((a.raised_at for a in shown), reverse=True)
