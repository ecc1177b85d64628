"""Builds the paper broker from settings (kept apart so ``paper.py`` never reads settings)."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from orders.brokers.catalogue import load_catalogue
from orders.brokers.paper import PaperBroker, PaperConfig
from orders.brokers.paper_ledger import PaperLedger
from orders.brokers.types import BracketStrategy


def build_paper_broker() -> PaperBroker:
    try:
        profile = BracketStrategy(settings.PAPER_CAPABILITY_PROFILE)
    except ValueError:
        choices = ", ".join(s.value for s in BracketStrategy)
        raise ImproperlyConfigured(f"PAPER_CAPABILITY_PROFILE must be one of {choices}") from None
    if settings.PAPER_MARKET_HOURS not in ("always", "exchange"):
        raise ImproperlyConfigured("PAPER_MARKET_HOURS must be 'always' or 'exchange'")
    instruments = load_catalogue(path=settings.PAPER_INSTRUMENTS_FILE, session=settings.PAPER_MARKET_HOURS)
    fault_file = str(settings.VAR_DIR / "paper-faults.json")
    return PaperBroker(PaperConfig(seed=settings.PAPER_SEED, instruments=instruments, profile=profile,
                                   fault_file=fault_file, ledger=PaperLedger()))
