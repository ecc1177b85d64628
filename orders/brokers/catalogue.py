"""The paper venue's instrument list: a built-in default, or a JSON file of the same shape."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from orders.brokers.types import Instrument
from orders.domain.enums import AssetClass

D = Decimal

_DEFAULTS: list[dict] = [
    # stocks: cent ticks, whole shares, fully funded longs, shorts need 150 % margin
    {"symbol": "AAPL", "asset_class": "STOCK", "base_price": "150", "volatility": "0.008"},
    {"symbol": "MSFT", "asset_class": "STOCK", "base_price": "400"},
    {"symbol": "GOOGL", "asset_class": "STOCK", "base_price": "170"},
    {"symbol": "AMZN", "asset_class": "STOCK", "base_price": "180"},
    {"symbol": "TSLA", "asset_class": "STOCK", "base_price": "250", "volatility": "0.02"},
    {"symbol": "NVDA", "asset_class": "STOCK", "base_price": "800", "volatility": "0.015"},
    {"symbol": "SPY", "asset_class": "STOCK", "base_price": "520", "volatility": "0.005", "typical_size": "2000"},
    # crypto spot: fractional quantities, minimum notional, no shorting, 10 bps fees
    {"symbol": "BTCUSDT", "asset_class": "CRYPTO", "base_price": "50000", "tick_size": "0.01",
     "quantity_step": "0.00001", "min_quantity": "0.00001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "2", "commission_bps": "10", "volatility": "0.02"},
    {"symbol": "ETHUSDT", "asset_class": "CRYPTO", "base_price": "3000", "tick_size": "0.01",
     "quantity_step": "0.0001", "min_quantity": "0.0001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "20", "commission_bps": "10", "volatility": "0.025"},
    {"symbol": "SOLUSDT", "asset_class": "CRYPTO", "base_price": "150", "tick_size": "0.01",
     "quantity_step": "0.001", "min_quantity": "0.001", "min_notional": "5", "quote_currency": "USDT",
     "can_short": False, "typical_size": "300", "commission_bps": "10", "volatility": "0.03"},
    # forex: units, 2 % margin (50:1)
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
