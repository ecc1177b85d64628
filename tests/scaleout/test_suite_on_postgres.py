"""The whole test suite (but its slow tests, which start their own servers) runs again on a real PostgreSQL
server, in a child pytest so the settings pick the database up from DATABASE_URL as in production."""

from __future__ import annotations

import pytest

from tests.child_suite import assert_suites_pass
from tests.scaleout.servers import postgres_server

ON_POSTGRES = ["tests"]          # every suite but the slow ones, which start servers of their own


@pytest.mark.slow
def test_the_whole_suite_passes_on_postgresql(tmp_path):
    with postgres_server(tmp_path / "pg") as database_url:
        assert_suites_pass(ON_POSTGRES, DATABASE_URL=database_url, DESK_VAR_DIR=str(tmp_path / "var"))
