"""The Alpaca adapter (equities and crypto; paper and live), one package because it outgrew one module:

=============  ============================================================================================
module         what it holds
=============  ============================================================================================
broker.py      ``AlpacaConfig``, ``AlpacaBroker`` (the ``Broker`` interface), ``build_alpaca_broker()``
mapping.py     ``to_alpaca_*()`` (ours -> venue) and ``parse_alpaca_*()`` (venue -> ours); the status table
errors.py      ``parse_alpaca_error()``: Alpaca's ``{"code", "message"}`` replies -> desk errors; the table
reports.py     polled orders and ``trade_updates`` frames -> ExecutionReports (fills, cancels, expiries)
stream.py      ``AlpacaTradeUpdates``: the ``trade_updates`` WebSocket with reconnect and backoff
=============  ============================================================================================

All HTTP goes through ``brokers.http.HttpClient``; the adapter never reads Django settings (the factory reads
the environment with ``brokers.config.require_env``).
"""

from __future__ import annotations

from orders.brokers.alpaca.broker import CAPABILITIES, AlpacaBroker, AlpacaConfig, build_alpaca_broker
from orders.brokers.alpaca.errors import parse_alpaca_error
from orders.brokers.alpaca.mapping import AlpacaOrder, parse_alpaca_order, parse_alpaca_status, to_alpaca_order
from orders.brokers.alpaca.reports import parse_alpaca_trade_update
from orders.brokers.alpaca.stream import AlpacaTradeUpdates

__all__ = [
    "CAPABILITIES",
    "AlpacaBroker",
    "AlpacaConfig",
    "AlpacaOrder",
    "AlpacaTradeUpdates",
    "build_alpaca_broker",
    "parse_alpaca_error",
    "parse_alpaca_order",
    "parse_alpaca_status",
    "parse_alpaca_trade_update",
    "to_alpaca_order",
]
