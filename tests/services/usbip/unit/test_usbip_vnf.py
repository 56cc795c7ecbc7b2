"""HRH server and ISP client over 127.0.0.1: virtual devices, allow-list, pty, block file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import threading
from pathlib import Path

import pytest

from netfate.proto.usbip import IsoPacket, SetupPacket, Status
from netfate.vnf.usbip_client import (
    BlockImage,
    ImportRefusedError,
    MassStorageClient,
    RemoteDevice,
    ScsiError,
    SerialPty,
    UsbipError,
    list_devices,
)
from netfate.vnf.usbip_host import (
    AllowList,
    HidKeyboard,
    IsoStream,
    MassStorage,
    SerialSensor,
    UsbipServer,
)

IMAGE_BYTES = 4 * 1024 * 1024


@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "pendrive.img"
    p.write_bytes(os.urandom(IMAGE_BYTES))
    return p


def make_server(image: Path, allow: AllowList | None = None) -> UsbipServer:
    return UsbipServer(
        [SerialSensor("1-1", period=0.05), MassStorage("1-2", image), HidKeyboard("1-3")],
        allow=allow,
    )


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_devlist_shows_three_devices(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            devs = await list_devices("127.0.0.1", srv.port)
            assert [d.busid for d in devs] == ["1-1", "1-2", "1-3"]
            classes = [tuple(i.interface_class for i in d.interfaces) for d in devs]
            assert classes == [(0x02, 0x0A), (0x08,), (0x03,)]
            assert devs[1].devid == (1 << 16) | 3

    run(main())


def test_allow_list_hides_devices_and_refuses_import(image: Path) -> None:
    async def main() -> None:
        allow = AllowList.from_mapping({"1-1": ["127.0.0.1"], "1-2": ["10.0.0.0/8"]})
        async with make_server(image, allow) as srv:
            await srv.start()
            devs = await list_devices("127.0.0.1", srv.port)
            assert [d.busid for d in devs] == ["1-1"]
            with pytest.raises(ImportRefusedError) as info:
                await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            assert info.value.status == Status.NODEV  # not "forbidden": no probing

    run(main())


def test_unknown_busid_nodev_and_busy_device(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            with pytest.raises(ImportRefusedError) as info:
                await RemoteDevice.attach("127.0.0.1", "7-7", srv.port)
            assert info.value.status == Status.NODEV
            first = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            with pytest.raises(ImportRefusedError) as info:
                await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            assert info.value.status == Status.DEV_BUSY
            await first.close()
            while srv.owners:  # the server releases the device when it sees the close
                await asyncio.sleep(0.01)
            again = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            await again.close()

    run(main())


def test_mass_storage_scsi_and_pipelined_read_write(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            msc = await MassStorageClient.open(dev, urb_size=4096, max_command=256 * 1024)
            assert (msc.blocks, msc.block_size) == (IMAGE_BYTES // 512, 512)
            inq = await msc.inquiry()
            assert inq[0] == 0 and inq[8:16] == b"netfate "
            mode = await msc.command(bytes([0x1A, 0, 0x3F, 0, 4, 0]), 4, True)
            assert mode == bytes([3, 0, 0, 0])
            data = await msc.read_blocks(0, msc.blocks)
            assert data == image.read_bytes()
            new = os.urandom(1024 * 1024)
            await msc.write_blocks(100, new)
            assert image.read_bytes()[100 * 512 : 100 * 512 + len(new)] == new
            with pytest.raises(ScsiError) as info:
                await msc.read_blocks(msc.blocks - 1, 2)  # past the end
            assert info.value.sense == (0x05, 0x21, 0x00)
            # the device recovered: the next command works
            assert await msc.read_blocks(0, 1) == image.read_bytes()[:512]
            await dev.close()

    run(main())


def test_pipelined_commands_and_recovery_after_a_failure(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            msc = await MassStorageClient.open(dev, urb_size=16384, max_command=65536, depth=4)
            assert await msc.read_blocks(0, msc.blocks) == image.read_bytes()
            new = os.urandom(512 * 1024)
            await msc.write_blocks(3, new)
            assert image.read_bytes()[3 * 512 : 3 * 512 + len(new)] == new
            # A failing command with three more in flight behind it: the later
            # ones are cancelled, the device is reset, and the next read works.
            with pytest.raises(ScsiError) as info:
                await msc.read_blocks(msc.blocks - 128, 1024)
            assert info.value.sense == (0x05, 0x21, 0x00)
            assert await msc.read_blocks(5, 300) == image.read_bytes()[5 * 512 : 305 * 512]
            await dev.close()

    run(main())


def test_many_urbs_in_flight(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-3", srv.port)
            setup = SetupPacket(0x80, 6, 0x0100, 0, 18)
            pending = [dev.submit_nowait(0, True, length=18, setup=setup)[1] for _ in range(200)]
            assert dev.in_flight == 200
            done = await asyncio.gather(*pending)
            assert {d.data[:2] for d in done} == {b"\x12\x01"}
            await dev.close()

    run(main())


def test_hid_reports_and_unlink_of_parked_urb(image: Path) -> None:
    async def main() -> None:
        kb = HidKeyboard("1-3")
        async with UsbipServer([kb]) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-3", srv.port)
            rd = await dev.control(SetupPacket(0x81, 6, 0x2200, 0, 63))
            assert rd[:4] == bytes.fromhex("05010906")
            seq, parked = dev.submit_nowait(1, True, length=8, interval=10)
            await asyncio.sleep(0.01)
            assert not parked.done()  # no key pressed: the URB waits on the server
            dev.unlink(seq)
            assert (await parked).status == -104
            kb.press(0x04)  # 'a'
            assert await dev.interrupt_in(0x81, 8) == bytes([0, 0, 4, 0, 0, 0, 0, 0])
            assert await dev.interrupt_in(0x81, 8) == bytes(8)
            await dev.close()

    run(main())


def test_serial_pty_cat_reads_temperatures_and_ping_pong(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-1", srv.port)
            pty = SerialPty(dev)
            await pty.start()
            proc = await asyncio.create_subprocess_exec(
                "head", "-n", "2", pty.slave_path, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            lines = out.decode().split()
            assert len(lines) == 2 and all(line.startswith("temp=") for line in lines)
            float(lines[0].removeprefix("temp="))
            # ping through the pty slave, as an application would
            fd = os.open(pty.slave_path, os.O_RDWR | os.O_NOCTTY)
            os.write(fd, b"ping\n")
            seen = b""
            while b"pong" not in seen:
                seen += await asyncio.to_thread(os.read, fd, 256)
            os.close(fd)
            await pty.close()
            await dev.close()

    run(main())


def test_block_image_file_api(image: Path) -> None:
    srv_ready: asyncio.Future[int]

    async def serve(stop: asyncio.Event) -> None:
        async with make_server(image) as srv:
            await srv.start()
            srv_ready.set_result(srv.port)
            await stop.wait()

    async def main() -> None:
        nonlocal srv_ready
        srv_ready = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        task = asyncio.create_task(serve(stop))
        port = await srv_ready

        def use_file() -> None:
            with BlockImage("127.0.0.1", "1-2", port) as img:
                f = img.file
                assert f.size == IMAGE_BYTES
                f.seek(1000)
                f.write(b"hello, pendrive")  # unaligned: read-modify-write
                f.seek(1000)
                assert f.read(15) == b"hello, pendrive"
                f.seek(0)
                assert f.read(4096) == image.read_bytes()[:4096]

        await asyncio.to_thread(use_file)
        assert image.read_bytes()[1000:1015] == b"hello, pendrive"
        stop.set()
        await task

    run(main())


def test_connection_drop_gives_clean_error_and_reattach_works(image: Path) -> None:
    async def main() -> None:
        srv = make_server(image)
        await srv.start()
        port = srv.port
        dev = await RemoteDevice.attach("127.0.0.1", "1-1", port)
        _seq, parked = dev.submit_nowait(1, True, length=64)
        await srv.close()  # tunnel cut mid-transfer
        assert srv.owners == {}  # the device was released
        with pytest.raises(UsbipError):
            await parked
        with pytest.raises(UsbipError):
            await dev.bulk_in(1, 64)
        srv2 = make_server(image)
        await srv2.start("127.0.0.1", port)
        await dev.reattach(attempts=3, interval=0.01)  # same object, new connection
        assert (await dev.bulk_in(1, 64)).startswith(b"temp=")
        await dev.close()
        await srv2.close()

    run(main())


def test_hostile_client_is_dropped_and_server_keeps_serving(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(bytes.fromhex("0111800300000000") + b"1-2".ljust(32, b"\0"))
            await r.readexactly(8 + 312)
            # CMD_SUBMIT on endpoint 16 with a huge length: refused, connection closed
            devid = (1 << 16) | 3
            w.write(struct.pack(">IIIIIIiiiI8x", 1, 1, devid, 1, 16, 0, -1, 0, -1, 0))
            assert await r.read() == b""
            w.close()
            while srv.owners:
                await asyncio.sleep(0.01)
            devs = await list_devices("127.0.0.1", srv.port)
            assert len(devs) == 3
            dev = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)  # released
            await dev.close()

    run(main())


@pytest.mark.skipif(shutil.which("usbip") is None, reason="Debian usbip tool not installed")
def test_debian_usbip_list_shows_our_devices(image: Path) -> None:
    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            proc = await asyncio.create_subprocess_exec(
                "usbip", "--tcp-port", str(srv.port), "list", "-r", "127.0.0.1",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            text = out.decode()
            assert proc.returncode == 0, err
            for busid, vidpid in (("1-1", "1d6b:0105"), ("1-2", "1d6b:0106"), ("1-3", "1d6b:0107")):
                assert f"{busid}: " in text and vidpid in text
            assert "Mass Storage / SCSI / Bulk-Only (08/06/50)" in text

    run(main())


def test_libusb_passthrough_with_virtual_devices_as_hardware(image: Path) -> None:
    # HostDevice drives a pyusb-shaped backend; our virtual devices stand in for
    # the dongles (no USB hardware here).
    from netfate.vnf.usbip_host.passthrough import HostDevice, VirtualBackend

    async def main() -> None:
        pen = HostDevice("2-1", VirtualBackend(MassStorage("x", image)), poll_ms=10)
        sensor = HostDevice("2-2", VirtualBackend(SerialSensor("y")), poll_ms=10)
        assert (pen.vendor, pen.product) == (0x1D6B, 0x0106)
        assert [ep.address for ep in sensor.endpoints] == [0x83, 0x81, 0x02]
        async with UsbipServer([pen, sensor]) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "2-1", srv.port)
            msc = await MassStorageClient.open(dev)
            assert await msc.read_blocks(0, 256) == image.read_bytes()[: 256 * 512]
            new = os.urandom(64 * 1024)
            await msc.write_blocks(16, new)
            assert image.read_bytes()[16 * 512 : 16 * 512 + len(new)] == new
            await dev.close()
            ser = await RemoteDevice.attach("127.0.0.1", "2-2", srv.port)
            seq, parked = ser.submit_nowait(1, True, length=64)
            ser.unlink(seq)  # a read with nothing to read: cancelled within a poll slice
            assert (await parked).status == -104
            await ser.bulk_out(2, b"ping\n")
            assert await ser.bulk_in(1, 64) == b"pong\r\n"
            await ser.close()

    run(main())


@pytest.mark.skipif(shutil.which("usbip") is None, reason="Debian usbip tool not installed")
def test_debian_usbip_attach_reads_our_import_replies(image: Path) -> None:
    # Without vhci-hcd the tool cannot finish an attach, but it imports first:
    # OK gets as far as opening vhci; NODEV and DEV_BUSY are reported by name.
    async def attach(port: int, busid: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "usbip", "--tcp-port", str(port), "attach", "-r", "127.0.0.1", "-b", busid,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _out, err = await proc.communicate()
        return err.decode()

    async def main() -> None:
        async with make_server(image) as srv:
            await srv.start()
            ok = await attach(srv.port, "1-2")
            assert "vhci" in ok and "Attach Request" not in ok
            while srv.owners:  # the tool imported 1-2; wait until its hang-up releases it
                await asyncio.sleep(0.01)
            assert "Device not found" in await attach(srv.port, "9-9")
            holder = await RemoteDevice.attach("127.0.0.1", "1-2", srv.port)
            assert "Device busy" in await attach(srv.port, "1-2")
            await holder.close()

    run(main())


def test_cli_list_against_a_running_server(image: Path) -> None:
    from typer.testing import CliRunner

    from netfate.services.usbip.cli import app

    loop = asyncio.new_event_loop()
    srv = make_server(image)
    loop.run_until_complete(srv.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        result = CliRunner().invoke(app, ["list", "127.0.0.1", "--port", str(srv.port)])
    finally:
        asyncio.run_coroutine_threadsafe(srv.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    assert result.exit_code == 0, result.output
    assert "1-2: 1d6b:0106" in result.output and "08/06/50" in result.output


def test_isochronous_stream_end_to_end(image: Path) -> None:
    async def main() -> None:
        async with UsbipServer([IsoStream("1-4", drop_every=5)]) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-4", srv.port)
            layout = tuple(IsoPacket(k * 192, 192) for k in range(8))
            first = await dev.submit(1, True, length=8 * 192, iso_packets=layout)
            second = await dev.submit(1, True, length=8 * 192, iso_packets=layout)
            assert first.status == 0 and len(first.iso_packets) == 8
            lost = [p for p in first.iso_packets if p.status != 0]
            assert [p.actual_length for p in lost] == [0]  # packet 5 of 8 was dropped
            assert first.actual_length == 7 * 192 == len(first.data)
            counters = [
                int.from_bytes(first.data[k : k + 4], "big") for k in range(0, 7 * 192, 192)
            ]
            assert counters == [1, 2, 3, 4, 6, 7, 8]
            assert second.data[:4] == (9).to_bytes(4, "big")
            await dev.close()

    run(main())


def test_functions_hrh_and_isp_with_reimport_after_a_drop(image: Path, tmp_path: Path) -> None:
    from netfate.vnf.runtime import Context
    from netfate.vnf.usbip_client.function import SerialImporter
    from netfate.vnf.usbip_host.function import UsbipHost

    def host(port: int, base: float) -> UsbipHost:
        config = {
            "host": "127.0.0.1",
            "port": port,
            "devices": [
                {"kind": "serial", "busid": "1-1", "period": 0.02, "base_celsius": base},
                {"kind": "storage", "busid": "1-2", "image": str(image)},
            ],
            "allow": {"*": ["127.0.0.1"]},
        }
        return UsbipHost(Context(instance="hrh-1", config=config))

    async def read_until(fd: int, marker: bytes) -> None:
        got = b""
        while marker not in got:
            got += await asyncio.to_thread(os.read, fd, 256)

    async def main() -> None:
        hrh = host(0, 21.0)
        await hrh.start()
        port = int(hrh.stats()["port"])
        assert hrh.stats()["exported"] == ["1-1", "1-2"]
        link = tmp_path / "ttyHRH"
        isp = SerialImporter(
            Context(
                instance="isp-1",
                config={"server": "127.0.0.1", "port": port, "link": str(link),
                        "retry_seconds": 0.05},
            )
        )  # fmt: skip
        await isp.start()
        assert hrh.stats()["imported"] == ["1-1"]
        fd = os.open(link, os.O_RDONLY | os.O_NOCTTY)
        await read_until(fd, b"temp=21.")
        await hrh.stop()  # the HRH goes away: the ISP function keeps retrying
        hrh = host(port, 30.0)  # a sensor reading 30 degrees: new data is recognisable
        await hrh.start()
        while isp.stats()["reconnects"] < 1:
            await asyncio.sleep(0.02)
        await read_until(fd, b"temp=30.")  # same pty, data flows again
        assert isp.stats()["reconnects"] == 1 and isp.stats()["pty"] == os.readlink(link)
        os.close(fd)
        await isp.stop()
        await hrh.stop()

    run(main())


def test_silent_server_times_out_cleanly() -> None:
    async def main() -> None:
        async def mute(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.read()  # accepts, never answers
            w.close()

        srv = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        with pytest.raises(UsbipError, match="no import reply"):
            await RemoteDevice.attach("127.0.0.1", "1-1", port, timeout=0.2)
        with pytest.raises(UsbipError, match="no devlist reply"):
            await list_devices("127.0.0.1", port, timeout=0.2)
        srv.close()
        await srv.wait_closed()

    run(main())


def test_python_api_for_hid_reports_and_iso_packets() -> None:
    from netfate.vnf.usbip_client import hid_reports, iso_packets

    async def main() -> None:
        kb = HidKeyboard("1-3")
        async with UsbipServer([kb, IsoStream("1-4", drop_every=3)]) as srv:
            await srv.start()
            dev = await RemoteDevice.attach("127.0.0.1", "1-3", srv.port)
            kb.press(0x05)
            kb.press(0x06)
            got = []
            async with contextlib.aclosing(hid_reports(dev)) as reports:
                async for report in reports:
                    got.append(report[2])
                    if len(got) == 4:
                        break
            while dev.in_flight:  # the unlinks of the parked reads are answered
                await asyncio.sleep(0.01)
            assert not any(kb._parked.values())  # and the device forgot them
            assert got == [0x05, 0, 0x06, 0]  # press, release, press, release
            await dev.close()
            iso = await RemoteDevice.attach("127.0.0.1", "1-4", srv.port)
            seen = []
            async with contextlib.aclosing(iso_packets(iso, packets_per_urb=4)) as stream:
                async for desc, payload in stream:
                    seen.append((desc.status, payload[:4]))
                    if len(seen) == 6:
                        break
            assert [s for s, _ in seen] == [0, 0, -18, 0, 0, -18]
            assert seen[3][1] == (4).to_bytes(4, "big")
            await iso.close()

    run(main())
