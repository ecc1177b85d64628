"""The desk's persistent state. Business rules live in ``domain``; the database backs the
important ones with constraints so no code path can write a contradiction."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from orders.domain.enums import (
    ApiRole,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TrailingType,
)
from orders.domain.lifecycle import LegStatus
from orders.domain.money import format_decimal

PRICE = {"max_digits": 28, "decimal_places": 10}
QTY = {"max_digits": 28, "decimal_places": 10}
MONEY = {"max_digits": 28, "decimal_places": 10}


def _choices(enum) -> list[tuple[str, str]]:
    return [(m.value, m.value) for m in enum]


class TradingState(models.TextChoices):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class Account(models.Model):
    name = models.CharField(max_length=64, unique=True)
    broker = models.CharField(max_length=32, default="paper")
    currency = models.CharField(max_length=8, default="USD")
    cash = models.DecimalField(default=Decimal("0"), **MONEY)
    trading_state = models.CharField(max_length=16, choices=TradingState.choices, default=TradingState.ACTIVE)
    is_default = models.BooleanField(default=False, help_text="The account keyless loopback requests act on.")
    auto_flatten_after_seconds = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Flatten a position automatically if it is still unprotected this long after the alert.")
    confirm_notional_above = models.DecimalField(
        null=True, blank=True, validators=[MinValueValidator(Decimal("0"))], **MONEY,
        help_text="The desk's ticket asks to confirm an order whose notional is above this; empty never asks.")
    risk_per_trade = models.DecimalField(
        null=True, blank=True, validators=[MinValueValidator(Decimal("0.01"))], **MONEY,
        help_text="What one trade may lose at its stop: the ticket's size-by-risk quantity is this ÷ the stop "
                  "distance. Empty turns sizing by risk off.")
    timezone = models.CharField(max_length=64, default="UTC",
                                help_text="The account's trading day starts at midnight here (an IANA name).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="one_default_account"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.broker})"

    @property
    def is_paper(self) -> bool:
        return self.broker == "paper"


class ApiKey(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    role = models.CharField(max_length=16, choices=_choices(ApiRole), default=ApiRole.TRADING)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty uses the desk default, 0 means unlimited.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} (tdk_{self.prefix}_…, {self.role})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Order(models.Model):
    class LegRole(models.TextChoices):
        STOP_LOSS = "stop_loss"
        TAKE_PROFIT = "take_profit"
        CLOSE = "close"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=_choices(Side))
    order_type = models.CharField(max_length=16, choices=_choices(OrderType))
    quantity = models.DecimalField(**QTY)
    filled_quantity = models.DecimalField(default=Decimal("0"), **QTY)
    average_fill_price = models.DecimalField(null=True, blank=True, **PRICE)
    limit_price = models.DecimalField(null=True, blank=True, **PRICE)
    stop_price = models.DecimalField(null=True, blank=True, **PRICE)
    trailing_distance = models.DecimalField(null=True, blank=True, **PRICE)
    trailing_type = models.CharField(max_length=8, choices=_choices(TrailingType), null=True, blank=True)
    stop_loss = models.DecimalField(null=True, blank=True, **PRICE)
    take_profit = models.DecimalField(null=True, blank=True, **PRICE)
    time_in_force = models.CharField(max_length=3, choices=_choices(TimeInForce), default=TimeInForce.GTC)
    status = models.CharField(max_length=16, choices=_choices(OrderStatus), default=OrderStatus.PENDING)
    reject_reason = models.CharField(max_length=32, null=True, blank=True)
    status_message = models.CharField(max_length=255, blank=True, default="")
    client_order_id = models.CharField(max_length=64, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    correlation_id = models.UUIDField(null=True, blank=True)
    broker_order_id = models.CharField(max_length=64, blank=True, default="")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="legs")
    leg_role = models.CharField(max_length=16, choices=LegRole.choices, null=True, blank=True)
    exit_leg = models.ForeignKey("ExitLeg", null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    venue_oco_id = models.CharField(max_length=64, null=True, blank=True,
                                    help_text="Orders the venue itself links one-cancels-other.")
    oco_group_id = models.CharField(max_length=64, null=True, blank=True)
    position_ref = models.CharField(max_length=64, null=True, blank=True)
    reduce_only = models.BooleanField(default=False)
    post_only = models.BooleanField(default=False)
    hidden = models.BooleanField(default=False)
    display_quantity = models.DecimalField(null=True, blank=True, **QTY)
    reserved_price = models.DecimalField(default=Decimal("0"), help_text="Price buying power is held at.", **PRICE)
    # venue state the paper matcher keeps between looks
    trail_reference = models.DecimalField(null=True, blank=True, **PRICE)
    triggered = models.BooleanField(default=False)
    checked_until = models.DateTimeField(null=True, blank=True)
    submitted_by = models.CharField(max_length=100, blank=True, default="")
    external = models.BooleanField(default=False, help_text="Placed outside the desk; adopted from the venue.")
    created_at = models.DateTimeField(db_index=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "client_order_id"], condition=Q(client_order_id__isnull=False),
                                    name="one_order_per_client_order_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=F("quantity")),
                                   name="order_filled_within_quantity"),
            models.CheckConstraint(condition=Q(limit_price__isnull=True) | Q(limit_price__gt=0),
                                   name="order_limit_price_positive"),
            models.CheckConstraint(condition=Q(stop_price__isnull=True) | Q(stop_price__gt=0),
                                   name="order_stop_price_positive"),
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="order_account_status"),
            models.Index(fields=["account", "-created_at"], name="order_account_created"),
            models.Index(fields=["account", "-updated_at"], name="order_account_updated"),   # history pages
            models.Index(fields=["status"], name="order_status"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {format_decimal(self.quantity)} {self.symbol} {self.order_type} [{self.status}]"

    @property
    def remaining_quantity(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        return OrderStatus(self.status).is_terminal


class Fill(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="fills")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="fills")
    broker_fill_id = models.CharField(max_length=100)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=_choices(Side))
    quantity = models.DecimalField(**QTY)
    price = models.DecimalField(**PRICE)
    commission = models.DecimalField(default=Decimal("0"), **MONEY)
    commission_currency = models.CharField(max_length=8, default="USD")
    is_maker = models.BooleanField(default=False)
    timestamp = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-timestamp"]
        constraints = [
            models.UniqueConstraint(fields=["account", "broker_fill_id"], name="one_fill_per_broker_fill_id"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_positive"),
            models.CheckConstraint(condition=Q(price__gt=0), name="fill_price_positive"),
        ]
        indexes = [models.Index(fields=["account", "-timestamp"], name="fill_account_time")]


class Position(models.Model):
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    symbol = models.CharField(max_length=32)
    quantity = models.DecimalField(default=Decimal("0"), **QTY)          # signed
    average_price = models.DecimalField(default=Decimal("0"), **PRICE)
    realized_pnl = models.DecimalField(default=Decimal("0"), **MONEY)
    external = models.BooleanField(default=False, help_text="Opened outside the desk; adopted from the venue.")
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol"], name="one_position_per_symbol")]

    def __str__(self) -> str:
        return f"{self.symbol} {format_decimal(self.quantity)} @ {format_decimal(self.average_price)}"

    @property
    def wire_id(self) -> str:
        return position_wire_id(self.account.broker, self.symbol)


def position_wire_id(broker: str, symbol: str) -> str:
    return f"{broker}-pos-{symbol}"


class EngineLease(models.Model):
    """Which engine process acts for an account. Claimed and renewed by compare-and-set."""
    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="engine_lease")
    owner = models.CharField(max_length=100)
    expires_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()


class AuditEvent(models.Model):
    at = models.DateTimeField(db_index=True)
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit")
    actor = models.CharField(max_length=150, help_text="user:<name>, key:<prefix>, engine or system")
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=100, blank=True, default="")
    result = models.CharField(max_length=32, default="ok")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]


class DeskMembership(models.Model):
    """Which accounts a web user may see."""
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="desk_memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="members")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="one_membership")]


class Event(models.Model):
    """Outbox of everything clients are told about, written in the same transaction as the
    change it describes. Relays read it in id order, so no event is lost because nobody was
    connected and every process sees the same sequence."""
    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32)           # order | position | account | trade | error
    payload = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "id"], name="event_account_id")]


class ExitLeg(models.Model):
    """One protective leg (stop-loss or take-profit) of an entry, from request to its end.

    The leg is the intent; the orders that carry it at the broker point at it
    (``Order.exit_leg``). Every transition is a compare-and-set on ``status``, so the
    engine, a retry and a user action can never both act on one leg.

        PENDING ──entry fills──▶ PLACED ──leg fills──▶ FILLED
           │                       │  ▲
           │                       ▼  │ placed after retries
           │                    RETRYING ──gave up──▶ FAILED (alert raised)
           └──entry cancelled / position closed / sibling filled──▶ CANCELLED
    """

    Status = LegStatus          # its life: domain/lifecycle.py

    class Strategy(models.TextChoices):
        NATIVE_BRACKET = "native_bracket"
        NATIVE_OCO = "native_oco"
        PENDING = "pending"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="exit_legs")
    entry = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="exit_legs")
    symbol = models.CharField(max_length=32)
    role = models.CharField(max_length=16, choices=Order.LegRole.choices)
    side = models.CharField(max_length=4, choices=_choices(Side))
    trigger_price = models.DecimalField(null=True, blank=True, **PRICE)
    trailing_distance = models.DecimalField(null=True, blank=True, **PRICE)
    trailing_type = models.CharField(max_length=8, choices=_choices(TrailingType), null=True, blank=True)
    emulated = models.BooleanField(default=False, help_text="Trailed by the engine rather than the broker.")
    trail_peak = models.DecimalField(null=True, blank=True, **PRICE)
    strategy = models.CharField(max_length=16, choices=Strategy.choices)
    status = models.CharField(max_length=16, choices=[(s.value, s.value.title()) for s in LegStatus],
                              default=LegStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True, default="")
    end_reason = models.CharField(max_length=64, blank=True, default="")
    needed_at = models.DateTimeField(null=True, blank=True,
                                     help_text="when the entry's fill that this leg must cover was recorded")
    acked_at = models.DateTimeField(null=True, blank=True, help_text="when the venue acknowledged the leg's order")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["entry", "role"], name="one_leg_per_role")]
        indexes = [models.Index(fields=["status"], name="exitleg_status"),
                   models.Index(fields=["account", "symbol", "status"], name="exitleg_account_symbol"),
                   # the risk view's time to protection over the last hour
                   models.Index(fields=["account", "needed_at"], name="exitleg_account_needed")]

    def __str__(self) -> str:
        return f"{self.role} of {self.entry_id} [{self.status}]"


class Alert(models.Model):
    """A risk alert that stays on screen until a person acknowledges it."""

    class Kind(models.TextChoices):
        POSITION_UNPROTECTED = "POSITION_UNPROTECTED"
        OCO_DOUBLE_EXIT = "OCO_DOUBLE_EXIT"
        POSITION_MISMATCH = "POSITION_MISMATCH"     # the desk's position differs from the venue's
        PROTECTION_SLOW = "PROTECTION_SLOW"         # a filled position still without its stop after N s
        LOSS_LIMIT = "LOSS_LIMIT"                   # the day's loss or drawdown passed a level
        NOT_FLAT = "NOT_FLAT"                       # the kill switch's account is not flat at the venue in time
        CHANNEL_FAILING = "CHANNEL_FAILING"         # an alert channel (webhook, e-mail) keeps failing to deliver

    class Status(models.TextChoices):
        OPEN = "OPEN"
        ACKNOWLEDGED = "ACKNOWLEDGED"
        RESOLVED = "RESOLVED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="alerts")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    symbol = models.CharField(max_length=32)
    entry = models.ForeignKey(Order, null=True, blank=True, on_delete=models.PROTECT, related_name="alerts")
    dedupe_key = models.CharField(max_length=150)
    message = models.CharField(max_length=255)
    details = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    raised_at = models.DateTimeField()
    escalated_at = models.DateTimeField(null=True, blank=True,
                                        help_text="when it was raised again for going unacknowledged too long")
    acknowledged_by = models.CharField(max_length=150, blank=True, default="")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_comment = models.TextField(blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-raised_at"]
        constraints = [models.UniqueConstraint(fields=["dedupe_key"], condition=~Q(status="RESOLVED"),
                                               name="one_live_alert_per_key")]

    def __str__(self) -> str:
        return f"{self.kind} {self.symbol} [{self.status}]"


class VenueState(models.Model):
    """What a real venue last said of an account (``services/reconcile.py``): its figures, which the desk shows
    and checks orders against, what it holds, the last reconciliation and its dead man's switch."""
    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="venue_state")
    cash = models.DecimalField(null=True, blank=True, **MONEY)
    equity = models.DecimalField(null=True, blank=True, **MONEY)
    buying_power = models.DecimalField(null=True, blank=True, **MONEY)
    margin_used = models.DecimalField(null=True, blank=True, **MONEY)
    margin_available = models.DecimalField(null=True, blank=True, **MONEY)
    unrealized_pnl = models.DecimalField(null=True, blank=True, **MONEY)
    currency = models.CharField(max_length=8, blank=True, default="")
    read_at = models.DateTimeField(null=True, blank=True, help_text="when the venue's figures were last read")
    read_error = models.CharField(max_length=255, blank=True, default="",
                                  help_text="why the last read failed (empty when it worked)")
    holdings = models.JSONField(default=dict, blank=True, help_text="symbol -> quantity the venue held at read_at")
    differing = models.JSONField(default=dict, blank=True,
                                 help_text="symbol -> {desk, venue} seen to differ at the last read, not yet raised")
    reconciled_at = models.DateTimeField(null=True, blank=True)
    deadman_armed_at = models.DateTimeField(null=True, blank=True)
    deadman_seconds = models.PositiveIntegerField(default=0)
    deadman_owner = models.CharField(max_length=100, blank=True, default="")

    def __str__(self) -> str:
        return f"venue state of {self.account}"


class CircuitBreaker(models.Model):
    """A breaker shared by every process: the adapter's (broker outages) and the exit-order one."""
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="breakers")
    name = models.CharField(max_length=16)           # adapter | exit_order
    failures = models.JSONField(default=list)        # ISO timestamps of recent infrastructure failures
    opened_at = models.DateTimeField(null=True, blank=True)
    last_reset_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="one_breaker_per_name")]

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


class PreTradeLimits(models.Model):
    """Per-account pre-trade checks. On the desk's ticket a soft breach warns and needs a typed reason to go
    ahead; a hard breach blocks there and on ``/v1`` (``services/limits.py``). Empty means no limit."""
    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="limits")
    max_quantity_soft = models.DecimalField(null=True, blank=True, **QTY)
    max_quantity_hard = models.DecimalField(null=True, blank=True, **QTY)
    max_notional_soft = models.DecimalField(null=True, blank=True, **MONEY)
    max_notional_hard = models.DecimalField(null=True, blank=True, **MONEY)
    price_band_pct_soft = models.DecimalField(null=True, blank=True, max_digits=8, decimal_places=4)
    price_band_pct_hard = models.DecimalField(null=True, blank=True, max_digits=8, decimal_places=4)
    daily_orders_soft = models.PositiveIntegerField(null=True, blank=True)
    daily_orders_hard = models.PositiveIntegerField(null=True, blank=True)
    duplicate_window_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Warn about an order equal to one sent this many seconds before.")
    # automatic guards (services/guards.py): the day's loss and drawdown, the order rate, the quote's age
    daily_loss_soft = models.DecimalField(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
                                          **MONEY, help_text="Realised + unrealised loss since the day began: "
                                                             "REDUCING past this.")
    daily_loss_hard = models.DecimalField(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
                                          **MONEY, help_text="… HALTED past this.")
    drawdown_soft = models.DecimalField(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
                                        **MONEY, help_text="Fall from the day's peak equity: REDUCING past this.")
    drawdown_hard = models.DecimalField(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))],
                                        **MONEY, help_text="… HALTED past this.")
    flatten_on_hard_halt = models.BooleanField(
        default=False, help_text="A hard loss or drawdown halt also flattens every position at market.")
    orders_per_second = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="New orders a second; more get 429.")
    orders_per_minute = models.PositiveIntegerField(null=True, blank=True,
                                                    help_text="New orders a minute; more get 429.")
    max_quote_age_seconds = models.DecimalField(
        null=True, blank=True, max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0"))],
        help_text="MARKET and STOP orders are refused STALE_QUOTE on a quote older than this.")
    protection_slow_seconds = models.DecimalField(
        default=Decimal("2"), max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0"))],
        help_text="PROTECTION_SLOW is raised for a filled position still without its exits after this.")
    flatten_unprotected_after_seconds = models.DecimalField(
        null=True, blank=True, max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0"))],
        help_text="Flatten a filled position still without its exits after this; empty never does.")
    flat_within_seconds = models.DecimalField(
        default=Decimal("10"), max_digits=8, decimal_places=3, validators=[MinValueValidator(Decimal("0"))],
        help_text="The kill switch escalates (NOT_FLAT) when the venue is not flat after this.")
    # four-eyes approvals (services/approvals.py)
    approval_notional_above = models.DecimalField(
        null=True, blank=True, validators=[MinValueValidator(Decimal("0"))], **MONEY,
        help_text="A person's order whose notional is above this waits for a second person's approval; "
                  "empty never asks.")
    approval_ttl_minutes = models.PositiveIntegerField(
        default=15, validators=[MinValueValidator(1), MaxValueValidator(24 * 60)],
        help_text="A request for approval expires when no second person has decided it within this (at most "
                  "24 hours).")

    class Meta:
        verbose_name = "pre-trade limits"
        verbose_name_plural = "pre-trade limits"

    def __str__(self) -> str:
        return f"limits of {self.account}"


class AccountDay(models.Model):
    """One trading day of an account (``services/guards.py``): the equity it began with and its peak, what the
    loss and the drawdown are measured from, and the highest guard level it tripped."""

    class Level(models.TextChoices):
        NONE = ""
        SOFT = "SOFT"
        HARD = "HARD"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="days")
    day = models.DateField(help_text="the date in the account's timezone")
    start_equity = models.DecimalField(**MONEY)
    peak_equity = models.DecimalField(**MONEY)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.NONE, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "day"], name="one_day_per_account")]

    def __str__(self) -> str:
        return f"{self.account} on {self.day}"


class KillSwitchRun(models.Model):
    """A kill switch pulled, followed until the venue reports the account flat (``services/flatness.py``):
    when it was, the cancels retried on the way, and what was left over if it never was."""

    class Status(models.TextChoices):
        CHECKING = "CHECKING"
        FLAT = "FLAT"
        NOT_FLAT = "NOT_FLAT"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="kill_runs")
    actor = models.CharField(max_length=150)
    flatten = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CHECKING)
    started_at = models.DateTimeField()
    flat_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    cancel_retries = models.PositiveIntegerField(default=0)
    leftovers = models.JSONField(default=dict, blank=True, help_text="what the venue still had at the last check")
    receipt = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "status"], name="killrun_account_status")]

    def __str__(self) -> str:
        return f"kill switch of {self.account} at {self.started_at} [{self.status}]"


class AlertChannel(models.Model):
    """Where an account's alerts go besides the desk (``services/channels.py``): a signed webhook or e-mail.

    ``kinds`` routes (empty: every kind); ``step`` says when: 0 as the alert is raised, 1 when it is escalated for
    going unacknowledged, N at N escalation periods. A webhook's secret signs every delivery, so it must be read
    back: it is stored encrypted (``notify/sealing.py``), shown once when the channel is made, then only its hint."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook"
        EMAIL = "email"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=500, blank=True, default="", help_text="where a webhook posts")
    recipients = models.JSONField(default=list, blank=True, help_text="the addresses an e-mail channel writes to")
    secret_encrypted = models.TextField(blank=True, default="", editable=False)
    secret_hint = models.CharField(max_length=16, blank=True, default="", editable=False,
                                   help_text="the secret's last characters, to tell secrets apart")
    kinds = models.JSONField(default=list, blank=True, help_text="the alert kinds sent here; empty sends every kind")
    step = models.PositiveSmallIntegerField(default=0, help_text="0: when raised; 1: when escalated unacknowledged; "
                                                                 "N: N escalation periods after it was raised")
    enabled = models.BooleanField(default=True)
    failing_since = models.DateTimeField(null=True, blank=True, help_text="its first failure since it last delivered")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["step", "name"]
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="one_channel_name_per_account"),
            models.CheckConstraint(condition=Q(kind="email") | ~Q(url=""), name="webhook_channel_has_url"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, step {self.step})"


class AlertDelivery(models.Model):
    """One alert owed to one channel, for one reason: created with the alert's change, sent by the engine until
    delivered (at least once; the receiver deduplicates by ``idempotency_key``, the same on every retry)."""

    class Reason(models.TextChoices):
        RAISED = "raised"
        ESCALATED = "escalated"

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        GIVEN_UP = "given_up"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["alert", "channel", "reason"], name="one_delivery_per_reason")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.alert_id} to {self.channel_id} ({self.reason}) [{self.status}]"


class AlertDeliveryAttempt(models.Model):
    """Every try of a delivery, as it went: the receiver's HTTP status or the mail server's error, and how long."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered"
        FAILED = "failed"

    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]


class ApprovalRequest(models.Model):
    """A change that needs a second person (``services/approvals.py``): leaving HALTED, raising a limit, an order
    above the account's approval notional. The person asking never decides it; it expires unanswered after the
    account's ``approval_ttl_minutes``. A limit raised for a while (``override_until``) is put back by the engine
    when its time is up (``reverted_at``).

        PENDING ──second person approves──▶ APPROVED (the change is made with it)
           ├──second person approves a large order──▶ APPROVING ──placed──▶ APPROVED
           │                                             └──the venue or a check refused it──▶ PENDING
           ├──second person rejects──▶ REJECTED
           ├──the person asking withdraws──▶ CANCELLED
           ├──the account is HALTED again (a resume request)──▶ CANCELLED
           └──nobody decided in time──▶ EXPIRED

    APPROVING holds a large order's request while its order is being placed (outside the claim's transaction):
    nobody withdraws, rejects or expires it meanwhile.
    """

    class Kind(models.TextChoices):
        RESUME_TRADING = "RESUME_TRADING"       # payload: {"state": "ACTIVE" | "REDUCING", "previous": "HALTED"}
        RAISE_LIMIT = "RAISE_LIMIT"             # payload: {"levels": {name: to}, "previous": {name: from},
                                                #           "minutes": N or null}
        LARGE_ORDER = "LARGE_ORDER"             # payload: {"order": the ticket's order, "notional": …, …}

    class Status(models.TextChoices):
        PENDING = "PENDING"
        APPROVING = "APPROVING"                 # a large order approved, being placed now
        APPROVED = "APPROVED"
        REJECTED = "REJECTED"
        EXPIRED = "EXPIRED"
        CANCELLED = "CANCELLED"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="approval_requests")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    requested_by = models.CharField(max_length=150, help_text="user:<name>, admin:<name>, key:<prefix>, command:…")
    requested_at = models.DateTimeField()
    reason = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True, help_text="what the approval did: the order placed, …")
    expires_at = models.DateTimeField()
    override_until = models.DateTimeField(null=True, blank=True,
                                          help_text="a temporary raise is put back by the engine at this time")
    reverted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=F("requested_at")), name="approval_expires_after_ask"),
        ]
        indexes = [
            models.Index(fields=["account", "status"], name="approval_account_status"),
            models.Index(fields=["status", "expires_at"], name="approval_due"),
            models.Index(fields=["override_until"], condition=Q(reverted_at__isnull=True, override_until__isnull=False),
                         name="approval_override_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.account_id} by {self.requested_by} [{self.status}]"
