"""Who may do what on the desk. Roles are Django groups: trader, risk, admin (superusers are admin).

* trader — trades the accounts it is a member of;
* risk — sees every account live, acknowledges alerts, uses the kill switch, sets the trading state;
  never places orders;
* admin — everything."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from orders.domain.roles import ADMIN, RISK, TRADER
from orders.models import Account, DeskMembership


def roles_of(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    names = set(user.groups.values_list("name", flat=True))
    if user.is_superuser:
        names.add(ADMIN)
    return names


def can_trade(user) -> bool:
    return bool(roles_of(user) & {TRADER, ADMIN})


def can_supervise(user) -> bool:
    return bool(roles_of(user) & {RISK, ADMIN})


def visible_accounts(user):
    if can_supervise(user):
        return Account.objects.order_by("name")
    return Account.objects.filter(members__user=user).order_by("name")


def desk_account(request: HttpRequest) -> Account:
    """The account the page shows: ?account=<name> among the visible ones, else the first."""
    accounts = visible_accounts(request.user)
    wanted = request.GET.get("account") or request.POST.get("account")
    account = accounts.filter(name=wanted).first() if wanted else None
    account = account or accounts.first()
    if account is None:
        raise PermissionDenied("You are not a member of any account.")
    return account


def require(check, message: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied(message)
            return view(request, *args, **kwargs)
        return wrapper
    return decorator


def ensure_groups() -> None:
    for name in (TRADER, RISK, ADMIN):
        Group.objects.get_or_create(name=name)


def grant(user, role: str, account: Account | None = None) -> None:
    ensure_groups()
    user.groups.add(Group.objects.get(name=role))
    if account is not None:
        DeskMembership.objects.get_or_create(user=user, account=account)
