"""The order ticket form. It only parses; the rules are the domain's, run by the same service the API
calls, and their errors are shown beside the field they name, in the API's words."""

from __future__ import annotations

import uuid

from django import forms

from orders.domain.brackets import LegMode
from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import DeskError
from orders.domain.money import ZERO
from orders.domain.orders import OrderRequest
from orders.services.tickets import TicketDraft

_TYPES = [(t.value, t.value.replace("_", " ").title()) for t in OrderType]
_LEG_MODES = [(LegMode.PRICE.value, "price"), (LegMode.OFFSET.value, "offset"), (LegMode.PERCENT.value, "%")]


class OrderTicketForm(forms.Form):
    token = forms.UUIDField(widget=forms.HiddenInput)
    symbol = forms.ChoiceField()
    side = forms.ChoiceField(choices=[(s.value, s.value.title()) for s in Side], widget=forms.RadioSelect)
    order_type = forms.ChoiceField(choices=_TYPES)
    # no sign check here: the domain's rule says it, in the API's words (VALIDATION_ERROR ... must be positive)
    quantity = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    size_by_risk = forms.BooleanField(required=False, label="Size by risk")
    limit_price = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    stop_price = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    trailing_distance = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    trailing_type = forms.ChoiceField(required=False, choices=[("", "—")] + [(t.value, t.value.title())
                                                                              for t in TrailingType])
    stop_loss = forms.DecimalField(required=False, max_digits=28, decimal_places=10, label="Stop-loss")
    take_profit = forms.DecimalField(required=False, max_digits=28, decimal_places=10, label="Take-profit")
    stop_loss_mode = forms.ChoiceField(required=False, choices=_LEG_MODES)
    take_profit_mode = forms.ChoiceField(required=False, choices=[*_LEG_MODES, (LegMode.R.value, "R")])
    bracket_entry = forms.DecimalField(required=False, max_digits=28, decimal_places=10, widget=forms.HiddenInput)
    confirmed = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)
    time_in_force = forms.ChoiceField(choices=[(t.value, t.value) for t in TimeInForce], initial="GTC")
    override_reason = forms.CharField(required=False, max_length=200,
                                      help_text="Required to send an order that breaches a soft limit")

    def __init__(self, *args, symbols: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refused_fields: set[str] = set()      # fields a service refused (shown even while left empty)
        typed = self.data.get("symbol", "") if self.is_bound else ""
        if typed and typed not in symbols and typed.strip().upper() in symbols:    # searched as "msft"
            self.data = self.data.copy()
            self.data["symbol"] = typed.strip().upper()
        self.fields["symbol"].choices = [(s, s) for s in symbols]
        if not self.is_bound:
            self.initial.setdefault("token", uuid.uuid4())
            if symbols:
                self.initial.setdefault("symbol", symbols[0])
            self.initial.setdefault("side", Side.BUY.value)
            self.initial.setdefault("order_type", OrderType.MARKET.value)
            self.initial.setdefault("time_in_force", "GTC")

    def clean(self):
        data = super().clean()
        if data.get("quantity") is None and not data.get("size_by_risk") and "quantity" not in self.errors:
            self.add_error("quantity", forms.Field.default_error_messages["required"])
        return data

    def to_draft(self) -> TicketDraft:
        """The ticket as typed; ``services.tickets.ticket_resolve`` turns it into the order sent."""
        data = self.cleaned_data
        return TicketDraft(self.to_request(), stop_loss_mode=LegMode(data.get("stop_loss_mode") or "PRICE"),
                           take_profit_mode=LegMode(data.get("take_profit_mode") or "PRICE"),
                           size_by_risk=bool(data.get("size_by_risk")), anchor=data.get("bracket_entry"))

    def to_request(self) -> OrderRequest:
        data = self.cleaned_data
        quantity = data["quantity"] if data.get("quantity") is not None else ZERO    # sized by risk
        return OrderRequest(
            symbol=data["symbol"], side=Side(data["side"]), quantity=quantity,
            order_type=OrderType(data["order_type"]),
            limit_price=data.get("limit_price"), stop_price=data.get("stop_price"),
            trailing_distance=data.get("trailing_distance"),
            trailing_type=TrailingType(data["trailing_type"]) if data.get("trailing_type") else None,
            stop_loss=data.get("stop_loss"), take_profit=data.get("take_profit"),
            time_in_force=TimeInForce(data["time_in_force"]),
            client_order_id=f"web-{data['token']}")

    def add_desk_error(self, error: DeskError) -> None:
        """Put a service error beside the field it names (or on the form), keeping the API's message."""
        field = None
        if isinstance(error.details, dict):
            field = error.details.get("field")
            if field is None and error.code == "VALIDATION_ERROR":
                field = next(iter(error.details), None)
            if field is None and error.code in ("INVALID_QUANTITY", "INSUFFICIENT_BALANCE", "INSUFFICIENT_MARGIN"):
                field = "quantity"
        if field not in self.fields:
            field = None
        else:
            self.refused_fields.add(field)
        self.add_error(field, f"{error.code}: {error.message}")

