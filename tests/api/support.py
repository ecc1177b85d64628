"""Small helpers the /v1 tests share: submitting orders, reading quotes and checking the error envelope."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.test import Client

J = "application/json"
ENVELOPE_KEYS = {"code", "message", "details"}


def order_body(**fields: Any) -> dict[str, Any]:
    """A MARKET buy of 10 AAPL unless told otherwise; ``None`` drops a field."""
    body = {"symbol": "AAPL", "side": "BUY", "quantity": "10", "order_type": "MARKET"}
    body.update({k: (str(v) if isinstance(v, Decimal) else v) for k, v in fields.items()})
    return {k: v for k, v in body.items() if v is not None}


def submit(client: Client, *, expect: int | None = 201, headers: dict | None = None, **fields: Any):
    """POST /v1/orders; asserts the status when ``expect`` is given. Returns the response."""
    response = client.post("/v1/orders", order_body(**fields), content_type=J, headers=headers or {})
    if expect is not None:
        assert response.status_code == expect, response.content
    return response


def quote(client: Client, symbol: str = "AAPL") -> dict[str, Decimal]:
    response = client.get(f"/v1/quotes/{symbol}")
    assert response.status_code == 200, response.content
    return {k: Decimal(response.json()[k]) for k in ("bid", "ask", "last")}


def get_order(client: Client, order_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/orders/{order_id}")
    assert response.status_code == 200, response.content
    return response.json()


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """The response is the protocol's error envelope with this status and code; returns the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= ENVELOPE_KEYS and {"code", "message"} <= set(body), body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body


def leaves(value: Any, path: str = ""):
    """Every (path, value) leaf of a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value
