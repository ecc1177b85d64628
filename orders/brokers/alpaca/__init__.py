"""The Alpaca adapter (equities and crypto; paper and live), one package because it outgrew one module:

=============  ============================================================================================
module         what it holds
=============  ============================================================================================
broker.py      ``AlpacaConfig``, ``AlpacaBroker`` (the ``Broker`` interface), ``build_alpaca_broker()``
config.py      ``AlpacaConfig``: keys and the three hosts (trading, market data, trade stream)
account.py     ``parse_alpaca_account/positions/open_orders()``: the venue's truth -> ours; the figures table
mapping.py     ``to_alpaca_*()`` (ours -> venue) and ``parse_alpaca_*()`` (venue -> ours); the status table
errors.py      ``parse_alpaca_error()``: Alpaca's ``{"code", "message"}`` replies -> desk errors; the table
reports.py     polled orders and ``trade_updates`` frames -> ExecutionReports (fills, cancels, expiries,
               legs released or replaced); the table
stream.py      ``AlpacaTradeUpdates``: the ``trade_updates`` WebSocket with reconnect and backoff
=============  ============================================================================================

Configuration (environment, read by ``build_alpaca_broker()`` only):

=====================  ==================================================================================
variable               meaning
=====================  ==================================================================================
ALPACA_API_KEY         required
ALPACA_API_SECRET      required
ALPACA_BASE_URL        the trading API; default ``https://paper-api.alpaca.markets`` (live:
                       ``https://api.alpaca.markets``). The one host setting a user normally gives.
ALPACA_DATA_URL        market data. Unset: ``https://data.alpaca.markets`` when ALPACA_BASE_URL is one of
                       Alpaca's own hosts (https, ``*.alpaca.markets``), else ALPACA_BASE_URL itself
ALPACA_STREAM_URL      the trade_updates WebSocket. Unset: ALPACA_BASE_URL as ``ws(s)://`` + ``/stream``
ALPACA_FEED            the stock quotes' feed, ``iex`` (default) or ``sip``
=====================  ==================================================================================

The keys are sent only to the hosts these name: market data never falls back to data.alpaca.markets for a
local, proxy or compatible ``ALPACA_BASE_URL``, and no HTTP redirect is followed (``requests`` would carry the
key headers to whatever host a 3xx named). A URL that is not one stops start-up, naming the variable.

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
