"""The desk's settings with the static files collected elsewhere (``TEST_STATIC_ROOT``), for the test of
``manage.py desk_static`` (tests/e2e/test_static.py): it must not touch the checkout's own collection."""

import os
from pathlib import Path

from tradingdesk.settings import *  # noqa: F403

STATIC_ROOT = Path(os.environ["TEST_STATIC_ROOT"])
