"""Binance Spot adapter (registry key ``binance_spot``).

    mapping.py   parse_binance_*() venue → ours, to_binance_*() ours → venue, the error-code table
    rules.py     exchangeInfo filters → Instrument and pre-trade checks
    account.py   balances → the account's figures and positions; open orders → VenueOrder
    endpoints.py the hosts one configuration names (REST base → WebSocket API URL)
    client.py    signing, server-clock offset, request-weight budget (over brokers.http)
    broker.py    BinanceBroker and build_binance_broker()
    stream.py    user-data stream over the WebSocket API (userDataStream.subscribe.signature)

Configuration (environment, read by ``build_binance_broker``):

    BINANCE_API_KEY, BINANCE_API_SECRET   required
    BINANCE_BASE_URL      the venue's REST host (default https://testnet.binance.vision; a trailing /api is dropped)
    BINANCE_WS_API_URL    the WebSocket API, when it is not where BINANCE_BASE_URL implies (default: derived)
    BINANCE_QUOTE_ASSET   the account's currency (default USDT): cash, equity and every position's mark
    BINANCE_RECV_WINDOW   how long a signed request stays valid, in ms (default 5000)

Endpoints follow the configuration (``endpoints.py``): for Binance's own REST hosts the WebSocket API is that
environment's (api*.binance.com → ws-api.binance.com, testnet.binance.vision → ws-api.testnet.binance.vision,
demo-api.binance.com → demo-ws-api.binance.com); for any other host it is the same host and port, ``ws://`` for
``http://`` and ``wss://`` for ``https://``, path ``/ws-api/v3``. The API key therefore goes only to the REST host
that was configured, the WebSocket API of the same Binance environment, or a URL named in BINANCE_WS_API_URL.

Exits: SL + TP rest at the venue as one OCO order list (both legs against one balance, which only an order list
allows on spot: ``one_resting_exit``); a lone SL or TP rests as one order.
"""

from orders.brokers.binance.broker import CAPABILITIES, BinanceBroker, build_binance_broker
from orders.brokers.binance.client import BinanceClient, BinanceConfig

__all__ = ["CAPABILITIES", "BinanceBroker", "BinanceClient", "BinanceConfig", "build_binance_broker"]
