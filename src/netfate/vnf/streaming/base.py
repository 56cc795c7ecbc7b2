"""What the four streaming functions share: the ``emit`` hook, a sender, a ticker,
an HTTP listener."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from netfate.vnf.portal.http import Handler, serve
from netfate.vnf.runtime import Context, Function

from .events import Event, Outbox
from .net import Sender

TICK = 0.25
"""Seconds between housekeeping rounds (source timeouts, leases, events)."""


def listen_tcp(host: str, port: int, backlog: int = 64) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class StreamingFunction(Function):
    """Base of the acquirer, the relay, the edge streamer and the storage function."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.outbox = Outbox()
        self.sender = Sender()
        self.inactive_dropped = 0
        """Datagrams that arrived while this copy was not active (standby, frozen)."""
        self._ticker: asyncio.Task[None] | None = None
        self._http: asyncio.Server | None = None

    # ----- the hook ----------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Tell the back-end something happened. Recorded in the outbox, which
        ``status`` shows and ``export`` carries (see events.py)."""
        self.outbox.emit(event)

    # ----- life --------------------------------------------------------------------

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.tick(time.monotonic())

    def tick(self, now: float) -> None:
        """Housekeeping, every TICK seconds."""

    async def serve_http(self, host: str, port: int, handler: Handler) -> None:
        self._http = await serve(handler, listen_tcp(host, port))

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._http is not None:
            self._http.close()
        self.sender.close()

    # ----- control -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"events": self.outbox.snapshot(), "inactive_dropped": self.inactive_dropped}

    def export_state(self) -> dict[str, Any]:
        return {"outbox": self.outbox.snapshot()}

    def import_state(self, state: dict[str, Any]) -> None:
        self.outbox.restore(state.get("outbox"))
