"""The admin: accounts, keys, pre-trade limits, circuit breakers and alert acknowledgements can be changed here;
orders, fills, positions, exit legs and the audit trail are only inspected. Every change goes through the same
service call as the desk's and /v1's doors, which writes it with its outbox event (what open pages and clients
are told, and what the pre-trade check's remembered exposure relies on) and its audit record: a change made here
reaches every open desk and risk view with their next push."""

from django import forms
from django.contrib import admin, messages
from django.db import models

from orders.domain.errors import DeskError, InvalidValue
from orders.domain.money import format_decimal
from orders.models import (
    Account,
    Alert,
    AlertChannel,
    AlertDelivery,
    ApiKey,
    ApprovalRequest,
    AuditEvent,
    CircuitBreaker,
    ExitLeg,
    Fill,
    Order,
    Position,
    PreTradeLimits,
)
from orders.services.alerts import alert_acknowledge
from orders.services.approvals import limits_ask, trading_state_ask
from orders.services.breakers import breakers_reset
from orders.services.channels import (
    alert_channel_create,
    alert_channel_fields,
    alert_channel_remove,
    alert_channel_update,
)
from orders.services.keys import api_key_issue, api_key_revoke, api_key_update
from orders.services.limits import LEVELS, PRETRADE
from orders.services.risk import is_loosening
from orders.services.tickets import account_ticket_settings_set
from orders.templatetags.desk_numbers import price
from orders.web.approvals import approval_text
from orders.web.roles import can_supervise

TICKET_SETTINGS = ("confirm_notional_above", "risk_per_trade")


def _actor(request) -> str:
    return f"admin:{request.user.get_username()}"


_NOT_DONE = "_desk_change_not_done"


class SaysWhatWasDone:
    """Django follows every save with "… was changed successfully". A change that was only asked for (it waits for
    a second person) or was refused is not done: the warning or error that says so stands alone, unless something
    else in the same form was changed."""

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        if level == messages.SUCCESS and getattr(request, _NOT_DONE, False):
            return
        super().message_user(request, message, level, *args, **kwargs)


def _not_done(request) -> None:
    setattr(request, _NOT_DONE, True)


class AccountForm(forms.ModelForm):
    """The account's fields (the admin names them) and the reason for a change of its trading state."""

    state_reason = forms.CharField(
        label="Why the trading state changes", required=False, max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed to let the account trade more (leaving HALTED or REDUCING): the second person approving "
                  "it reads it, and the audit trail keeps it.")

    def clean(self):
        data = super().clean()
        if (self.instance.pk is not None and "trading_state" in self.changed_data
                and is_loosening(self.initial.get("trading_state", ""), data.get("trading_state", ""))
                and not data.get("state_reason", "").strip()):
            self.add_error("state_reason", f"Say why {self.instance.name} may trade more "
                                           f"({self.initial['trading_state']} → {data['trading_state']}).")
        return data


@admin.register(Account)
class AccountAdmin(SaysWhatWasDone, admin.ModelAdmin):
    """The trading state is set through ``approvals.trading_state_ask`` with the reason typed beside it (needed to
    loosen it; audited, pushed; leaving HALTED waits for a second person's approval on the risk view), the
    ticket's confirm notional and risk per trade through ``account_ticket_settings_set`` (audited); cash moves
    only with fills."""
    form = AccountForm
    list_display = ("name", "broker", "currency", "cash_shown", "trading_state", "is_default", *TICKET_SETTINGS)

    def get_readonly_fields(self, request, obj=None):
        return ("cash_shown", "created_at") if obj is not None else ("created_at",)

    def get_exclude(self, request, obj=None):
        return ("cash",) if obj is not None else ()          # typed only when the account is added

    @admin.display(description="Cash", ordering="cash")
    def cash_shown(self, obj: Account) -> str:
        """As the desk shows a venue amount: grouped, every digit kept, at least the cents (not 100000.0000000000)."""
        return f"{price(obj.cash)} {obj.currency}"

    def get_fields(self, request, obj=None):
        """The reason right under the trading state it explains (none asked when an account is added)."""
        fields = [name for name in super().get_fields(request, obj) if name != "state_reason"]
        if obj is not None:
            fields.insert(fields.index("trading_state") + 1, "state_reason")
        return fields

    def save_model(self, request, obj, form, change):
        state = obj.trading_state
        ticket = {name: getattr(obj, name) for name in TICKET_SETTINGS}
        if not change:
            super().save_model(request, obj, form, change)
            return
        obj.trading_state, *before = Account.objects.values_list("trading_state", *TICKET_SETTINGS).get(pk=obj.pk)
        for name, value in zip(TICKET_SETTINGS, before, strict=True):
            setattr(obj, name, value)
        super().save_model(request, obj, form, change)          # every other field, with these as they were
        if state != obj.trading_state:
            only_the_state = not set(form.changed_data) - {"trading_state", "state_reason"}
            try:
                reason = form.cleaned_data.get("state_reason", "").strip() or "set in the admin"
                done = trading_state_ask(account=obj, state=state, actor=_actor(request), reason=reason,
                                         supervisor=can_supervise(request.user))
            except DeskError as e:
                self.message_user(request, e.message, messages.ERROR)
                done = None
            else:
                if isinstance(done, ApprovalRequest):
                    self.message_user(request, f"Sent for approval: {approval_text(done, obj.name)}. A second person "
                                               "with the risk role approves it on the risk view.", messages.WARNING)
            if only_the_state and not isinstance(done, Account):
                _not_done(request)
        if ticket != dict(zip(TICKET_SETTINGS, before, strict=True)):
            account_ticket_settings_set(account=obj, actor=_actor(request), **ticket)


class ApiKeyForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("account", "name", "role", "rate_limit_per_minute")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued, changed and revoked through ``services/keys.py``; a key is revoked, never deleted, so the
    audit trail keeps naming it."""
    form = ApiKeyForm
    list_display = ("name", "account", "prefix", "role", "rate_limit_per_minute", "created_at", "revoked_at")
    readonly_fields = ("prefix", "hashed_key", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "name", "role", "rate_limit_per_minute")
        return ("account", "name", "role", "rate_limit_per_minute", "prefix", "hashed_key", "created_at",
                "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "account") if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            key, raw = api_key_issue(account=data["account"], name=data["name"], role=data["role"],
                                     rate_limit_per_minute=data["rate_limit_per_minute"], actor=_actor(request))
            obj.pk, obj.prefix, obj.hashed_key = key.pk, key.prefix, key.hashed_key
            self.message_user(request, f"New API key (shown once, copy it now): {raw}")
            return
        api_key_update(key=obj, name=data["name"], role=data["role"],
                       rate_limit_per_minute=data["rate_limit_per_minute"], actor=_actor(request))

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        revoked = sum(api_key_revoke(key=key, actor=_actor(request)) for key in queryset)
        self.message_user(request, f"{revoked} key(s) revoked.")


def _plain_display(model, name: str):
    field = model._meta.get_field(name)

    @admin.display(description=field.verbose_name, ordering=name)
    def shown(obj) -> str:
        value = getattr(obj, name)
        return "" if value is None else format_decimal(value)
    return shown


class InspectOnly(admin.ModelAdmin):
    """Shown, never changed here. Amounts, prices and quantities read as the API writes them (``150.3``,
    ``0.00999``), not as their columns hold them (``150.3000000000``)."""

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self._plain = {f.name: f"{f.name}_plain" for f in model._meta.concrete_fields
                       if isinstance(f, models.DecimalField)}
        for name, shown in self._plain.items():
            setattr(self, shown, _plain_display(model, name))

    def get_list_display(self, request):
        return [self._plain.get(name, name) if isinstance(name, str) else name
                for name in super().get_list_display(request)]

    def get_fields(self, request, obj=None):
        return [self._plain.get(name, name) for name in super().get_fields(request, obj)]

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), *self._plain.values())

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(InspectOnly):
    list_display = ("id", "account", "symbol", "side", "order_type", "quantity", "filled_quantity", "status",
                    "client_order_id", "created_at")
    list_filter = ("status", "order_type", "side", "account")
    search_fields = ("id", "client_order_id", "symbol")


@admin.register(Fill)
class FillAdmin(InspectOnly):
    list_display = ("timestamp", "account", "symbol", "side", "quantity", "price", "commission", "order")


@admin.register(Position)
class PositionAdmin(InspectOnly):
    list_display = ("account", "symbol", "quantity", "average_price", "realized_pnl", "updated_at")


@admin.register(AuditEvent)
class AuditEventAdmin(InspectOnly):
    list_display = ("at", "account", "actor", "action", "target", "result")
    list_filter = ("action", "result")


@admin.register(PreTradeLimits)
class PreTradeLimitsAdmin(SaysWhatWasDone, admin.ModelAdmin):
    """Set through ``approvals.limits_ask`` (audited, pushed, applied at once in this process): a lowered limit at
    once, a raised or removed one once a second person approves it on the risk view. Empty a field for no limit;
    the row itself is not deleted."""
    list_display = ("account", *PRETRADE)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        account = form.cleaned_data["account"]
        before = PreTradeLimits.objects.filter(account=account).values(*LEVELS).first()
        try:
            done = limits_ask(account_id=account.pk, actor=_actor(request),
                              **{name: form.cleaned_data.get(name) for name in LEVELS})
        except DeskError as e:
            self.message_user(request, e.message, messages.ERROR)
            done = None
        if done is not None and done.approval is not None:
            self.message_user(request, f"Sent for approval: {approval_text(done.approval, account.name)}. A second "
                                       "person with the risk role approves it on the risk view.", messages.WARNING)
        if done is None or (done.approval is not None and _levels(done.row) == before):     # nothing lowered
            _not_done(request)
        obj.pk = (done.row if done and done.row else PreTradeLimits.objects.get_or_create(account=account)[0]).pk


def _levels(row: PreTradeLimits | None) -> dict | None:
    return {name: getattr(row, name) for name in LEVELS} if row is not None else None


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(InspectOnly):
    """Inspected only: requests are decided on the risk view, by a second person with the risk role."""
    list_display = ("requested_at", "account", "kind", "requested_by", "status", "decided_by", "decided_at",
                    "expires_at", "override_until", "reverted_at")
    list_filter = ("kind", "status")


@admin.register(CircuitBreaker)
class CircuitBreakerAdmin(InspectOnly):
    """Shown as stored; reset (both breakers of an account, as on /v1) by the action, through ``breakers_reset``."""
    list_display = ("account", "name", "opened_at", "last_reset_at")
    actions = ("reset",)

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None                      # the list and its action; no row is edited by hand

    @admin.action(description="Reset the breakers of the selected accounts")
    def reset(self, request, queryset):
        for account in Account.objects.filter(pk__in=queryset.values("account_id")):
            try:
                breakers_reset(account=account, actor=_actor(request))
            except DeskError as e:
                self.message_user(request, f"Breakers of {account.name} not reset: {e.message}", messages.ERROR)
            else:
                self.message_user(request, f"Breakers of {account.name} reset (adapter, exit_order).")


@admin.register(ExitLeg)
class ExitLegAdmin(InspectOnly):
    list_display = ("entry", "role", "strategy", "status", "trigger_price", "attempts", "last_error", "updated_at")
    list_filter = ("status", "strategy", "role")


class AcknowledgeForm(forms.ModelForm):
    ack_comment = forms.CharField(label="Acknowledge — what was done?", widget=forms.Textarea, max_length=500)

    class Meta:
        model = Alert
        fields = ("ack_comment",)


@admin.register(Alert)
class AlertAdmin(InspectOnly):
    """Inspected; an OPEN alert is acknowledged by saving a comment, through ``alert_acknowledge``."""
    list_display = ("raised_at", "account", "kind", "symbol", "status", "acknowledged_by", "resolved_at")
    list_filter = ("kind", "status")
    readonly_fields = ("account", "kind", "symbol", "status", "message", "raised_at", "escalated_at",
                       "acknowledged_by", "acknowledged_at", "resolved_at", "resolution")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and obj.status == Alert.Status.OPEN:
            kwargs["form"] = AcknowledgeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        fields = list(self.readonly_fields)
        return [*fields, "ack_comment"] if obj is None or obj.status == Alert.Status.OPEN else fields

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.status == Alert.Status.OPEN

    def save_model(self, request, obj, form, change):
        try:
            alert_acknowledge(alert_id=str(obj.pk), actor=_actor(request), comment=form.cleaned_data["ack_comment"])
        except DeskError as e:
            self.message_user(request, e.message, messages.ERROR)


class AlertChannelForm(forms.ModelForm):
    """The channel's fields, checked by the same rules as ``manage.py alert_channel`` (``alert_channel_fields``)."""
    url = forms.URLField(required=False, max_length=500, assume_scheme="https",
                         help_text="Webhooks: the http(s) address the desk posts signed JSON to.")
    recipients = forms.CharField(required=False, help_text="E-mail channels: the addresses, separated by commas.")
    kinds = forms.MultipleChoiceField(choices=Alert.Kind.choices, required=False, widget=forms.CheckboxSelectMultiple,
                                      help_text="None ticked sends every kind.")

    class Meta:
        model = AlertChannel
        fields = ("account", "name", "kind", "url", "recipients", "kinds", "step", "enabled")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["recipients"] = ", ".join(self.instance.recipients)

    def clean_recipients(self) -> list[str]:
        return [r.strip() for r in self.cleaned_data.get("recipients", "").split(",") if r.strip()]

    def clean(self):
        data = super().clean()
        account = data.get("account") or getattr(self.instance, "account", None)
        if account is None or self.errors:
            return data
        try:
            alert_channel_fields(account=account, name=data.get("name", ""), url=data.get("url", ""),
                                 kind=data.get("kind") or self.instance.kind, recipients=data.get("recipients", []),
                                 kinds=data.get("kinds", []), step=data.get("step", 0), exclude=self.instance.pk)
        except InvalidValue as e:
            self.add_error(e.field if e.field in self.fields else None, e.message)
        return data


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    """Made, changed and removed through ``services/channels.py`` (audited, pushed to the risk view). A webhook's
    signing secret is shown once, in the message after it is added; afterwards only its hint."""
    form = AlertChannelForm
    list_display = ("name", "account", "kind", "step", "enabled", "secret_hint", "failing_since")
    list_filter = ("kind", "enabled")
    readonly_fields = ("secret_hint", "failing_since", "created_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("account", "name", "kind", "url", "recipients", "kinds", "step")
        return ("account", "name", "kind", "url", "recipients", "kinds", "step", "enabled", *self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "account", "kind") if obj is not None else ()

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            alert_channel_update(channel=obj, actor=_actor(request), name=data["name"], url=data.get("url", ""),
                                 recipients=data["recipients"], kinds=data["kinds"], step=data["step"],
                                 enabled=data["enabled"])
            return
        channel, secret = alert_channel_create(account=data["account"], name=data["name"], kind=data["kind"],
                                               url=data.get("url", ""), recipients=data["recipients"],
                                               kinds=data["kinds"], step=data["step"], actor=_actor(request))
        obj.pk = channel.pk
        if secret:
            self.message_user(request, f"Signing secret of {channel.name} (shown once, copy it now): {secret}")

    def delete_model(self, request, obj):
        alert_channel_remove(channel=obj, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for channel in queryset:
            alert_channel_remove(channel=channel, actor=_actor(request))


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(InspectOnly):
    """Every alert owed to a channel, as the engine sent it; its tries are on the risk view's channels card."""
    list_display = ("created_at", "alert", "channel", "reason", "status", "attempts", "delivered_at", "last_error")
    list_filter = ("status", "reason")
