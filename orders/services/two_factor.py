"""Two-factor login: who must give a code after their password, setting up an authenticator app, checking a code
or a one-time recovery code, and making new recovery codes. Each is audited here and counted in
``desk_logins_total`` (orders/metrics.py).

The devices are django-otp's: a ``TOTPDevice`` per person (the authenticator app: RFC 6238 codes of 6 digits
every 30 s, one step either side accepted, a code never accepted twice) and a ``StaticDevice`` holding the
recovery codes, each deleted when it is used. Both slow a guesser down themselves (1, 2, 4 … s after each
wrong code); the web layer also counts every wrong code as a failed login in axes, so five lock the name.

A session has given its second factor when django-otp's session key names a confirmed device of that person
(``session_device``: what ``django_otp.middleware.OTPMiddleware`` checks). The web's gate and the desk socket
both ask ``is_second_factor_missing``.

An authenticator being set up belongs to the session that was shown its secret, for ``SETUP_EXPIRES`` at most:
any other session of that person gets a new secret in its place. Someone who has only the password and opens the
set-up page therefore never learns the secret the real person later confirms."""

from __future__ import annotations

import math
import re
from base64 import b32encode
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.domain.errors import Conflict, DeskError
from orders.domain.roles import ADMIN, RISK
from orders.metrics import LOGINS
from orders.services.audit import audit_record

RECOVERY_CODES = 10
REQUIRED_ROLES = (RISK, ADMIN)
AUTHENTICATOR = "authenticator app"
RECOVERY = "recovery codes"
SETUP_EXPIRES = timedelta(minutes=10)     # an unconfirmed authenticator is deleted after this
SETUP_SESSION_KEY = "two_factor_setup_device"      # the session's own unconfirmed authenticator (its pk)
_TOTP_CODE = re.compile(r"\d{6}")


class CodeRefused(DeskError):
    """A code that did not let the person in: wrong (or already used), or given too soon after wrong ones."""
    status = 401
    code = "CODE_REFUSED"

    def __init__(self, message: str, *, reason: str, wait_seconds: int = 0) -> None:
        super().__init__(message, details={"reason": reason, "wait_seconds": wait_seconds})
        self.reason = reason
        self.wait_seconds = wait_seconds

    @property
    def is_guess(self) -> bool:
        """A code that was checked and was wrong (a throttled one was not checked at all)."""
        return self.reason == "wrong"


class SetupExpired(Conflict):
    """A first code given for a set-up this session no longer holds: it expired, or another session of the person
    opened the set-up page and replaced it. The code was not checked."""
    code = "SETUP_EXPIRED"

    def __init__(self) -> None:
        super().__init__("That set-up had expired or was opened again elsewhere, so its secret no longer works: "
                         "add the new secret below to your authenticator app, then enter the code it shows.")


@dataclass(frozen=True)
class CodeAccepted:
    device: Device
    recovery_codes_left: int | None = None     # set when a recovery code was used


@dataclass(frozen=True)
class SetupDone:
    device: TOTPDevice
    recovery_codes: list[str]                  # shown once


def is_second_factor_required(user) -> bool:
    """The risk and admin roles, superusers and staff always; anyone else once they have set up an authenticator."""
    return user.is_authenticated and (is_required_by_role(user) or has_authenticator(user))


def is_required_by_role(user) -> bool:
    """Superusers, staff (the admin site lets them in) and the risk and admin roles."""
    return user.is_superuser or user.is_staff or user.groups.filter(name__in=REQUIRED_ROLES).exists()


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def session_device(user, session) -> Device | None:
    """The device that gave this session of ``user`` its second factor, if one did and it still counts (it exists,
    is confirmed and is theirs: an authenticator an admin removed no longer does)."""
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    if not persistent_id or not user.is_authenticated:
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk or not device.confirmed:
        return None
    return device


def is_second_factor_missing(user, session) -> bool:
    """Does this session still owe a code before it may see anything? (A verified session is checked first: one
    query for everyone who has given their code.)"""
    return session_device(user, session) is None and is_second_factor_required(user)


def authenticator_pending(*, user, session) -> TOTPDevice:
    """The authenticator this session is setting up: a new secret, unconfirmed until its first code is given. The
    same one is shown again on a reload of this session within ``SETUP_EXPIRES``, so a code scanned before the
    reload still confirms it. Any other session (and this one once it expired) gets a new secret, which replaces
    the person's unconfirmed one: a secret shown to one session is never confirmed through another."""
    with transaction.atomic():
        _setups_expired().delete()
        device = _setup_held(user, session).first()
        if device is None:
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)
            session[SETUP_SESSION_KEY] = device.pk
    return device


def authenticator_secret(device: TOTPDevice) -> str:
    """The secret as a person types it into an app: base32, in groups of four."""
    text = b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def two_factor_setup(*, user, session, code: str, address: str | None = None) -> SetupDone:
    """Confirm the authenticator this session is setting up (``authenticator_pending``) with the first code the app
    shows, and give the person ``RECOVERY_CODES`` new recovery codes, returned to be shown once. Raises
    ``CodeRefused``, or ``SetupExpired`` when the session holds no set-up still open."""
    with transaction.atomic():
        if has_authenticator(user):
            raise Conflict("Two-factor login is already set up for you: make new recovery codes on the security "
                           "page, or ask an admin to remove your authenticator to set up another.")
        device = _setup_held(user, session).select_for_update().first()
        if device is None:
            raise SetupExpired()
        refusal = _refusal(device, _totp_code(code), method="totp")
        if refusal is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            codes = _recovery_codes_replace(user)
            audit_record(account_id=None, actor=_actor(user), action="user.two_factor_setup", target=user.username,
                         address=address, recovery_codes=len(codes))
    _raise_refusal(user, refusal, stage="setup", method="totp", address=address)
    session.pop(SETUP_SESSION_KEY, None)
    LOGINS.inc(outcome="otp_setup")
    return SetupDone(device, codes)


def two_factor_verify(*, user, code: str, address: str | None = None) -> CodeAccepted:
    """Check the code given after the password: six digits are the authenticator's, anything else a recovery code
    (used up when it lets the person in). Raises ``CodeRefused``."""
    totp = _totp_code(code)
    method = "totp" if totp is not None else "recovery"
    with transaction.atomic():
        devices = TOTPDevice.objects if totp is not None else StaticDevice.objects
        device = devices.select_for_update().filter(user=user, confirmed=True).first()
        refusal = _refusal(device, totp if totp is not None else _recovery_code(code), method=method)
        if refusal is None and method == "totp":
            audit_record(account_id=None, actor=_actor(user), action="user.two_factor_ok", target=user.username,
                         address=address, method=method)
            accepted = CodeAccepted(device)
        elif refusal is None:
            left = device.token_set.count()
            audit_record(account_id=None, actor=_actor(user), action="user.recovery_code_used",
                         target=user.username, address=address, recovery_codes_left=left)
            accepted = CodeAccepted(device, recovery_codes_left=left)
    _raise_refusal(user, refusal, stage="login", method=method, address=address)
    LOGINS.inc(outcome="otp_ok" if method == "totp" else "recovery_used")
    return accepted


def recovery_codes_renew(*, user) -> list[str]:
    """Ten new recovery codes in place of the old ones (used or not), returned to be shown once."""
    with transaction.atomic():
        if not has_authenticator(user):
            raise Conflict("Set up two-factor login first: recovery codes go with an authenticator.")
        codes = _recovery_codes_replace(user)
        audit_record(account_id=None, actor=_actor(user), action="user.recovery_codes_renew", target=user.username,
                     recovery_codes=len(codes))
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def _setup_held(user, session):
    """The unconfirmed authenticator ``session`` was shown, if it has not expired (as a query)."""
    held = session.get(SETUP_SESSION_KEY) if session is not None else None
    if not held:
        return TOTPDevice.objects.none()
    return TOTPDevice.objects.filter(pk=held, user=user, confirmed=False,
                                     created_at__gte=timezone.now() - SETUP_EXPIRES)


def _setups_expired():
    """Everyone's unconfirmed authenticators older than ``SETUP_EXPIRES`` (or of unknown age)."""
    return TOTPDevice.objects.filter(Q(created_at__lt=timezone.now() - SETUP_EXPIRES) | Q(created_at=None),
                                     confirmed=False)


def _refusal(device: Device | None, token: str | None, *, method: str) -> CodeRefused | None:
    """None when ``device`` accepts ``token``. A device still slowing down a guesser is not asked at all. The
    device's own record of a wrong code (its back-off) is written either way: the caller commits it."""
    if device is not None:
        allowed, why = device.verify_is_allowed()
        if not allowed:
            wait = max(1, math.ceil((why["locked_until"] - timezone.now()).total_seconds()))
            return CodeRefused(f"Too many wrong codes in a row: wait {wait} s, then try again.", reason="throttled",
                               wait_seconds=wait)
    if device is not None and token is not None and device.verify_token(token):
        return None
    if device is not None and token is None:
        device.throttle_increment()
    if method == "recovery":
        return CodeRefused("That recovery code is not right, or it has been used already.", reason="wrong")
    return CodeRefused("That code is not right: enter the 6 digits your authenticator app shows now.",
                       reason="wrong")


def _raise_refusal(user, refusal: CodeRefused | None, *, stage: str, method: str, address: str | None) -> None:
    """Audit and count a refused code (a throttled one is counted only: it was not checked), then raise it."""
    if refusal is None:
        return
    if refusal.is_guess:
        audit_record(account_id=None, actor=_actor(user), action="user.two_factor_failed", target=user.username,
                     result="refused", address=address, stage=stage, method=method)
    LOGINS.inc(outcome="otp_failed" if refusal.is_guess else "otp_throttled")
    raise refusal


def _recovery_codes_replace(user) -> list[str]:
    """New codes in the person's one recovery-code device, kept (a session it verified stays verified)."""
    device = StaticDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _totp_code(code: str) -> str | None:
    digits = re.sub(r"[\s-]", "", code or "")
    return digits if _TOTP_CODE.fullmatch(digits) else None


def _recovery_code(code: str) -> str | None:
    text = re.sub(r"[\s-]", "", code or "").lower()
    return text if 0 < len(text) <= 16 else None


def _actor(user) -> str:
    return f"user:{user.username}"
