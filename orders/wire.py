"""The protocol's JSON shapes, built once here for REST responses and stream events alike.

Decimals leave as plain strings, timestamps as RFC 3339 UTC with ``Z``, and absent
optional fields are omitted rather than sent as null.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from orders.brokers.types import Bar, Quote
from orders.domain.enums import PositionSide
from orders.domain.money import ZERO, format_decimal


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def dec(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def order_out(order) -> dict[str, Any]:
    return _compact({
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "quantity": dec(order.quantity),
        "filled_quantity": dec(order.filled_quantity),
        "remaining_quantity": dec(order.quantity - order.filled_quantity),
        "limit_price": dec(order.limit_price),
        "stop_price": dec(order.stop_price),
        "stop_loss": dec(order.stop_loss),
        "take_profit": dec(order.take_profit),
        "trailing_distance": dec(order.trailing_distance),
        "trailing_type": order.trailing_type,
        "average_fill_price": dec(order.average_fill_price),
        "status": order.status,
        "reject_reason": order.reject_reason,
        "position_id": order.position_ref,
        "parent_order_id": str(order.parent_id) if order.parent_id else None,
        "reduce_only": order.reduce_only,
        "post_only": order.post_only,
        "hidden": order.hidden,
        "display_quantity": dec(order.display_quantity),
        "oco_group_id": order.oco_group_id,
        "time_in_force": order.time_in_force,
        "correlation_id": str(order.correlation_id) if order.correlation_id else None,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at),
    })


def order_handle_out(order) -> dict[str, Any]:
    return _compact({
        "id": str(order.id),
        "client_order_id": order.client_order_id,
        "correlation_id": str(order.correlation_id) if order.correlation_id else None,
        "status": order.status,
    })


def position_out(position, *, mark: Decimal | None, position_id: str) -> dict[str, Any]:
    price = mark if mark is not None else position.average_price
    qty = position.quantity
    return {
        "id": position_id,
        "symbol": position.symbol,
        "side": PositionSide.LONG if qty >= ZERO else PositionSide.SHORT,
        "quantity": format_decimal(abs(qty)),
        "average_entry_price": format_decimal(position.average_price),
        "current_price": format_decimal(price),
        "unrealized_pnl": format_decimal((price - position.average_price) * qty),
        "realized_pnl": format_decimal(position.realized_pnl),
        "opened_at": ts(position.opened_at),
        "updated_at": ts(position.updated_at),
    }


def trade_out(fill) -> dict[str, Any]:
    return {
        "id": str(fill.id),
        "order_id": str(fill.order_id),
        "symbol": fill.symbol,
        "side": fill.side,
        "quantity": format_decimal(fill.quantity),
        "price": format_decimal(fill.price),
        "commission": format_decimal(fill.commission),
        "commission_currency": fill.commission_currency,
        "is_maker": fill.is_maker,
        "timestamp": ts(fill.timestamp),
    }


def account_out(figures) -> dict[str, Any]:
    return {
        "balance": format_decimal(figures.balance),
        "equity": format_decimal(figures.equity),
        "margin_used": format_decimal(figures.margin_used),
        "margin_available": format_decimal(figures.margin_available),
        "unrealized_pnl": format_decimal(figures.unrealized_pnl),
        "currency": figures.currency,
    }


def quote_out(quote: Quote) -> dict[str, Any]:
    return {
        "symbol": quote.symbol,
        "provider": quote.provider,
        "bid": format_decimal(quote.bid),
        "ask": format_decimal(quote.ask),
        "last": format_decimal(quote.last),
        "bid_size": format_decimal(quote.bid_size),
        "ask_size": format_decimal(quote.ask_size),
        "volume": format_decimal(quote.volume),
        "timestamp": ts(quote.timestamp),
    }


def bar_out(bar: Bar) -> dict[str, Any]:
    return {
        "symbol": bar.symbol,
        "provider": bar.provider,
        "timeframe": bar.timeframe,
        "timestamp": ts(bar.timestamp),
        "open": format_decimal(bar.open),
        "high": format_decimal(bar.high),
        "low": format_decimal(bar.low),
        "close": format_decimal(bar.close),
        "volume": format_decimal(bar.volume),
    }
