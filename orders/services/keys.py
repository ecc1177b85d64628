"""API key issue and revocation. Keys are shown once and stored as a SHA-256 digest.

Each is one call whatever the door (``manage.py create_api_key``, ``desk_setup``, the admin): the key row, its
audit record and a desk-only outbox event in one transaction, so an open risk view hears of it with its next
push. A revoked key is forgotten by this process's key cache at once (other processes: within seconds)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from orders import events
from orders.caches import api_keys
from orders.domain.enums import ApiRole
from orders.domain.keys import generate_key, hash_key
from orders.models import Account, ApiKey
from orders.services.audit import audit_record


def api_key_create(*, account: Account, name: str, role: ApiRole = ApiRole.TRADING,
                   rate_limit_per_minute: int | None = None, actor: str = "system") -> str:
    """Issue a key; returns the key itself, which is never stored and cannot be shown again."""
    return api_key_issue(account=account, name=name, role=role, rate_limit_per_minute=rate_limit_per_minute,
                         actor=actor)[1]


def api_key_issue(*, account: Account, name: str, role: ApiRole = ApiRole.TRADING,
                  rate_limit_per_minute: int | None = None, actor: str = "system") -> tuple[ApiKey, str]:
    """``api_key_create`` for callers that need the stored row too (the admin shows it next)."""
    raw, prefix = generate_key()
    with transaction.atomic():
        key = ApiKey.objects.create(account=account, name=name, prefix=prefix, hashed_key=hash_key(raw),
                                    role=role, rate_limit_per_minute=rate_limit_per_minute)
        audit_record(account_id=account.pk, actor=actor, action="api_key.create", target=prefix, name=name,
                     role=role, rate_limit_per_minute=rate_limit_per_minute)
        events.record_desk(account.pk, "api_key", prefix=prefix, change="created")
    return key, raw


def api_key_update(*, key: ApiKey, name: str, role: ApiRole, rate_limit_per_minute: int | None,
                   actor: str = "system") -> ApiKey:
    """Rename a key, change its role or rate limit (the admin's change form)."""
    with transaction.atomic():
        ApiKey.objects.filter(pk=key.pk).update(name=name, role=role, rate_limit_per_minute=rate_limit_per_minute)
        audit_record(account_id=key.account_id, actor=actor, action="api_key.update", target=key.prefix,
                     name=name, role=role, rate_limit_per_minute=rate_limit_per_minute)
        events.record_desk(key.account_id, "api_key", prefix=key.prefix, change="updated")
        transaction.on_commit(api_keys.clear)   # again once committed: a read meanwhile saw the old key
    api_keys.clear()
    key.name, key.role, key.rate_limit_per_minute = name, role, rate_limit_per_minute
    return key


def api_key_revoke(*, key: ApiKey, actor: str = "system") -> bool:
    """Revoke a key; False when it already was."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if revoked:
            audit_record(account_id=key.account_id, actor=actor, action="api_key.revoke", target=key.prefix,
                         name=key.name)
            events.record_desk(key.account_id, "api_key", prefix=key.prefix, change="revoked")
            transaction.on_commit(api_keys.clear)   # again once committed: a read meanwhile saw the old key
    api_keys.clear()
    return bool(revoked)
