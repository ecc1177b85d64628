"""Accounts and the people on them: ``account_create`` opens an account on one of the registry's brokers and
``role_grant`` gives a person a role, on an account when one is named. Both refuse what they do not know (a broker,
a person, a role, an account) rather than create it, and both are audited.

A broker's credentials are never given here: they come from the environment, as for every broker
(``brokers/config.py``), so an account on a broker this environment has no credentials for is refused, naming
each variable it needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.module_loading import import_string

from orders.brokers import BROKERS
from orders.domain.errors import Conflict, DeskError, InvalidValue, NotFound
from orders.domain.money import format_decimal
from orders.domain.roles import ROLES, TRADER
from orders.models import Account, DeskMembership
from orders.services.audit import audit_record

# an account's name travels in URLs (?account=) and on every page: letters, digits, dot, dash, underscore
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CURRENCY = re.compile(r"[A-Z]{3,8}")


class BrokerNotConfigured(DeskError):
    code = "BROKER_NOT_CONFIGURED"


def account_create(*, name: str, broker: str, actor: str, currency: str = "USD", timezone: str = "UTC",
                   cash: Decimal | None = None) -> Account:
    """A new account on ``broker`` (a key of ``brokers.BROKERS``). The paper venue's is funded with ``cash``
    (default ``PAPER_STARTING_CASH``); a real venue's figures are its own, so it takes no ``cash``."""
    name = name.strip()
    if not ACCOUNT_NAME.fullmatch(name):
        raise InvalidValue("name", "1-64 letters, digits, '.', '-' or '_', starting with a letter or digit",
                           provided=name)
    _check_broker(broker)
    _check_timezone(timezone)
    if not CURRENCY.fullmatch(currency):
        raise InvalidValue("currency", "3-8 capital letters, e.g. USD or USDT", provided=currency)
    paper = broker == "paper"
    if cash is not None and not paper:
        raise InvalidValue("cash", f"a {broker} account's cash is the venue's own: only a paper account is funded "
                                   "by the desk", provided=cash)
    if cash is not None and cash < 0:
        raise InvalidValue("cash", "must be zero or more", provided=cash)
    funded = (settings.PAPER_STARTING_CASH if cash is None else cash) if paper else Decimal("0")
    with transaction.atomic():
        if Account.objects.filter(name=name).exists():
            raise Conflict(f"an account named {name!r} exists already")
        account = Account.objects.create(name=name, broker=broker, currency=currency, timezone=timezone,
                                         cash=funded)
        audit_record(account_id=account.pk, actor=actor, action="account.create", target=name, broker=broker,
                     currency=currency, timezone=timezone, cash=format_decimal(funded))
    return account


def _check_broker(broker: str) -> None:
    """A broker of the registry whose configuration this environment holds (built once, to see; nothing is sent)."""
    if broker not in BROKERS:
        near = [known for known in BROKERS if known.startswith(broker) or broker.startswith(known)] if broker else []
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise InvalidValue("broker", f"must be one of {', '.join(sorted(BROKERS))}{hint}", provided=broker)
    try:
        import_string(BROKERS[broker])()
    except ImproperlyConfigured as e:
        raise BrokerNotConfigured(f"{broker} is not configured in this environment (its credentials come from the "
                                  f"environment, as for every broker): {e}", details={"broker": broker}) from None


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValue("timezone", "an IANA time zone name, e.g. UTC, America/New_York or Europe/London",
                           provided=name) from None


@dataclass(frozen=True)
class RoleGranted:
    """What ``role_grant`` changed: the role added (False: the person had it), the membership added."""
    username: str
    role: str
    account: str | None
    role_added: bool
    membership_added: bool

    @property
    def changed(self) -> bool:
        return self.role_added or self.membership_added


def role_grant(*, username: str, role: str, actor: str, account_name: str | None = None) -> RoleGranted:
    """Give the person ``username`` the role ``role`` and, with ``account_name``, membership of that account. A
    trader trades only the accounts they are a member of, so a trader's grant names one."""
    if role not in ROLES:
        raise InvalidValue("role", f"must be one of {', '.join(ROLES)}", provided=role)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no person logs in as {username!r}: create the login first (manage.py createsuperuser, "
                       "or the admin's Users page)", details={"username": username})
    account = None
    if account_name is not None and role != TRADER:
        # the risk and admin roles supervise every account (web/roles.py): a grant "on" one would say what it is not
        raise InvalidValue("account", f"the {role} role supervises every account, the kill switch for all included: "
                                      "grant it without --account", provided=account_name)
    if account_name is not None:
        account = Account.objects.filter(name=account_name).first()
        if account is None:
            raise NotFound(f"no account named {account_name!r} (manage.py create_account makes one)",
                           details={"account": account_name})
    elif role == TRADER:
        raise InvalidValue("account", "a trader trades only the accounts they are a member of: name the account",
                           provided=None)
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=role)      # the role itself: one of ROLES, never a new one
        role_added = not user.groups.filter(pk=group.pk).exists()
        user.groups.add(group)
        membership_added = account is not None and DeskMembership.objects.get_or_create(
            user=user, account=account)[1]
        granted = RoleGranted(username=username, role=role, account=account.name if account else None,
                              role_added=role_added, membership_added=membership_added)
        if granted.changed:
            audit_record(account_id=account.pk if account else None, actor=actor, action="user.role_grant",
                         target=username, role=role, account=granted.account, role_added=role_added,
                         membership_added=membership_added)
    return granted
