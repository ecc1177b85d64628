"""The paper venue's instrument list, and the class of venue each instrument stands for.

The paper venue plays a different real venue for each asset class, and refuses what that venue would:

=========  ==================  ================================================================================
class      mirrors             what that means here
=========  ==================  ================================================================================
STOCK      Alpaca (US stocks)  cent ticks, whole shares, no venue price band: any positive price on the tick
                               grid is accepted, so a BUY LIMIT AAPL at 1.00 rests (the reference gateway's
                               smoke test places exactly that); fully funded longs, shorts need 150 % margin
CRYPTO     Binance Spot        fractional quantities, a minimum notional, no shorting, 10 bps fees, and the
                               PERCENT_PRICE_BY_SIDE filter (``BINANCE_PERCENT_PRICE_BY_SIDE``: a BUY between
                               0.2 and 5 times the market, a SELL likewise, as BTCUSDT's exchangeInfo has it);
                               a BUY's fee is taken in the coin bought, a SELL's in the quote currency
FOREX      a margin FX dealer  units, 2 % margin (50:1), and a symmetric band of ``price_band_pct`` (5 %)
                               around the mid
=========  ==================  ================================================================================

``venue_price_band`` is where the class decides the band; an instrument's ``price_band_pct`` sets the
width of the symmetric band (forex, and any class without a venue of its own) and means nothing for stocks
and crypto. A JSON file given as ``PAPER_INSTRUMENTS_FILE`` has the shape of ``_DEFAULTS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from orders.brokers.types import Instrument
from orders.domain.enums import AssetClass, Side

D = Decimal


@dataclass(frozen=True, slots=True)
class PriceBand:
    """The prices a venue accepts, as multiples of the market price, by side (Binance's PERCENT_PRICE_BY_SIDE
    shape): a BUY must lie within ``bid_down``..``bid_up`` times the market, a SELL within
    ``ask_down``..``ask_up`` times it."""

    bid_down: Decimal
    bid_up: Decimal
    ask_down: Decimal
    ask_up: Decimal

    @classmethod
    def around(cls, pct: Decimal) -> PriceBand:
        """The same band on both sides: ``pct`` % either side of the market."""
        down, up = 1 - pct / 100, 1 + pct / 100
        return cls(bid_down=down, bid_up=up, ask_down=down, ask_up=up)

    def bounds(self, side: Side, market: Decimal) -> tuple[Decimal, Decimal]:
        """The lowest and highest price a ``side`` order may have when the market is at ``market``."""
        if side is Side.BUY:
            return market * self.bid_down, market * self.bid_up
        return market * self.ask_down, market * self.ask_up


# BTCUSDT's filter in Binance Spot's exchangeInfo (tests/brokers/payloads/binance_market_exchangeinfo.json). Binance
# measures it from a 5-minute average price; the paper venue uses the mid, as the Binance adapter's own check does.
BINANCE_PERCENT_PRICE_BY_SIDE = PriceBand(bid_down=D("0.2"), bid_up=D("5"), ask_down=D("0.2"), ask_up=D("5"))


def venue_price_band(instrument: Instrument) -> PriceBand | None:
    """The band the venue an instrument's class stands for puts around the market; None: no band at all."""
    if instrument.asset_class is AssetClass.STOCK:
        return None                                     # Alpaca has no price band
    if instrument.asset_class is AssetClass.CRYPTO:
        return BINANCE_PERCENT_PRICE_BY_SIDE
    return PriceBand.around(instrument.price_band_pct)


def is_fee_in_base_asset(instrument: Instrument, side: Side) -> bool:
    """Whether a fill's fee is taken in the asset bought rather than in the quote currency. Binance Spot
    without BNB takes a BUY's fee in the coin bought (so 0.01 BTC bought leaves 0.00999 BTC held) and a
    SELL's in the quote asset; the stock and FX venues charge in cash."""
    return instrument.asset_class is AssetClass.CRYPTO and side is Side.BUY


_DEFAULTS: list[dict] = [
    # stocks (Alpaca): cent ticks, whole shares, fully funded longs, shorts need 150 % margin, no price band
    {"symbol": "AAPL", "asset_class": "STOCK", "base_price": "150", "volatility": "0.008"},
    {"symbol": "MSFT", "asset_class": "STOCK", "base_price": "400"},
    {"symbol": "GOOGL", "asset_class": "STOCK", "base_price": "170"},
    {"symbol": "AMZN", "asset_class": "STOCK", "base_price": "180"},
    {"symbol": "TSLA", "asset_class": "STOCK", "base_price": "250", "volatility": "0.02"},
    {"symbol": "NVDA", "asset_class": "STOCK", "base_price": "800", "volatility": "0.015"},
    {"symbol": "SPY", "asset_class": "STOCK", "base_price": "520", "volatility": "0.005", "typical_size": "2000"},
    # crypto spot (Binance): fractional quantities, minimum notional, no shorting, 10 bps fees (a BUY's in the coin)
    {"symbol": "BTCUSDT", "asset_class": "CRYPTO", "base_price": "50000", "tick_size": "0.01",
     "quantity_step": "0.00001", "min_quantity": "0.00001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "2", "commission_bps": "10", "volatility": "0.02"},
    {"symbol": "ETHUSDT", "asset_class": "CRYPTO", "base_price": "3000", "tick_size": "0.01",
     "quantity_step": "0.0001", "min_quantity": "0.0001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "20", "commission_bps": "10", "volatility": "0.025"},
    {"symbol": "SOLUSDT", "asset_class": "CRYPTO", "base_price": "150", "tick_size": "0.01",
     "quantity_step": "0.001", "min_quantity": "0.001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "300", "commission_bps": "10", "volatility": "0.03"},
    # forex (a margin FX dealer): units, 2 % margin (50:1), a 5 % band around the mid
    {"symbol": "F:EURUSD", "asset_class": "FOREX", "base_price": "1.08", "tick_size": "0.00001",
     "quantity_step": "1", "min_quantity": "1000", "margin_rate": "0.02", "typical_size": "1000000",
     "spread_bps": "0.5", "volatility": "0.004", "price_band_pct": "5"},
    {"symbol": "F:GBPUSD", "asset_class": "FOREX", "base_price": "1.27", "tick_size": "0.00001",
     "quantity_step": "1", "min_quantity": "1000", "margin_rate": "0.02", "typical_size": "1000000",
     "spread_bps": "0.7", "volatility": "0.005", "price_band_pct": "5"},
]

_STOCK_DEFAULTS = {"tick_size": "0.01", "quantity_step": "1", "min_quantity": "1", "typical_size": "800"}


def instrument_from_dict(raw: dict, *, session: str) -> Instrument:
    data = dict(raw)
    asset_class = AssetClass(data.pop("asset_class"))
    if asset_class is AssetClass.STOCK:
        for key, value in _STOCK_DEFAULTS.items():
            data.setdefault(key, value)
    data.setdefault("session", session if asset_class is AssetClass.STOCK else "always")
    decimals = {"tick_size", "quantity_step", "min_quantity", "base_price", "min_notional", "margin_rate",
                "spread_bps", "volatility", "typical_size", "commission_bps", "price_band_pct"}
    kwargs = {k: (D(str(v)) if k in decimals else v) for k, v in data.items()}
    return Instrument(asset_class=asset_class, **kwargs)


def load_catalogue(*, path: str = "", session: str = "always") -> dict[str, Instrument]:
    raw = json.loads(Path(path).read_text()) if path else _DEFAULTS
    instruments = [instrument_from_dict(item, session=session) for item in raw]
    return {i.symbol: i for i in instruments}
