"""The kill switch's proof of flatness (issue #16, point 5).

Pulling the kill switch (``risk.kill_switch``, by a person or by the loss guard) starts a ``KillSwitchRun``
(CHECKING). From then on the engine (``flatness_tick``, every tick) asks the *venue* itself, not the desk's
books, what is still working and held: ``Broker.open_orders`` and ``Broker.positions`` (the paper venue answers
from the desk's rows, a real broker from its own books).

- "Flat" is said in ``domain/flatness.py``: with ``flatten``, no working order at all and no position; without
  it, no working order but the exits protecting the positions that stay (they are kept by design).
- An order that should be gone and is still working (the venue refused its cancel, or lost it) is cancelled
  again, at most once a second (``RETRY_SECONDS``); each retry is audited (``kill_switch.cancel_retry``) and
  counted in ``cancel_retries``.
- Flat: the run is FLAT, with ``flat_at`` and the time to flat in its receipt ("Flat after 1.3 s (2 cancels
  retried)").
- Still not flat ``PreTradeLimits.flat_within_seconds`` (default 10) after the kill switch: NOT_FLAT, with
  ``escalated_at``, a NOT_FLAT alert (stored, pushed, shown until acknowledged), a CRITICAL log line and the
  leftovers listed. The engine goes on retrying; once the venue is flat the run is FLAT and the alert resolved.

Every change of a run is pushed to the risk view as a desk event ``kill_run`` (its "Kill switch" section).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from orders import events
from orders.brokers.base import Broker
from orders.domain import flatness
from orders.domain.enums import WORKING_STATUSES, OrderStatus
from orders.domain.errors import DeskError
from orders.domain.ids import is_uuid
from orders.domain.money import format_decimal
from orders.models import Account, Alert, KillSwitchRun, Order, PreTradeLimits
from orders.services.alerts import alert_raise, alerts_resolve
from orders.services.audit import audit_record
from orders.services.orders import order_cancel
from orders.services.positions import position_close
from orders.venue import order_to_ticket

log = logging.getLogger(__name__)
ACTOR = "engine:kill-switch"
RETRY_SECONDS = 1
DEFAULT_FLAT_WITHIN = Decimal("10")
OPEN = (KillSwitchRun.Status.CHECKING, KillSwitchRun.Status.NOT_FLAT)
_ROLES = {Order.LegRole.STOP_LOSS: "stop-loss", Order.LegRole.TAKE_PROFIT: "take-profit",
          Order.LegRole.CLOSE: "closing order"}


def flat_within(account: Account) -> Decimal:
    value = PreTradeLimits.objects.filter(account=account).values_list("flat_within_seconds", flat=True).first()
    return DEFAULT_FLAT_WITHIN if value is None else value


def flatness_start(*, account: Account, actor: str, flatten: bool, receipt: dict,
                   now: datetime | None = None) -> KillSwitchRun:
    """The kill switch was pulled: follow it until the venue is flat. ``receipt``: what the kill switch did."""
    now = now or timezone.now()
    receipt = {**receipt, "flat_within_seconds": format_decimal(flat_within(account))}
    with transaction.atomic():
        run = KillSwitchRun.objects.create(account=account, actor=actor, flatten=flatten, started_at=now,
                                           updated_at=now, receipt=receipt)
        events.record_desk(account.pk, "kill_run", run_id=str(run.pk), status=run.status)
    return run


@dataclass
class Look:
    """What the venue answered: the orders and positions that keep the account from being flat."""
    orders: list[flatness.OrderLeft] = field(default_factory=list)
    positions: list[flatness.PositionLeft] = field(default_factory=list)
    error: str = ""

    @property
    def flat(self) -> bool:
        return not (self.orders or self.positions or self.error)

    def as_dict(self) -> dict:
        if self.flat:
            return {}
        text = flatness.describe(orders=self.orders, positions=self.positions)
        if self.error:
            text = f"the venue could not be asked: {self.error}" + (f"; last seen {text}" if text else "")
        return {"text": text, "error": self.error,
                "orders": [{"order_id": o.order_id, "symbol": o.symbol, "side": o.side,
                            "quantity": format_decimal(o.quantity), "role": o.role} for o in self.orders],
                "positions": [{"symbol": p.symbol, "quantity": format_decimal(p.quantity)} for p in self.positions]}


def venue_look(*, account: Account, broker: Broker, flatten: bool, now: datetime) -> Look:
    """Ask the venue what is still working and held for ``account``."""
    try:
        listed = broker.open_orders(now=now, account_id=account.pk)
        # always asked: with flatten every position is left over; without, it tells a kept exit (its position is
        # open) from an order to cancel, so an unreadable answer must never pass for "no positions"
        held = broker.positions(now=now, account_id=account.pk)
    except DeskError as e:
        return Look(error=e.message)
    ours = Order.objects.filter(account=account).filter(
        _ids_or_broker_ids([v.client_order_id for v in listed], [v.broker_order_id for v in listed]))
    by_id = {str(o.pk): o for o in ours}
    by_broker_id = {o.broker_order_id: o for o in ours if o.broker_order_id}
    open_symbols = {p.symbol for p in held if p.quantity} if not flatten else set()
    orders = []
    for venue_order in listed:
        order = by_broker_id.get(venue_order.broker_order_id) or by_id.get(venue_order.client_order_id or "")
        orders.append(flatness.OrderLeft(
            order_id=str(order.pk) if order else "", symbol=venue_order.symbol, side=str(venue_order.side),
            quantity=venue_order.quantity - venue_order.filled_quantity,
            kind=_kind(order, open_symbols), role=_ROLES.get(order.leg_role, "entry") if order else "order"))
    positions = [flatness.PositionLeft(symbol=p.symbol, quantity=p.quantity) for p in held] if flatten else []
    left_orders, left_positions = flatness.leftovers(orders=orders, positions=positions, flatten=flatten)
    return Look(orders=left_orders, positions=left_positions)


def _ids_or_broker_ids(ids: list, broker_ids: list) -> Q:
    uuids = [i for i in ids if i and is_uuid(i)]
    return Q(pk__in=uuids) | Q(broker_order_id__in=[b for b in broker_ids if b])



def _kind(order: Order | None, open_symbols: set[str]) -> str:
    if order is None:
        return flatness.OTHER
    if order.leg_role == Order.LegRole.CLOSE:
        return flatness.CLOSING
    if order.exit_leg_id is not None and order.symbol in open_symbols:
        return flatness.PROTECTIVE
    return flatness.OTHER


def flatness_tick(*, accounts: list[Account], broker: Broker, now: datetime) -> None:
    """Follow every kill switch of ``accounts`` not yet proven flat (the engine's tick). A kill switch pulled
    again while the first is followed is followed too: both end FLAT when the venue is."""
    for run in (KillSwitchRun.objects.filter(account__in=accounts, status__in=OPEN).select_related("account")
                .order_by("started_at")):
        if broker.poll_seconds and (now - run.updated_at).total_seconds() < broker.poll_seconds:
            continue                            # a remote venue is asked no more often than it is polled
        try:
            flatness_check(run=run, broker=broker, now=now)
        except (OperationalError, InterfaceError):
            raise
        except Exception:                       # one account's trouble must not stop the engine's tick
            log.exception("engine: the kill switch of %s could not be followed this tick", run.account.name)


def flatness_check(*, run: KillSwitchRun, broker: Broker, now: datetime) -> KillSwitchRun:
    """Ask the venue once; cancel again what should be gone; say FLAT, or NOT_FLAT once the time is up."""
    account = run.account
    look = venue_look(account=account, broker=broker, flatten=run.flatten, now=now)
    retries = closes = 0
    due = [o for o in look.orders if flatness.to_cancel(o, flatten=run.flatten)]
    unclosed = flatness.to_close(orders=look.orders, positions=look.positions)
    last_retry = run.receipt.get("retried_at")
    if (due or unclosed) and (last_retry is None
                              or (now - datetime.fromisoformat(last_retry)).total_seconds() >= RETRY_SECONDS):
        retries = _retry_cancels(account=account, orders=due, broker=broker, run=run)
        closes = _retry_closes(account=account, positions=unclosed, broker=broker, run=run)
        look = venue_look(account=account, broker=broker, flatten=run.flatten, now=now)
    # a run started during this tick (the loss guard pulls the kill switch after the tick's clock was read) is
    # measured from its start, never before it
    now = max(now, run.started_at)
    elapsed = Decimal(str((now - run.started_at).total_seconds())).quantize(Decimal("0.1"))
    receipt = {**run.receipt, "leftovers": look.as_dict().get("text", "")}
    if retries or closes:
        receipt["retried_at"] = now.isoformat()
    if closes:
        receipt["close_retries"] = receipt.get("close_retries", 0) + closes
    fields = {"cancel_retries": run.cancel_retries + retries, "leftovers": look.as_dict(), "updated_at": now}
    if look.flat:
        fields.update(status=KillSwitchRun.Status.FLAT, flat_at=now)
        receipt.update(flat_after_seconds=format_decimal(elapsed), status=KillSwitchRun.Status.FLAT)
    elif run.status == KillSwitchRun.Status.CHECKING and elapsed >= Decimal(receipt.get("flat_within_seconds", 10)):
        fields.update(status=KillSwitchRun.Status.NOT_FLAT, escalated_at=now)
        receipt.update(not_flat_after_seconds=format_decimal(elapsed), status=KillSwitchRun.Status.NOT_FLAT)
    changed = bool(retries or closes) or "status" in fields or fields["leftovers"] != run.leftovers
    receipt["cancel_retries"] = fields["cancel_retries"]
    with transaction.atomic():
        claimed = KillSwitchRun.objects.filter(pk=run.pk, status=run.status).update(receipt=receipt, **fields)
        if not claimed:
            return run
        for name, value in {**fields, "receipt": receipt}.items():
            setattr(run, name, value)
        if changed:
            events.record_desk(account.pk, "kill_run", run_id=str(run.pk), status=run.status)
        if "status" in fields:
            audit_record(account_id=account.pk, actor=ACTOR, action="account.flatness", target=account.name,
                         result="ok" if look.flat else "failed", status=run.status, run=str(run.pk),
                         seconds=format_decimal(elapsed), cancel_retries=run.cancel_retries,
                         leftovers=run.leftovers)
    if "status" in fields:
        _said(run, look=look, elapsed=elapsed)
    return run


def _retry_cancels(*, account: Account, orders: list[flatness.OrderLeft], broker: Broker,
                   run: KillSwitchRun) -> int:
    """Cancel again each order the venue still works. Returns how many cancels were tried."""
    tried = 0
    for left in orders:
        order = Order.objects.filter(pk=left.order_id, account=account).first()
        if order is None:
            continue
        tried += 1
        try:
            if order.status in WORKING_STATUSES:
                order_cancel(account=account, order_id=left.order_id, broker=broker,
                             reason="kill switch: cancel retried", actor=ACTOR)
            else:       # the desk counts it ended, the venue still works it: ask the venue alone
                broker.cancel_order(order_to_ticket(order))
        except DeskError as e:
            audit_record(account_id=account.pk, actor=ACTOR, action="kill_switch.cancel_retry", target=left.order_id,
                         result="failed", run=str(run.pk), symbol=left.symbol, role=left.role, error=e.message)
            log.warning("kill switch %s: cancel of %s %s refused again: %s", run.pk, left.role, left.symbol,
                        e.message)
        else:
            audit_record(account_id=account.pk, actor=ACTOR, action="kill_switch.cancel_retry", target=left.order_id,
                         result="ok", run=str(run.pk), symbol=left.symbol, role=left.role,
                         status=OrderStatus.CANCELLED)
    return tried


def _retry_closes(*, account: Account, positions: list[flatness.PositionLeft], broker: Broker,
                  run: KillSwitchRun) -> int:
    """Send again the closing order of each position the venue still holds with none working (the first was
    refused, or filled only in part). Returns how many closes were tried."""
    for left in positions:
        try:
            order = position_close(account=account, position_id=left.symbol, broker=broker, actor=ACTOR)
        except DeskError as e:
            audit_record(account_id=account.pk, actor=ACTOR, action="kill_switch.close_retry", target=left.symbol,
                         result="failed", run=str(run.pk), error=e.message)
            log.warning("kill switch %s: close of %s refused again: %s", run.pk, left.symbol, e.message)
        else:
            audit_record(account_id=account.pk, actor=ACTOR, action="kill_switch.close_retry", target=left.symbol,
                         result="ok", run=str(run.pk), order=str(order.id))
    return len(positions)


def _said(run: KillSwitchRun, *, look: Look, elapsed: Decimal) -> None:
    """A run that changed status: raise, or resolve, its NOT_FLAT alert."""
    account = run.account
    if run.status == KillSwitchRun.Status.NOT_FLAT:
        text = run.leftovers.get("text", "")
        symbols = sorted({o.symbol for o in look.orders} | {p.symbol for p in look.positions})
        symbol = ",".join(symbols)[:32]
        message = f"NOT FLAT after {format_decimal(elapsed)} s: {text}"
        alert = alert_raise(account_id=account.pk, kind=Alert.Kind.NOT_FLAT, symbol=symbol,
                            dedupe_key=f"not_flat:{run.pk}", message=message,
                            details={"run_id": str(run.pk), "leftovers": run.leftovers,
                                     "cancel_retries": run.cancel_retries, "seconds": format_decimal(elapsed)})
        KillSwitchRun.objects.filter(pk=run.pk).update(receipt={**run.receipt, "alert_symbol": symbol,
                                                                "alert_id": str(alert.pk) if alert else None})
        log.critical("kill switch of %s NOT FLAT after %s s (%s): %s", account.name, format_decimal(elapsed),
                     flatness.retried(run.cancel_retries, closes=run.receipt.get("close_retries", 0)), text)
    elif run.escalated_at is not None:
        alerts_resolve(account_id=account.pk, symbol=run.receipt.get("alert_symbol", ""), kind=Alert.Kind.NOT_FLAT,
                       resolution=f"flat after {format_decimal(elapsed)} s")


def kill_run_latest(account: Account) -> KillSwitchRun | None:
    """The account's newest kill switch, for the risk view."""
    return KillSwitchRun.objects.filter(account=account).order_by("-started_at").first()


def kill_run_line(run: KillSwitchRun | None) -> dict | None:
    """What the risk view says of a run: its status and one line ("Flat after 1.3 s (2 cancels retried)")."""
    if run is None:
        return None
    retried = flatness.retried(run.cancel_retries, closes=run.receipt.get("close_retries", 0))
    if run.status == KillSwitchRun.Status.FLAT:
        line = f"Flat after {run.receipt.get('flat_after_seconds', '?')} s ({retried})"
    elif run.status == KillSwitchRun.Status.NOT_FLAT:
        line = (f"NOT FLAT after {run.receipt.get('not_flat_after_seconds', '?')} s: "
                f"{run.leftovers.get('text', '')} ({retried}; still retrying)")
    else:
        line = "Checking the venue…" + (f" ({retried})" if run.cancel_retries or run.receipt.get("close_retries")
                                         else "")
    return {"run": run, "status": run.status, "line": line, "receipt": run.receipt}
