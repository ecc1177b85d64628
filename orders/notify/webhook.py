"""Signed webhooks: one POST of an alert's JSON, with its signature, timestamp and idempotency key.

No retry here: a delivery that fails is tried again by the engine later (``services/channels.py``), with backoff, so
a receiver that is down never holds the engine up longer than one ``timeout``. Redirects are not followed (the
signed body goes to the address the channel names, or nowhere).

Where a webhook may go: ``https://`` anywhere public; ``http://`` only to this machine (``localhost``, ``127.0.0.1``,
``::1``) unless ``allow_http``. Just before each POST its host is resolved: a host named as this machine must be
loopback; any other must be public: a private or loopback address only with ``allow_private`` (a receiver inside
the desk's network), a link-local (``169.254.0.0/16``: a cloud's metadata service), unspecified or multicast one
never. So a channel cannot make the engine call into the desk's own network. What a receiver answers is never
kept: a refusal is recorded as its status code and the code's standard phrase (the risk view shows it)."""

from __future__ import annotations

import ipaddress
import socket
import time
from http import HTTPStatus
from urllib.parse import urlsplit

import requests

from orders.domain.deliveries import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    webhook_signature,
)
from orders.notify import Sent

USER_AGENT = "tradingdesk-alerts/1"
LOOPBACK_NAMES = ("localhost",)


def webhook_headers(*, secret: str, body: bytes, idempotency_key: str, event: str, timestamp: int) -> dict[str, str]:
    stamp = str(timestamp)
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=stamp, body=body),
            IDEMPOTENCY_HEADER: idempotency_key, EVENT_HEADER: event}


def webhook_post(*, url: str, body: bytes, secret: str, idempotency_key: str, event: str,
                 timeout: tuple[float, float], allow_http: bool = False, allow_private: bool = False) -> Sent:
    """POST ``body`` signed now; delivered on a 2xx answer. Errors never quote the URL (it may hold a token) nor
    what the receiver answered. ``unreachable`` when no receiver was reached (no connection, no answer in time)."""
    started = time.perf_counter()
    refused = webhook_url_refusal(url, allow_http=allow_http) or \
        webhook_address_refusal(url, allow_private=allow_private)
    if refused:
        return Sent(False, time.perf_counter() - started, error=refused,
                    unreachable=refused == UNRESOLVED)
    headers = webhook_headers(secret=secret, body=body, idempotency_key=idempotency_key, event=event,
                              timestamp=int(time.time()))
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return Sent(False, time.perf_counter() - started, error=f"no answer within {timeout[1]:g} s",
                    unreachable=True)
    except requests.ConnectionError:
        return Sent(False, time.perf_counter() - started, error="could not connect to the receiver",
                    unreachable=True)
    except requests.RequestException as e:
        return Sent(False, time.perf_counter() - started, error=f"request failed ({type(e).__name__})")
    took = time.perf_counter() - started
    if 200 <= response.status_code < 300:
        return Sent(True, took, http_status=response.status_code)
    return Sent(False, took, http_status=response.status_code, error=status_text(response.status_code))


def status_text(status: int) -> str:
    """``HTTP 503 Service Unavailable``: the code and its standard phrase, never the receiver's own words."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


# -- where a webhook may go -------------------------------------------------------------------------------------

UNRESOLVED = "could not resolve the receiver's host name"


def is_loopback_host(host: str) -> bool:
    """This machine, by name or address: ``localhost``, ``127.0.0.1``, ``::1`` (the receivers tests run)."""
    host = host.strip("[]").rstrip(".").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_url_refusal(url: str, *, allow_http: bool) -> str:
    """Why ``url`` may not be a webhook's address ("" when it may): plain http leaves this machine only when
    ``allow_http``."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and (allow_http or is_loopback_host(parts.hostname or ""))):
        return ""
    return ("refused: a webhook needs an https:// address (http:// only to this machine, unless "
            "DESK_ALERT_WEBHOOK_ALLOW_HTTP)")


def webhook_address_refusal(url: str, *, allow_private: bool) -> str:
    """Resolve the URL's host now; why it may not be posted to ("" when it may). A host named as this machine
    must resolve to loopback only. Any other must resolve to public addresses only; ``allow_private`` admits
    private ones (a receiver inside the desk's network), never link-local (a cloud's metadata service) nor
    unspecified ones."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        return UNRESOLVED
    addresses = [_unmapped(ipaddress.ip_address(info[4][0].split("%", 1)[0])) for info in found]
    if is_loopback_host(host):
        return "" if all(a.is_loopback for a in addresses) else \
            "refused: the receiver's host names this machine but resolves elsewhere"
    if any(a.is_link_local or a.is_unspecified or a.is_multicast for a in addresses):
        return "refused: the receiver's host resolves to a link-local, unspecified or multicast address"
    if not allow_private and not all(a.is_global for a in addresses):
        return ("refused: the receiver's host resolves to a private or loopback address "
                "(DESK_ALERT_WEBHOOK_ALLOW_PRIVATE allows a receiver inside the desk's network)")
    return ""


def _unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``::ffff:169.254.169.254`` is judged as ``169.254.169.254``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address
