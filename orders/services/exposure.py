"""An account's exposure as the pre-trade check needs it: its open positions, and what its working
orders hold back, per symbol and side. Read from the database, and kept per process between orders.

Why a book can be kept: every change to an order or a position is committed together with an outbox
event of its account (``orders/events.py``), and outbox ids grow in commit order (one writer at a time on
SQLite; on PostgreSQL every outbox writer holds ``events.lock_outbox`` until it commits, and so does
the check before it reads). So the account's
newest event id is a version of its exposure: a book remembered at version V is what the database says
for as long as the account's newest event is still V. Checking that costs one indexed ``MAX(id)``
instead of reading every working order, so a new order's check costs the same with ten or ten thousand
orders working.

The book is only remembered once its transaction has committed, and only for a plain order the check has
just folded in (``exposure_remember_order``); anything else simply makes the next check read again.
``DESK_VERIFY_EXPOSURE`` compares every remembered book with a fresh read (on in the test suite).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Sum

from orders.caches import exposure_books
from orders.domain.enums import WORKING_STATUSES
from orders.domain.money import ZERO
from orders.events import lock_outbox
from orders.models import Event, Order, Position


@dataclass(frozen=True)
class Exposure:
    account_id: int
    version: int        # the account's newest outbox event id this book includes (0: none yet)
    positions: Mapping[str, tuple[Decimal, Decimal]]            # symbol -> (signed quantity, average price)
    working: Mapping[tuple[str, str], tuple[Decimal, Decimal]]  # (symbol, side) -> (remaining, its reserved value)

    def position_quantity(self, symbol: str) -> Decimal:
        held = self.positions.get(symbol)
        return held[0] if held else ZERO

    def with_order(self, order: Order, *, version: int) -> Exposure:
        """This book once ``order``, recorded under outbox event ``version``, is in it."""
        working = dict(self.working)
        if order.status in WORKING_STATUSES and not order.reduce_only:
            remaining = order.quantity - order.filled_quantity
            key = (order.symbol, str(order.side))
            quantity, value = working.get(key, (ZERO, ZERO))
            working[key] = (quantity + remaining, value + remaining * order.reserved_price)
        return Exposure(self.account_id, version, self.positions, MappingProxyType(working))


class ExposureMismatch(AssertionError):
    """A remembered book differs from the database (only raised with ``DESK_VERIFY_EXPOSURE``)."""


def exposure_read(account_id: int) -> Exposure:
    """The account's exposure, read from the database now."""
    version = _version(account_id)
    positions = {symbol: (quantity, average) for symbol, quantity, average in
                 Position.objects.filter(account_id=account_id).exclude(quantity=0)
                 .values_list("symbol", "quantity", "average_price")}
    rows = (Order.objects.filter(account_id=account_id, status__in=WORKING_STATUSES, reduce_only=False)
            .values("symbol", "side")
            .annotate(remaining=Sum(F("quantity") - F("filled_quantity")),
                      value=Sum((F("quantity") - F("filled_quantity")) * F("reserved_price")))
            .values_list("symbol", "side", "remaining", "value"))
    working = {(symbol, side): (remaining, value) for symbol, side, remaining, value in rows if remaining}
    return Exposure(account_id, version, MappingProxyType(positions), MappingProxyType(working))


def exposure_current(account_id: int) -> Exposure:
    """The account's exposure as the database has it now: the remembered book while the account's
    outbox has not moved on, else a fresh read. Call it inside the transaction that places the order,
    after taking the account's row lock."""
    lock_outbox()
    book = exposure_books.get(account_id)
    if book is None or book.version != _version(account_id):
        return exposure_read(account_id)
    if settings.DESK_VERIFY_EXPOSURE:
        _verify(book)
    return book


def exposure_remember_order(book: Exposure, order: Order, *, event_id: int) -> None:
    """Once this transaction commits, remember ``book`` with ``order`` in it at version ``event_id``.
    ``book`` must be what ``exposure_current`` gave this transaction, and ``event_id`` the only outbox
    event written for the account since (the order's own)."""
    updated = book.with_order(order, version=event_id)
    transaction.on_commit(lambda: exposure_books.remember(book.account_id, updated, version=event_id))


def exposure_forget() -> None:
    """Drop every remembered book (tests, whose transactions roll back and reuse ids)."""
    exposure_books.clear()


# table and column names come from the model, never from input
_VERSION_SQL = "SELECT MAX(id) FROM {table} WHERE {account} = %s".format(  # noqa: S608
    table=Event._meta.db_table, account=Event._meta.get_field("account").column)


def _version(account_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_VERSION_SQL, [account_id])
        return cursor.fetchone()[0] or 0


def _verify(book: Exposure) -> None:
    fresh = exposure_read(book.account_id)
    if not (_same(fresh.positions, book.positions) and _same(fresh.working, book.working)):
        raise ExposureMismatch(f"account {book.account_id}: remembered exposure at version {book.version} "
                               f"{dict(book.working)} {dict(book.positions)} differs from the database's "
                               f"{dict(fresh.working)} {dict(fresh.positions)}")


def _same(read: Mapping, kept: Mapping) -> bool:
    """Equal up to the float rounding of SQLite's SUM (the remembered book adds exactly): a part in 10^9."""
    if read.keys() != kept.keys():
        return False
    return all(abs(Decimal(a) - Decimal(b)) <= Decimal("1e-9") * max(1, abs(Decimal(b)))
               for key in read for a, b in zip(read[key], kept[key], strict=True))

