"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext

from tests.e2e.browser import WIDE, People, launched, watched
from tests.fakes.hosts import LOOPBACK


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, one per test module."""
    with launched() as browser:
        yield browser


@pytest.fixture
def contexts(browser) -> Iterator[list[BrowserContext]]:
    """Browser contexts (one per person) closed after the test."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


@pytest.fixture
def people(browser, desk, contexts) -> Iterator[People]:
    """People logged in to the module's ``desk`` at 1440x900, each in a browser of their own; the test fails if
    one of their pages raised a JavaScript error."""
    with watched(People(browser, desk, contexts, viewport=WIDE)) as crowd:
        yield crowd


@pytest.fixture
def dialled(monkeypatch):
    """Every host name this process resolves to connect to; anything but the loopback is refused, so a stray
    connection fails the test instead of leaving the machine."""
    hosts: list[str] = []
    resolve = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        hosts.append(host.decode() if isinstance(host, bytes) else str(host))
        if hosts[-1] not in LOOPBACK:
            raise OSError(f"the test refuses to resolve {hosts[-1]}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    return hosts
