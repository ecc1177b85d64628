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
