"""``manage.py alert_channel``: an account's alert channels from the shell.

    alert_channel add ACCOUNT NAME (--webhook URL | --email ADDRESS[,ADDRESS…]) [--kinds KIND,…] [--step N]
    alert_channel list [ACCOUNT]
    alert_channel remove ACCOUNT NAME
    alert_channel test ACCOUNT NAME

The same calls as the admin's (``services/channels.py``: audited, pushed to the risk view). ``add`` prints a
webhook's signing secret once; it is stored encrypted and shown afterwards only by its last characters. ``test``
sends a sample alert through the channel now and says how it went."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from orders.domain.errors import DeskError
from orders.models import Account, AlertChannel
from orders.services.channels import alert_channel_create, alert_channel_remove, alert_channel_test, channel_target

ACTOR = "command:alert_channel"


class Command(BaseCommand):
    help = "Add, list, remove or test an account's alert channels (signed webhooks, e-mail)."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="add a channel; a webhook's secret is printed once")
        add.add_argument("account")
        add.add_argument("name")
        to = add.add_mutually_exclusive_group(required=True)
        to.add_argument("--webhook", metavar="URL", help="POST signed JSON to this http(s) address")
        to.add_argument("--email", metavar="ADDRESSES", help="write to these addresses (comma-separated)")
        add.add_argument("--kinds", default="", help="alert kinds sent here, comma-separated (default: every kind)")
        add.add_argument("--step", type=int, default=0,
                         help="0: when raised (default); 1: when escalated unacknowledged; N: N periods later")
        listing = actions.add_parser("list", help="the channels, of one account or all")
        listing.add_argument("account", nargs="?")
        for name in ("remove", "test"):
            action = actions.add_parser(name, help="remove a channel" if name == "remove" else
                                        "send a sample alert through a channel now")
            action.add_argument("account")
            action.add_argument("name")

    def handle(self, *args, **options):
        try:
            getattr(self, f"_{options['action']}")(options)
        except DeskError as e:
            raise CommandError(e.message) from e

    def _add(self, options) -> None:
        kind = AlertChannel.Kind.WEBHOOK if options["webhook"] else AlertChannel.Kind.EMAIL
        channel, secret = alert_channel_create(
            account=_account(options["account"]), name=options["name"], kind=kind, url=options["webhook"] or "",
            recipients=_items(options["email"] or ""), kinds=[k.upper() for k in _items(options["kinds"])],
            step=options["step"], actor=ACTOR)
        self.stdout.write(f"added {channel.name}: {_line(channel)}")
        if secret:
            self.stdout.write(f"signing secret (shown once, store it with the receiver now): {secret}")

    def _list(self, options) -> None:
        channels = AlertChannel.objects.select_related("account").order_by("account__name", "step", "name")
        if options["account"]:
            channels = channels.filter(account=_account(options["account"]))
        for channel in channels:
            self.stdout.write(f"{channel.account.name}\t{channel.name}\t{_line(channel)}")
        if not channels:
            self.stdout.write("no alert channels")

    def _remove(self, options) -> None:
        channel = _channel(options)
        alert_channel_remove(channel=channel, actor=ACTOR)
        self.stdout.write(f"removed {channel.name}")

    def _test(self, options) -> None:
        channel = _channel(options)
        sent = alert_channel_test(channel=channel, actor=ACTOR)
        status = f" (HTTP {sent.http_status})" if sent.http_status else ""
        if not sent.delivered:
            raise CommandError(f"{channel.name} did not take the test alert{status}: {sent.error}")
        self.stdout.write(f"{channel.name} took the test alert{status} in {sent.duration * 1000:.0f} ms")


def _account(name: str) -> Account:
    account = Account.objects.filter(name=name).first()
    if account is None:
        raise CommandError(f"no account named {name!r}")
    return account


def _channel(options) -> AlertChannel:
    account = _account(options["account"])
    channel = AlertChannel.objects.filter(account=account, name=options["name"]).first()
    if channel is None:
        raise CommandError(f"{account.name} has no alert channel named {options['name']!r}")
    return channel


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _line(channel: AlertChannel) -> str:
    secret = f", secret {channel.secret_hint}" if channel.secret_hint else ""
    state = "disabled" if not channel.enabled else "failing" if channel.failing_since else "ok"
    return (f"{channel.kind} to {channel_target(channel)}{secret}; kinds {', '.join(channel.kinds) or 'all'}; "
            f"step {channel.step}; {state}")
