"""Who may do what on the desk. Roles are Django groups: trader, risk, admin (superusers are admin).

* trader — trades the accounts it is a member of;
* risk — sees every account live, acknowledges alerts, uses the kill switch, sets the trading state;
  never places orders;
* admin — everything."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

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


CHOSEN_ACCOUNT = "desk_account"       # the session's key: the account this person last chose


def desk_account(request: HttpRequest) -> Account:
    """The account the page shows or the form acts on: ``?account=<name>`` (or a posted ``account``) among the
    person's accounts, else the one they last chose (kept in their session, so a link without it stays on that
    account), else their first. A name that is not theirs is refused with 404, never swapped for another account:
    an action must not land on an account other than the one its page showed."""
    accounts = visible_accounts(request.user)
    wanted = request.GET.get("account") or request.POST.get("account")
    if wanted:
        account = accounts.filter(name=wanted).first()
        if account is None:
            raise Http404(account_refusal(request.user, wanted))
        if request.session.get(CHOSEN_ACCOUNT) != account.name:
            request.session[CHOSEN_ACCOUNT] = account.name
        return account
    chosen = request.session.get(CHOSEN_ACCOUNT)
    account = (accounts.filter(name=chosen).first() if chosen else None) or accounts.first()
    if account is None:
        raise PermissionDenied("You are not a member of any account.")
    return account


def account_refusal(user, name: str) -> str:
    """Why ``name`` is not shown: the same words whether it does not exist or is someone else's account."""
    yours = ", ".join(visible_accounts(user).values_list("name", flat=True)[:20]) or "none"
    return (f"No account named “{name[:64]}” is yours to see: it does not exist, or you are not a member of it. "
            f"Your accounts: {yours}.")


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
