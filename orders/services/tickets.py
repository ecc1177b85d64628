"""The order ticket, for every door: its preview (quote, notional, buying-power impact, risk/reward,
pre-trade checks) and its one submission rule, ``ticket_submit``, which the desk's ticket and
``POST /v1/orders`` both call."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from weakref import WeakKeyDictionary

from django.db import DatabaseError, transaction
from django.utils import timezone

from orders.brokers.base import Broker
from orders.brokers.types import AccountContext, Quote
from orders.caches import Remembered
from orders.domain.brackets import LegMode, r_multiple, resolve_bracket, size_by_risk
from orders.domain.enums import OrderType, Side
from orders.domain.errors import DatabaseUnavailable, DeskError, InvalidValue, OrderRejected, Unsupported
from orders.domain.money import ZERO, format_decimal, quantize_money
from orders.domain.orders import OrderRequest, validate_order_request
from orders.domain.positions import exposure_increase
from orders.domain.pretrade import Breach, pretrade_breaches
from orders.domain.quotes import QuoteFigures, quote_figures
from orders.domain.throttle import LIVE_PRICED, age_text, quote_age
from orders.models import Account, ApprovalRequest, Order
from orders.selectors import position_quantity
from orders.services.accounts import account_snapshot
from orders.services.audit import audit_record
from orders.services.limits import approval_notional, limits_read, orders_today
from orders.services.orders import SubmitResult, order_submit
from orders.services.staleness import max_quote_age, quote_too_old

log = logging.getLogger(__name__)


_SHORT_TYPES = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP: "STP", OrderType.STOP_LIMIT: "STP LMT",
                OrderType.TRAILING_STOP: "TRAIL"}


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
    r_multiple: Decimal | None = None
    breaches: list[Breach] = field(default_factory=list)
    error: str = ""
    request: OrderRequest | None = None           # exactly what the ticket sends: its exits resolved, its size set
    anchor: Decimal | None = None                 # the entry price the exits were resolved from
    day_open: Decimal | None = None
    confirm: str = ""                             # the question asked before sending, above the account's notional
    tick: Decimal | None = None                   # the instrument's, for prices shown with its decimals
    quote_age: Decimal | None = None              # seconds since the quote shown was taken
    quote_age_limit: Decimal | None = None        # the account's max_quote_age_seconds (None: no limit)
    quote_stale: bool = False                     # an order priced from it is refused STALE_QUOTE without a reason
    approval: str = ""                            # why it waits for a second person (above the approval notional)

    @property
    def quote_age_text(self) -> str:
        return age_text(self.quote_age) if self.quote_age is not None else ""

    @property
    def hard_breaches(self) -> list[Breach]:
        return [b for b in self.breaches if b.hard]

    @property
    def soft_breaches(self) -> list[Breach]:
        return [b for b in self.breaches if not b.hard]

    @property
    def blocks_submit(self) -> bool:
        """The venue would refuse it (insufficient buying power or margin, ...): the button is disabled. A hard
        pre-trade limit is shown too, and refused on submit with its own message."""
        return any(b.hard and b.code for b in self.breaches)

    @property
    def quote_figures(self) -> QuoteFigures | None:
        if self.quote is None:
            return None
        return quote_figures(bid=self.quote.bid, ask=self.quote.ask, last=self.quote.last, day_open=self.day_open)

    @property
    def label(self) -> str:
        """What the submit button says it will do: "Buy 10 AAPL @ MKT", "Sell 5 AAPL @ 187.5 LMT", "Buy 10 AAPL
        bracket"."""
        request = self.request
        if request is None:
            return "Place order"
        head = f"{request.side.title()} {format_decimal(request.quantity)} {request.symbol}"
        if request.stop_loss is not None or request.take_profit is not None:
            return f"{head} bracket"
        price = {OrderType.LIMIT: request.limit_price, OrderType.STOP: request.stop_price}.get(request.order_type)
        kind = _SHORT_TYPES[request.order_type]
        if price is not None:
            return f"{head} @ {self._price_text(price)} {kind}"
        return f"{head} @ {kind}" if request.order_type is OrderType.MARKET else f"{head} {kind}"

    def _price_text(self, price: Decimal) -> str:
        """With at least the tick's decimals (187.50 on a 0.01 tick), more when the price has them."""
        text = format_decimal(price)
        places = len(text.partition(".")[2])
        if self.tick is not None:
            places = max(places, -min(self.tick.normalize().as_tuple().exponent, 0))
        return f"{price:.{places}f}"

    @property
    def confirm_key(self) -> str:
        """What a confirmation answers for: the side, quantity and symbol asked about."""
        return confirm_key(self.request) if self.request is not None else ""


@dataclass(frozen=True)
class TicketDraft:
    """The ticket as typed: ``request`` carries each exit's typed value, read by its mode, and the quantity is
    replaced by the risk-based size when ``size_by_risk``; ``anchor`` is the entry price the preview the
    person saw resolved against (so the prices sent are the prices shown)."""
    request: OrderRequest
    stop_loss_mode: LegMode = LegMode.PRICE
    take_profit_mode: LegMode = LegMode.PRICE
    size_by_risk: bool = False
    anchor: Decimal | None = None

    @property
    def is_plain(self) -> bool:
        return (self.stop_loss_mode is LegMode.PRICE and self.take_profit_mode is LegMode.PRICE
                and not self.size_by_risk)


def ticket_resolve(*, account: Account, draft: TicketDraft, broker: Broker,
                   quote: Quote | None = None) -> tuple[OrderRequest, Decimal | None]:
    """The order a ticket sends, and the entry price its exits were resolved from (None when nothing needed
    one): exits given as an offset, a percent or in R become prices on the instrument's tick; sizing by risk
    sets the quantity to the account's risk per trade ÷ the stop's distance (``domain/brackets.py``)."""
    request = draft.request
    if draft.is_plain:
        return request, None
    if draft.size_by_risk and request.stop_loss is None:
        raise InvalidValue("stop_loss", "sizing by risk needs a stop-loss")
    if draft.size_by_risk and not account.risk_per_trade:
        raise InvalidValue("quantity", f"account {account.name} sets no risk per trade to size by")
    instrument = broker.instrument(request.symbol)
    entry = request.entry_price or draft.anchor
    if entry is None:
        quote = quote or broker.quote(request.symbol, now=timezone.now())
        entry = quote.ask if request.side is Side.BUY else quote.bid
    prices = resolve_bracket(
        side=request.side, entry=entry, tick=instrument.tick_size,
        stop_loss=(draft.stop_loss_mode, request.stop_loss) if request.stop_loss is not None else None,
        take_profit=(draft.take_profit_mode, request.take_profit) if request.take_profit is not None else None)
    quantity = request.quantity
    if draft.size_by_risk:
        quantity = size_by_risk(risk=account.risk_per_trade, entry=entry, stop_loss=prices.stop_loss,
                                step=instrument.quantity_step)
        if quantity <= 0:
            raise InvalidValue("quantity", f"the risk per trade {format_decimal(account.risk_per_trade)} buys "
                                           f"less than one step {format_decimal(instrument.quantity_step)} with "
                                           f"this stop", provided=format_decimal(quantity))
    if request.entry_price is None and draft.anchor is not None:
        _check_price_held(request, anchor=draft.anchor, stop_loss=prices.stop_loss, broker=broker, quote=quote)
    return replace(request, stop_loss=prices.stop_loss, take_profit=prices.take_profit, quantity=quantity), entry


# how far the market may move against an order priced at the touch between the preview a person saw and the
# submission, before the exits and size resolved from that preview no longer say what the trade risks: a tenth
# of the stop's distance (the risk grows by at most 10 %), or 0.5 % of the price for an order without a stop
PRICE_MOVE_OF_STOP = Decimal("0.1")
PRICE_MOVE_WITHOUT_STOP = Decimal("0.005")


class PriceMoved(OrderRejected):
    """The touch moved against an order sent at market since its preview: its exits and size, resolved from the
    price the person saw, would risk more than shown. Nothing is sent; the ticket shows the new figures."""

    def __init__(self, *, symbol: str, anchor: Decimal, touch: Decimal) -> None:
        super().__init__("ORDER_REJECTED",
                         f"The price of {symbol} moved from {format_decimal(anchor)} to {format_decimal(touch)} "
                         f"since the preview: the exits and size shown no longer hold. Check the new figures and "
                         f"send again", reject_code="PRICE_MOVED", field="quantity",
                         preview_price=format_decimal(anchor), price=format_decimal(touch))


def _check_price_held(request: OrderRequest, *, anchor: Decimal, stop_loss: Decimal | None, broker: Broker,
                      quote: Quote | None) -> None:
    quote = quote or broker.quote(request.symbol, now=timezone.now())
    touch = quote.ask if request.side is Side.BUY else quote.bid
    against = touch - anchor if request.side is Side.BUY else anchor - touch
    allowed = (abs(anchor - stop_loss) * PRICE_MOVE_OF_STOP if stop_loss is not None
               else anchor * PRICE_MOVE_WITHOUT_STOP)
    if against > allowed:
        raise PriceMoved(symbol=request.symbol, anchor=anchor, touch=touch)


def confirm_key(request: OrderRequest) -> str:
    return f"{request.side} {format_decimal(request.quantity)} {request.symbol}"


def ticket_preview(*, account: Account, request: OrderRequest | TicketDraft, broker: Broker,
                   anchor: Decimal | None = None) -> TicketPreview:
    """What the ticket would do, resolved exactly as ``ticket_submit`` will send it: the quote, notional, buying
    power after, margin, risk, reward and R multiple, the account's limits and the venue's own pre-trade check
    (insufficient buying power or margin is a hard breach, in the API's words). ``anchor``: the entry price an
    already resolved ``request`` was resolved from (its figures are measured from it, and it is sent again)."""
    now = timezone.now()
    draft = request if isinstance(request, TicketDraft) else TicketDraft(request)
    try:
        quote = broker.quote(draft.request.symbol, now=now)
        instrument = broker.instrument(draft.request.symbol)
    except DeskError as e:
        return TicketPreview(quote=None, error=e.message)
    # the preview always resolves against the quote it shows; the submission then uses this anchor
    request, resolved_from = ticket_resolve(account=account, draft=replace(draft, anchor=None), broker=broker,
                                            quote=quote)
    anchor = resolved_from or anchor
    validate_order_request(request)
    touch = quote.ask if request.side is Side.BUY else quote.bid
    price = request.limit_price or request.stop_price or touch
    figures = account_snapshot(account=account, broker=broker, now=now)
    held = position_quantity(account=account, symbol=request.symbol)
    added = exposure_increase(held, side=request.side, quantity=request.quantity)
    required = quantize_money(added * price * instrument.margin_rate, 2)
    preview = TicketPreview(quote=quote, reference_price=price, notional=quantize_money(request.quantity * price, 2),
                            buying_power=quantize_money(figures.buying_power, 2), required=required,
                            buying_power_after=quantize_money(figures.buying_power - required, 2),
                            request=request, anchor=anchor, day_open=_day_open(broker, request.symbol, now),
                            tick=instrument.tick_size)
    entry = request.entry_price or anchor or touch
    if request.stop_loss is not None:
        preview.risk = quantize_money(abs(entry - request.stop_loss) * request.quantity, 2)
    if request.take_profit is not None:
        preview.reward = quantize_money(abs(request.take_profit - entry) * request.quantity, 2)
    preview.r_multiple = r_multiple(risk=preview.risk, reward=preview.reward)
    preview.quote_age, preview.quote_age_limit = quote_age(quote.timestamp, now=now), max_quote_age(account.pk)
    preview.quote_stale = (request.order_type in LIVE_PRICED and not request.reduce_only and added > 0
                           and quote_too_old(account_id=account.pk, quote=quote, now=now) is not None)
    preview.breaches = [*_venue_breaches(request=request, broker=broker, now=now, preview=preview,
                                         context=AccountContext(figures=figures, position_quantity=held),
                                         margin_rate=instrument.margin_rate),
                        *account_breaches(account=account, request=request, market=quote.mid,
                                          notional=preview.notional)]
    above = approval_notional(account.pk)
    if above is not None and not request.reduce_only and preview.notional > above:
        preview.approval = (f"≈ {preview.notional:,.2f} {figures.currency} is above {above:,.2f}: sent for a second "
                            "person's approval, placed when approved")
    threshold = account.confirm_notional_above
    if threshold is not None and preview.notional > threshold:
        preview.confirm = (f"Send {request.side} {request.quantity:,f} {request.symbol} ≈ "
                           f"{preview.notional:,.2f} {figures.currency}?")
    return preview


def _venue_breaches(*, request: OrderRequest, broker: Broker, now, preview: TicketPreview, context: AccountContext,
                    margin_rate: Decimal) -> list[Breach]:
    """The venue's own pre-trade check, run before anything is sent, as a hard breach in the API's words; where
    a venue checks buying power only when the order arrives (Alpaca), the desk's figures say it first."""
    try:
        broker.check_order(request, context=context, now=now)
    except (OrderRejected, Unsupported) as e:
        details = {k: v for k, v in (e.details or {}).items() if k != "reject_code"}
        field_name = details.get("field") if details.get("field") in _TICKET_FIELDS else "quantity"
        return [Breach("venue", True, field_name, e.message, code=e.code, details=details)]
    except DeskError:
        return []                        # the venue cannot be asked now: the submission will say so
    if preview.buying_power_after is not None and preview.buying_power_after < 0:
        code = "INSUFFICIENT_BALANCE" if margin_rate >= 1 else "INSUFFICIENT_MARGIN"
        noun = "balance" if margin_rate >= 1 else "margin"
        return [Breach("venue", True, "quantity", f"Insufficient {noun} to place order", code=code,
                       details={"required": format_decimal(preview.required),
                                "available": format_decimal(preview.buying_power),
                                "currency": context.figures.currency})]
    return []


_TICKET_FIELDS = ("quantity", "limit_price", "stop_price", "trailing_distance", "stop_loss", "take_profit")


# a remote venue's day bar, asked once a minute per symbol however fast people type: each preview asking again
# would spend the request budget that placing orders shares
_DAY_OPENS: WeakKeyDictionary[Broker, Remembered[tuple[Decimal | None]]] = WeakKeyDictionary()


def _day_open(broker: Broker, symbol: str, now) -> Decimal | None:
    """The open of the day's bar, what the quote's change is measured from (None when the venue gives none)."""
    kept = None if broker.answers_at_once else _DAY_OPENS.setdefault(broker, Remembered(60.0))
    known = kept.get(symbol) if kept is not None else None
    if known is not None:
        return known[0]
    try:
        bars = broker.bars(symbol, timeframe="1d", seconds=86400, end=now, count=1)
    except DeskError:
        return None
    day_open = bars[-1].open if bars else None
    if kept is not None:
        kept.put(symbol, (day_open,))
    return day_open


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
        breaches = [{"check": b.check, "field": b.field, "message": b.text} for b in preview.hard_breaches]
        if first.code:              # the venue's refusal (insufficient buying power, ...): the API's code and words
            super().__init__(first.code, first.message, **(first.details or {}), breaches=breaches)
        else:
            super().__init__("ORDER_REJECTED", f"Order rejected: {first.message} (pre-trade limit of the account)",
                             reject_code="PRETRADE_LIMIT", check=first.check, field=first.field, breaches=breaches)
        self.preview = preview


class ConfirmRequired(Exception):
    """A person's order above the account's ``confirm_notional_above`` is sent only once confirmed. Not a
    refusal: the ticket asks the question (``preview.confirm``) and sends on the answer."""

    def __init__(self, preview: TicketPreview) -> None:
        super().__init__(preview.confirm)
        self.preview = preview


class ApprovalNeeded(Exception):
    """A person's order above the account's approval notional is not sent: it waits for a second person
    (``services/approvals.py`` queues it, and places it through ``ticket_submit`` once approved). Not a refusal:
    every other check has passed."""

    def __init__(self, preview: TicketPreview) -> None:
        super().__init__(preview.approval)
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


def ticket_submit(*, account: Account, request: OrderRequest | TicketDraft, broker: Broker, actor: str,
                  by_person: bool = False, override_reason: str = "", confirmed: str = "",
                  approval: ApprovalRequest | None = None) -> TicketResult:
    """Place a ticket's order, by the one rule every door follows:

    * idempotency: a ``client_order_id`` already used answers with the order it placed (a double click,
      a retried request), or is refused when the order differs (``order_submit``);
    * hard pre-trade limits refuse the order (``PRETRADE_LIMIT``), for a script as for a person;
    * soft warnings stop a person (``by_person``) until a reason is typed, which the audit trail keeps as
      ``order.override``; for a script, which has no one to type it, they stay advice;
    * a person's order above the account's ``confirm_notional_above`` waits for ``confirmed`` (the preview's
      ``confirm_key``): ``ConfirmRequired`` carries the question;
    * ``order_submit``'s own guards (issue #16) hold for every door: the account's order rate (429
      ``RATE_LIMITED``) and, for an order priced from the market, the quote's age (422 ``STALE_QUOTE``), which
      only a person's typed reason sends past (``order.override``, ``check: STALE_QUOTE``);
    * an entry above the account's ``approval_notional_above`` waits for a second person: a person's ticket
      raises ``ApprovalNeeded`` (``services/approvals.py`` queues it), a script's order is refused
      (``APPROVAL_REQUIRED``). The ``approval`` places it: every check above is run again, the confirmation
      question aside (the approval answers it).

    A person's ticket is previewed first, so the refusal can name every breach beside its field; a script's
    order goes straight to ``order_submit``, whose own check of the hard limits then applies.

    A ticket as typed (a ``TicketDraft``: exits as offsets, percents or R, sizing by risk) is resolved first,
    from the price its preview showed (``ticket_resolve``); it is refused when the market has since moved
    against it (``PriceMoved``).

    Every refusal, whatever the door, is written to the audit trail (``order.rejected``) before it is raised."""
    draft = request if isinstance(request, TicketDraft) else TicketDraft(request)
    try:
        resolved, anchor = ticket_resolve(account=account, draft=draft, broker=broker)
        return _ticket_place(account=account, request=resolved, anchor=anchor, broker=broker, actor=actor,
                             by_person=by_person, override_reason=override_reason, confirmed=confirmed,
                             approval=approval)
    except DeskError as e:
        if not isinstance(e, DatabaseUnavailable):     # nowhere to write it
            _audit_refusal(account=account, request=draft.request, actor=actor, error=e)
        raise


def _ticket_place(*, account: Account, request: OrderRequest, anchor: Decimal | None, broker: Broker, actor: str,
                  by_person: bool, override_reason: str, confirmed: str = "",
                  approval: ApprovalRequest | None = None) -> TicketResult:
    preview = None
    if by_person and not _placed_before(account, request):
        # previewed as resolved: a question or refusal redraws these very figures, and the anchor goes back with
        # the answer, so the order then sent is the one asked about
        preview = ticket_preview(account=account, request=request, broker=broker, anchor=anchor)
        if preview.hard_breaches:
            raise TicketBlocked(preview)
        if preview.soft_breaches and not override_reason.strip():
            raise OverrideRequired(preview)
        if preview.approval and approval is None:
            raise ApprovalNeeded(preview)
        if preview.confirm and confirmed != preview.confirm_key and approval is None:
            raise ConfirmRequired(preview)
    result: SubmitResult = order_submit(account=account, request=request, broker=broker, actor=actor,
                                        override_reason=override_reason if by_person else "", approval=approval)
    if preview is not None and preview.soft_breaches and result.created:
        audit_record(account_id=account.pk, actor=actor, action="order.override", target=str(result.order.id),
                     reason=override_reason.strip(), breaches=[b.message for b in preview.soft_breaches])
    return TicketResult(result.order, result.created, preview)


def _audit_refusal(*, account: Account, request: OrderRequest, actor: str, error: DeskError) -> None:
    """The refused attempt, in the API's words: its code and message, what was asked, and the check that refused
    it. Only refusals pay for this write; an accepted order's path is unchanged."""
    details = error.details if isinstance(error.details, dict) else {}
    try:
        with transaction.atomic():  # a failed write must not spoil the transaction the refusal is answered in
            audit_record(account_id=account.pk, actor=actor, action="order.rejected",
                         target=details.get("order_id", ""), result="rejected", code=error.code,
                         message=error.message, symbol=request.symbol,
                         side=request.side, quantity=request.quantity, order_type=request.order_type,
                         check=details.get("check") or details.get("reject_code") or error.code,
                         client_order_id=request.client_order_id)
    except DatabaseError:
        log.warning("could not audit a refused order of account %s", account.pk, exc_info=True)


def _placed_before(account: Account, request: OrderRequest) -> bool:
    """A resubmitted ticket (its token is the client id) is answered by order_submit, not checked again."""
    return bool(request.client_order_id) and Order.objects.filter(
        account=account, client_order_id=request.client_order_id).exists()


def account_ticket_settings_set(*, account: Account, confirm_notional_above: Decimal | None,
                                risk_per_trade: Decimal | None, actor: str) -> Account:
    """Set what the ticket asks to confirm above and the risk a trade may take, with its audit record."""
    previous = {"confirm_notional_above": account.confirm_notional_above, "risk_per_trade": account.risk_per_trade}
    Account.objects.filter(pk=account.pk).update(confirm_notional_above=confirm_notional_above,
                                                 risk_per_trade=risk_per_trade)
    account.confirm_notional_above, account.risk_per_trade = confirm_notional_above, risk_per_trade
    audit_record(account_id=account.pk, actor=actor, action="account.ticket_settings", target=account.name,
                 previous=previous, confirm_notional_above=confirm_notional_above, risk_per_trade=risk_per_trade)
    return account
