"""The order suites again with every cache of ``orders/caches.py`` off (``DESK_CACHES_COLD``): no behaviour of
the API, the services or exit management may depend on a cache being warm."""

from __future__ import annotations

import pytest

from tests.child_suite import assert_suites_pass

COLD_SUITES = ["tests/api", "tests/services", "tests/exits"]


@pytest.mark.slow
def test_the_order_suites_pass_with_the_caches_cold(tmp_path):
    assert_suites_pass(COLD_SUITES, DESK_CACHES_COLD="true", DESK_VAR_DIR=str(tmp_path / "var"))
