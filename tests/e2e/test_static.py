"""The desk's static files as the web server sends them (WhiteNoise): the pages name them by their content's hash,
a hashed file goes out gzipped to a browser that takes gzip and is cached for a year as immutable, and the names
without a hash are cached for a minute only. ``manage.py desk_static`` (run by bin/install and rundesk) collects
them again exactly when a source changed."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from tests.e2e.browser import paper_desk
from tests.e2e.desk_process import ROOT, Desk

pytestmark = pytest.mark.slow

YEAR = 365 * 24 * 3600


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> Iterator[Desk]:
    with paper_desk(tmp_path_factory.mktemp("static-desk"), "--no-engine", DATABASE_URL="", REDIS_URL="",
                    GATEWAY_API_KEY="", DESK_SECURE_COOKIES="false") as desk:
        yield desk


def named(desk: Desk, pattern: str) -> str:
    page = requests.get(f"{desk.url}/login/", timeout=10).text
    found = re.search(pattern, page)
    assert found, f"{pattern} is not on the login page"
    return found.group(0)


def max_age(cache_control: str) -> int:
    return int(re.search(r"max-age=(\d+)", cache_control).group(1))


@pytest.mark.parametrize(("pattern", "source"), [
    (r'/static/css/desk\.[0-9a-f]{12}\.css', "static/css/desk.css"),
    (r'/static/js/desk\.[0-9a-f]{12}\.js', "static/js/desk.js"),
])
def test_a_hashed_file_is_sent_gzipped_and_cached_for_a_year(desk, pattern, source):
    url = named(desk, pattern)

    sent = requests.get(f"{desk.url}{url}", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)

    assert sent.status_code == 200
    assert sent.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in sent.headers["Vary"]
    assert "immutable" in sent.headers["Cache-Control"] and max_age(sent.headers["Cache-Control"]) >= YEAR
    body = sent.raw.read()
    assert int(sent.headers["Content-Length"]) == len(body) < (ROOT / source).stat().st_size
    assert gzip.decompress(body) == (ROOT / source).read_bytes()        # what static/ holds now


def test_a_browser_that_takes_no_gzip_gets_the_file_as_it_is(desk):
    url = named(desk, r'/static/css/desk\.[0-9a-f]{12}\.css')

    sent = requests.get(f"{desk.url}{url}", headers={"Accept-Encoding": "identity"}, timeout=10)

    assert "Content-Encoding" not in sent.headers
    assert sent.content == (ROOT / "static/css/desk.css").read_bytes()


def test_a_name_without_its_hash_is_cached_for_a_minute_only(desk):
    sent = requests.get(f"{desk.url}/static/css/desk.css", timeout=10)

    assert sent.status_code == 200
    assert "immutable" not in sent.headers["Cache-Control"] and max_age(sent.headers["Cache-Control"]) == 60


def desk_static(static_root, *args: str) -> str:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.e2e.static_settings", "TEST_STATIC_ROOT": str(static_root),
           "DESK_VAR_DIR": str(static_root.parent)}
    done = subprocess.run([sys.executable, "manage.py", "desk_static", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_the_static_files_are_collected_again_exactly_when_a_source_changed(tmp_path):
    root = tmp_path / "static"

    first = desk_static(root)
    again = desk_static(root)
    os.utime(root / "staticfiles.json", (0, 0))           # every source is now newer than the collection
    changed = desk_static(root)

    assert first == f"static files collected into {root} (no collection yet)"
    assert (root / "staticfiles.json").exists() and list(root.glob("css/desk.*.css.gz"))
    assert again == ""
    assert changed.startswith(f"static files collected into {root} (") and changed.endswith(" changed)")
