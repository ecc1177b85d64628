"""Secrets the desk must read back, stored encrypted: a webhook's signing secret.

A digest (as API keys are stored) cannot sign: every delivery's HMAC needs the secret itself. So it is encrypted
with Fernet (AES-128-CBC and HMAC-SHA256, from ``cryptography``) under a key derived by HKDF from Django's
``SECRET_KEY``, so a copy of the database alone does not reveal it. After a ``SECRET_KEY`` rotation the old key, kept
in ``SECRET_KEY_FALLBACKS`` as Django asks, still opens what it sealed."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_INFO = b"tradingdesk alert channel secret"


class SecretUnreadable(Exception):
    """The stored secret was sealed under a key this desk no longer has (``SECRET_KEY`` changed)."""


def _fernet(key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    return MultiFernet([_fernet(k) for k in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]])


def secret_seal(plain: str) -> str:
    return _keys().encrypt(plain.encode()).decode()


def secret_open(sealed: str) -> str:
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken as e:
        raise SecretUnreadable("the channel's secret was sealed under another SECRET_KEY; set a new one") from e
