"""API key issue and revocation. Keys are shown once and stored as a SHA-256 digest."""

from __future__ import annotations

from django.utils import timezone

from orders.api.auth import forget_keys, generate_key, hash_key
from orders.domain.enums import ApiRole
from orders.models import Account, ApiKey


def api_key_create(*, account: Account, name: str, role: ApiRole = ApiRole.TRADING,
                   rate_limit_per_minute: int | None = None) -> str:
    raw, prefix = generate_key()
    ApiKey.objects.create(account=account, name=name, prefix=prefix, hashed_key=hash_key(raw), role=role,
                          rate_limit_per_minute=rate_limit_per_minute)
    return raw


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    forget_keys()
