"""The /v1 NinjaAPI: one router per resource, one auth callable, one error envelope."""

from __future__ import annotations

from django.conf import settings
from ninja import NinjaAPI

from orders.api import errors, market, orders, positions, risk, system, trades
from orders.api.auth import api_key_auth_pooled

api = NinjaAPI(
    title="tradingdesk /v1",
    version="1.0.0",
    description=(
        "Trading Gateway compatible order API. Decimals travel as strings, timestamps as RFC 3339 UTC, "
        "absent optional fields are omitted. Every error is `{code, message, details}`."
    ),
    urls_namespace="v1",
    auth=api_key_auth_pooled,
    docs_url="/docs" if settings.ENABLE_SWAGGER else None,
    openapi_url="/openapi.json" if settings.ENABLE_SWAGGER else None,
)
errors.install(api)
api.add_router("", orders.router)
api.add_router("", positions.router)
api.add_router("", trades.router)
api.add_router("", market.router)
api.add_router("", system.router)
api.add_router("", risk.router)
