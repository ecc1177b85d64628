"""Every host this process opens a connection to (or looks up), however it does it: ``requests``, ``websockets``,
a thread of the engine. Read from Python's audit events (``socket.getaddrinfo``, ``socket.connect``), so nothing
the desk does can go around it.

    with hosts_contacted() as contacted:
        ...
    assert contacted.hosts() <= {"127.0.0.1"}
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

LOOPBACK = ("127.0.0.1", "localhost", "::1")

_lock = threading.Lock()
_listeners: list[list[tuple[str, str]]] = []
_installed = False


def _hook(event: str, args: tuple) -> None:
    if not _listeners or event not in ("socket.getaddrinfo", "socket.connect"):
        return
    if event == "socket.getaddrinfo":
        host = args[0]
    else:
        address = args[1]
        if not isinstance(address, tuple):          # a Unix socket (PostgreSQL, Redis on a path): not a host
            return
        host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    with _lock:
        for seen in _listeners:
            seen.append((event, str(host)))


class Contacted:
    def __init__(self, seen: list[tuple[str, str]]) -> None:
        self.seen = seen

    def hosts(self) -> set[str]:
        with _lock:
            return {host for _, host in self.seen}


@contextmanager
def hosts_contacted():
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)          # audit hooks cannot be removed: it stays, idle without listeners
            _installed = True
        seen: list[tuple[str, str]] = []
        _listeners.append(seen)
    try:
        yield Contacted(seen)
    finally:
        with _lock:
            _listeners.remove(seen)

