"""Shared personas and fixtures. The clock is frozen on a Monday during exchange hours so
every price the paper venue shows in a test is fixed by its seed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.cache import cache

from orders.brokers import get_broker, reset_broker_cache
from orders.caches import caches_clear
from orders.models import Account
from orders.services.keys import api_key_create
from tests.builders import make_account

FROZEN_AT = "2026-03-02T15:00:00+00:00"   # a Monday, 15:00 UTC: US stocks are trading


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    """Every test gets its own fault file, a fresh broker and an empty cache (rate limits, cooldowns)."""
    settings.VAR_DIR = tmp_path
    settings.PAPER_SEED = 7
    settings.PAPER_CAPABILITY_PROFILE = "none"
    settings.PAPER_MARKET_HOURS = "always"
    settings.GATEWAY_API_KEY = ""
    settings.API_ALLOW_KEYLESS = True
    settings.DESK_POOLED_WRITES = False      # the test's transaction lives on the test's thread
    settings.DESK_VERIFY_EXPOSURE = True
    reset_broker_cache()
    caches_clear()
    cache.clear()
    yield
    reset_broker_cache()
    caches_clear()


@pytest.fixture
def clock():
    """Freeze time; ``clock.shift(seconds)`` moves it forward."""
    with time_machine.travel(datetime.fromisoformat(FROZEN_AT), tick=False) as traveller:
        yield traveller


@pytest.fixture
def broker():
    return get_broker()


@pytest.fixture
def account(db) -> Account:
    return make_account(name="alice", cash=Decimal("100000"), is_default=True)


@pytest.fixture
def api_key(account) -> str:
    return api_key_create(account=account, name="alice's script")


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}
