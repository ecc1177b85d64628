"""The order ticket, for every door: its preview (quote, notional, buying-power impact, risk/reward,
pre-trade checks) and its one submission rule, ``ticket_submit``, which the desk's ticket and
``POST /v1/orders`` both call."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db import DatabaseError
from django.utils import timezone

from orders.brokers.base import Broker
from orders.brokers.types import Quote
from orders.domain.enums import OrderType, Side
from orders.domain.errors import DatabaseUnavailable, DeskError, OrderRejected
from orders.domain.money import ZERO, quantize_money
from orders.domain.orders import OrderRequest
from orders.domain.positions import exposure_increase
from orders.domain.pretrade import Breach, pretrade_breaches
from orders.models import Account, Order
from orders.selectors import position_quantity
from orders.services.accounts import account_snapshot
from orders.services.audit import audit_record
from orders.services.limits import limits_read, orders_today
from orders.services.orders import SubmitResult, order_submit

log = logging.getLogger(__name__)


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


class TicketBlocked(OrderRejected):
    """A hard pre-trade limit refuses the order before anything is recorded."""

    def __init__(self, preview: TicketPreview) -> None:
        first = preview.hard_breaches[0]
        super().__init__("ORDER_REJECTED", f"Order rejected: {first.message} (pre-trade limit of the account)",
                         reject_code="PRETRADE_LIMIT", check=first.check, field=first.field,
                         breaches=[{"check": b.check, "field": b.field, "message": b.message}
                                   for b in preview.hard_breaches])
        self.preview = preview


class OverrideRequired(OrderRejected):
    """A person sends an order past a soft warning only with a typed reason."""

    def __init__(self, preview: TicketPreview) -> None:
        super().__init__("ORDER_REJECTED", "Order rejected: type a reason to send an order past the warnings",
                         reject_code="OVERRIDE_REQUIRED", field="override_reason",
                         warnings=[{"check": b.check, "field": b.field, "message": b.message}
                                   for b in preview.soft_breaches])
        self.preview = preview


@dataclass(frozen=True)
class TicketResult:
    order: Order
    created: bool
    preview: TicketPreview | None = None


def ticket_submit(*, account: Account, request: OrderRequest, broker: Broker, actor: str,
                  by_person: bool = False, override_reason: str = "") -> TicketResult:
    """Place a ticket's order, by the one rule every door follows:

    * idempotency: a ``client_order_id`` already used answers with the order it placed (a double click,
      a retried request), or is refused when the order differs (``order_submit``);
    * hard pre-trade limits refuse the order (``PRETRADE_LIMIT``), for a script as for a person;
    * soft warnings stop a person (``by_person``) until a reason is typed, which the audit trail keeps as
      ``order.override``; for a script, which has no one to type it, they stay advice.

    A person's ticket is previewed first, so the refusal can name every breach beside its field; a script's
    order goes straight to ``order_submit``, whose own check of the hard limits then applies.

    Every refusal, whatever the door, is written to the audit trail (``order.rejected``) before it is raised."""
    try:
        return _ticket_place(account=account, request=request, broker=broker, actor=actor, by_person=by_person,
                             override_reason=override_reason)
    except DeskError as e:
        if not isinstance(e, DatabaseUnavailable):     # nowhere to write it
            _audit_refusal(account=account, request=request, actor=actor, error=e)
        raise


def _ticket_place(*, account: Account, request: OrderRequest, broker: Broker, actor: str, by_person: bool,
                  override_reason: str) -> TicketResult:
    preview = None
    if by_person and not _placed_before(account, request):
        preview = ticket_preview(account=account, request=request, broker=broker)
        if preview.hard_breaches:
            raise TicketBlocked(preview)
        if preview.soft_breaches and not override_reason.strip():
            raise OverrideRequired(preview)
    result: SubmitResult = order_submit(account=account, request=request, broker=broker, actor=actor)
    if preview is not None and preview.soft_breaches and result.created:
        audit_record(account_id=account.pk, actor=actor, action="order.override", target=str(result.order.id),
                     reason=override_reason.strip(), breaches=[b.message for b in preview.soft_breaches])
    return TicketResult(result.order, result.created, preview)


def _audit_refusal(*, account: Account, request: OrderRequest, actor: str, error: DeskError) -> None:
    """The refused attempt, in the API's words: its code and message, what was asked, and the check that refused
    it. Only refusals pay for this write; an accepted order's path is unchanged."""
    details = error.details if isinstance(error.details, dict) else {}
    try:
        audit_record(account_id=account.pk, actor=actor, action="order.rejected", target=details.get("order_id", ""),
                     result="rejected", code=error.code, message=error.message, symbol=request.symbol,
                     side=request.side, quantity=request.quantity, order_type=request.order_type,
                     check=details.get("check") or details.get("reject_code") or error.code,
                     client_order_id=request.client_order_id)
    except DatabaseError:
        log.warning("could not audit a refused order of account %s", account.pk, exc_info=True)


def _placed_before(account: Account, request: OrderRequest) -> bool:
    """A resubmitted ticket (its token is the client id) is answered by order_submit, not checked again."""
    return bool(request.client_order_id) and Order.objects.filter(
        account=account, client_order_id=request.client_order_id).exists()
