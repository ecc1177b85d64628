"""Broker selection. ``get_broker()`` builds the configured adapter once per process.

    BROKERS = {"paper": "orders.brokers.paper.build_paper_broker", ...}

The factory reads settings at call time (never at import) and hands the adapter a
frozen config, so adapters themselves never touch Django settings.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from orders.brokers.base import Broker

BROKERS = {
    "paper": "orders.brokers.paper_factory.build_paper_broker",
    "alpaca": "orders.brokers.alpaca.build_alpaca_broker",
    "binance_spot": "orders.brokers.binance.build_binance_broker",
    "kraken": "orders.brokers.kraken.build_kraken_broker",
}


@cache
def get_broker(name: str | None = None) -> Broker:
    key = name or settings.GATEWAY_PROVIDER
    try:
        factory = import_string(BROKERS[key])
    except KeyError:
        raise ImproperlyConfigured(
            f"GATEWAY_PROVIDER={key!r} is not a known broker; choose one of {', '.join(sorted(BROKERS))}"
        ) from None
    return factory()


def reset_broker_cache() -> None:
    get_broker.cache_clear()
