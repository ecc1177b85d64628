"""Alert deliveries as values: the webhook signature a receiver recomputes, and the backoff between tries."""

from __future__ import annotations

import hmac
from datetime import timedelta

from orders.domain.deliveries import is_valid_signature, retry_delay, secret_hint, webhook_signature

SECRET = "whsec_0123456789abcdef"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    # what any receiver computes with its own HMAC library
    assert webhook_signature(secret=SECRET, timestamp="1772463600", body=b'{"a":1}') == (
        "sha256=" + hmac.new(SECRET.encode(), b'1772463600.{"a":1}', "sha256").hexdigest())


def test_a_receiver_refuses_a_changed_body_a_wrong_secret_and_an_old_timestamp():
    signature = webhook_signature(secret=SECRET, timestamp="1000", body=b"{}")
    assert is_valid_signature(secret=SECRET, timestamp="1000", body=b"{}", signature=signature, now=1000)
    assert not is_valid_signature(secret=SECRET, timestamp="1000", body=b"{ }", signature=signature, now=1000)
    assert not is_valid_signature(secret="whsec_other", timestamp="1000", body=b"{}", signature=signature, now=1000)
    assert not is_valid_signature(secret=SECRET, timestamp="1000", body=b"{}", signature=signature, now=1301)
    assert not is_valid_signature(secret=SECRET, timestamp="soon", body=b"{}", signature=signature, now=1000)


def test_the_backoff_doubles_within_a_quarter_either_way_up_to_its_cap():
    lowest = [retry_delay(n, base=5, cap=600, jitter=lambda: 0.0) for n in range(1, 10)]
    highest = [retry_delay(n, base=5, cap=600, jitter=lambda: 1.0) for n in range(1, 10)]
    assert lowest[:4] == [timedelta(seconds=s) for s in (3.75, 7.5, 15, 30)]
    assert highest[:4] == [timedelta(seconds=s) for s in (6.25, 12.5, 25, 50)]
    assert all(low >= 1.2 * high for high, low in zip(highest[:6], lowest[1:7], strict=True))
    assert highest[-1] == timedelta(seconds=750) and lowest[-1] == timedelta(seconds=450)


def test_a_secret_is_shown_again_only_by_its_last_four_characters():
    assert secret_hint(SECRET) == "…cdef"
