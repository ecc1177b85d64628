"""An ordinary refusal (a role that may not do something: 403) is logged as one line saying what was refused, not
as an error with a traceback; a real error still logs its traceback."""

from __future__ import annotations

import logging

import pytest

pytestmark = pytest.mark.django_db


def test_a_refused_role_is_logged_as_one_line_without_a_traceback(risk_client, account, caplog):
    with caplog.at_level(logging.INFO):
        response = risk_client.post("/ticket/submit/", {"symbol": "AAPL", "side": "BUY", "order_type": "MARKET",
                                                        "quantity": "1", "time_in_force": "GTC"})

    assert response.status_code == 403
    [refused] = [r for r in caplog.records if r.name == "django.request"]
    assert refused.levelno == logging.WARNING
    assert refused.getMessage() == (
        "Forbidden (Permission denied): /ticket/submit/: Only traders place, change or cancel orders.")
    assert refused.exc_info is None
    assert "Traceback" not in caplog.text


def test_an_unexpected_error_still_logs_its_traceback(caplog):
    from django.core.exceptions import PermissionDenied

    logger = logging.getLogger("django.request")
    try:
        raise RuntimeError("boom")
    except RuntimeError as e:
        logger.error("Internal Server Error: /", exc_info=e, extra={"status_code": 500})
    try:
        raise PermissionDenied("not yours")
    except PermissionDenied as e:
        logger.warning("Forbidden (Permission denied): /", exc_info=e, extra={"status_code": 403})

    [error, refused] = [r for r in caplog.records if r.name == "django.request"]
    assert error.exc_info is not None and "RuntimeError: boom" in caplog.text
    assert refused.exc_info is None
