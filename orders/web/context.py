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
from orders.models import Account, TradingState, position_wire_id
from orders.services.accounts import account_snapshot, mark_price

FILL_ROWS = 50


def orders_context(account: Account) -> dict:
    """The working and finished orders, as the desk's blotter and the risk view show them."""
    working, finished = selectors.desk_orders(account)
    return {
        "working": [{**wire.order_out(o), "external": o.external} for o in working],
        "finished": [{**wire.order_out(o), "message": o.status_message, "external": o.external} for o in finished],
    }


def risk_context(account: Account) -> dict:
    """What the risk view shows besides the page's own: alert history, states, orders and the venue's books."""
    return {"history": selectors.alert_history(account), "states": TradingState.values, **orders_context(account),
            **venue_context(account)}


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


def blotter_context(account: Account, broker: Broker) -> dict:
    """The blotter: orders, the newest fills, open positions marked to the market, the account's figures."""
    now = timezone.now()
    account = selectors.account_fresh(account)
    positions = [{**wire.position_out(p, mark=mark_price(broker, p.symbol, now=now, fallback=p.average_price),
                                      position_id=position_wire_id(broker.name, p.symbol)), "external": p.external}
                 for p in selectors.open_positions(account)]
    return {
        **orders_context(account),
        "fills": [wire.trade_out(f) for f in selectors.latest_fills(account, FILL_ROWS)],
        "positions": positions,
        "figures": _figures(account, broker, now=now),
        "order_statuses": [status.value for status in OrderStatus],        # the blotter's status filter
    }
