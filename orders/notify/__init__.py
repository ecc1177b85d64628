"""Outbound alert channels: the transports that carry an alert to people away from the desk.

Like ``brokers/``, these speak to the outside world and know nothing of models: ``webhook.py`` posts a signed JSON
body (the one module besides ``brokers/http.py`` that imports ``requests``), ``mail.py`` sends through Django's
e-mail backend (SMTP by default, ``EMAIL_*`` settings), ``sealing.py`` encrypts the webhook secrets kept in the
database. Each transport answers with a ``Sent``; none raises for a receiver that is down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    """How one attempt went: delivered or not, the HTTP status (webhooks), what went wrong, how long it took, and
    whether the receiver could not be reached at all (no connection, no answer in time: the next try to it now would
    most likely wait as long)."""
    delivered: bool
    duration: float
    http_status: int | None = None
    error: str = ""
    unreachable: bool = False
