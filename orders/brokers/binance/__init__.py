"""Binance Spot adapter (registry key ``binance_spot``).

    mapping.py   parse_binance_*() venue → ours, to_binance_*() ours → venue, the error-code table
    rules.py     exchangeInfo filters → Instrument and pre-trade checks
    client.py    signing, server-clock offset, request-weight budget (over brokers.http)
    broker.py    BinanceBroker and build_binance_broker()
    stream.py    user-data stream over the WebSocket API (userDataStream.subscribe.signature)
"""

from orders.brokers.binance.broker import CAPABILITIES, BinanceBroker, build_binance_broker
from orders.brokers.binance.client import BinanceClient, BinanceConfig

__all__ = ["CAPABILITIES", "BinanceBroker", "BinanceClient", "BinanceConfig", "build_binance_broker"]
