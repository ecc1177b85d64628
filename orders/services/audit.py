"""The audit trail: who did what to which order, leg, alert or account, when, with what result."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from orders.domain.redact import redact
from orders.models import AuditEvent
from orders.rows import insert_row

ACTOR_LENGTH = AuditEvent._meta.get_field("actor").max_length     # user: and a 150-character username are longer


def audit_record(*, account_id: int | None, actor: str, action: str, target: str = "", result: str = "ok",
                 **details: Any) -> AuditEvent:
    return insert_row(AuditEvent(at=timezone.now(), account_id=account_id, actor=(actor or "system")[:ACTOR_LENGTH],
                                 action=action, target=_plain(str(target))[:100], result=result[:32],
                                 details=redact({k: _plain(v) for k, v in details.items()})))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")  # PostgreSQL's JSON cannot hold NUL; the trail shows it written out
    if value is None or isinstance(value, bool | int):
        return value
    return _plain(str(value))
