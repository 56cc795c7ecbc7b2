"""`netfate usbip …`: run an HRH USB/IP server, list a server, attach a serial sensor as a pty."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

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
        typer.Option(help="Client address/network allowed to list and import (repeatable)"),
    ] = None,
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

    from .allowlist import AllowList

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

    async def main() -> None:
        async with UsbipServer(devices, allow=rules) as srv:
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
) -> None:
    """Import a remote serial device and present it as a pty (`cat` it) until Ctrl-C."""
    from netfate.vnf.usbip_client import RemoteDevice, SerialPty

    async def main() -> None:
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
