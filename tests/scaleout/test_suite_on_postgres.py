"""The order engine's tests — API, services, exits, realtime — run again on a real PostgreSQL
server, in a child pytest so the settings pick the database up from DATABASE_URL as in production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.scaleout.servers import postgres_server

ROOT = Path(__file__).resolve().parents[2]
ON_POSTGRES = ["tests/api", "tests/services", "tests/exits", "tests/realtime", "tests/test_rows.py"]


@pytest.mark.slow
def test_the_engine_test_suites_pass_on_postgresql(tmp_path):
    with postgres_server(tmp_path / "pg") as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "DESK_VAR_DIR": str(tmp_path / "var")}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", *ON_POSTGRES],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary
