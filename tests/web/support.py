"""What the web tests share: people with roles, logged-in clients, and orders, positions and alerts
made through the same services the desk uses."""

from __future__ import annotations

import time
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from orders.domain.enums import OrderType, Side
from orders.models import Account, Order
from orders.services.alerts import alert_raise
from orders.services.orders import order_submit
from orders.services.two_factor import is_second_factor_required
from orders.web.roles import grant
from tests.builders import make_order_request, run_engine

PASSWORD = "correct-horse-battery"


def make_user(username: str, role: str | None = None, account: Account | None = None):
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    if role is not None:
        grant(user, role, account)
    return user


def logged_in(user) -> Client:
    """A client logged in as ``user``, past the second factor when their role asks for one."""
    client = Client()
    client.force_login(user)
    if is_second_factor_required(user):
        second_factor_given(client, user)
    return client


def authenticator(user) -> TOTPDevice:
    """The person's authenticator app: a confirmed TOTP device, made if they have none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=True)


def second_factor_given(client, user) -> TOTPDevice:
    """What giving a code does to a session (django-otp's mark of the device that verified it), as ``force_login``
    stands for the password. The gate still checks the mark on every request."""
    device = authenticator(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return device


def code_now(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the authenticator app shows now (or ``steps_ahead`` 30-second steps from now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def quote(broker, symbol: str = "AAPL"):
    return broker.quote(symbol, now=timezone.now())


def place(account, broker, *, actor: str = "user:tina", **fields) -> Order:
    """An order sent through the service every entry point uses (a BUY 10 AAPL MARKET unless told otherwise)."""
    return order_submit(account=account, request=make_order_request(**fields), broker=broker, actor=actor).order


def resting_limit(account, broker, *, symbol: str = "AAPL", side: Side = Side.BUY, gap: str = "20",
                  **fields) -> Order:
    """A LIMIT order far enough from the market to stay working."""
    q = quote(broker, symbol)
    price = q.bid - Decimal(gap) if side is Side.BUY else q.ask + Decimal(gap)
    return place(account, broker, symbol=symbol, side=side, order_type=OrderType.LIMIT, limit_price=price,
                 **fields)


def open_position(account, broker, clock, *, symbol: str = "AAPL", quantity: str = "10", **fields) -> Order:
    """A MARKET entry the engine has filled."""
    order = place(account, broker, symbol=symbol, quantity=quantity, **fields)
    run_engine(account, broker, seconds=1, clock=clock)
    order.refresh_from_db()
    assert order.status == "FILLED", order.status
    return order


def raise_alert(account, *, symbol: str = "AAPL", key: str = "test-alert"):
    return alert_raise(account_id=account.pk, kind="POSITION_UNPROTECTED", symbol=symbol, dedupe_key=key,
                       message=f"{symbol} position has no stop-loss", details={"symbol": symbol})
