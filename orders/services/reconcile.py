"""The venue's truth (real brokers): its account figures, what it holds and what it has working.

For a broker whose ``venue_ledger`` is set, the venue's books are the truth and the desk's are a copy that must
not drift:

* ``venue_refresh`` (engine, every ``DESK_VENUE_POLL_SECONDS``; and on demand when the stored figures are older
  than ``DESK_VENUE_MAX_AGE_SECONDS``) reads the venue's account and positions. The figures are stored
  (``VenueState``) and pushed when they change; the desk shows them and checks orders against them.
* Positions follow at once: a symbol the venue holds and the desk does not is *adopted* (a position marked
  external, with no exit legs invented) unless an order of the desk is working on it; a quantity that differs
  is ``POSITION_MISMATCH``, raised when the same difference is seen on two reads in a row (a fill the engine
  had not applied yet is gone by the next read) and resolved when the two agree again. ``position_adopt_venue`` is the
  risk desk's one click: the desk takes the venue's quantity.
* ``reconcile_run`` (engine start, after every reconnect, every ``DESK_RECONCILE_MINUTES``) also adopts the
  venue's working orders the desk does not know, asks the venue about the desk's working orders it no longer
  lists (looked up by client id and resolved to their real final state by ``sync``), and writes what it found
  and did to the audit trail.

The paper venue's books are the desk's own (``venue_ledger`` False): nothing here runs for it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders import events, wire
from orders.brokers.base import Broker
from orders.brokers.types import BrokerAck, VenueOrder, VenuePosition
from orders.domain.enums import WORKING_STATUSES, OrderStatus
from orders.domain.errors import DeskError, InvalidValue
from orders.domain.lifecycle import OrderStep
from orders.domain.money import ZERO, format_decimal
from orders.models import Account, Alert, Order, Position, VenueState, position_wire_id
from orders.services import protection
from orders.services.accounts import max_venue_age, venue_state_locked, venue_store_figures
from orders.services.alerts import LIVE, alert_raise, alerts_resolve
from orders.services.audit import audit_record
from orders.services.fills import reports_apply
from orders.services.transitions import order_announce, order_insert, order_transition
from orders.venue import order_to_working

log = logging.getLogger(__name__)

# -- refresh: figures and positions ------------------------------------------------------------------------

@dataclass
class Findings:
    """What one look at the venue found and did (the reconciliation report)."""
    reason: str
    adopted_positions: list[dict] = field(default_factory=list)
    mismatches: list[dict] = field(default_factory=list)
    agreed_again: list[str] = field(default_factory=list)
    adopted_orders: list[dict] = field(default_factory=list)
    missing_orders: list[dict] = field(default_factory=list)
    skipped_orders: list[dict] = field(default_factory=list)
    ended_external: list[str] = field(default_factory=list)
    error: str = ""

    def as_details(self) -> dict:
        return {"reason": self.reason, "adopted_positions": self.adopted_positions, "mismatches": self.mismatches,
                "agreed_again": self.agreed_again, "adopted_orders": self.adopted_orders,
                "missing_orders": self.missing_orders, "skipped_orders": self.skipped_orders,
                "ended_external": self.ended_external, **({"error": self.error} if self.error else {})}

    @property
    def changed_anything(self) -> bool:
        return bool(self.adopted_positions or self.mismatches or self.agreed_again or self.adopted_orders
                    or self.missing_orders or self.ended_external)


def venue_refresh(*, account: Account, broker: Broker, now: datetime | None = None,
                  findings: Findings | None = None) -> Findings:
    """Read the venue's figures and positions; store, push and follow them (see the module's docstring)."""
    now = now or timezone.now()
    findings = findings or Findings(reason="poll")
    if not broker.venue_ledger:
        return findings
    try:
        figures = broker.account_state(now=now, account_id=account.pk)
        held = broker.positions(now=now, account_id=account.pk)
    except DeskError as e:
        log.warning("venue %s: account %s not read: %s", broker.name, account.name, e.message)
        VenueState.objects.get_or_create(account_id=account.pk)
        VenueState.objects.filter(account_id=account.pk).update(read_error=e.message[:255])
        findings.error = e.message
        return findings
    with transaction.atomic():
        state = venue_state_locked(account)
        _follow_positions(state, account=account, broker=broker, held=held, now=now, findings=findings)
        venue_store_figures(state, figures, now=now)
    return findings


def _follow_positions(state: VenueState, *, account: Account, broker: Broker, held: list[VenuePosition],
                      now: datetime, findings: Findings) -> None:
    venue = {p.symbol: p for p in held if p.quantity != 0}
    desk = {p.symbol: p for p in Position.objects.select_for_update().filter(account=account).exclude(quantity=0)}
    # an order (not an exit leg) working on a symbol may have filled at the venue after the engine last synced: a
    # difference there is not adopted at once, and like any other is raised only if the next read still shows it
    trading = set(Order.objects.filter(account=account, status__in=WORKING_STATUSES, exit_leg__isnull=True,
                                       external=False).values_list("symbol", flat=True))
    differing: dict[str, dict] = {}
    for symbol in sorted(venue.keys() | desk.keys()):
        ours = desk[symbol].quantity if symbol in desk else ZERO
        theirs = venue[symbol].quantity if symbol in venue else ZERO
        if ours == theirs:
            if alerts_resolve(account_id=account.pk, symbol=symbol, kind=Alert.Kind.POSITION_MISMATCH,
                              resolution="the desk and the venue agree again"):
                findings.agreed_again.append(symbol)
            continue
        if ours == 0 and symbol not in trading:
            _adopt_position(account, broker, venue[symbol], now=now)
            findings.adopted_positions.append({"symbol": symbol, "quantity": format_decimal(theirs)})
            continue
        seen = state.differing.get(symbol)
        if seen == {"desk": format_decimal(ours), "venue": format_decimal(theirs)}:
            _raise_mismatch(account, broker, symbol, ours=ours, theirs=theirs)
            findings.mismatches.append({"symbol": symbol, "desk": format_decimal(ours),
                                        "venue": format_decimal(theirs)})
        differing[symbol] = {"desk": format_decimal(ours), "venue": format_decimal(theirs)}
    state.differing = differing
    state.holdings = {symbol: {"quantity": format_decimal(p.quantity),
                               **({"mark": format_decimal(p.mark)} if p.mark is not None else {})}
                      for symbol, p in venue.items()}


def _adopt_position(account: Account, broker: Broker, held: VenuePosition, *, now: datetime) -> None:
    """A position the venue holds and the desk did not know: shown as the venue has it, marked external. With no
    average price from the venue (spot), it is taken at the mark, so its P&L runs from when it was found."""
    average = held.average_price or held.mark or ZERO
    position, _ = Position.objects.select_for_update().get_or_create(
        account=account, symbol=held.symbol, defaults={"opened_at": now, "updated_at": now})
    position.quantity, position.average_price, position.external = held.quantity, average, True
    position.opened_at = position.updated_at = now
    position.save()
    events.record_position(account.pk, "POSITION_OPENED", wire.position_out(
        position, mark=held.mark or average, position_id=position_wire_id(broker.name, held.symbol)))
    audit_record(account_id=account.pk, actor="engine:reconcile", action="position.adopt", target=held.symbol,
                 quantity=format_decimal(held.quantity), average_price=format_decimal(average))


def _raise_mismatch(account: Account, broker: Broker, symbol: str, *, ours: Decimal, theirs: Decimal) -> None:
    """Raise ``POSITION_MISMATCH``, or bring the live one up to date when the quantities moved on: the numbers
    the risk desk sees (and adopts) are always the latest read's."""
    message = f"{symbol}: the desk holds {format_decimal(ours)}, {broker.name} holds {format_decimal(theirs)}"
    details = {"symbol": symbol, "desk_quantity": format_decimal(ours), "venue_quantity": format_decimal(theirs),
               "broker": broker.name, "position_id": position_wire_id(broker.name, symbol)}
    dedupe_key = f"mismatch:{account.pk}:{symbol}"
    if alert_raise(account_id=account.pk, kind=Alert.Kind.POSITION_MISMATCH, symbol=symbol, dedupe_key=dedupe_key,
                   message=message, details=details) is not None:
        return
    live = Alert.objects.filter(dedupe_key=dedupe_key, status__in=LIVE).first()
    if live is not None and (live.details.get("desk_quantity"), live.details.get("venue_quantity")) != (
            details["desk_quantity"], details["venue_quantity"]):
        Alert.objects.filter(pk=live.pk).update(message=message, details={**live.details, **details})
        events.record_desk(account.pk, "alert", alert_id=str(live.pk), status=live.status)


def position_adopt_venue(*, account: Account, symbol: str, broker: Broker, actor: str,
                         expected: Decimal | None = None) -> Position:
    """The risk desk's answer to ``POSITION_MISMATCH``: the desk's position takes the venue's quantity, its exit
    legs are fitted to it, and the alert is resolved. Audited with both quantities. Refused when the venue's
    holdings were not read within ``DESK_VENUE_MAX_AGE_SECONDS``, or differ from ``expected`` (the quantity the
    person was shown and confirmed): a number nobody saw is never taken."""
    now = timezone.now()
    with transaction.atomic():
        state = VenueState.objects.select_for_update().filter(account=account).first()
        if state is None or state.read_at is None or now - state.read_at > max_venue_age():
            raise InvalidValue("symbol", f"the venue's positions of {account.name} have not been read lately; "
                                         f"try again once the engine has read them", provided=symbol)
        held = state.holdings.get(symbol) or {}
        theirs = Decimal(held.get("quantity", "0"))
        if expected is not None and theirs != expected:
            raise InvalidValue("venue_quantity", f"the venue now holds {format_decimal(theirs)} {symbol}, not "
                                                 f"{format_decimal(expected)}: look again before adopting",
                               provided=format_decimal(expected))
        position, _ = Position.objects.select_for_update().get_or_create(
            account=account, symbol=symbol, defaults={"opened_at": now, "updated_at": now})
        ours = position.quantity
        position.quantity, position.updated_at = theirs, now
        if theirs == 0:
            position.average_price = ZERO
        elif ours == 0 or not position.average_price:      # taken over at the venue's mark, as an adoption is
            position.average_price = Decimal(held.get("mark") or "0")
            position.opened_at, position.external = now, True
        position.save()
        state.differing.pop(symbol, None)
        state.save(update_fields=["differing"])
        event = "POSITION_CLOSED" if theirs == 0 else "POSITION_OPENED" if ours == 0 else "POSITION_MODIFIED"
        events.record_position(account.pk, event, wire.position_out(
            position, mark=position.average_price, position_id=position_wire_id(broker.name, symbol)))
        audit_record(account_id=account.pk, actor=actor, action="position.adopt_venue", target=symbol,
                     desk_quantity=format_decimal(ours), venue_quantity=format_decimal(theirs))
        alerts_resolve(account_id=account.pk, symbol=symbol, kind=Alert.Kind.POSITION_MISMATCH,
                       resolution=f"{actor} adopted the venue's quantity {format_decimal(theirs)}")
    protection.position_changed(account_id=account.pk, symbol=symbol, broker=broker)   # its legs, at the venue
    return position


# -- the full reconciliation ---------------------------------------------------------------------------------

def reconcile_run(*, account: Account, broker: Broker, now: datetime | None = None, reason: str) -> Findings:
    """Look at everything the venue has for the account and bring the desk in line (module docstring). The
    report goes to the audit trail. ``reason``: start, reconnect, periodic or a person's request."""
    now = now or timezone.now()
    findings = Findings(reason=reason)
    if not broker.venue_ledger:
        return findings
    try:
        listed = broker.open_orders(now=now, account_id=account.pk)
    except DeskError as e:
        findings.error = e.message
        log.warning("reconcile %s: the venue's orders not read: %s", account.name, e.message)
        listed = None
    if listed is not None:
        _follow_orders(account=account, broker=broker, listed=listed, now=now, findings=findings)
    venue_refresh(account=account, broker=broker, now=now, findings=findings)
    with transaction.atomic():
        VenueState.objects.filter(account=account).update(reconciled_at=now)
        events.record_desk(account.pk, "venue")
    audit_record(account_id=account.pk, actor="engine:reconcile", action="reconcile",
                 result="failed" if findings.error else "ok", target=broker.name, **findings.as_details())
    if findings.changed_anything or findings.error:
        log.warning("reconcile %s (%s): %s", account.name, reason, findings.as_details())
    return findings


def _follow_orders(*, account: Account, broker: Broker, listed: list[VenueOrder], now: datetime,
                   findings: Findings) -> None:
    working = list(Order.objects.filter(account=account, status__in=(
        OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_CANCEL)))
    by_id = {str(o.pk): o for o in working}
    by_broker_id = {o.broker_order_id: o for o in working if o.broker_order_id}
    seen: set[str] = set()
    for venue_order in listed:
        ours = (by_broker_id.get(venue_order.broker_order_id) or by_id.get(venue_order.client_order_id or "")
                or by_broker_id.get(venue_order.replaces or ""))      # a modify the venue made a new order of
        if ours is not None:
            seen.add(str(ours.pk))
            if ours.external:
                _follow_external(ours, venue_order)
            continue
        if _known(account, venue_order, set(by_id)):
            continue            # an order of ours the desk already counts as PENDING or finished: sync follows it
        if venue_order.quantity <= 0:
            # an order for an amount of money (Alpaca's notional): it shows in the position once it fills
            findings.skipped_orders.append({"broker_order_id": venue_order.broker_order_id,
                                            "symbol": venue_order.symbol, "why": "no quantity (a notional order)"})
            continue
        try:
            _adopt_order(account, venue_order, now=now)
        except (IntegrityError, ValueError) as e:
            log.error("reconcile %s: venue order %s not adopted: %s", account.name, venue_order.broker_order_id, e)
            findings.skipped_orders.append({"broker_order_id": venue_order.broker_order_id,
                                            "symbol": venue_order.symbol, "why": str(e)[:200]})
            continue
        findings.adopted_orders.append({"broker_order_id": venue_order.broker_order_id, "symbol": venue_order.symbol,
                                        "side": str(venue_order.side), "quantity": format_decimal(venue_order.quantity),
                                        "status": str(venue_order.status)})
    missing = [o for o in working if str(o.pk) not in seen and not o.external]
    if missing:
        findings.missing_orders = [{"order_id": str(o.pk), "symbol": o.symbol, "status": o.status} for o in missing]
        try:
            reports = broker.sync([order_to_working(o) for o in missing], now=now)
        except DeskError as e:
            findings.error = e.message
            return
        reports_apply(reports=reports, broker=broker)
    for order in [o for o in working if o.external and str(o.pk) not in seen]:
        _end_external(order)
        findings.ended_external.append(str(order.pk))


def _known(account: Account, venue_order: VenueOrder, known_ids: set[str]) -> bool:
    orders = Order.objects.filter(account=account)
    for venue_id in (venue_order.broker_order_id, venue_order.replaces):
        if venue_id and orders.filter(broker_order_id=venue_id).exists():
            return True
    client_id = venue_order.client_order_id or ""
    try:
        uuid.UUID(client_id)
    except ValueError:
        return False
    return client_id in known_ids or orders.filter(pk=client_id).exists()


def _adopt_order(account: Account, venue_order: VenueOrder, *, now: datetime) -> None:
    status = venue_order.status if venue_order.status in WORKING_STATUSES else OrderStatus.OPEN
    with transaction.atomic():
        order = Order(account=account, symbol=venue_order.symbol, side=venue_order.side,
                      order_type=venue_order.order_type, quantity=venue_order.quantity,
                      filled_quantity=venue_order.filled_quantity, limit_price=venue_order.limit_price,
                      stop_price=venue_order.stop_price, time_in_force=venue_order.time_in_force,
                      broker_order_id=venue_order.broker_order_id, external=True, submitted_by="venue",
                      status_message="placed outside the desk; adopted from the venue",
                      created_at=venue_order.created_at or now, updated_at=now)
        order_insert(order, ack=BrokerAck(venue_order.broker_order_id, status))
        order_announce(order)
        audit_record(account_id=account.pk, actor="engine:reconcile", action="order.adopt", target=str(order.pk),
                     broker_order_id=venue_order.broker_order_id, symbol=venue_order.symbol,
                     client_order_id=venue_order.client_order_id or "")


def _follow_external(order: Order, venue_order: VenueOrder) -> None:
    """An adopted order still working at the venue: the desk shows how much of it has filled there."""
    if venue_order.filled_quantity != order.filled_quantity and venue_order.filled_quantity < order.quantity:
        order.filled_quantity = venue_order.filled_quantity
        order_transition(order, OrderStatus.PARTIALLY_FILLED if order.filled_quantity > 0 else order.status,
                         step=OrderStep.FILLED, changed=("filled_quantity",))


def _end_external(order: Order) -> None:
    """An adopted order the venue no longer lists has ended there. The venue never had our id for it, so the desk
    does not follow its fills (what it traded shows in the position the venue reports, adopted or raised as a
    mismatch); it is shown ended, saying so."""
    order_transition(order, OrderStatus.CANCELLED, step=OrderStep.ENDED,
                     message="no longer working at the venue (filled or cancelled there: see the position)")
