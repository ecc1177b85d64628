"""Kraken Spot over REST (shared/reference/brokers/NOTES.md §4; krakenfx/api-specs ``spot-rest/openapi_v3.yaml``).

Kraken has no bracket and no OCO, so the desk runs the *pending* exit strategy: the entry goes alone, and
once it fills the exit engine protects it. Kraken Spot cannot rest two reducing sells against one balance: a
resting sell holds its volume of the base asset (``hold_trade``), so after a full-size stop a full-size
take-profit is refused ``EOrder:Insufficient funds``. The broker says so (``one_resting_exit``): the stop-loss
(``stop-loss``) rests at Kraken, since it is the protection, and the take-profit is watched by the engine and
fired on the quote: it cancels the stop by ``cl_ord_id``, then sells the balance at ``market``.

Endpoints (``endpoints.py``)
    One base setting, ``KRAKEN_BASE_URL`` (default ``https://api.kraken.com``), names the REST host. The
    authenticated WebSocket (``executions`` stream, token) is derived from it: ``api.kraken.com`` →
    ``wss://ws-auth.kraken.com/v2``; any other host → the same host and port, ``ws://`` for ``http://`` and
    ``wss://`` for ``https://``, path ``/v2``. ``KRAKEN_WS_AUTH_URL`` overrides the derived address. REST calls
    follow no redirect and the stream none to another origin, so the API key and the token only reach hosts the
    configuration named.

The venue's truth
    ``account_state``: ``BalanceEx`` and ``TradeBalance`` (``asset`` = the quote asset). The account's currency is
    ``KRAKEN_QUOTE_ASSET`` (default ``USD``, Kraken's ``ZUSD``; ``EUR`` → ``ZEUR``, ``USDT`` as is). cash = the
    quote asset's balance; buying power = what is free of it (balance + credit - credit_used - hold_trade, as
    Kraken computes it), also given as the margin available, since spot buys are paid in it; equity =
    ``TradeBalance.eb``, every balance valued in the quote asset by Kraken; margin used = ``TradeBalance.m`` (margin
    positions: none on a spot desk); no unrealised P&L (Kraken keeps no cost basis for spot holdings).
    ``positions``: every non-zero balance whose asset trades against the quote asset in ``AssetPairs``, named by
    the pair's ``altname`` (``XBTUSD``, as the desk names Kraken symbols), quantity = the whole balance (held or
    not), no average price, marked at the ``Ticker``'s last trade; the quote itself, ``KFEE``, assets with no such
    pair and read-only earn balances (``ETH2.S``, ``USDT.F``) are not positions. ``open_orders``: ``OpenOrders``,
    client id = ``cl_ord_id`` (or the ``userref`` another app set); ``take-profit(-limit)`` is listed as a LIMIT.

Private-call budget
    Kraken counts private calls per key (Starter: a counter of 15 decaying by 0.33/s, ~20 a minute). A poll
    (``sync``) costs one ``QueryOrders`` point (two more for new fills), hence ``poll_seconds`` = 6. Reading the
    account costs two (``BalanceEx``, ``TradeBalance``); ``positions`` costs none more (it shares that
    ``BalanceEx``; ``AssetPairs`` and ``Ticker`` are public); ``open_orders`` one. The two account reads are
    reused for ``account_read_seconds`` (20 s) however often the desk refreshes, and read afresh as soon as the
    account may have changed: an order sent, cancelled or amended, a poll that saw an order change, an event
    on the executions stream. A balance changed from outside (a deposit, the web site) shows within 20 s.
    Arming the dead man's switch is one call per re-arm.

Dead man's switch
    ``arm_deadman(seconds)`` is ``CancelAllOrdersAfter`` (``timeout`` in seconds, under a day; 0 disarms): unless
    armed again in time, Kraken cancels every open order of the account, and the switch then stays off until
    armed again. ``deadman_seconds`` comes from ``KRAKEN_DEADMAN_SECONDS`` (default 60, Kraken's advice; 0 =
    off); the engine holding the account's lease re-arms it well within that.

Identifiers
    Our order id (a UUID) is sent as ``cl_ord_id`` (Kraken takes a long UUID or ≤ 18 characters of text, and
    keeps it unique among *open* orders). ``userref`` is not used: it is an int32 and not unique.
    ``sync`` queries orders by ``txid`` (the broker id the desk recorded, or the one learnt at ``AddOrder``);
    an order without one (its ``AddOrder`` answer was lost) is looked up by ``cl_ord_id`` in ``OpenOrders`` then
    ``ClosedOrders`` and reported ACCEPTED when found, REJECTED when Kraken never saw it and it is older than
    ``MISSING_GRACE``. Cancels and amends go by ``cl_ord_id``, which works from any process.

Wire
    Private calls are ``POST /0/private/<Method>`` with a form-encoded body that starts with ``nonce``;
    ``API-Sign = base64(HMAC-SHA512(path + SHA256(nonce + postdata), base64decode(secret)))`` over exactly the
    bytes sent. Nonces are milliseconds since the epoch, strictly increasing within the process (a burst in one
    millisecond runs ahead of the clock). Every HTTP attempt is re-signed with a fresh nonce, and an
    ``EAPI:Invalid nonce`` answer is retried once. Every order asks for its fee in the quote currency
    (``oflags=fciq``): commissions are in the pair's quote currency, and a buy delivers the whole quantity, so
    exit legs for all of it can be funded. Spot has no positions: ``reduce_only`` is checked here against the
    desk's position and never sent (Kraken applies it to margin positions only).

Errors arrive with HTTP 200 in the body's ``error`` list (``W…`` entries are warnings and only logged):

=========================================================  =============================================================
Kraken error (prefix match)                                desk error
=========================================================  =============================================================
EOrder:Insufficient funds                                  OrderRejected INSUFFICIENT_BALANCE
EOrder:Margin allowance exceeded                           OrderRejected INSUFFICIENT_MARGIN
EOrder:Order minimum not met                               OrderRejected INVALID_QUANTITY
EOrder:Invalid price                                       OrderRejected INVALID_PRICE
EGeneral:Invalid arguments:price (and :price2)             OrderRejected INVALID_PRICE
EGeneral:Invalid arguments:limit_price / :trigger_price    OrderRejected INVALID_PRICE
EGeneral:Invalid arguments:volume / :order_qty             OrderRejected INVALID_QUANTITY
EGeneral:Invalid arguments (any other)                     InvalidRequest; on entry OrderRejected ORDER_REJECTED
EQuery:Unknown asset pair                                  SymbolNotFound; on entry OrderRejected SYMBOL_NOT_TRADEABLE
EOrder:Unknown order                                       OrderNotFound
EOrder:Orders limit exceeded                               RateLimited
EOrder:Rate limit exceeded                                 RateLimited
EAPI:Rate limit exceeded                                   RateLimited
EService:Throttled:<unix ts>                               RateLimited, retry_after_seconds from the timestamp
EAPI:Invalid key                                           Unauthorized KRAKEN_INVALID_KEY
EAPI:Invalid signature                                     Unauthorized KRAKEN_INVALID_SIGNATURE
EAPI:Invalid nonce                                         retried once with a fresh nonce, then Unauthorized
EGeneral:Permission denied                                 Unauthorized KRAKEN_PERMISSION_DENIED
EGeneral:Temporary lockout                                 ProviderUnavailable
EService:Unavailable, EService:Busy, other EService:*      ProviderUnavailable
EGeneral:Internal error                                    ProviderError (outcome unknown: never a rejection)
other EOrder: / EGeneral: / ETrade: on order entry         OrderRejected ORDER_REJECTED
anything else                                              ProviderError
=========================================================  =============================================================

A non-200 answer without a Kraken error list goes through ``http.error_for_status``.

Order status (``parse_kraken_status``): ``pending`` → PENDING; ``open`` → OPEN, or PARTIALLY_FILLED once
``vol_exec`` > 0; ``closed`` → FILLED, or CANCELLED for the remainder when ``vol_exec`` < ``vol`` (IOC);
``canceled`` → CANCELLED; ``expired`` → EXPIRED; anything unknown is treated as OPEN and logged.

Not supported: FOK (Kraken has GTC/IOC/GTD; DAY is sent as GTD expiring at the next 00:00 UTC), changing a
trailing distance (``AmendOrder`` takes absolute prices; ``EditOrder`` would replace the order under a new
txid without our ``cl_ord_id``), iceberg/hidden orders, ``validate=true`` dry runs, conditional close
(``close[...]``: mixing one native leg with one emulated leg is avoided, NOTES §4.1).
"""

from orders.brokers.kraken.broker import KrakenBroker, KrakenConfig, build_kraken_broker
from orders.brokers.kraken.endpoints import kraken_ws_auth_url
from orders.brokers.kraken.wire import (
    KRAKEN_ERRORS,
    KRAKEN_STATUSES,
    KrakenOrder,
    NonceSource,
    kraken_client_id,
    kraken_signature,
    parse_kraken_balance,
    parse_kraken_bar,
    parse_kraken_error,
    parse_kraken_fill,
    parse_kraken_open_order,
    parse_kraken_order,
    parse_kraken_pair,
    parse_kraken_status,
    parse_kraken_ticker,
    to_kraken_order,
    to_kraken_time_in_force,
)

__all__ = [
    "KRAKEN_ERRORS", "KRAKEN_STATUSES", "KrakenBroker", "KrakenConfig", "KrakenOrder", "NonceSource",
    "build_kraken_broker", "kraken_client_id", "kraken_signature", "kraken_ws_auth_url", "parse_kraken_balance",
    "parse_kraken_bar", "parse_kraken_error", "parse_kraken_fill", "parse_kraken_open_order", "parse_kraken_order",
    "parse_kraken_pair", "parse_kraken_status", "parse_kraken_ticker", "to_kraken_order", "to_kraken_time_in_force",
]
