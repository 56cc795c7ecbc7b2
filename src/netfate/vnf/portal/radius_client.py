"""asyncio driver of the sans-I/O RADIUS client core (one UDP socket per server)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from netfate.proto.radius import ClientCore, Packet, RequestTimedOut, ResponseReceived
from netfate.proto.radius.packet import Value


class RadiusTimeout(Exception):
    pass


class RadiusClient:
    def __init__(
        self,
        server: tuple[str, int],
        secret: bytes,
        timeout: float = 1.0,
        retries: int = 2,
        require_message_authenticator: bool = True,
    ) -> None:
        self.server = server
        self.core = ClientCore(secret, timeout, retries, require_message_authenticator)
        self.sock: socket.socket | None = None
        self.waiting: dict[int, asyncio.Future[Packet]] = {}
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()

    async def open(self) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        # Not connect()ed: the instance's interface may be wired a moment after the
        # function starts, and a connect() then fails with "network unreachable".
        # Each send routes on its own; answers are taken from the server only.
        self.sock = s
        loop = asyncio.get_running_loop()
        loop.add_reader(s.fileno(), self._readable)
        self.task = asyncio.create_task(self._timers())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for f in self.waiting.values():
            if not f.done():
                f.set_exception(RadiusTimeout("client closed"))

    def _readable(self) -> None:
        if self.sock is None:
            return
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable and the like: retransmission copes
                return
            if addr[0] != self.server[0] or addr[1] != self.server[1]:
                continue
            for ev in self.core.receive(data, time.monotonic()):
                self._finish(ev)

    def _finish(self, ev: ResponseReceived | RequestTimedOut) -> None:
        fut = self.waiting.pop(ev.identifier, None)
        if fut is None or fut.done():
            return
        if isinstance(ev, ResponseReceived):
            fut.set_result(ev.response)
        else:
            fut.set_exception(RadiusTimeout(f"no answer from {self.server[0]}:{self.server[1]}"))

    async def _timers(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            delay = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            resend, dead = self.core.poll(time.monotonic())
            for wire in resend:
                self._send(wire)
            for ev in dead:
                self._finish(ev)

    def _send(self, wire: bytes) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(wire, self.server)

    async def _request(self, ident: int, wire: bytes) -> Packet:
        fut: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self.waiting[ident] = fut
        self._send(wire)
        self.wake.set()
        return await fut

    async def authenticate(
        self, user: str, password: bytes, attrs: list[tuple[int, Value]]
    ) -> Packet:
        ident, wire = self.core.access_request(user, password, attrs, time.monotonic())
        return await self._request(ident, wire)

    async def account(self, attrs: list[tuple[int, Any]]) -> Packet:
        ident, wire = self.core.accounting_request(attrs, time.monotonic())
        return await self._request(ident, wire)
