"""The ISP side: an asyncio USB/IP client over :class:`ClientConnection`, no kernel modules.

``list_devices`` asks a server what it exports; ``RemoteDevice.attach`` imports
one and gives a Python API to it.  Every transfer is a URB with its own future,
so any number can be in flight (pipelining); the core matches replies by seqnum.
TCP_NODELAY is set: USB/IP is request/response with small headers, and Nagle
plus delayed ACKs would add tens of milliseconds per URB.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from netfate.proto.usbip import (
    ClientConnection,
    DeviceImported,
    DeviceListReceived,
    Event,
    ImportRefused,
    IsoPacket,
    SetupPacket,
    Status,
    UrbCompleted,
    UrbUnlinked,
    UsbDevice,
    UsbipProtocolError,
)

RECV_SIZE = 1024 * 1024
COALESCE_BELOW = 16 * 1024


class UsbipError(Exception):
    """A transfer or import failed: refused, stalled, or the connection was lost."""


class ImportRefusedError(UsbipError):
    """The server answered OP_REQ_IMPORT with an error status."""

    def __init__(self, busid: str, status: int) -> None:
        name = Status(status).name if status in Status._value2member_map_ else str(status)
        super().__init__(f"import of {busid} refused: {name}")
        self.status = status


class TransferError(UsbipError):
    """A URB completed with a non-zero status (e.g. -32, a stall)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"URB failed with status {status}")
        self.status = status


@dataclass(frozen=True)
class Completion:
    """What a URB returned: status, data (IN) and the actual length."""

    status: int
    data: bytes
    actual_length: int
    iso_packets: tuple[IsoPacket, ...] = ()


class _ClientProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.core = ClientConnection()
        self.transport: asyncio.Transport | None = None
        self.urbs: dict[int, asyncio.Future[Completion]] = {}
        self.op_reply: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None
        self._flush_pending = False
        self.imported: UsbDevice  # set once the import succeeded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            keepalive(sock)
        # asyncio reads at most 256 KiB per wake-up; bulk replies come in MiBs.
        if hasattr(transport, "max_size"):
            transport.max_size = RECV_SIZE

    def data_received(self, data: bytes) -> None:
        try:
            events = self.core.receive_data(data, asyncio.get_running_loop().time())
        except UsbipProtocolError as err:
            self._fail(UsbipError(f"protocol error from server: {err}"))
            if self.transport is not None:
                self.transport.abort()
            return
        for ev in events:
            if isinstance(ev, UrbCompleted):
                fut = self.urbs.pop(ev.seqnum, None)
                if fut is not None and not fut.done():
                    fut.set_result(Completion(ev.status, ev.data, ev.actual_length, ev.iso_packets))
            elif isinstance(ev, UrbUnlinked):
                fut = self.urbs.pop(ev.seqnum, None)
                if fut is not None and not fut.done():
                    fut.set_result(Completion(ev.status or -104, b"", 0))
            elif not self.op_reply.done():
                self.op_reply.set_result(ev)

    def _fail(self, err: BaseException) -> None:
        self.error = err
        for fut in self.urbs.values():
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # an abandoned URB (e.g. a parked read) is not a bug to log
        self.urbs.clear()
        if not self.op_reply.done():
            self.op_reply.set_exception(err)

    def connection_lost(self, exc: Exception | None) -> None:
        self.core.close()
        self._fail(self.error or UsbipError(f"connection lost: {exc or 'closed by server'}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def schedule_flush(self) -> None:
        """Write once per loop turn: URBs submitted together leave in one send()."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        chunks = self.core.data_to_send_chunks()
        t = self.transport
        if not chunks or t is None:
            return
        # Headers are joined; OUT payloads go to send() as they are (no copy).
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


async def _open(host: str, port: int, sock: socket.socket | None) -> _ClientProtocol:
    loop = asyncio.get_running_loop()
    if sock is not None:  # e.g. created inside a namespace (netns.socket_in) and connected
        _t, proto = await loop.create_connection(_ClientProtocol, sock=sock)
    else:
        _t, proto = await loop.create_connection(_ClientProtocol, host, port)
    return proto


_P = TypeVar("_P", bound=_ClientProtocol)


async def _request_import(proto: _P, host: str, busid: str, timeout: float) -> _P:
    """OP_REQ_IMPORT ``busid`` on the fresh connection ``proto``; the connection is
    closed on anything but an import (refused, no or an unexpected reply)."""
    proto.core.request_import(busid)
    proto.flush()
    try:
        ev = await asyncio.wait_for(proto.op_reply, timeout)
    except BaseException as err:
        if proto.transport is not None:
            proto.transport.abort()
        await proto.closed
        if isinstance(err, TimeoutError):
            raise UsbipError(f"no import reply from {host} in {timeout} s") from None
        raise
    if not isinstance(ev, DeviceImported):
        if proto.transport is not None:
            proto.transport.close()
        if isinstance(ev, ImportRefused):
            raise ImportRefusedError(busid, ev.status)
        raise UsbipError(f"unexpected reply {ev}")
    proto.imported = ev.device
    return proto


def keepalive(sock: socket.socket | Any, idle: int = 10, interval: int = 5, count: int = 3) -> None:
    """TCP keepalive, so a connection whose peer vanished (a network drop, not a close)
    fails in about ``idle + interval * count`` seconds instead of hanging; USB/IP has
    no heartbeat of its own."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


OP_TIMEOUT = 10.0
"""Seconds for connecting and an operation-phase reply (a blackholed server)."""


async def list_devices(
    host: str, port: int = 3240, *, sock: socket.socket | None = None, timeout: float = OP_TIMEOUT
) -> tuple[UsbDevice, ...]:
    """OP_REQ_DEVLIST: what ``host`` exports to us (``sock``: an already connected socket).

    Raises :class:`UsbipError` on no answer within ``timeout``, OSError if unreachable.
    """
    proto = await asyncio.wait_for(_open(host, port, sock), timeout)
    try:
        proto.core.request_devlist()
        proto.flush()
        try:
            ev = await asyncio.wait_for(proto.op_reply, timeout)
        except TimeoutError:
            raise UsbipError(f"no devlist reply from {host} in {timeout} s") from None
        if not isinstance(ev, DeviceListReceived) or ev.status != Status.OK:
            raise UsbipError(f"devlist failed: {ev}")
        return ev.devices
    finally:
        if proto.transport is not None:
            proto.transport.close()


class RemoteDevice:
    """An imported USB device: submit URBs, many at once; ``close()`` detaches it."""

    def __init__(
        self, proto: _ClientProtocol, device: UsbDevice, host: str, port: int, busid: str
    ) -> None:
        self._proto = proto
        self.device = device
        self.host, self.port, self.busid = host, port, busid

    @classmethod
    async def attach(
        cls,
        host: str,
        busid: str,
        port: int = 3240,
        *,
        sock: socket.socket | None = None,
        timeout: float = OP_TIMEOUT,
    ) -> RemoteDevice:
        """OP_REQ_IMPORT ``busid``; raises :class:`ImportRefusedError` (NODEV, DEV_BUSY …),
        :class:`UsbipError` without an answer in ``timeout``, OSError if unreachable."""
        proto = await cls._import(host, busid, port, sock, timeout)
        return cls(proto, proto.imported, host, port, busid)

    @staticmethod
    async def _import(
        host: str, busid: str, port: int, sock: socket.socket | None, timeout: float = OP_TIMEOUT
    ) -> _ClientProtocol:
        proto = await asyncio.wait_for(_open(host, port, sock), timeout)
        return await _request_import(proto, host, busid, timeout)

    async def reattach(self, *, attempts: int = 10, interval: float = 1.0) -> None:
        """Import the same device again on a new connection (after a drop).

        URBs of the old connection have already failed with :class:`UsbipError`.
        DEV_BUSY is retried too: the server may not have noticed the old
        connection die yet (keepalive ends it).
        """
        await self.close()
        last: BaseException | None = None
        for _ in range(max(1, attempts)):
            try:
                self._proto = await self._import(self.host, self.busid, self.port, None)
                self.device = self._proto.imported
                return
            except ImportRefusedError as err:
                if err.status != Status.DEV_BUSY:
                    raise
                last = err
            except OSError as err:
                last = err
            await asyncio.sleep(interval)
        raise UsbipError(f"could not re-import {self.busid} from {self.host}: {last}")

    @property
    def in_flight(self) -> int:
        return len(self._proto.urbs)

    def submit_nowait(
        self,
        ep: int,
        direction_in: bool,
        *,
        length: int = 0,
        data: bytes = b"",
        setup: SetupPacket | None = None,
        iso_packets: tuple[IsoPacket, ...] | None = None,
        interval: int = 0,
    ) -> tuple[int, asyncio.Future[Completion]]:
        """Queue one URB now; return its seqnum and the future of its completion.

        ``ep`` is an endpoint number or address (the direction bit is ignored).
        """
        if self._proto.error is not None:
            raise self._proto.error
        if self._proto.transport is None or self._proto.transport.is_closing():
            raise UsbipError("device is detached")
        seq = self._proto.core.submit(
            ep & 0x0F, direction_in, length=length, data=data, setup=setup,
            iso_packets=iso_packets, interval=interval,
        )  # fmt: skip
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._proto.urbs[seq] = fut
        self._proto.schedule_flush()
        return seq, fut

    async def submit(
        self,
        ep: int,
        direction_in: bool,
        *,
        length: int = 0,
        data: bytes = b"",
        setup: SetupPacket | None = None,
        iso_packets: tuple[IsoPacket, ...] | None = None,
        interval: int = 0,
    ) -> Completion:
        """Submit one URB and wait for it."""
        _seq, fut = self.submit_nowait(
            ep, direction_in, length=length, data=data, setup=setup,
            iso_packets=iso_packets, interval=interval,
        )  # fmt: skip
        return await fut

    def unlink(self, seqnum: int) -> None:
        """Ask the server to cancel an in-flight URB; its future resolves either way."""
        self._proto.core.unlink(seqnum)
        self._proto.flush()

    async def control(self, setup: SetupPacket, data: bytes = b"") -> bytes:
        """A control transfer on endpoint 0; raises :class:`TransferError` on a stall."""
        direction_in = not setup.is_out
        done = await self.submit(
            0, direction_in, length=setup.length if direction_in else 0, data=data, setup=setup
        )
        if done.status != 0:
            raise TransferError(done.status)
        return done.data

    async def bulk_in(self, ep: int, length: int) -> bytes:
        done = await self.submit(ep & 0x0F, True, length=length)
        if done.status != 0:
            raise TransferError(done.status)
        return done.data

    async def bulk_out(self, ep: int, data: bytes) -> int:
        done = await self.submit(ep & 0x0F, False, data=data)
        if done.status != 0:
            raise TransferError(done.status)
        return done.actual_length

    async def interrupt_in(self, ep: int, length: int, interval: int = 1) -> bytes:
        done = await self.submit(ep & 0x0F, True, length=length, interval=interval)
        if done.status != 0:
            raise TransferError(done.status)
        return done.data

    async def get_descriptor(self, kind: int, index: int = 0, length: int = 255) -> bytes:
        return await self.control(SetupPacket(0x80, 6, (kind << 8) | index, 0, length))

    async def configuration(self) -> bytes:
        """The full configuration descriptor (two reads: header, then wTotalLength)."""
        head = await self.get_descriptor(2, 0, 9)
        total = int.from_bytes(head[2:4], "little") if len(head) >= 4 else 9
        return await self.get_descriptor(2, 0, total)

    async def set_configuration(self, value: int = 1) -> None:
        await self.control(SetupPacket(0x00, 9, value, 0, 0))

    async def close(self) -> None:
        if self._proto.transport is not None:
            self._proto.transport.close()
            await self._proto.closed

    async def __aenter__(self) -> RemoteDevice:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def endpoints_of(config: bytes) -> list[tuple[int, int, int]]:
    """(interface class, endpoint address, transfer type) from a configuration descriptor."""
    out: list[tuple[int, int, int]] = []
    cls = -1
    i = 0
    while i + 2 <= len(config):
        ln, kind = config[i], config[i + 1]
        if ln < 2:
            break
        if kind == 4 and i + 6 <= len(config):
            cls = config[i + 5]
        elif kind == 5 and i + 4 <= len(config):
            out.append((cls, config[i + 2], config[i + 3] & 3))
        i += ln
    return out
