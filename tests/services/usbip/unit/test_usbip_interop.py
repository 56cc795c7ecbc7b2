"""Interop with an independent USB/IP implementation: PyPI ``usbip`` 0.7.0 (pure Python).

Its client against our HRH server, and our ISP client against its server, over
127.0.0.1.  Its API is synchronous, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from netfate.host.ports import free_port as _free_port
from netfate.vnf.usbip_client import MassStorageClient, RemoteDevice, list_devices
from netfate.vnf.usbip_host import HidKeyboard, IsoStream, MassStorage, SerialSensor, UsbipServer

usbip = pytest.importorskip("usbip", reason="PyPI usbip 0.7.0 is the interop peer")
from usbip.classes.device.msc import MSC  # noqa: E402
from usbip.classes.host.msc import MSCDriver  # noqa: E402
from usbip.device import USBDevice  # noqa: E402


class _Store:
    """A RAM block store for the PyPI MSC device class (its duck-typed store API)."""

    block_size = 512

    def __init__(self, blocks: int) -> None:
        self.num_blocks = blocks
        self.buf = bytearray(os.urandom(blocks * 512))

    def read(self, lba: int, count: int) -> bytes:
        return bytes(self.buf[lba * 512 : (lba + count) * 512])

    def write(self, lba: int, count: int, data: bytes) -> None:
        self.buf[lba * 512 : (lba + count) * 512] = data


def test_their_client_against_our_server(tmp_path: Path) -> None:
    image = tmp_path / "pen.img"
    original = os.urandom(1024 * 1024)
    image.write_bytes(original)

    def theirs(port: int) -> dict[str, Any]:
        transport = usbip.USBIP("127.0.0.1", port)
        listed = usbip.host.list_devices(transport)
        h = usbip.open(busid="1-2", transport=transport)
        msc = MSCDriver(h)
        capacity = msc.read_capacity()
        first = msc.read_blocks(0, 16, 512)
        msc.write_blocks(8, b"\xab" * 4096, 512)
        h.close()
        h = usbip.open(busid="1-1", transport=transport)
        h.bulk_out(0x02, b"ping\n")
        serial = b""
        while b"pong" not in serial:
            serial += h.bulk_in(0x81, 64)
        h.close()
        return {"listed": listed, "capacity": capacity, "first": first, "serial": serial}

    async def main() -> None:
        devices = [SerialSensor("1-1", period=0.05), MassStorage("1-2", image), HidKeyboard("1-3")]
        async with UsbipServer(devices) as srv:
            await srv.start()
            got = await asyncio.to_thread(theirs, srv.port)
        assert [d["busid"] for d in got["listed"]] == ["1-1", "1-2", "1-3"]
        assert got["capacity"] == (2048, 512)
        assert got["first"] == original[: 16 * 512]
        assert image.read_bytes()[8 * 512 : 16 * 512] == b"\xab" * 4096
        assert b"pong" in got["serial"]

    asyncio.run(main())


def test_their_client_reads_our_isochronous_stream() -> None:
    def theirs(port: int) -> list[bytes]:
        h = usbip.open(busid="1-1", transport=usbip.USBIP("127.0.0.1", port))
        try:
            packets: list[bytes] = h.iso_in(0x81, 192, 4)
            return packets
        finally:
            h.close()

    async def main() -> None:
        async with UsbipServer([IsoStream("1-1")]) as srv:
            await srv.start()
            packets = await asyncio.to_thread(theirs, srv.port)
        assert [int.from_bytes(p[:4], "big") for p in packets] == [1, 2, 3, 4]
        assert all(len(p) == 192 for p in packets)

    asyncio.run(main())


def test_our_client_against_their_server() -> None:
    store = _Store(4096)
    dev = USBDevice(0x1209, 0x0001, product="their pendrive")
    dev.add(MSC(store))
    port = _free_port()
    dev.plug(via=usbip.USBIP("127.0.0.1", port))

    async def main() -> None:
        listed = await list_devices("127.0.0.1", port)
        assert [(d.busid, d.id_vendor) for d in listed] == [("1-1", 0x1209)]
        remote = await RemoteDevice.attach("127.0.0.1", "1-1", port)
        msc = await MassStorageClient.open(remote)
        assert (msc.blocks, msc.ep_in, msc.ep_out) == (4096, 0x82, 0x01)  # found by descriptor
        assert await msc.read_blocks(0, 4096) == bytes(store.buf)
        new = os.urandom(256 * 1024)
        await msc.write_blocks(10, new)
        assert bytes(store.buf[10 * 512 : 10 * 512 + len(new)]) == new
        await remote.close()

    try:
        asyncio.run(main())
    finally:
        dev.unplug()
