"""Run test suites again in a child pytest with a changed environment (a real PostgreSQL, cold caches), so
the settings read it as they would in production. The child skips the slow tests: they start servers of
their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def assert_suites_pass(suites: list[str], **env: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow", *suites],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=1500)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary
