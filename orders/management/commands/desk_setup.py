"""``manage.py desk_setup``: the demo account, its two logins and an API key. On the paper venue the account is
funded with ``PAPER_STARTING_CASH``; on a real broker it is not funded at all: its figures are the venue's own.

Idempotent: run it on every start. The first time, it creates the logins ``demo`` (trader + admin) and
``risk`` (risk desk) with random passwords and issues an API key, and prints them: once, since passwords
and keys are stored hashed. Later runs leave the logins as they are.

Both logins have supervising roles (``demo`` is an admin), so each also gives a code from an authenticator
app at login (two-factor login, ``services/two_factor.py``): the first login walks its person through
setting one up (a QR code to scan, then ten recovery codes), which the printed text says. No secret of it
is printed here: it is shown only to the person setting it up.

A password can be chosen instead: ``--password`` / ``DESK_DEMO_PASSWORD`` for ``demo``, ``--risk-password``
/ ``DESK_RISK_PASSWORD`` for ``risk`` (or ``…_FILE``, a file holding it). When ``GATEWAY_HOST`` is not
loopback, a login that does not exist yet is created only with a chosen password: a generated one would
be printed to a server's log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from orders.models import Account
from orders.services.keys import api_key_create
from orders.web.roles import RISK, TRADER, ensure_groups, grant
from tradingdesk.env import envsecret

PASSWORD_BYTES = 12          # secrets.token_urlsafe: 16 characters, 96 random bits


@dataclass(frozen=True)
class Login:
    username: str
    superuser: bool
    option: str              # the command-line option that chooses its password ...
    variable: str            # ... and the environment variable
    password: str = ""       # the chosen password; "" when none was chosen (one is generated)
    source: str = ""         # which of the two chose it
    # the fixed password earlier versions gave this login, published in their README: a login still holding
    # it is given a fresh password as if it were new
    published: str = ""

    def choose(self, given: str | None) -> Login:
        """This login with its password chosen by ``given`` (the option's value), else by its variable."""
        if given:
            return replace(self, password=given, source=self.option)
        from_env = envsecret(self.variable)
        return replace(self, password=from_env, source=self.variable) if from_env else self


class Command(BaseCommand):
    help = "Create the demo account, its logins and an API key if they do not exist yet."

    def add_arguments(self, parser):
        parser.add_argument("--account", default="demo")
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", help="password of a new demo login (default: DESK_DEMO_PASSWORD, "
                                               "else generated and shown once)")
        parser.add_argument("--risk-password", help="password of a new risk login (default: DESK_RISK_PASSWORD, "
                                                    "else generated and shown once)")
        parser.add_argument("--new-key", action="store_true", help="issue a fresh API key even if one exists")

    @transaction.atomic
    def handle(self, *args, **options):
        demo = Login(options["username"], True, "--password", "DESK_DEMO_PASSWORD",
                     published="demo-trader-2026").choose(options["password"])
        risk = Login("risk", False, "--risk-password", "DESK_RISK_PASSWORD",
                     published="risk-desk-2026").choose(options["risk_password"])
        # who needs a password: asked once per login (a password check costs a deliberately slow hash)
        needs = {login.username: _needs_password(login) for login in (demo, risk)}
        self._check_passwords([login for login in (demo, risk) if needs[login.username]])
        paper = settings.GATEWAY_PROVIDER == "paper"
        account, created = Account.objects.get_or_create(
            name=options["account"],
            defaults={"broker": settings.GATEWAY_PROVIDER, "cash": settings.PAPER_STARTING_CASH if paper else 0,
                      "is_default": not Account.objects.filter(is_default=True).exists()})
        ensure_groups()
        user, user_note = self._user(demo, needs_password=needs[demo.username])
        grant(user, TRADER, account)
        risk_user, risk_note = self._user(risk, needs_password=needs[risk.username])
        grant(risk_user, RISK, account)
        self.stdout.write(f"account  {account.name} on {account.broker}{_funding(account, created=created)}")
        self.stdout.write(f"login    {user.username} / {user_note}   (trader + admin)")
        self.stdout.write(f"login    {risk_user.username} / {risk_note}   (risk: alerts, kill switch; no orders)")
        self.stdout.write(f"2fa      {user.username} and {risk_user.username} also give a code from an authenticator "
                          "app (any TOTP app): the first login shows a QR code to scan, then 10 one-time recovery "
                          "codes to keep")
        if options["new_key"] or not account.api_keys.filter(revoked_at__isnull=True).exists():
            raw = api_key_create(account=account, name="demo key")
            self.stdout.write(f"api key  {raw}   (shown once; stored hashed)")
        else:
            self.stdout.write("api key  already issued (run with --new-key for another)")

    def _check_passwords(self, new: list[Login]) -> None:
        """For the logins about to get a password: refuse, naming every missing variable at once, to generate
        one off loopback; refuse a chosen password the password validators reject."""
        unchosen = [login for login in new if not login.password]
        if unchosen and not settings.IS_LOOPBACK_DEPLOYMENT:
            raise CommandError(
                f"GATEWAY_HOST={settings.GATEWAY_HOST} is not loopback: refusing to create the login"
                f"{'s' if len(unchosen) > 1 else ''} {' and '.join(login.username for login in unchosen)} with a "
                f"generated password (it would be printed to the server's log). Set "
                f"{' and '.join(login.variable for login in unchosen)} (or pass "
                f"{' / '.join(login.option for login in unchosen)}).")
        for login in new:
            if login.password:
                try:
                    validate_password(login.password)
                except ValidationError as e:
                    raise CommandError(f"{login.source}: {' '.join(e.messages)}") from None

    def _user(self, login: Login, *, needs_password: bool):
        User = get_user_model()
        user = User.objects.filter(username=login.username).first()
        if not needs_password:
            return user, f"existing user, password unchanged (manage.py changepassword {login.username})"
        password = login.password or secrets.token_urlsafe(PASSWORD_BYTES)
        if user is None:
            user = User.objects.create_user(login.username, password=password, is_staff=login.superuser,
                                            is_superuser=login.superuser)
            replaced = ""
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
            replaced = "; replaced the published default"
        if login.password:
            return user, f"password as chosen ({login.source}{replaced})"
        return user, f"password {password}   (shown once{replaced})"


def _funding(account: Account, *, created: bool) -> str:
    if not account.is_paper:
        return " (a real broker: balances, positions and orders are the venue's own, read by the engine)"
    return f" (paper, funded {account.cash} {account.currency})" if created else ""


def _needs_password(login: Login) -> bool:
    """No such login yet, or one still holding the password earlier versions published for it."""
    user = get_user_model().objects.filter(username=login.username).first()
    return user is None or bool(login.published and user.check_password(login.published))
