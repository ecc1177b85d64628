"""The account as Binance Spot reports it: balances → cash, equity and positions; open orders → ``VenueOrder``.

Spot has no positions and no margin, only balances (``GET /api/v3/account``: ``balances[{asset, free,
locked}]``). The desk reads them in one quote asset, the account's currency (``BINANCE_QUOTE_ASSET``, USDT
by default):

* cash = free + locked of the quote asset; buying power and margin available = its free part (what a new
  order can spend); margin used = 0;
* a position = the whole balance (free + locked) of another asset that trades against the quote asset
  (``<ASSET><QUOTE>``), marked at that symbol's last price;
* equity = cash + every position at its mark. An asset with no ``<ASSET><QUOTE>`` symbol, or none with a
  price, cannot be valued in the account's currency: it is dust to the desk and left out of both (converting
  through a third asset would put a guess into the figures).

Pure functions, tested on recorded payloads; the requests are ``BinanceBroker``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from orders.brokers.binance.mapping import ms_to_datetime, parse_binance_decimal, parse_binance_status
from orders.brokers.types import VenueAccount, VenueOrder, VenuePosition
from orders.domain.enums import OrderType, Side, TimeInForce
from orders.domain.money import ZERO, quantize_money

_ORDER_TYPES = {
    "MARKET": OrderType.MARKET,
    "LIMIT": OrderType.LIMIT,
    "LIMIT_MAKER": OrderType.LIMIT,
    "STOP_LOSS": OrderType.STOP,
    "STOP_LOSS_LIMIT": OrderType.STOP_LIMIT,
    # the desk has no if-touched types: a take-profit is a trigger (stop_price) that sends a market or limit order
    "TAKE_PROFIT": OrderType.STOP,
    "TAKE_PROFIT_LIMIT": OrderType.STOP_LIMIT,
}
_PRICED = frozenset({"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})
_TRIGGERED = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})
_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


def parse_binance_balances(body: dict) -> dict[str, Balance]:
    """``/api/v3/account`` → the non-zero balances by asset."""
    out = {}
    for row in body.get("balances", []):
        balance = Balance(asset=row["asset"], free=parse_binance_decimal(row["free"], name="free"),
                          locked=parse_binance_decimal(row["locked"], name="locked"))
        if balance.total != 0:
            out[balance.asset] = balance
    return out


def parse_binance_taker_rate(body: dict) -> Decimal | None:
    """The account's taker commission rate (``commissionRates.taker``), when the answer has one."""
    rate = (body.get("commissionRates") or {}).get("taker")
    return parse_binance_decimal(rate, name="commissionRates.taker") if rate is not None else None


def to_venue_account(balances: Mapping[str, Balance], *, quote: str, marks: Mapping[str, Decimal]) -> VenueAccount:
    """The account's figures in ``quote``; ``marks`` is each priceable asset's price in ``quote``."""
    cash_row = balances.get(quote)
    cash = cash_row.total if cash_row else ZERO
    free = cash_row.free if cash_row else ZERO
    held = sum((b.total * marks[asset] for asset, b in balances.items() if asset != quote and asset in marks), ZERO)
    return VenueAccount(cash=cash, equity=quantize_money(cash + held, 8), buying_power=free, margin_used=ZERO,
                        margin_available=free, currency=quote)


def to_venue_positions(balances: Mapping[str, Balance], *, quote: str, symbols: Mapping[str, str],
                       marks: Mapping[str, Decimal]) -> list[VenuePosition]:
    """A position per held asset that has a symbol against ``quote`` (``symbols``: asset → symbol), sorted by
    symbol. Spot keeps no average price."""
    return sorted((VenuePosition(symbol=symbols[asset], quantity=b.total, average_price=None, mark=marks.get(asset))
                   for asset, b in balances.items() if asset != quote and asset in symbols),
                  key=lambda p: p.symbol)


def parse_binance_open_order(body: dict) -> VenueOrder:
    """One ``/api/v3/openOrders`` row (an order list's legs come as rows of their own, ``orderListId`` set)."""
    kind = body["type"]
    executed = parse_binance_decimal(body.get("executedQty", "0"), name="executedQty")
    price = parse_binance_decimal(body.get("price", "0"), name="price")
    stop = parse_binance_decimal(body.get("stopPrice", "0"), name="stopPrice")
    return VenueOrder(
        broker_order_id=str(body["orderId"]), client_order_id=body.get("clientOrderId") or None,
        symbol=body["symbol"], side=Side(body["side"]), order_type=_ORDER_TYPES.get(kind, OrderType.LIMIT),
        quantity=parse_binance_decimal(body["origQty"], name="origQty"), filled_quantity=executed,
        status=parse_binance_status(body["status"], executed=executed),
        created_at=ms_to_datetime(body.get("time") or body.get("workingTime") or 0),
        limit_price=price if kind in _PRICED and price > 0 else None,
        stop_price=stop if kind in _TRIGGERED and stop > 0 else None,
        time_in_force=_TIME_IN_FORCE.get(body.get("timeInForce", "GTC"), TimeInForce.GTC))
