"""Receivers the alert-channel tests start on 127.0.0.1: a webhook endpoint (``http.server`` in a thread) that
checks signatures and handles each idempotency key once, as a real receiver should, one that never answers, and a
real SMTP server (aiosmtpd) that keeps the messages it is given."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from orders.domain.deliveries import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, is_valid_signature


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.monotonic)      # when it arrived (``time.monotonic``)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Answers each POST with the next of ``script`` (then 200), records every request, and handles (``handled``)
    each idempotency key whose signature verifies once."""
    secret: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    handled: dict[str, dict] = field(default_factory=dict)
    url: str = ""
    delay: float = 0.0                  # seconds it takes to answer
    reply: bytes = b""                  # the body of a refusal (else "receiver is down")

    def verifies(self, request: Received) -> bool:
        return is_valid_signature(secret=self.secret, timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
                                  body=request.body, signature=request.headers.get(SIGNATURE_HEADER, ""),
                                  now=time.time())

    def answer(self, request: Received) -> None:
        self.requests.append(request)
        if request.answered < 300 and self.verifies(request):
            self.handled.setdefault(request.headers[IDEMPOTENCY_HEADER], request.json)


def start_webhook_receiver(receiver: WebhookReceiver) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrived = time.monotonic()
            status = receiver.script.pop(0) if receiver.script else 200
            time.sleep(receiver.delay)
            receiver.answer(Received(headers=dict(self.headers.items()), body=body, answered=status, at=arrived))
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else receiver.reply or b"receiver is down")

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/desk"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_silent_receiver() -> socket.socket:
    """A host that takes connections (the kernel's backlog) and never answers: a POST to it waits out its whole
    timeout, as to a receiver that hangs. Close the socket after the test."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


def start_smtp_server() -> tuple[Controller, _Mailbox]:
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller, mailbox
