"""Events the USB/IP cores report: past-tense, one docstring per field (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from .messages import IsoPacket, SetupPacket, UsbDevice


@dataclass(frozen=True)
class Event:
    """Base of everything a USB/IP core returns from ``receive_data``."""


# ----- seen by the server (the exporting side, the HRH) ------------------- #


@dataclass(frozen=True)
class DeviceListRequested(Event):
    """The client sent OP_REQ_DEVLIST; answer with ``send_devlist``."""


@dataclass(frozen=True)
class ImportRequested(Event):
    """The client sent OP_REQ_IMPORT; answer with ``accept_import`` or ``refuse_import``."""

    busid: str
    """The bus id the client asked for, e.g. ``"1-1"``."""


@dataclass(frozen=True)
class UrbSubmitted(Event):
    """The client submitted a URB (CMD_SUBMIT); answer with ``complete``."""

    seqnum: int
    """The request's sequence number; pass it back to ``complete``."""
    ep: int
    """Endpoint number, 0..15 (checked)."""
    direction_in: bool
    """True for device-to-host transfers."""
    transfer_flags: int
    """URB transfer_flags as sent (``URB_SHORT_NOT_OK`` etc.)."""
    transfer_buffer_length: int
    """Bytes requested (IN) or carried in ``data`` (OUT); at most MAX_TRANSFER_LENGTH."""
    setup: SetupPacket | None
    """The SETUP packet for endpoint 0, else None."""
    data: bytes
    """OUT payload (empty for IN)."""
    iso_packets: tuple[IsoPacket, ...]
    """ISO packet layout for isochronous endpoints, else empty."""
    start_frame: int
    """ISO start frame (0 otherwise)."""
    interval: int
    """Polling interval the client asked for."""


@dataclass(frozen=True)
class UrbUnlinked(Event):
    """An unlink finished (server: the client asked; client: the server answered)."""

    seqnum: int
    """Sequence number of the URB the unlink targeted."""
    unlink_seqnum: int
    """Sequence number of the CMD_UNLINK itself."""
    status: int
    """RET_UNLINK status: ``-ECONNRESET`` if cancelled, 0 if it had already completed."""
    cancelled: bool
    """True if the URB was still in flight and is now cancelled: no RET_SUBMIT follows.
    False if it had already completed (its RET_SUBMIT was or is sent before this)."""


# ----- seen by the client (the importing side, the ISP) ------------------- #


@dataclass(frozen=True)
class DeviceListReceived(Event):
    """The server answered OP_REQ_DEVLIST."""

    status: int
    """op_common status (0 = OK)."""
    devices: tuple[UsbDevice, ...]
    """Exported devices with their interfaces."""


@dataclass(frozen=True)
class DeviceImported(Event):
    """The server accepted OP_REQ_IMPORT; the connection is now in the URB phase."""

    device: UsbDevice
    """The imported device (no interface list in this reply)."""


@dataclass(frozen=True)
class ImportRefused(Event):
    """The server refused OP_REQ_IMPORT; the connection is closed."""

    status: int
    """op_common status, e.g. ``Status.NODEV`` or ``Status.DEV_BUSY``."""


@dataclass(frozen=True)
class UrbCompleted(Event):
    """The server completed a URB (RET_SUBMIT)."""

    seqnum: int
    """Sequence number ``submit`` returned."""
    status: int
    """0 or a negative errno (e.g. -32 EPIPE for a stall)."""
    actual_length: int
    """Bytes transferred; never above the requested length (checked)."""
    data: bytes
    """IN payload (``actual_length`` bytes; ISO: packets back to back), empty for OUT."""
    iso_packets: tuple[IsoPacket, ...]
    """Per-packet results for ISO transfers, else empty."""
    start_frame: int
    """ISO start frame the server used."""
    error_count: int
    """ISO packets that failed."""
