"""What the desk's and the risk view's templates are given, built from the selectors: the page's first
paint (``web/views.py``) and every push over the desk socket (``realtime/desk.py``) call these same
functions, so a pushed fragment is exactly what a reload would draw."""

from __future__ import annotations

import time
import weakref

from django.conf import settings
from django.utils import timezone

from orders import selectors, wire
from orders.brokers.base import Broker
from orders.domain.enums import OrderStatus
from orders.domain.errors import DeskError
from orders.domain.money import format_decimal
from orders.models import Account, Alert, TradingState, position_wire_id
from orders.services.accounts import account_snapshot, mark_price
from orders.services.channels import channel_overview
from orders.services.flatness import kill_run_latest, kill_run_line
from orders.services.guards import LEVEL_NAMES, guard_view
from orders.services.protection_time import protection_summary
from orders.services.risk import leg_role_name
from orders.templatetags.desk_numbers import tick_decimals

FILL_ROWS = 50


def orders_context(account: Account) -> dict:
    """The working and finished orders, as the desk's blotter and the risk view show them."""
    working, finished = selectors.desk_orders(account)
    return {
        "working": [{**wire.order_out(o), "external": o.external} for o in working],
        "finished": [{**wire.order_out(o), "message": o.status_message, "external": o.external} for o in finished],
    }


def risk_context(account: Account, broker: Broker) -> dict:
    """What the risk view shows besides the page's own: alert cards and history, states, orders and the venue's
    books."""
    return {**alerts_context(account, broker), "states": TradingState.values, **orders_context(account),
            **venue_context(account), **guards_context(account, broker), **kill_run_context(account),
            **protection_context(account), **channels_context(account)}


def channels_context(account: Account) -> dict:
    """The account's alert channels and their newest deliveries, each try's outcome (``services/channels.py``)."""
    return channel_overview(account)


def protection_context(account: Account) -> dict:
    """Time to protection: p50/p99 over the last hour and each open position's wait for its exits."""
    return {"protection": protection_summary(account)}


# every limit in a person's words, one name wherever the risk view shows it (its forms post the column's name)
LIMIT_LABELS = {
    "max_quantity_soft": "Max quantity, soft", "max_quantity_hard": "Max quantity, hard",
    "max_notional_soft": "Max notional, soft", "max_notional_hard": "Max notional, hard",
    "price_band_pct_soft": "Price band %, soft", "price_band_pct_hard": "Price band %, hard",
    "daily_orders_soft": "Orders a day, soft", "daily_orders_hard": "Orders a day, hard",
    "duplicate_window_seconds": "Duplicate window (s)",
    "daily_loss_soft": "Loss soft", "daily_loss_hard": "Loss hard",
    "drawdown_soft": "Drawdown soft", "drawdown_hard": "Drawdown hard",
    "flatten_on_hard_halt": "Flatten on a hard halt (yes/no)",
    "orders_per_second": "Orders per second", "orders_per_minute": "Orders per minute",
    "max_quote_age_seconds": "Max quote age (s)",
    "protection_slow_seconds": "Protection slow after (s)",
    "flatten_unprotected_after_seconds": "Flatten unprotected after (s)",
    "flat_within_seconds": "Flat within (s) after a kill switch",
    "approval_notional_above": "Approval above notional",
    "approval_ttl_minutes": "Approval waits (min)",
}
GUARD_LABELS = {name: LIMIT_LABELS[name] for name in LEVEL_NAMES}        # the loss-guard form's fields, in order


def guards_context(account: Account, broker: Broker, *, posted: dict | None = None) -> dict:
    """The day's loss and drawdown: today's start and peak equity, the loss and drawdown now, the levels, the level
    tripped and the last hard halt's receipt (``services/guards.py``); the levels form holds what was ``posted``
    when it was refused, else the levels in force."""
    guard = guard_view(account=account, broker=broker, now=timezone.now())
    fields = [(name, label, posted.get(name, "") if posted is not None else
               (format_decimal(getattr(guard.levels, name)) if getattr(guard.levels, name) is not None else ""))
              for name, label in GUARD_LABELS.items()]
    return {"guard": guard, "guard_fields": fields}


def kill_run_context(account: Account) -> dict:
    """The account's latest kill switch as the engine follows it to flatness (``services/flatness.py``)."""
    return {"kill_run": kill_run_line(kill_run_latest(account))}


def alerts_context(account: Account, broker: Broker) -> dict:
    """The risk view's alerts: the live ones as cards (``alert_cards``) and the history below them."""
    alerts = selectors.live_alerts(account_id=account.pk)
    return {"live_alerts": alerts, "alert_cards": alert_cards(account, broker, alerts),
            "history": selectors.alert_history(account)}


def alert_cards(account: Account, broker: Broker, alerts: list[Alert]) -> list[dict]:
    """Each live alert with what the risk desk acts on: the position it is about (size, marked to the market,
    P&L), why it was raised (the failing legs' last errors, or the alert's own words) and the exit legs a click
    would re-place."""
    now = timezone.now()
    held = {p.symbol: p for p in selectors.open_positions(account)}
    unplaced: dict = {}
    for leg in selectors.unplaced_legs(entry_ids=[a.entry_id for a in alerts if a.entry_id]):
        unplaced.setdefault(leg.entry_id, []).append(leg)
    cards = []
    for alert in alerts:
        position = held.get(alert.symbol)
        legs = unplaced.get(alert.entry_id, []) if alert.kind == Alert.Kind.POSITION_UNPROTECTED else []
        cards.append({
            "alert": alert,
            "position": wire.position_out(position, position_id=position_wire_id(broker.name, position.symbol),
                                          mark=mark_price(broker, position.symbol, now=now,
                                                          fallback=position.average_price)) if position else None,
            "reasons": [f"{leg_role_name(leg)}: {leg.last_error or 'not placed yet'} ({leg.attempts} attempts)"
                        for leg in legs] or _alert_reasons(alert),
            "replace": " and ".join(leg_role_name(leg) for leg in legs) if position else "",
            "price_decimals": price_decimals(broker, alert.symbol) if position else None,
        })
    return cards


def _alert_reasons(alert: Alert) -> list[str]:
    """Why an alert was raised, from its details when they say (the legs that failed), else its message."""
    failed = alert.details.get("failed_exits") if isinstance(alert.details, dict) else None
    if failed:
        return [f"{exit.get('leg_type', exit.get('type', 'exit'))}: {exit.get('error') or 'not placed'}"
                for exit in failed if isinstance(exit, dict)]
    return [alert.message]


def venue_context(account: Account) -> dict:
    """A real venue's books as the engine last read them: when, whether it worked, the last reconciliation and
    the dead man's switch (None on the paper venue, whose books are the desk's)."""
    return {"venue": selectors.venue_state(account)}


def ticket_symbols(account: Account, broker: Broker) -> list[str]:
    """What the ticket offers: the venue's own list, and always what the account holds or has working (a position
    adopted from the venue may be on no list). A venue that lists nothing (Alpaca's thousands of assets) adds the
    desk's default symbols (``STREAM_DEFAULT_SYMBOLS``) that it knows."""
    listed = broker.symbols() or _defaults_known(broker)
    return sorted(set(listed) | set(selectors.traded_symbols(account)))


# broker -> (when asked, the default symbols it knows)
_DEFAULTS_KNOWN: weakref.WeakKeyDictionary[Broker, tuple[float, list[str]]] = weakref.WeakKeyDictionary()


def _defaults_known(broker: Broker) -> list[str]:
    """The default symbols ``broker`` knows, asked of it once an hour (once a minute while it knows none: it may
    have been unreachable), not on every page and every order."""
    now = time.monotonic()
    asked = _DEFAULTS_KNOWN.get(broker)
    if asked is not None and now - asked[0] < (3600 if asked[1] else 60):
        return asked[1]
    names = (name.strip() for name in settings.STREAM_DEFAULT_SYMBOLS.split(","))
    known = [name for name in names if name and _known(broker, name)]
    _DEFAULTS_KNOWN[broker] = (now, known)
    return known


def _known(broker: Broker, symbol: str) -> bool:
    try:
        broker.instrument(symbol)
    except DeskError:
        return False
    return True


def _figures(account: Account, broker: Broker, *, now) -> dict:
    """The account's figures for the page; when a real venue's account cannot be read, what went wrong instead
    (shown in their place: the desk never shows a number the venue did not give)."""
    try:
        return wire.account_out(account_snapshot(account=account, broker=broker, now=now))
    except DeskError as e:
        return {"unavailable": e.message}


def price_decimals(broker: Broker, symbol: str) -> int | None:
    """The decimals of the instrument's prices (its tick's), for showing an average price; None when the venue
    does not list it (an adopted position of another market)."""
    try:
        return tick_decimals(broker.instrument(symbol).tick_size)
    except DeskError:
        return None


def blotter_context(account: Account, broker: Broker) -> dict:
    """The blotter: orders, the newest fills, open positions marked to the market, the account's figures."""
    now = timezone.now()
    account = selectors.account_fresh(account)
    positions = [{**wire.position_out(p, mark=mark_price(broker, p.symbol, now=now, fallback=p.average_price),
                                      position_id=position_wire_id(broker.name, p.symbol)), "external": p.external,
                  "price_decimals": price_decimals(broker, p.symbol)}
                 for p in selectors.open_positions(account)]
    return {
        **orders_context(account),
        "fills": [wire.trade_out(f) for f in selectors.latest_fills(account, FILL_ROWS)],
        "positions": positions,
        "figures": _figures(account, broker, now=now),
        "order_statuses": [status.value for status in OrderStatus],        # the blotter's status filter
    }
