"""HRH side of the Home Radio Head: a userspace USB/IP server with virtual devices."""

from .allowlist import AllowList, AllowRule
from .devices import (
    HidKeyboard,
    IsoStream,
    MassStorage,
    SerialSensor,
    UrbResult,
    VirtualDevice,
)
from .passthrough import HostDevice, VirtualBackend
from .server import USBIP_PORT, UsbipServer

__all__ = [
    "USBIP_PORT",
    "AllowList",
    "AllowRule",
    "HidKeyboard",
    "HostDevice",
    "IsoStream",
    "MassStorage",
    "SerialSensor",
    "UrbResult",
    "UsbipServer",
    "VirtualBackend",
    "VirtualDevice",
]
