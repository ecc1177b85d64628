"""How both of the desk's sockets open (``/v1/ws`` and the desk's own): while the database cannot be reached,
the socket is closed with 1013 (try again later) rather than the handshake failing with a 500, and nothing of it
stays registered with the outbox relay, whose backlog for it would grow with every event of its account."""

from __future__ import annotations

import logging

from orders.api.errors import is_database_gone
from orders.realtime.relay import get_relay

log = logging.getLogger(__name__)
CLOSE_TRY_AGAIN = 1013          # the client reconnects later (a /v1/ws client resumes, a desk page redraws)


class OpensUnlessDatabaseGone:
    """A relayed websocket consumer's ``connect``: its own opening lives in ``_open``."""

    socket_name = "socket"

    async def connect(self) -> None:
        try:
            await self._open()
        except Exception as e:
            if not is_database_gone(e):
                raise
            get_relay().unregister(self)
            log.warning("%s: connection refused while the database is unreachable: %s", self.socket_name, e)
            await self.close(code=CLOSE_TRY_AGAIN)

    async def _open(self) -> None:
        raise NotImplementedError
