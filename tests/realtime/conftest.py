"""Stream settings for every realtime test: the relay polls the outbox often, and no market data, pings or
idle deadline interfere unless a test asks for them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def stream_settings(settings):
    settings.SUBSCRIPTIONS = ""
    settings.STREAM_DEFAULT_SYMBOLS = ""
    settings.STREAM_POLL_SECONDS = 0.01
    settings.STREAM_MARKET_SECONDS = 60
    settings.STREAM_PING_SECONDS = 60
    settings.STREAM_IDLE_SECONDS = 120
    settings.STREAM_QUEUE_SIZE = 1024
    return settings
