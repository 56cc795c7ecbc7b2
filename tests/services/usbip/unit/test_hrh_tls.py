"""Mutual TLS around USB/IP (issue 6 item 5), over 127.0.0.1.

A tiny CA makes the HRH's and the ISP function's certificates; a second CA
plays the stranger.  A relay in the middle stands for the network path, so a
test can cut the tunnel mid-transfer without touching either end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from netfate.proto.usbip import Status
from netfate.vnf.pki import CertificateAuthority
from netfate.vnf.runtime import Context
from netfate.vnf.tls import TlsFiles
from netfate.vnf.usbip_client import ImportRefusedError, MassStorageClient, UsbipError
from netfate.vnf.usbip_client.tls import (
    TlsRefusedError,
    TlsRemoteDevice,
    TlsSerialImporter,
    client_context,
)
from netfate.vnf.usbip_host import AllowList, MassStorage, SerialSensor
from netfate.vnf.usbip_host.tls import TlsUsbipServer, server_context

IMAGE_BYTES = 8 * 1024 * 1024


@dataclass
class Pki:
    hrh: TlsFiles
    isp: TlsFiles
    other_isp: TlsFiles
    stranger: TlsFiles  # same names, another CA
    stranger_hrh: TlsFiles
    hrh_as_client: TlsFiles  # the right CA and the HRH's name, but for a client's end
    dir: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(d / "ca")
    evil = CertificateAuthority(d / "evil", name="not the operator")
    return Pki(
        hrh=ca.issue("hrh-1", usage="server", names=("127.0.0.1",)),
        isp=ca.issue("isp-fn-1", usage="client"),
        other_isp=ca.issue("isp-fn-2", usage="client"),
        # trusts the right CA, but its own certificate is from the wrong one
        stranger=replace(evil.issue("isp-fn-1", usage="client"), ca=ca.cert_path),
        stranger_hrh=evil.issue("hrh-1", usage="server", names=("127.0.0.1",)),
        hrh_as_client=replace(
            ca.issue("hrh-1-client", usage="client", names=("hrh-1", "127.0.0.1")),
            ca=ca.cert_path,
        ),
        dir=d,
    )


@pytest.fixture
def image(tmp_path: Path) -> Path:
    p = tmp_path / "pendrive.img"
    p.write_bytes(os.urandom(IMAGE_BYTES))
    return p


def server(pki: Pki, image: Path, allow: AllowList | None = None) -> TlsUsbipServer:
    return TlsUsbipServer(
        [SerialSensor("1-1", period=0.02), MassStorage("1-2", image)],
        context=server_context(pki.hrh),
        allow=allow or AllowList.from_mapping({"*": ["isp-fn-1"]}),
    )


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class Relay:
    """A TCP relay on 127.0.0.1 standing for the path; ``cut()`` kills the live tunnels."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.writers: list[asyncio.StreamWriter] = []
        self.srv: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.srv = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.srv.sockets[0].getsockname()[1])

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [cw, sw]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while chunk := await r.read(65536):
                    w.write(chunk)
                    await w.drain()
            w.close()

        await asyncio.gather(pipe(cr, sw), pipe(sr, cw), return_exceptions=True)

    def cut(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.srv is not None:
            self.srv.close()
            await self.srv.wait_closed()


def open_fds() -> set[int]:
    return {int(x) for x in os.listdir("/proc/self/fd")}


@pytest.fixture
def hrh_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO, logger="netfate.vnf.usbip_host.tls")
    yield caplog


def test_mutual_tls_serial_and_storage(pki: Pki, image: Path) -> None:
    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            ctx = client_context(pki.isp)
            dev = await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-2", srv.port, context=ctx, server_hostname="hrh-1"
            )
            tls = dev._proto.transport
            assert tls is not None
            assert tls.get_extra_info("ssl_object").version() == "TLSv1.3"
            msc = await MassStorageClient.open(dev, depth=2)
            data = os.urandom(2 * 1024 * 1024)
            await msc.write_blocks(100, data)
            assert await msc.read_blocks(100, len(data) // 512) == data
            await dev.close()
            assert image.read_bytes()[100 * 512 : 100 * 512 + len(data)] == data

            serial = await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-1", srv.port, context=ctx, server_hostname="hrh-1"
            )
            await serial.set_configuration(1)
            got = b""
            while b"temp=" not in got:
                got += await serial.bulk_in(0x81, 64)
            await serial.close()

    run(main())


def test_wrong_client_certificate_is_refused_and_logged(
    pki: Pki, image: Path, hrh_log: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            with pytest.raises(TlsRefusedError):
                await TlsRemoteDevice.open_tls(
                    "127.0.0.1", "1-1", srv.port,
                    context=client_context(pki.stranger), server_hostname="hrh-1",
                )  # fmt: skip
            # no certificate at all
            bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            bare.load_verify_locations(cafile=str(pki.hrh.ca))
            with pytest.raises(TlsRefusedError):
                await TlsRemoteDevice.open_tls(
                    "127.0.0.1", "1-1", srv.port, context=bare, server_hostname="hrh-1"
                )
            assert len(srv.refused) == 2
            assert srv.owners == {}
            # plain USB/IP against the TLS port gets nothing either
            r, w = await asyncio.open_connection("127.0.0.1", srv.port)
            w.write(bytes.fromhex("0111800500000000"))
            assert await r.read(1024) == b""
            w.close()
            assert len(srv.refused) == 3

    run(main())
    refusals = [r for r in hrh_log.records if "refused" in r.getMessage()]
    assert len(refusals) == 3
    assert "127.0.0.1" in refusals[0].getMessage()


async def refused_by_the_client(pki: Pki, shown: TlsFiles) -> None:
    """An HRH that shows `shown` is refused by a good client, which imports nothing."""
    impostor = TlsUsbipServer(
        [SerialSensor("1-1")],
        context=server_context(shown),
        allow=AllowList.open_to("127.0.0.0/8"),
    )
    async with impostor:
        await impostor.start()
        with pytest.raises(TlsRefusedError, match="certificate"):
            await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-1", impostor.port,
                context=client_context(pki.isp), server_hostname="hrh-1",
            )  # fmt: skip
        assert impostor.owners == {}


def test_wrong_server_certificate_is_refused_by_the_client(pki: Pki, image: Path) -> None:
    run(refused_by_the_client(pki, pki.stranger_hrh))


def test_each_leaf_is_for_one_end_and_the_ca_key_lies_apart(pki: Pki) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    def usages(files: TlsFiles) -> list[x509.ObjectIdentifier]:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)

    assert usages(pki.hrh) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages(pki.isp) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    leaves = pki.dir / "ca"
    assert sorted(p.name for p in leaves.iterdir() if p.suffix == ".key") == [
        "hrh-1-client.key", "hrh-1.key", "isp-fn-1.key", "isp-fn-2.key",
    ]  # fmt: skip
    ca_key = pki.dir / "ca-ca-key" / "ca.key"
    assert ca_key.stat().st_mode & 0o777 == 0o600
    assert (pki.dir / "ca-ca-key").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in leaves.glob("*.key"))
    assert leaves.stat().st_mode & 0o777 == 0o700  # it holds the leaves' keys
    # The CA opened again signs with the same key (its certificate is unchanged).
    again = CertificateAuthority(leaves)
    assert again.cert_path.read_bytes() == pki.hrh.ca.read_bytes()
    with pytest.raises(ValueError, match="usage"):
        again.issue("x", usage="both")  # type: ignore[arg-type]


def test_a_ca_key_among_the_leaves_is_moved_out(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "pki")
    cert = ca.cert_path.read_bytes()
    # The earlier layout: the key beside the leaves.
    (tmp_path / "pki-ca-key" / "ca.key").rename(tmp_path / "pki" / "ca.key")
    again = CertificateAuthority(tmp_path / "pki")
    assert not (tmp_path / "pki" / "ca.key").exists()
    assert (tmp_path / "pki-ca-key" / "ca.key").is_file()
    assert again.cert_path.read_bytes() == cert


def test_a_certificate_shown_for_the_other_end_is_refused(pki: Pki, image: Path) -> None:
    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            # The HRH's own certificate (serverAuth) presented by a client.
            with pytest.raises(TlsRefusedError):
                await TlsRemoteDevice.open_tls(
                    "127.0.0.1", "1-1", srv.port,
                    context=client_context(pki.hrh), server_hostname="hrh-1",
                )  # fmt: skip
            assert len(srv.refused) == 1 and srv.owners == {}
        # A client certificate (clientAuth) for the HRH's name, presented by a server.
        await refused_by_the_client(pki, pki.hrh_as_client)

    run(main())


def test_allow_list_matches_the_certificate_identity(pki: Pki, image: Path) -> None:
    async def main() -> None:
        allow = AllowList.from_mapping({"1-1": ["isp-fn-1"], "1-2": ["isp-fn-2"]})
        async with server(pki, image, allow) as srv:
            await srv.start()
            one, two = client_context(pki.isp), client_context(pki.other_isp)
            with pytest.raises(ImportRefusedError) as e:
                await TlsRemoteDevice.open_tls(
                    "127.0.0.1", "1-2", srv.port, context=one, server_hostname="hrh-1"
                )
            assert e.value.status == Status.NODEV
            a = await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-1", srv.port, context=one, server_hostname="hrh-1"
            )
            b = await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-2", srv.port, context=two, server_hostname="hrh-1"
            )
            assert sorted(srv.owners) == ["1-1", "1-2"]
            await a.close()
            await b.close()

    run(main())


def test_tunnel_cut_mid_transfer_clean_error_no_leak_then_reconnect(pki: Pki, image: Path) -> None:
    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            relay = Relay(srv.port)
            port = await relay.start()
            fds = open_fds()
            tasks = len(asyncio.all_tasks())
            dev = await TlsRemoteDevice.open_tls(
                "127.0.0.1", "1-2", port, context=client_context(pki.isp), server_hostname="hrh-1"
            )
            msc = await MassStorageClient.open(dev, depth=2)
            reading = asyncio.create_task(msc.read_blocks(0, IMAGE_BYTES // 512))
            while not dev._proto.core.urbs_in_flight:
                await asyncio.sleep(0)
            await asyncio.sleep(0.01)
            relay.cut()
            with pytest.raises(UsbipError):
                await reading
            with pytest.raises(UsbipError):
                await msc.read_blocks(0, 8)
            # the HRH lets the device go once its side of the tunnel closes
            while srv.owners:
                await asyncio.sleep(0.01)
            await dev.close()
            await relay.close()
            await asyncio.sleep(0.05)
            assert len(asyncio.all_tasks()) == tasks
            assert open_fds() <= fds  # nothing left open
            # the path comes back: the same device object re-imports
            relay = Relay(srv.port)
            relay_port = await relay.start()
            dev.port = relay_port
            await dev.reattach(attempts=5, interval=0.05)
            msc = await MassStorageClient.open(dev, depth=2)
            assert await msc.read_blocks(0, 2048) == image.read_bytes()[: 2048 * 512]
            await dev.close()
            await relay.close()

    run(main())


def test_serial_importer_reimports_by_itself_after_a_cut(pki: Pki, image: Path) -> None:
    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            relay = Relay(srv.port)
            port = await relay.start()
            fn = TlsSerialImporter(
                Context(
                    "isp-1",
                    {
                        "server": "127.0.0.1",
                        "port": port,
                        "busid": "1-1",
                        "server_name": "hrh-1",
                        "tls": pki.isp.to_config(),
                        "retry_seconds": 0.05,
                    },
                )
            )
            await fn.start()
            while fn.pty is None:  # the first import runs in the background
                await asyncio.sleep(0.01)
            reader = os.open(fn.pty.slave_path, os.O_RDONLY | os.O_NONBLOCK)
            loop = asyncio.get_running_loop()

            async def read_line() -> bytes:
                got = b""
                while b"\n" not in got.split(b"temp=", 1)[-1] or b"temp=" not in got:
                    fut: asyncio.Future[None] = loop.create_future()
                    loop.add_reader(reader, fut.set_result, None)
                    try:
                        await fut
                    finally:
                        loop.remove_reader(reader)
                    with contextlib.suppress(BlockingIOError):
                        got += os.read(reader, 4096)
                return got

            assert b"temp=" in await read_line()
            relay.cut()
            while fn.reconnects == 0:
                await asyncio.sleep(0.02)
            while srv.owners.get("1-1") is None:
                await asyncio.sleep(0.02)
            assert b"temp=" in await read_line()  # the same pty goes on
            assert fn.stats()["reconnects"] == 1
            os.close(reader)
            await fn.stop()
            await relay.close()

    run(main())


def test_import_request_sent_with_the_tls_finished_is_answered(pki: Pki, image: Path) -> None:
    """The client's Finished and its OP_REQ_IMPORT in one segment: the request arrives
    while the HRH is still completing the handshake, and must not be lost."""

    async def main() -> None:
        async with server(pki, image) as srv:
            await srv.start()
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client_context(pki.isp).wrap_bio(inc, out, server_hostname="hrh-1")
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    writer.write(out.read())
                    inc.write(await reader.read(65536))
            # Finished (still in `out`) and the request leave together.
            tls.write(bytes.fromhex("0111800300000000") + b"1-2".ljust(32, b"\0"))
            writer.write(out.read())
            reply = b""
            while len(reply) < 8 + 312:
                try:
                    reply += tls.read(4096)
                except ssl.SSLWantReadError:
                    chunk = await reader.read(65536)
                    assert chunk, "the HRH closed without answering the import"
                    inc.write(chunk)
            assert reply[:8] == bytes.fromhex("0111000300000000")  # OP_REP_IMPORT, OK
            assert srv.owners.keys() == {"1-2"}
            writer.close()

    # Bounded: a lost request means no reply at all (not a slow one).
    run(asyncio.wait_for(main(), 20))


def test_serial_importer_waits_for_an_hrh_that_is_not_there_yet(pki: Pki, image: Path) -> None:
    """An instance starts while its network is still being wired (or closed by SDN):
    start() returns, and the import happens once the HRH answers."""

    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # a port where nothing listens yet
        fn = TlsSerialImporter(
            Context(
                "isp-2",
                {
                    "server": "127.0.0.1",
                    "port": port,
                    "server_name": "hrh-1",
                    "tls": pki.isp.to_config(),
                    "retry_seconds": 0.05,
                },
            )
        )
        await fn.start()
        assert fn.pty is None and fn.stats()["pty"] is None
        async with server(pki, image) as srv:
            await srv.start("127.0.0.1", port)
            while fn.pty is None:
                await asyncio.sleep(0.02)
            assert srv.owners.keys() == {"1-1"}
            await fn.stop()

    run(asyncio.wait_for(main(), 30))
