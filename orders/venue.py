"""Our orders in the broker interface's types (``brokers/types.py``), one mapper per direction.

Brokers never see a model: what they are sent is built here from the order row, and what they report
(``ExecutionReport``, ``BrokerAck``) is applied by the services that own the rows. Each venue's own
mapping (its JSON, its symbols) lives beside its adapter in ``brokers/<venue>/``."""

from __future__ import annotations

from orders.brokers.types import BrokerAck, OrderTicket, WorkingOrder
from orders.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from orders.models import Order


def order_to_ticket(order: Order) -> OrderTicket:
    """What a broker is sent to submit, cancel, modify or look up ``order``."""
    return OrderTicket(order_id=str(order.id), client_order_id=order.client_order_id, symbol=order.symbol,
                       side=Side(order.side), order_type=OrderType(order.order_type), quantity=order.quantity,
                       time_in_force=order.time_in_force, limit_price=order.limit_price, stop_price=order.stop_price,
                       trailing_distance=order.trailing_distance, trailing_type=order.trailing_type,
                       reduce_only=order.reduce_only, post_only=order.post_only,
                       broker_order_id=order.broker_order_id or None)


def order_to_working(order: Order) -> WorkingOrder:
    """What a broker's ``sync`` is told of a working order: enough to match it (paper) or find it (remote)."""
    return WorkingOrder(
        order_id=str(order.id), symbol=order.symbol, side=Side(order.side), order_type=OrderType(order.order_type),
        quantity=order.quantity, filled_quantity=order.filled_quantity,
        time_in_force=TimeInForce(order.time_in_force), created_at=order.created_at, limit_price=order.limit_price,
        stop_price=order.stop_price, trailing_distance=order.trailing_distance, trailing_type=order.trailing_type,
        trail_reference=order.trail_reference, triggered=order.triggered, checked_until=order.checked_until,
        post_only=order.post_only, venue_oco_id=order.venue_oco_id, client_order_id=order.client_order_id,
        broker_order_id=order.broker_order_id or None, status=OrderStatus(order.status))


def replaced_at_venue(order: Order, ack: BrokerAck | None) -> bool:
    """Whether a modify was carried out by the venue as a new order under a new id of its own (Alpaca's replace),
    which the desk then follows; an answer naming our own id or the one already known changes nothing."""
    return ack is not None and bool(ack.broker_order_id) and ack.broker_order_id not in (
        order.broker_order_id, str(order.id))
