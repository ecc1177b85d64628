"""The paper venue's books. The paper venue keeps no state of its own (see ``paper.py``): what it holds for an
account is what the desk's database holds, so its ``account_state``, ``positions`` and ``open_orders`` read
those rows. Built by ``paper_factory`` and handed to the broker, so ``paper.py`` itself stays free of Django."""

from __future__ import annotations

from decimal import Decimal

from orders.domain.enums import WORKING_STATUSES, OrderStatus, OrderType, Side, TimeInForce
from orders.models import Account, Order, Position


class PaperLedger:
    def currency_and_cash(self, account_id: int) -> tuple[str, Decimal]:
        currency, cash = Account.objects.values_list("currency", "cash").get(pk=account_id)
        return currency, cash

    def holdings(self, account_id: int) -> list[tuple[str, Decimal, Decimal]]:
        """(symbol, signed quantity, average price) of every open position."""
        return list(Position.objects.filter(account_id=account_id).exclude(quantity=0)
                    .values_list("symbol", "quantity", "average_price"))

    def working(self, account_id: int) -> list[dict]:
        rows = (Order.objects.filter(account_id=account_id, status__in=WORKING_STATUSES)
                .exclude(status=OrderStatus.PENDING).order_by("created_at"))
        return [{"broker_order_id": o.broker_order_id or str(o.id), "client_order_id": str(o.id),
                 "symbol": o.symbol, "side": Side(o.side), "order_type": OrderType(o.order_type),
                 "quantity": o.quantity, "filled_quantity": o.filled_quantity, "status": OrderStatus(o.status),
                 "created_at": o.created_at, "limit_price": o.limit_price, "stop_price": o.stop_price,
                 "time_in_force": TimeInForce(o.time_in_force)} for o in rows]
