"""Kraken Spot over REST (shared/reference/brokers/NOTES.md §4; krakenfx/api-specs ``spot-rest/openapi_v3.yaml``).

Kraken has no bracket and no OCO, so the desk runs the *pending* exit strategy: the entry goes alone, and
once it fills the exit engine places the stop-loss (``stop-loss``) and the take-profit (``limit``) as two
independent orders and cancels the survivor.

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
    parse_kraken_order,
    parse_kraken_pair,
    parse_kraken_status,
    parse_kraken_ticker,
    to_kraken_order,
    to_kraken_time_in_force,
)

__all__ = [
    "KRAKEN_ERRORS", "KRAKEN_STATUSES", "KrakenBroker", "KrakenConfig", "KrakenOrder", "NonceSource",
    "build_kraken_broker", "kraken_client_id", "kraken_signature", "parse_kraken_balance", "parse_kraken_bar",
    "parse_kraken_error", "parse_kraken_fill", "parse_kraken_order", "parse_kraken_pair", "parse_kraken_status",
    "parse_kraken_ticker", "to_kraken_order", "to_kraken_time_in_force",
]
