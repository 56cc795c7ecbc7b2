"""Home Radio Head service: USB devices at home exported over USB/IP to the ISP.

Plugs into the platform (netfate.services) by: router (/api/v1/usbip),
DESCRIPTORS (the HRH's functions), DEMO (`netfate demo hrh`), CLI
(`netfate usbip ...`).  The router is imported on first use (it registers
the ``delay-bound`` placement policy): the HRH's own processes import this
package for the allow-list and need neither FastAPI nor the orchestrator.
"""

from __future__ import annotations

from typing import Any

# `netfate usbip ...` (serve, list, serial); see netfate.services.
CLI = "netfate.services.usbip.cli:app"
DEMO = "netfate.services.usbip.demo"
DEMO_NAME = "hrh"  # `netfate demo hrh`: the Home Radio Head


DESCRIPTORS: list[dict[str, Any]] = [
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
]

__all__ = ["CLI", "DEMO", "DEMO_NAME", "DESCRIPTORS", "router"]


def __getattr__(name: str) -> Any:
    if name == "router":
        from .api import router

        return router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
