"""The desk's order ticket: preview (quote, notional, buying-power impact, risk/reward, pre-trade
checks) and submission through the same ``order_submit`` the API uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from orders.brokers.base import Broker
from orders.brokers.types import Quote
from orders.domain.enums import OrderType, Side
from orders.domain.errors import DeskError
from orders.domain.money import ZERO, quantize_money
from orders.domain.orders import OrderRequest
from orders.domain.positions import exposure_increase
from orders.domain.pretrade import Breach, pretrade_breaches
from orders.models import Account, Order
from orders.selectors import position_quantity
from orders.services.accounts import account_snapshot
from orders.services.limits import limits_read, orders_today


@dataclass
class TicketPreview:
    quote: Quote | None
    reference_price: Decimal | None = None
    notional: Decimal | None = None
    buying_power: Decimal | None = None
    buying_power_after: Decimal | None = None
    required: Decimal | None = None
    risk: Decimal | None = None
    reward: Decimal | None = None
    breaches: list[Breach] = field(default_factory=list)
    error: str = ""

    @property
    def hard_breaches(self) -> list[Breach]:
        return [b for b in self.breaches if b.hard]

    @property
    def soft_breaches(self) -> list[Breach]:
        return [b for b in self.breaches if not b.hard]


def ticket_preview(*, account: Account, request: OrderRequest, broker: Broker) -> TicketPreview:
    now = timezone.now()
    try:
        quote = broker.quote(request.symbol, now=now)
        instrument = broker.instrument(request.symbol)
    except DeskError as e:
        return TicketPreview(quote=None, error=e.message)
    touch = quote.ask if request.side is Side.BUY else quote.bid
    price = request.limit_price or request.stop_price or touch
    figures = account_snapshot(account=account, broker=broker, now=now)
    held = position_quantity(account=account, symbol=request.symbol)
    added = exposure_increase(held, side=request.side, quantity=request.quantity)
    required = quantize_money(added * price * instrument.margin_rate, 2)
    preview = TicketPreview(quote=quote, reference_price=price, notional=quantize_money(request.quantity * price, 2),
                            buying_power=quantize_money(figures.buying_power, 2), required=required,
                            buying_power_after=quantize_money(figures.buying_power - required, 2))
    entry = request.entry_price or touch
    if request.stop_loss is not None:
        preview.risk = quantize_money(abs(entry - request.stop_loss) * request.quantity, 2)
    if request.take_profit is not None:
        preview.reward = quantize_money(abs(request.take_profit - entry) * request.quantity, 2)
    preview.breaches = account_breaches(account=account, request=request, market=quote.mid, notional=preview.notional)
    return preview


def account_breaches(*, account: Account, request: OrderRequest, market: Decimal, notional: Decimal) -> list[Breach]:
    limits, window = limits_read(account.pk)
    today = orders_today(account.pk, now=timezone.now())
    duplicate = None
    if window:
        twin = Order.objects.filter(account=account, symbol=request.symbol, side=request.side,
                                    quantity=request.quantity, parent__isnull=True,
                                    created_at__gte=timezone.now() - timedelta(seconds=window)).first()
        duplicate = str(twin.id)[:8] if twin else None
    price = request.limit_price if request.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else (
        request.stop_price)
    return pretrade_breaches(limits=limits, quantity=request.quantity, notional=notional or ZERO, order_price=price,
                             market=market, orders_today=today, duplicate_of=duplicate)
