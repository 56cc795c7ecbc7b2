"""`netfate usbip …`: run an HRH USB/IP server, list a server, attach a serial sensor as a pty."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from netfate.vnf.tls import TlsFiles

app = typer.Typer(
    name="usbip", help="Home Radio Head: USB devices over USB/IP.", no_args_is_help=True
)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (3240 is usbipd's)")] = 3240,
    serial: Annotated[bool, typer.Option(help="Export the CDC-ACM temperature sensor")] = True,
    storage: Annotated[
        Path | None, typer.Option(help="Export a pendrive backed by this image file")
    ] = None,
    hid: Annotated[bool, typer.Option(help="Export a HID keyboard")] = False,
    iso: Annotated[bool, typer.Option(help="Export an isochronous sample stream")] = False,
    period: Annotated[float, typer.Option(help="Seconds between temperature readings")] = 1.0,
    allow: Annotated[
        list[str] | None,
        typer.Option(
            help="Client address/network (or, with TLS, certificate name) allowed (repeatable)"
        ),
    ] = None,
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="Mutual TLS: a `netfate usbip certs` directory (ca.pem, NAME.pem/key)"),
    ] = None,
    name: Annotated[str, typer.Option(help="With --tls-dir: this HRH's certificate name")] = "hrh",
) -> None:
    """Export virtual devices over USB/IP (busids 1-1 serial, 1-2 storage, 1-3 HID, 1-4 ISO)."""
    from netfate.vnf.usbip_host import (
        HidKeyboard,
        IsoStream,
        MassStorage,
        SerialSensor,
        UsbipServer,
        VirtualDevice,
    )
    from netfate.vnf.usbip_host.allowlist import AllowList

    devices: list[VirtualDevice] = []
    if serial:
        devices.append(SerialSensor("1-1", period=period))
    if storage is not None:
        devices.append(MassStorage("1-2", storage))
    if hid:
        devices.append(HidKeyboard("1-3"))
    if iso:
        devices.append(IsoStream("1-4"))
    rules = AllowList.open_to(*(allow or ["127.0.0.0/8", "::1"]))

    srv: UsbipServer
    if tls_dir is not None:
        from netfate.vnf.usbip_host.tls import TlsUsbipServer, server_context

        ctx = server_context(_tls_files(tls_dir, name))
        rules = AllowList.open_to(*(allow or []))  # names or networks; nobody by default
        srv = TlsUsbipServer(devices, context=ctx, allow=rules)
    else:
        srv = UsbipServer(devices, allow=rules)

    async def main() -> None:
        async with srv:
            await srv.start(host, port)
            typer.echo(f"usbip: exporting {[d.busid for d in devices]} on {host}:{srv.port}")
            await _until_signalled()

    asyncio.run(main())


@app.command("list")
def list_cmd(
    host: Annotated[str, typer.Argument(help="USB/IP server")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 3240,
) -> None:
    """List what a USB/IP server exports (like `usbip list -r`)."""
    from netfate.vnf.usbip_client import list_devices

    for d in asyncio.run(list_devices(host, port)):
        ifs = " ".join(
            f"{i.interface_class:02x}/{i.interface_subclass:02x}/{i.interface_protocol:02x}"
            for i in d.interfaces
        )
        typer.echo(f"{d.busid}: {d.id_vendor:04x}:{d.id_product:04x} {d.path} [{ifs}]")


@app.command()
def serial(
    host: Annotated[str, typer.Argument(help="USB/IP server")],
    busid: Annotated[str, typer.Argument(help="Bus id of the CDC-ACM device")] = "1-1",
    port: Annotated[int, typer.Option()] = 3240,
    link: Annotated[Path | None, typer.Option(help="Also make this symlink to the pty")] = None,
    tls_dir: Annotated[
        Path | None, typer.Option(help="Mutual TLS: a `netfate usbip certs` directory")
    ] = None,
    name: Annotated[str, typer.Option(help="With --tls-dir: our certificate name")] = "isp",
    server_name: Annotated[
        str, typer.Option(help="With --tls-dir: the name in the HRH's certificate")
    ] = "hrh",
) -> None:
    """Import a remote serial device and present it as a pty (`cat` it) until Ctrl-C."""
    from netfate.vnf.usbip_client import RemoteDevice, SerialPty

    async def main() -> None:
        if tls_dir is not None:
            from netfate.vnf.usbip_client.tls import TlsRemoteDevice, client_context

            ctx = client_context(_tls_files(tls_dir, name))
            dev: RemoteDevice = await TlsRemoteDevice.open_tls(
                host, busid, port, context=ctx, server_hostname=server_name
            )
        else:
            dev = await RemoteDevice.attach(host, busid, port)
        pty = SerialPty(dev, link=link)
        await pty.start()
        typer.echo(f"usbip: {host} {busid} is {link or pty.slave_path}")
        try:
            await _until_signalled()
        finally:
            await pty.close()
            with contextlib.suppress(Exception):
                await dev.close()

    asyncio.run(main())


def _tls_files(directory: Path, name: str) -> TlsFiles:
    from netfate.vnf.tls import TlsFiles

    files = TlsFiles.in_directory(directory, name)
    for p in (files.ca, files.cert, files.key):
        if not p.is_file():
            raise typer.BadParameter(f"{p} not found (make it with `netfate usbip certs`)")
    return files


@app.command()
def certs(
    directory: Annotated[Path, typer.Argument(help="Where the CA and certificates live")],
    server: Annotated[
        list[str] | None, typer.Option(help="Issue a server certificate for this name (the HRH)")
    ] = None,
    client: Annotated[
        list[str] | None,
        typer.Option(help="Issue a client certificate for this name (an ISP function)"),
    ] = None,
    address: Annotated[
        list[str] | None, typer.Option(help="Also put this IP/DNS name in every certificate")
    ] = None,
) -> None:
    """Make (or reuse) a tiny CA and issue certificates for mutual TLS: leaves in
    DIRECTORY, the CA's key in DIRECTORY-ca-key (never among the leaves)."""
    from netfate.vnf.pki import CertificateAuthority, Usage

    wanted: list[tuple[str, Usage]] = [(n, "server") for n in server or ()]
    wanted += [(n, "client") for n in client or ()]
    if not wanted:
        raise typer.BadParameter("name at least one --server or --client")
    ca = CertificateAuthority(directory)
    for n, usage in wanted:
        files = ca.issue(n, usage=usage, names=tuple(address or ()))
        typer.echo(f"{n} ({usage}): {files.cert} {files.key} (CA {files.ca})")
