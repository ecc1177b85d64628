"""The SQLite writer queue: one of the fast path's three named parts (with ``rows.py``, the hand-compiled
SQL, and ``caches.py``).

What it saves: SQLite lets one writer at a time proceed, and the others sleep and retry on the database's
busy lock. Queueing this process's writers on one lock, in order, is fairer and much faster than that
(bench/bench_orders.py measures the order path with it).

How it stays correct: it only orders writers that the database would serialise anyway. A caller already
inside a transaction holds the database's write lock (the desk's SQLite transactions are IMMEDIATE) and
must not queue behind a thread waiting for that very lock, so it is let through. PostgreSQL has row locks
and is never queued here."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext

from django.db import transaction

_SQLITE_WRITES = threading.RLock()


def serialised_writes() -> AbstractContextManager:
    """Hold around a write transaction: on SQLite, this process's writers take turns."""
    connection = transaction.get_connection()
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        return _SQLITE_WRITES
    return nullcontext()
