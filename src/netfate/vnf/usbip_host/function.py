"""The HRH USB/IP server as a netfate Function (``python -m netfate.vnf
netfate.vnf.usbip_host.function:UsbipHost --config JSON``).

Config::

    {"host": "0.0.0.0", "port": 3240,
     "devices": [{"kind": "serial", "busid": "1-1", "period": 1.0},
                 {"kind": "storage", "busid": "1-2", "image": "/var/lib/hrh/pen.img"},
                 {"kind": "hid", "busid": "1-3"}, {"kind": "iso", "busid": "1-4"}],
     "allow": {"*": ["127.0.0.0/8"], "1-2": ["10.0.0.2"]}}

No state to migrate: the devices are where the HRH is (an image file moves
with the node, not with the instance).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from netfate.vnf.runtime import Context, Function
from netfate.vnf.usbip_host.allowlist import AllowList

from .devices import HidKeyboard, IsoStream, MassStorage, SerialSensor, VirtualDevice
from .server import USBIP_PORT, UsbipServer


def build_devices(specs: list[dict[str, Any]]) -> list[VirtualDevice]:
    """Devices from config entries; unknown kinds are refused, not skipped."""
    out: list[VirtualDevice] = []
    for k, spec in enumerate(specs, 1):
        kind = spec.get("kind")
        busid = str(spec.get("busid", f"1-{k}"))
        if kind == "serial":
            out.append(
                SerialSensor(
                    busid,
                    period=float(spec.get("period", 1.0)),
                    base_celsius=float(spec.get("base_celsius", 21.0)),
                )
            )
        elif kind == "storage":
            image = Path(str(spec["image"]))
            out.append(MassStorage(busid, image, read_only=bool(spec.get("read_only", False))))
        elif kind == "hid":
            out.append(HidKeyboard(busid))
        elif kind == "iso":
            out.append(IsoStream(busid))
        else:
            raise ValueError(f"unknown USB/IP device kind {kind!r}")
    return out


class UsbipHost(Function):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        self.host = str(cfg.get("host", "0.0.0.0"))
        self.port = int(cfg.get("port", USBIP_PORT))
        self.devices = build_devices(list(cfg.get("devices", [{"kind": "serial"}])))
        allow = cfg.get("allow")
        self.allow = (
            AllowList.from_mapping({str(b): list(c) for b, c in allow.items()})
            if isinstance(allow, dict)
            else AllowList.open_to("127.0.0.0/8", "::1")
        )
        self.server = UsbipServer(self.devices, allow=self.allow)

    async def start(self) -> None:
        await self.server.start(self.host, self.port)

    async def stop(self) -> None:
        await self.server.close()
        for d in self.devices:
            if isinstance(d, MassStorage):
                d.close()

    def stats(self) -> dict[str, Any]:
        return {
            "port": self.server.port,
            "exported": [d.busid for d in self.devices],
            "imported": sorted(self.server.owners),
        }
