"""The API tests run against an SQLite *file*, as the desk does in production.

Django's default SQLite test database is a shared-cache in-memory database, where a
second writer fails at once with "database table is locked" instead of waiting for the
first (shared-cache locks ignore the busy timeout). Concurrency tests would then test
that artefact rather than the desk, so the test database becomes a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from django.conf import settings


def pytest_configure(config) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3" and not database.get("TEST", {}).get("NAME"):
        path = Path(tempfile.gettempdir()) / f"tradingdesk-test-{os.getpid()}.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(path)
