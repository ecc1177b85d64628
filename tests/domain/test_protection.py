"""How a wait for exits is said on the risk view, and the percentiles of the last hour's waits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from orders.domain.protection import percentile, seconds_text


@pytest.mark.parametrize(("seconds", "said"), [(0.31, "0.31 s"), (0.3, "0.3 s"), (2, "2 s"), (Decimal("2.000"), "2 s"),
                                               (6.034, "6.03 s"), (12.4, "12 s"), (0, "0 s")])
def test_a_wait_is_said_in_hundredths_under_ten_seconds_and_whole_seconds_above(seconds, said):
    assert seconds_text(seconds) == said


def test_the_p99_of_ten_waits_is_the_slowest_and_the_p50_the_fifth():
    waits = [float(i) for i in range(1, 11)]
    assert percentile(waits, 99) == 10
    assert percentile(waits, 50) == 5


def test_no_waits_have_no_percentile():
    with pytest.raises(ValueError):
        percentile([], 50)
