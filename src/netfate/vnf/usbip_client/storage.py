"""Mass storage over an imported device: BOT + SCSI client, and a block-image file API.

Pipelining (the paper lost most of its WAN throughput to one URB at a time):
every command puts all its phases on the wire at once -- CBW, the data split in
``urb_size`` URBs, and the CSW read -- so a command costs one round trip plus
its bytes.  Large transfers are cut into commands of ``max_command`` bytes
(1 MiB), each carried by data URBs of ``urb_size`` (256 KiB: below that the
per-URB cost shows on loopback; above it fewer URBs overlap on a WAN).

``depth`` > 1 also keeps several commands in flight.  Bulk-only transport has
one command at a time per LUN; it still works because the URBs of a command
queue behind the previous one on each endpoint, and a device takes the next
CBW only after its CSW (a real device NAKs it until then).  If a command fails
with later ones in flight, they are unlinked and a BOT reset recovery
(BOT 5.3.4) brings the phases back in line.  The default, 1, is plain BOT.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from netfate.proto.usbip import SetupPacket

from .client import Completion, RemoteDevice, TransferError, UsbipError, endpoints_of

CBW = struct.Struct("<4sIIBBB16s")
CSW = struct.Struct("<4sIIB")
T = TypeVar("T")


class ScsiError(UsbipError):
    """A SCSI command failed (CSW status 1 or 2); ``sense`` is (key, asc, ascq) when read."""

    def __init__(self, op: int, status: int, sense: tuple[int, int, int] | None = None) -> None:
        super().__init__(f"SCSI op {op:#04x} failed: CSW status {status}, sense {sense}")
        self.op = op
        self.status = status
        self.sense = sense


@dataclass
class _Issued:
    """One command on the wire: its OUT URBs (CBW, data) and IN URBs (data, CSW)."""

    op: int
    tag: int
    length: int
    outs: list[tuple[int, asyncio.Future[Completion]]] = field(default_factory=list)
    ins: list[tuple[int, int, asyncio.Future[Completion]]] = field(default_factory=list)


class MassStorageClient:
    """SCSI transparent command set over bulk-only transport on a :class:`RemoteDevice`."""

    def __init__(
        self,
        dev: RemoteDevice,
        *,
        ep_in: int = 0x81,
        ep_out: int = 0x02,
        urb_size: int = 256 * 1024,
        max_command: int = 1024 * 1024,
        depth: int = 1,
    ) -> None:
        self.dev = dev
        self.depth = max(1, depth)
        self.ep_in, self.ep_out = ep_in, ep_out
        self.urb_size = urb_size
        self.max_command = max_command
        self.block_size = 512
        self.blocks = 0
        self._tag = 0
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, dev: RemoteDevice, **kw: int) -> MassStorageClient:
        """Find the bulk endpoints, configure the device, and read its capacity."""
        cfg = await dev.configuration()
        ep_in, ep_out = 0x81, 0x02
        for cls_code, addr, ttype in endpoints_of(cfg):
            if cls_code == 0x08 and ttype == 2:
                if addr & 0x80:
                    ep_in = addr
                else:
                    ep_out = addr
        await dev.set_configuration(1)
        msc = cls(dev, ep_in=ep_in, ep_out=ep_out, **kw)
        await msc.command(bytes([0x00] + [0] * 5), 0, True)  # TEST UNIT READY
        await msc.read_capacity()
        return msc

    async def command(
        self, cdb: bytes, length: int, direction_in: bool, data: bytes = b""
    ) -> bytes:
        """One BOT command with all its URBs in flight at once; returns data-in bytes."""
        async with self._lock:
            return b"".join(await self._collect(self._issue(cdb, length, direction_in, data)))

    def _issue(self, cdb: bytes, length: int, direction_in: bool, data: bytes) -> _Issued:
        """Put every URB of one command on the wire (no await: they leave together)."""
        self._tag = (self._tag + 1) & 0xFFFFFFFF
        flags = 0x80 if direction_in else 0x00
        cbw = CBW.pack(b"USBC", self._tag, length, flags, 0, len(cdb), cdb.ljust(16, b"\0"))
        dev = self.dev
        cmd = _Issued(cdb[0], self._tag, length)
        cmd.outs.append(dev.submit_nowait(self.ep_out, False, data=cbw))
        for off in range(0, length, self.urb_size):
            n = min(self.urb_size, length - off)
            if direction_in:
                seq, fut = dev.submit_nowait(self.ep_in, True, length=n)
                cmd.ins.append((seq, n, fut))
            else:
                cmd.outs.append(dev.submit_nowait(self.ep_out, False, data=data[off : off + n]))
        seq, fut = dev.submit_nowait(self.ep_in, True, length=CSW.size)
        cmd.ins.append((seq, CSW.size, fut))
        return cmd

    async def _collect(self, cmd: _Issued) -> list[bytes]:
        """Wait for one issued command; the CSW is the first IN after its data phase."""
        for r in await asyncio.gather(*(f for _s, f in cmd.outs)):
            if r.status != 0:
                await self._drop(cmd.ins)
                raise TransferError(r.status)
        ins, length = cmd.ins, cmd.length
        n_data = len(ins) - 1
        got: list[bytes] = []
        have = 0
        csw = b""
        for k, (_seq, n, fut) in enumerate(ins):
            r = await fut
            if r.status != 0:
                await self._drop(ins[k + 1 :])
                raise TransferError(r.status)
            if k < n_data and have < length:
                got.append(r.data)
                have += len(r.data)
                if len(r.data) < n:  # short packet: the data phase ended early
                    length = have
                continue
            # If the data ended early this is a URB we queued for data; the rest
            # of the command's URBs are for phases that did not happen.
            csw = r.data
            await self._drop(ins[k + 1 :])
            break
        if len(csw) != CSW.size or csw[:4] != b"USBS":
            raise UsbipError(f"bad CSW {csw.hex()}")
        _sig, tag, _residue, status = CSW.unpack(csw)
        if tag != cmd.tag:
            raise UsbipError(f"CSW tag {tag} for CBW {cmd.tag}")
        if status != 0:
            raise ScsiError(cmd.op, status)
        return got

    async def _drop(self, rest: list[tuple[int, int, asyncio.Future[Completion]]]) -> None:
        """Unlink URBs queued for phases that did not happen, and wait for the answer."""
        for seq, _n, fut in rest:
            if not fut.done():
                self.dev.unlink(seq)
        for _seq, _n, fut in rest:
            await fut

    async def _recover(self, issued: list[_Issued]) -> None:
        """After a failure with later commands in flight: cancel them, then BOT reset
        recovery (BOT 5.3.4: reset, clear both halts), so the phases line up again."""
        for cmd in issued:
            await self._drop(cmd.ins + [(s, 0, f) for s, f in cmd.outs])
        await self.dev.control(SetupPacket(0x21, 0xFF, 0, 0, 0))
        for ep in (self.ep_in, self.ep_out):
            await self.dev.control(SetupPacket(0x02, 0x01, 0, ep, 0))

    async def _transfer(
        self, op: int, lba: int, count: int, direction_in: bool, data: bytes = b""
    ) -> list[bytes]:
        """READ(10)/WRITE(10) of ``count`` blocks as commands of at most ``max_command``
        bytes, ``depth`` of them in flight."""
        bs = self.block_size
        per = max(1, min(self.max_command // bs, 0xFFFF))
        view = memoryview(data)
        out: list[bytes] = []
        window: deque[_Issued] = deque()
        async with self._lock:
            while count > 0 or window:
                while count > 0 and len(window) < self.depth:
                    n = min(per, count)
                    chunk = b"" if direction_in else bytes(view[: n * bs])
                    view = view[n * bs :]
                    window.append(self._issue(self._cdb10(op, lba, n), n * bs, direction_in, chunk))
                    lba, count = lba + n, count - n
                head = window.popleft()
                try:
                    out += await self._collect(head)
                except ScsiError as err:
                    await self._recover(list(window))
                    sense = await self._request_sense_locked()
                    raise ScsiError(err.op, err.status, sense) from err
                except UsbipError:
                    await self._recover(list(window))
                    raise
        return out

    async def inquiry(self) -> bytes:
        return await self.command(bytes([0x12, 0, 0, 0, 36, 0]), 36, True)

    async def request_sense(self) -> tuple[int, int, int]:
        async with self._lock:
            return await self._request_sense_locked()

    async def _request_sense_locked(self) -> tuple[int, int, int]:
        cmd = self._issue(bytes([0x03, 0, 0, 0, 18, 0]), 18, True, b"")
        s = b"".join(await self._collect(cmd))
        return (s[2] & 0x0F, s[12], s[13]) if len(s) >= 14 else (0, 0, 0)

    async def read_capacity(self) -> tuple[int, int]:
        """(number of blocks, block size)."""
        raw = await self.command(bytes([0x25] + [0] * 9), 8, True)
        last, bs = struct.unpack(">II", raw[:8])
        self.blocks, self.block_size = last + 1, bs
        return self.blocks, bs

    def _cdb10(self, op: int, lba: int, count: int) -> bytes:
        return struct.pack(">BBIBHB", op, 0, lba, 0, count, 0)

    async def read_blocks(self, lba: int, count: int) -> bytes:
        """READ(10) of ``count`` blocks from ``lba``."""
        return b"".join(await self._transfer(0x28, lba, count, True))

    async def write_blocks(self, lba: int, data: bytes) -> None:
        """WRITE(10) of whole blocks at ``lba``."""
        if len(data) % self.block_size:
            raise ValueError("write_blocks needs whole blocks")
        await self._transfer(0x2A, lba, len(data) // self.block_size, False, data)


class BlockFile(io.RawIOBase):
    """The remote pendrive as a seekable, readable, writable binary file.

    Synchronous: it drives a :class:`MassStorageClient` that lives on an event
    loop in another thread (see :class:`BlockImage`).  Unaligned writes are
    read-modify-write of the edge blocks.
    """

    def __init__(self, msc: MassStorageClient, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._msc = msc
        self._loop = loop
        self._pos = 0
        self.size = msc.blocks * msc.block_size

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        mv = memoryview(buffer).cast("B")
        n = min(len(mv), self.size - self._pos)
        if n <= 0:
            return 0
        bs = self._msc.block_size
        first, last = self._pos // bs, (self._pos + n - 1) // bs
        raw = self._run(self._msc.read_blocks(first, last - first + 1))
        start = self._pos - first * bs
        mv[:n] = raw[start : start + n]
        self._pos += n
        return n

    def write(self, data: Any) -> int:
        raw = bytes(data)
        n = min(len(raw), self.size - self._pos)
        if n <= 0:
            return 0
        bs = self._msc.block_size
        first, last = self._pos // bs, (self._pos + n - 1) // bs
        start = self._pos - first * bs
        if start or (self._pos + n) % bs:
            block = bytearray(self._run(self._msc.read_blocks(first, last - first + 1)))
        else:
            block = bytearray((last - first + 1) * bs)
        block[start : start + n] = raw[:n]
        self._run(self._msc.write_blocks(first, bytes(block)))
        self._pos += n
        return n


class BlockImage:
    """Import a remote pendrive and expose it as a :class:`BlockFile`, from sync code.

    Runs its own event loop in a daemon thread; ``close()`` detaches.
    """

    def __init__(self, host: str, busid: str, port: int = 3240, **kw: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._dev: RemoteDevice | None = None
        try:
            self._dev = self._call(RemoteDevice.attach(host, busid, port))
            self.msc = self._call(MassStorageClient.open(self._dev, **kw))
        except BaseException:
            self.close()
            raise
        self.file = BlockFile(self.msc, self._loop)

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        if self._dev is not None:
            self._call(self._dev.close())
            self._dev = None
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> BlockImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
