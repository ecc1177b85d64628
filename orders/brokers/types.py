"""Broker-neutral shapes every adapter speaks. No Django, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from orders.domain.account import AccountFigures
from orders.domain.enums import (
    AssetClass,
    OrderStatus,
    OrderType,
    PositionMode,
    Side,
    TimeInForce,
    TrailingType,
)


class BracketStrategy(StrEnum):
    NATIVE_BRACKET = "native_bracket"   # entry + SL + TP accepted atomically by the broker
    NATIVE_OCO = "native_oco"           # entry first; SL/TP as one OCO pair once it fills
    PENDING = "none"                    # entry first; SL and TP as separate orders once it fills


@dataclass(frozen=True, slots=True)
class Capabilities:
    platform: str
    supported_asset_classes: tuple[AssetClass, ...]
    supported_order_types: tuple[OrderType, ...]
    position_mode: PositionMode
    features: tuple[str, ...]
    bracket_strategy: BracketStrategy
    max_leverage: Decimal | None = None
    rate_limits: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    asset_class: AssetClass
    tick_size: Decimal
    quantity_step: Decimal
    min_quantity: Decimal
    base_price: Decimal
    quote_currency: str = "USD"
    min_notional: Decimal = Decimal("0")
    margin_rate: Decimal = Decimal("1")
    can_short: bool = True
    spread_bps: Decimal = Decimal("2")
    volatility: Decimal = Decimal("0.01")       # stationary standard deviation of log price
    typical_size: Decimal = Decimal("500")      # top-of-book size the quotes scatter around
    commission_bps: Decimal = Decimal("0")
    price_band_pct: Decimal = Decimal("50")     # limit/stop prices further than this from the market are refused
    session: str = "always"                     # always | exchange (13:30-20:00 UTC, Mon-Fri)
    halted: bool = False
    base: str = ""                              # the asset traded, as the venue names it (ETH of ETHBTC)

    @property
    def base_asset(self) -> str:
        """The asset traded: as the venue said, else the symbol less a dollar quote (BTC of BTCUSDT)."""
        if self.base:
            return self.base
        bare = self.symbol.split(":")[-1]
        for quote in ("USDT", "USDC", "USD"):
            if bare.endswith(quote) and len(bare) > len(quote):
                return bare[: -len(quote)]
        return bare


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    provider: str
    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_size: Decimal
    ask_size: Decimal
    volume: Decimal
    timestamp: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    provider: str
    timeframe: str
    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    connected: bool
    latency_ms: int
    last_heartbeat: datetime


@dataclass(frozen=True, slots=True)
class AccountContext:
    """What a broker's pre-trade check may know about the account placing the order."""
    figures: AccountFigures
    position_quantity: Decimal        # signed, for the order's symbol
    reserved_for_symbol: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """An order as sent to a broker (our id is also its client id at the broker)."""
    order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce = TimeInForce.GTC
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    reduce_only: bool = False
    post_only: bool = False
    broker_order_id: str | None = None      # the venue's id, once it has one


@dataclass(frozen=True, slots=True)
class BrokerAck:
    broker_order_id: str
    status: OrderStatus


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """A working order as the matching loop sees it, with the venue state it keeps between looks."""
    order_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    filled_quantity: Decimal
    time_in_force: TimeInForce
    created_at: datetime
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_type: TrailingType | None = None
    trail_reference: Decimal | None = None    # best price seen since placement (trailing stops)
    triggered: bool = False                   # stop / stop-limit has triggered
    checked_until: datetime | None = None     # the venue has matched this order up to here
    post_only: bool = False
    venue_oco_id: str | None = None           # orders the venue cancels together (native OCO / bracket legs)
    client_order_id: str | None = None
    broker_order_id: str | None = None
    status: OrderStatus | None = None         # the desk's status of it (PENDING: held back, or its answer lost)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


class ReportKind(StrEnum):
    FILL = "fill"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    STATE = "state"            # venue-side state changed (trigger, trail reference, checked_until)
    ACCEPTED = "accepted"      # an order we had not heard back about is working at the venue


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    order_id: str
    kind: ReportKind
    timestamp: datetime
    fill_id: str | None = None
    quantity: Decimal = Decimal("0")
    price: Decimal = Decimal("0")
    commission: Decimal = Decimal("0")
    commission_currency: str = "USD"
    is_maker: bool = False
    reason: str | None = None
    trail_reference: Decimal | None = None
    triggered: bool | None = None
    checked_until: datetime | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VenueAccount:
    """The account as the venue itself reports it (``Broker.account_state``): the numbers the desk shows and
    checks against for a real broker. ``unrealized_pnl`` is None when the venue does not report one."""
    cash: Decimal
    equity: Decimal
    buying_power: Decimal
    margin_used: Decimal
    margin_available: Decimal
    currency: str
    unrealized_pnl: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """What the venue holds of one symbol (``Broker.positions``), signed. On a spot venue, the balance (free and
    locked) of the symbol's base asset. ``average_price`` is None when the venue does not keep one (spot)."""
    symbol: str
    quantity: Decimal
    average_price: Decimal | None = None
    mark: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """A working order as the venue lists it (``Broker.open_orders``). ``client_order_id`` is the id the desk
    sent (our order id) or, for an order placed elsewhere, whatever the other app sent."""
    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    filled_quantity: Decimal
    status: OrderStatus
    created_at: datetime
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    replaces: str | None = None               # the venue's id of the order this one replaced (a modify at Alpaca)
