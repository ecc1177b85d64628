"""E-mail through Django's backend (``EMAIL_BACKEND``: SMTP by default, at ``EMAIL_HOST``:``EMAIL_PORT``).

The message's ``Message-ID`` is built from the delivery's idempotency key, the same on every retry, so a mail
system that saw it already can drop the copy."""

from __future__ import annotations

import smtplib
import time

from django.core.mail import EmailMessage, get_connection

from orders.notify import Sent


def email_send(*, recipients: list[str], subject: str, text: str, idempotency_key: str, sender: str,
               timeout: float) -> Sent:
    message = EmailMessage(subject=subject, body=text, from_email=sender, to=recipients,
                           headers={"Message-ID": f"<{idempotency_key}@tradingdesk>",
                                    "X-Desk-Idempotency-Key": idempotency_key})
    started = time.perf_counter()
    try:
        get_connection(timeout=timeout).send_messages([message])
    except smtplib.SMTPResponseException as e:
        return Sent(False, time.perf_counter() - started, error=f"SMTP {e.smtp_code}: {_text(e.smtp_error)}",
                    unreachable=isinstance(e, smtplib.SMTPConnectError))
    except smtplib.SMTPRecipientsRefused as e:
        refused = ", ".join(f"{who} ({code})" for who, (code, _) in e.recipients.items())
        return Sent(False, time.perf_counter() - started, error=f"recipients refused: {refused}")
    except (smtplib.SMTPException, OSError) as e:       # SMTPException is an OSError: no server, or it hung up
        unreachable = not isinstance(e, smtplib.SMTPException) or isinstance(e, smtplib.SMTPServerDisconnected)
        return Sent(False, time.perf_counter() - started, error=f"{type(e).__name__}: {_text(str(e))}",
                    unreachable=unreachable)
    return Sent(True, time.perf_counter() - started)


def _text(value: bytes | str) -> str:
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    return " ".join(text.split())[:150]
