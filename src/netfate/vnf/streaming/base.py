"""What the four streaming functions share: the ``emit`` hook, a sender, a ticker,
an HTTP listener, stream inputs, supervised helpers' exits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Coroutine, Iterable
from typing import Any

from netfate.vnf.portal.http import Handler, serve
from netfate.vnf.runtime import Context, Function

from .config import ConfigError
from .events import HelperFailed
from .ffmpeg import FfmpegChild
from .net import Sender, UdpPort
from .path import RtpPath

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


class StreamInput:
    """A stream's ports: RTP on `port` and, with `rtcp`, RTCP on port + 1, into `path`.
    What arrives while the function is not active (a standby or frozen copy) is
    counted and dropped."""

    def __init__(
        self, fn: StreamingFunction, port: int, path: RtpPath, *, bind: str, rtcp: bool = True
    ) -> None:
        self.fn = fn
        self.port = port
        self.path = path
        self.ports = [UdpPort(bind, port, self._rtp)]
        if rtcp:
            self.ports.append(UdpPort(bind, port + 1, self._rtcp))

    def _rtp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.fn.active:
            self.path.on_rtp(data, addr, now)
        else:
            self.fn.inactive_dropped += 1

    def _rtcp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.fn.active:
            self.path.on_rtcp(data, addr, now)
        else:
            self.fn.inactive_dropped += 1

    def open(self) -> None:
        """Bind the ports (raises OSError, leaving none open)."""
        try:
            for p in self.ports:
                p.open()
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for p in self.ports:
            p.close()


def open_all(inputs: Iterable[StreamInput]) -> None:
    """Open every input, or none: a port that cannot be bound closes those opened
    here and refuses the configuration (ConfigError) before anything else changed."""
    opened: list[StreamInput] = []
    try:
        for i in inputs:
            i.open()
            opened.append(i)
    except OSError as e:
        for i in opened:
            i.close()
        raise ConfigError(f"config: cannot open a port: {e}") from None


class StreamingFunction(Function):
    """Base of the acquirer, the relay, the edge streamer and the storage function."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sender = Sender()
        self.inactive_dropped = 0
        """Datagrams that arrived while this copy was not active (standby, frozen)."""
        self._ticker: asyncio.Task[None] | None = None
        self._http: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- events (the platform's emit hook; export carries the outbox) -------------

    def helper_exited(self, child: FfmpegChild, rc: int | None, detail: str) -> None:
        """An ffmpeg child exited unexpectedly (it restarts by itself): say so."""
        self.emit(HelperFailed(role=child.role, returncode=rc, detail=detail, at=time.time()))

    # ----- life --------------------------------------------------------------------

    def later(self, coro: Coroutine[object, object, None]) -> None:
        """Run an async clean-up from synchronous code (configure, tick); stop() waits."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.sender.close()

    # ----- control -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return {"events": self.outbox.snapshot(), "inactive_dropped": self.inactive_dropped}

    def export_state(self) -> dict[str, Any]:
        return {"outbox": self.outbox.snapshot()}

    def import_state(self, state: dict[str, Any]) -> None:
        self.outbox.restore(state.get("outbox"))
