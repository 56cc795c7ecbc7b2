"""ISP side of the Home Radio Head: a userspace USB/IP client (no vhci module needed)."""

from .client import (
    Completion,
    ImportRefusedError,
    RemoteDevice,
    TransferError,
    UsbipError,
    endpoints_of,
    list_devices,
)
from .serial import SerialPty
from .storage import BlockFile, BlockImage, MassStorageClient, ScsiError
from .streams import hid_reports, iso_packets

__all__ = [
    "BlockFile",
    "BlockImage",
    "Completion",
    "ImportRefusedError",
    "MassStorageClient",
    "RemoteDevice",
    "ScsiError",
    "SerialPty",
    "TransferError",
    "UsbipError",
    "endpoints_of",
    "hid_reports",
    "iso_packets",
    "list_devices",
]
