"""USB descriptors for the virtual devices (USB 2.0 §9.6; little-endian, as on the bus)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from netfate.proto.usbip import Endpoint, TransferType


def device_descriptor(
    *,
    vendor: int,
    product: int,
    bcd_device: int = 0x0100,
    device_class: int = 0,
    device_subclass: int = 0,
    device_protocol: int = 0,
    max_packet0: int = 64,
) -> bytes:
    """The 18-byte DEVICE descriptor; strings 1..3 are manufacturer, product, serial."""
    return struct.pack(
        "<BBHBBBBHHHBBBB",
        18, 1, 0x0200, device_class, device_subclass, device_protocol, max_packet0,
        vendor, product, bcd_device, 1, 2, 3, 1,
    )  # fmt: skip


def string_descriptor(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return bytes([2 + len(raw), 3]) + raw


LANGID_DESCRIPTOR = bytes([4, 3, 0x09, 0x04])  # en-US


@dataclass(frozen=True)
class InterfaceSpec:
    """One interface (alternate setting 0) with its class descriptors and endpoints."""

    number: int
    cls: int
    subclass: int
    protocol: int
    endpoints: tuple[Endpoint, ...] = ()
    extra: bytes = b""
    """Class-specific descriptors placed before the endpoints (HID, CDC functional)."""
    intervals: dict[int, int] = field(default_factory=dict)
    """bInterval per endpoint address (interrupt endpoints)."""

    def pack(self) -> bytes:
        out = struct.pack(
            "<BBBBBBBBB", 9, 4, self.number, 0, len(self.endpoints), self.cls, self.subclass,
            self.protocol, 0,
        )  # fmt: skip
        out += self.extra
        for ep in self.endpoints:
            out += struct.pack(
                "<BBBBHB", 7, 5, ep.address, int(ep.transfer_type), ep.max_packet_size,
                self.intervals.get(ep.address, 0),
            )  # fmt: skip
        return out


def configuration_descriptor(interfaces: list[InterfaceSpec], *, max_power_ma: int = 100) -> bytes:
    body = b"".join(i.pack() for i in interfaces)
    head = struct.pack(
        "<BBHBBBBB", 9, 2, 9 + len(body), len(interfaces), 1, 0, 0x80, max_power_ma // 2
    )
    return head + body


def all_endpoints(interfaces: list[InterfaceSpec]) -> list[Endpoint]:
    return [ep for i in interfaces for ep in i.endpoints]


BULK = TransferType.BULK
INTERRUPT = TransferType.INTERRUPT
