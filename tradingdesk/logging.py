"""Log filter that keeps secrets out of every log line."""

from __future__ import annotations

import logging

from orders.domain.redact import redact_text


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


class QuietRefusals(logging.Filter):
    """For ``django.request``: a refusal (``PermissionDenied``: a role that may not do this, an account that is not
    yours) is an answer, not a failure of the desk. It is logged as one line saying what was refused and why, without
    the traceback Django attaches; every other record is left as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.core.exceptions import PermissionDenied

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, PermissionDenied):
            if str(error):
                record.msg, record.args = f"{record.msg}: %s", (*(record.args or ()), str(error))
            record.exc_info, record.exc_text = None, None
        return True
