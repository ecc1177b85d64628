"""Real PostgreSQL and Redis servers on 127.0.0.1 for the scale-out tests, one pair per test module."""

from __future__ import annotations

import pytest

from tests.scaleout.servers import postgres_server, redis_server


@pytest.fixture(scope="module")
def backing_services(tmp_path_factory):
    """``DATABASE_URL`` and ``REDIS_URL`` of a fresh PostgreSQL and Redis, kept for the module's tests."""
    base = tmp_path_factory.mktemp("services")
    with postgres_server(base / "pg") as database_url, redis_server(base / "redis") as redis_url:
        yield {"DATABASE_URL": database_url, "REDIS_URL": redis_url}
