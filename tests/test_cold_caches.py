"""The order suites again with every cache of ``orders/caches.py`` off (``DESK_CACHES_COLD``), in a child
pytest so the setting is read from the environment as in production: no behaviour of the API, the services
or exit management may depend on a cache being warm."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLD_SUITES = ["tests/api", "tests/services", "tests/exits"]


@pytest.mark.slow
def test_the_order_suites_pass_with_the_caches_cold(tmp_path):
    env = {**os.environ, "DESK_CACHES_COLD": "true", "DESK_VAR_DIR": str(tmp_path / "var")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", *COLD_SUITES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary
