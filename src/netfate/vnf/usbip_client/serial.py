"""A remote CDC-ACM device as a pseudo-terminal: ``cat`` of the slave reads the sensor.

Device → application: ``depth`` bulk IN URBs stay in flight; each completion is
written to the pty master and resubmitted.  Application → device: bytes written
to the slave are read from the master and sent as bulk OUT.  The slave is put
in raw mode so that the line discipline neither echoes the sensor's output back
to it nor rewrites line endings.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path

from netfate.proto.usbip import SetupPacket

from .client import Completion, RemoteDevice, UsbipError, endpoints_of

READ_SIZE = 512


class SerialPty:
    """Bridge an imported CDC-ACM device to a new pty; ``slave_path`` is what ``cat`` opens."""

    def __init__(self, dev: RemoteDevice, *, depth: int = 4, link: Path | None = None) -> None:
        self.dev = dev
        self.depth = depth
        self.ep_in, self.ep_out = 0x81, 0x02
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.slave_path = os.ttyname(self._slave)
        self.link = link
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._out_queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def start(self) -> None:
        """Configure the device (DTR up, 115200 8N1) and start moving bytes."""
        await self._configure()
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
            self.link.symlink_to(self.slave_path)
        loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)
        loop.add_reader(self.master, self._on_master_readable)
        self._start_pumps()

    async def _configure(self) -> None:
        cfg = await self.dev.configuration()
        for cls, addr, ttype in endpoints_of(cfg):
            if cls == 0x0A and ttype == 2:
                if addr & 0x80:
                    self.ep_in = addr
                else:
                    self.ep_out = addr
        await self.dev.set_configuration(1)
        coding = (115200).to_bytes(4, "little") + bytes([0, 0, 8])
        await self.dev.control(SetupPacket(0x21, 0x20, 0, 0, 7), coding)
        await self.dev.control(SetupPacket(0x21, 0x22, 0x0003, 0, 0))

    def _start_pumps(self) -> None:
        self._tasks = [
            asyncio.create_task(self._device_to_pty()),
            asyncio.create_task(self._pty_to_device()),
        ]

    async def wait_failed(self) -> BaseException | None:
        """Return when the bridge stops: the error (connection lost), or None if closed."""
        if not self._tasks:
            return None
        done, _pending = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                return t.exception()
        return None

    async def resume(self, dev: RemoteDevice) -> None:
        """Bridge again through ``dev`` (re-imported after a drop); same pty, same link."""
        self.dev = dev
        await self._configure()
        self._start_pumps()

    @property
    def closed(self) -> bool:
        return self._closed

    async def _device_to_pty(self) -> None:
        futs: list[asyncio.Future[Completion]] = []
        for _ in range(self.depth):
            futs.append(self.dev.submit_nowait(self.ep_in, True, length=READ_SIZE)[1])
        while not self._closed:
            done = await futs.pop(0)
            if done.status == 0 and done.data:
                self._write_master(done.data)
            if self._closed:
                break
            futs.append(self.dev.submit_nowait(self.ep_in, True, length=READ_SIZE)[1])

    def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                return  # nobody reads the slave and its buffer is full: drop, like a UART
            view = view[n:]

    def _on_master_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        if data:
            self._out_queue.put_nowait(data)

    async def _pty_to_device(self) -> None:
        while not self._closed:
            data = await self._out_queue.get()
            await self.dev.bulk_out(self.ep_out, data)

    async def write(self, data: bytes) -> None:
        """Send bytes to the device directly (the Python API, besides the pty)."""
        await self.dev.bulk_out(self.ep_out, data)

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, UsbipError):
                await t
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        os.close(self.master)
        os.close(self._slave)
