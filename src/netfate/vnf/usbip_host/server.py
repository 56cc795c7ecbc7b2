"""The HRH's USB/IP server: a thin asyncio driver over :class:`ServerConnection`.

One TCP connection per client, as ``usbipd`` does: a devlist connection lists
what the allow-list lets this client see; an import connection holds its device
(others get ST_DEV_BUSY) until it closes.  All protocol decisions are in the
sans-I/O core; this module moves bytes, runs device timers and keeps ownership.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Any, cast

from netfate.proto.usbip import (
    DeviceListRequested,
    Event,
    ImportRequested,
    Phase,
    ServerConnection,
    Status,
    UrbSubmitted,
    UrbUnlinked,
    UsbipProtocolError,
)
from netfate.vnf.usbip_host.allowlist import AllowList

from .devices import UrbResult, VirtualDevice

log = logging.getLogger(__name__)

USBIP_PORT = 3240
WRITE_HIGH_WATER = 16 * 1024 * 1024
COALESCE_BELOW = 16 * 1024
SEND_BUFFER = 4 * 1024 * 1024
"""A socket send buffer that takes a whole bulk reply at once: fewer, larger send()s
and write-ready wake-ups than autotuning's small start (kernel caps it at wmem_max)."""


def keepalive(sock: socket.socket | Any, idle: int = 10, interval: int = 5, count: int = 3) -> None:
    """TCP keepalive: USB/IP has no heartbeat, and a client that vanished without a
    close (a network drop) would otherwise hold its device, DEV_BUSY to its own
    reconnect, until TCP gives up hours later."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


class UsbipServer:
    """Export virtual devices over USB/IP on ``host:port`` (loopback by default)."""

    def __init__(
        self,
        devices: Sequence[VirtualDevice],
        *,
        allow: AllowList | None = None,
        busnum: int = 1,
    ) -> None:
        self.devices = {d.busid: d for d in devices}
        self.allow = allow if allow is not None else AllowList.open_to("127.0.0.0/8", "::1")
        self.busnum = busnum
        self._devnum = {d.busid: k + 2 for k, d in enumerate(devices)}
        self.owners: dict[str, _ServerProtocol] = {}
        self._server: asyncio.Server | None = None
        self._conns: set[_ServerProtocol] = set()

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, sock: socket.socket | None = None
    ) -> None:
        """Listen on ``host:port``, or on ``sock`` (e.g. bound inside a namespace)."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(self._protocol, sock=sock)
        else:
            self._server = await loop.create_server(self._protocol, host, port)

    def _protocol(self) -> asyncio.Protocol:
        """The protocol of an accepted connection (TLS first hands it to a handshake)."""
        return _ServerProtocol(self)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            conns = list(self._conns)
            for c in conns:
                c.abort()
            # connection_lost runs on a later loop turn: wait so devices are released
            await asyncio.gather(*(c.lost for c in conns))
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> UsbipServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, server: UsbipServer) -> None:
        self.server = server
        self.core = ServerConnection()
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.identity: str | None = None
        """The peer's certificate name behind TLS (:mod:`.tls`); matched by the allow-list."""
        self.device: VirtualDevice | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._batch = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio callbacks --------------------------------------------------- #

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_server: stream transports
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            keepalive(sock)  # a vanished client must not hold its device forever
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        # Let whole commands' replies (a 1 MiB READ, several in flight) sit in
        # the buffer before back-pressure pauses reading: the 64 KiB default
        # stops us reading the next pipelined command while this one drains.
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else None
        self.server._conns.add(self)

    def data_received(self, data: bytes) -> None:
        self._batch = True
        try:
            events = self.core.receive_data(data, asyncio.get_running_loop().time())
            self._handle(events)
        except UsbipProtocolError as err:
            log.warning("usbip client %s: %s; closing", self.peer, err)
            self.abort()
            return
        finally:
            self._batch = False
        self._flush()

    def pause_writing(self) -> None:
        # The client is not reading: stop reading its requests too (back-pressure).
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.close()
        self.server._conns.discard(self)
        if self._timer is not None:
            self._timer.cancel()
        if self.device is not None:
            self.device.disconnect()
            if self.server.owners.get(self.device.busid) is self:
                del self.server.owners[self.device.busid]
            self.device = None
        if not self.lost.done():
            self.lost.set_result(None)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- events -------------------------------------------------------------- #

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, UrbSubmitted):
                if self.device is not None:
                    self._submit(self.device, ev)
            elif isinstance(ev, UrbUnlinked):
                if ev.cancelled and self.device is not None:
                    self.device.cancel(ev.seqnum)
            elif isinstance(ev, DeviceListRequested):
                visible = self.server.allow.visible(
                    self.server.devices, address=self.peer, identity=self.identity
                )
                records = [
                    self.server.devices[b].record(self.server.busnum, self.server._devnum[b])
                    for b in visible
                ]
                self._handle(self.core.send_devlist(records))
            elif isinstance(ev, ImportRequested):
                self._import(ev.busid)

    def _submit(self, device: VirtualDevice, ev: UrbSubmitted) -> None:
        try:
            device.submit(ev, self._done)
        except Exception:
            # A device bug must not take the connection down: the URB stalls.
            log.exception("usbip device %s failed on URB %d", device.busid, ev.seqnum)
            device.cancel(ev.seqnum)
            if ev.seqnum in self.core.pending_seqnums:
                self._done(ev.seqnum, UrbResult(status=-32))

    def _import(self, busid: str) -> None:
        srv = self.server
        dev = srv.devices.get(busid)
        if dev is None or not srv.allow.permits(busid, address=self.peer, identity=self.identity):
            log.info(
                "usbip import of %r by %s (%r) refused: no such device for it",
                busid, self.peer, self.identity,
            )  # fmt: skip
            self.core.refuse_import(Status.NODEV)
            return
        if busid in srv.owners:
            self.core.refuse_import(Status.DEV_BUSY)
            return
        srv.owners[busid] = self
        self.device = dev
        self._handle(
            self.core.accept_import(dev.record(srv.busnum, srv._devnum[busid]), dev.endpoints)
        )
        if dev.tick_interval:
            self._schedule_tick(dev.tick_interval)

    def _schedule_tick(self, interval: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(interval, self._tick, interval)

    def _tick(self, interval: float) -> None:
        if self.device is None or self.core.phase is not Phase.URB:
            return
        self.device.tick()
        self._schedule_tick(interval)

    def _done(self, seqnum: int, result: UrbResult) -> None:
        if self.core.phase is not Phase.URB:
            return  # connection gone; the URB dies with it
        try:
            self.core.complete(
                seqnum,
                status=result.status,
                data=result.data,
                actual_length=result.actual_length,
                iso_packets=result.iso_packets,
                start_frame=result.start_frame,
                error_count=sum(1 for p in result.iso_packets if p.status != 0),
            )
        except UsbipProtocolError as err:
            # The device answered something the protocol forbids (more data than
            # asked): a device bug, not the client's; the URB stalls instead.
            log.error("usbip device %s: bad completion of %d: %s", self.device, seqnum, err)
            self.core.complete(seqnum, status=-32)
        if not self._batch:  # completed later (timer, another URB): send now
            self._flush()

    def _flush(self) -> None:
        chunks = self.core.data_to_send_chunks()
        t = self.transport
        if chunks and t is not None and not t.is_closing():
            # Small chunks (headers) are joined; bulk payloads go out as they are,
            # straight to send() when the socket has room (joining megabytes into
            # fresh memory cost more than the send itself).
            small: list[bytes] = []
            for c in chunks:
                if len(c) < COALESCE_BELOW:
                    small.append(c)
                    continue
                if small:
                    t.write(b"".join(small))
                    small = []
                t.write(c)
            if small:
                t.write(b"".join(small))
        if self.core.phase is Phase.CLOSED and t is not None:
            t.close()  # after a refused import: usbipd hangs up too
