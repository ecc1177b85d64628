"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import socket

import pytest

from tests.fakes.hosts import LOOPBACK


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
