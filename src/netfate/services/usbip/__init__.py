"""The USB/IP service (the Home Radio Head paper's system): USB devices at home
exported over mutual-TLS USB/IP tunnels to functions at the ISP, placed at home
or at the ISP by their delay bound.

See README.md. Plugs into the platform by its contract, SERVICE. (The HRH, the
Home Radio Head, is the home's gateway: a node kind; the service is `usbip`.)
"""

from __future__ import annotations

from pathlib import Path

from netfate.contract import Demo, Experiment, Loop, Role, Service

from . import reconcile
from .api import router

OPERATOR, PROVIDER = Role.OPERATOR, Role.PROVIDER

SERVICE = Service(
    name="usbip",
    summary="USB devices at home (the Home Radio Head) exported over mutual-TLS USB/IP "
    "tunnels to functions placed at the ISP or at home by their delay bound.",
    folder=Path(__file__).parent,
    api=router,
    roles={
        "POST /functions": (OPERATOR, PROVIDER),
        "GET /placement": (OPERATOR, PROVIDER),
        "POST /tunnels": (OPERATOR, PROVIDER),
        "GET /tunnels": (OPERATOR, PROVIDER),
        "DELETE /tunnels/{name}": (OPERATOR, PROVIDER),
    },
    descriptors=(
        {
            "name": "hrh-usbip-host",
            "function": "netfate.vnf.usbip_host.tls:TlsUsbipHost",
            "cpu": 0.1,
            "memory_mb": 64,
            "stateful": False,
            "description": "The Home Radio Head's USB/IP server behind mutual TLS: exports the "
            "home's USB devices (serial sensor, pendrive, HID) to allowed ISP functions.",
        },
        {
            "name": "hrh-climate",
            "function": "netfate.vnf.usbip_client.tls:TlsSerialImporter",
            "cpu": 0.1,
            "memory_mb": 64,
            "stateful": False,
            "delay_bound_ms": 2000.0,
            "description": "Indoor climate control: imports the HRH's serial temperature sensor "
            "as a pty and reacts to readings. Tolerates seconds (paper, section IV.B): runs "
            "at the ISP.",
        },
        {
            "name": "hrh-alarm",
            "function": "netfate.vnf.usbip_client.tls:TlsSerialImporter",
            "cpu": 0.1,
            "memory_mb": 64,
            "stateful": False,
            "delay_bound_ms": 15.0,
            "description": "Alarm reaction: must answer a sensor event within 15 ms, so it "
            "runs on the HRH when the ISP is farther (delay-bound policy).",
        },
    ),
    # The same without TLS (its experiments and tests run them).
    functions=(
        "netfate.vnf.usbip_host.function:UsbipHost",
        "netfate.vnf.usbip_client.function:SerialImporter",
    ),
    loops=(Loop("tunnels", reconcile.step, interval_s=reconcile.INTERVAL_S, wake_on_change=True),),
    cli="netfate.services.usbip.cli:app",
    demos=(Demo("usbip", "netfate.services.usbip.demo", aliases=("hrh",)),),
    experiments=(
        Experiment("usbip", "netfate.services.usbip.experiment:command", aliases=("hrh",)),
    ),
    benches=("usbip",),
)

__all__ = ["SERVICE"]
