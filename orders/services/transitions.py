"""The one writer of an order's status and of an exit leg's status.

Every status an order or a leg takes is written here, by a compare-and-set on the status the caller
read: when another door moved the row first (a fill racing a cancel, two engines, a retry), the write
does nothing and says so, and the caller's copy is left as it was. The table of what may follow what
is ``domain/lifecycle.py``. An order's step is saved with its outbox event in the caller's transaction,
so a client learns of the change exactly when it is committed.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from orders import events
from orders.brokers.types import BrokerAck
from orders.domain.enums import OrderStatus
from orders.domain.lifecycle import LegStatus, OrderStep, leg_sources, order_event
from orders.models import Event, ExitLeg, Order
from orders.rows import insert_row


def order_insert(order: Order, *, ack: BrokerAck | None = None) -> Order:
    """Insert a new order: PENDING, or as the venue answered at once (``ack``). Its event follows with
    ``order_announce`` once everything recorded with it (its legs) is written."""
    order_event(None, ack.status if ack else OrderStatus.PENDING, OrderStep.CREATED)
    if ack is not None:
        order.broker_order_id, order.status = ack.broker_order_id, ack.status
    else:
        order.status = OrderStatus.PENDING
    return insert_row(order)


def order_announce(order: Order, step: OrderStep = OrderStep.CREATED) -> Event:
    """The event of an order just inserted, as it now stands."""
    return events.record_order(order, order_event(None, order.status, step))


def order_transition(order: Order, to: OrderStatus | str, *, step: OrderStep, changed: Iterable[str] = (),
                     message: str | None = None, **values) -> bool:
    """Move ``order`` to ``to`` if it is still in the status it was read in; save the fields named in
    ``changed`` (already set on ``order``) and ``values``; append the step's event. Returns False, writing
    nothing, when the row had moved on. Raises ``IllegalTransition`` for a move the table forbids."""
    before = order.status
    event = order_event(before, to, step)
    now = timezone.now()
    if message is not None:
        values["status_message"] = message[:255]
    row = {name: getattr(order, name) for name in changed}
    row.update(values, status=to, updated_at=now)
    if not Order.objects.filter(pk=order.pk, status=before).update(**row):
        return False
    for name, value in row.items():
        setattr(order, name, value)
    events.record_order(order, event)
    return True


def leg_transition(leg: ExitLeg, to: LegStatus | str, *, only_from: Iterable[str] | None = None, **values) -> bool:
    """Move ``leg`` to ``to`` from any status the table allows (or only from ``only_from``); False when
    the leg was elsewhere, so two doors never both end, place or fail one leg."""
    allowed = set(leg_sources(to))
    if only_from is not None:
        allowed &= set(only_from)
    row = {**values, "status": to, "updated_at": values.get("updated_at") or timezone.now()}
    if not ExitLeg.objects.filter(pk=leg.pk, status__in=allowed).update(**row):
        return False
    for name, value in row.items():
        setattr(leg, name, value)
    return True
