"""Signed webhooks: one POST of an alert's JSON, with its signature, timestamp and idempotency key.

No retry here: a delivery that fails is tried again by the engine later (``services/channels.py``), with backoff, so
a receiver that is down never holds the engine up longer than one ``timeout``. Redirects are not followed (the
signed body goes to the address the channel names, or nowhere)."""

from __future__ import annotations

import time

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


def webhook_headers(*, secret: str, body: bytes, idempotency_key: str, event: str, timestamp: int) -> dict[str, str]:
    stamp = str(timestamp)
    return {"Content-Type": "application/json", "User-Agent": USER_AGENT, TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: webhook_signature(secret=secret, timestamp=stamp, body=body),
            IDEMPOTENCY_HEADER: idempotency_key, EVENT_HEADER: event}


def webhook_post(*, url: str, body: bytes, secret: str, idempotency_key: str, event: str,
                 timeout: tuple[float, float]) -> Sent:
    """POST ``body`` signed now; delivered on a 2xx answer. Errors never quote the URL (it may hold a token)."""
    headers = webhook_headers(secret=secret, body=body, idempotency_key=idempotency_key, event=event,
                              timestamp=int(time.time()))
    started = time.perf_counter()
    try:
        response = requests.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return Sent(False, time.perf_counter() - started, error=f"no answer within {timeout[1]:g} s")
    except requests.ConnectionError:
        return Sent(False, time.perf_counter() - started, error="could not connect to the receiver")
    except requests.RequestException as e:
        return Sent(False, time.perf_counter() - started, error=f"request failed ({type(e).__name__})")
    took = time.perf_counter() - started
    if 200 <= response.status_code < 300:
        return Sent(True, took, http_status=response.status_code)
    answer = " ".join(response.text[:120].split())
    return Sent(False, took, http_status=response.status_code,
                error=f"HTTP {response.status_code}" + (f": {answer}" if answer else ""))
