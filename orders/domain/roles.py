"""The desk's roles, by name. A role is a Django group (``web/roles.py`` says what each may do); which accounts a
person sees is their membership (``DeskMembership``), granted per account (``services/onboarding.py``)."""

from __future__ import annotations

TRADER, RISK, ADMIN = "trader", "risk", "admin"
ROLES = (TRADER, RISK, ADMIN)
