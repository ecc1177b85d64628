"""The order ticket form. It only parses; the rules are the domain's, run by the same service the API
calls, and their errors are shown beside the field they name, in the API's words."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms

from orders.domain.enums import OrderType, Side, TimeInForce, TrailingType
from orders.domain.errors import DeskError
from orders.domain.orders import OrderRequest

_TYPES = [(t.value, t.value.replace("_", " ").title()) for t in OrderType]


class OrderTicketForm(forms.Form):
    token = forms.UUIDField(widget=forms.HiddenInput)
    symbol = forms.ChoiceField()
    side = forms.ChoiceField(choices=[(s.value, s.value.title()) for s in Side], widget=forms.RadioSelect)
    order_type = forms.ChoiceField(choices=_TYPES)
    quantity = forms.DecimalField(min_value=Decimal("0"), max_digits=28, decimal_places=10)
    limit_price = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    stop_price = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    trailing_distance = forms.DecimalField(required=False, max_digits=28, decimal_places=10)
    trailing_type = forms.ChoiceField(required=False, choices=[("", "—")] + [(t.value, t.value.title())
                                                                              for t in TrailingType])
    stop_loss = forms.DecimalField(required=False, max_digits=28, decimal_places=10, label="Stop-loss")
    take_profit = forms.DecimalField(required=False, max_digits=28, decimal_places=10, label="Take-profit")
    time_in_force = forms.ChoiceField(choices=[(t.value, t.value) for t in TimeInForce], initial="GTC")
    override_reason = forms.CharField(required=False, max_length=200,
                                      help_text="Required to send an order that breaches a soft limit")

    def __init__(self, *args, symbols: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["symbol"].choices = [(s, s) for s in symbols]
        if not self.is_bound:
            self.initial.setdefault("token", uuid.uuid4())
            self.initial.setdefault("side", Side.BUY.value)
            self.initial.setdefault("order_type", OrderType.MARKET.value)
            self.initial.setdefault("time_in_force", "GTC")

    def to_request(self) -> OrderRequest:
        data = self.cleaned_data
        return OrderRequest(
            symbol=data["symbol"], side=Side(data["side"]), quantity=data["quantity"],
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
        self.add_error(field, f"{error.code}: {error.message}")
