"""USB/IP wire formats: one dataclass per message, ``pack()`` and ``unpack()``.

Written from Linux ``Documentation/usb/usbip_protocol.rst`` (section "Message
Format"), cross-checked against the field layouts of ``drivers/usb/usbip/``
(``usbip_common.h``) and ``tools/usb/usbip/src/usbip_network.h``.

All multi-byte fields are big-endian ("network byte order", spec introduction),
except the 8-byte USB SETUP packet inside CMD_SUBMIT, which is copied verbatim
from the USB request and is therefore little-endian (USB 2.0 §9.3).

Parsers here check everything a frame can tell about itself (lengths, counts,
ISO descriptor bounds).  Checks that need connection context (is this endpoint
isochronous, is this seqnum in flight) live in :mod:`.connection`.  Every check
raises :class:`UsbipProtocolError`; nothing reads past the bytes it was given.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

from .errors import Reason, UsbipProtocolError

USBIP_VERSION = 0x0111
"""v1.1.1, the only version Linux speaks (spec "Protocol Version")."""

OP_REQ_DEVLIST = 0x8005
OP_REP_DEVLIST = 0x0005
OP_REQ_IMPORT = 0x8003
OP_REP_IMPORT = 0x0003

USBIP_CMD_SUBMIT = 0x00000001
USBIP_CMD_UNLINK = 0x00000002
USBIP_RET_SUBMIT = 0x00000003
USBIP_RET_UNLINK = 0x00000004

ECONNRESET = 104
"""RET_UNLINK carries ``-ECONNRESET`` when the unlink cancelled the URB."""

# Limits we impose on a peer.  The protocol has none; the Linux CVE fixes
# (CVE-2017-16912/16913, CVE-2016-3955) show what happens without them.
MAX_TRANSFER_LENGTH = 4 * 1024 * 1024
"""Largest transfer_buffer_length accepted (4 MiB; usb-storage uses at most 1 MiB)."""
MAX_ISO_PACKETS = 1024
"""Largest number_of_packets (``USBIP_MAX_ISO_PACKETS`` in the kernel)."""
MAX_DEVICES = 256
"""Largest device count in an OP_REP_DEVLIST we accept."""
MAX_INTERFACES = 32
"""Largest bNumInterfaces (``USB_MAXINTERFACES`` in the kernel)."""
MAX_ENDPOINT = 15

OP_HEADER = struct.Struct(">HHI")
URB_HEADER_LEN = 48
BASIC_HEADER = struct.Struct(">IIIII")
ISO_DESCRIPTOR = struct.Struct(">IIIi")
DEVICE = struct.Struct(">256s32sIIIHHHBBBBBB")
INTERFACE = struct.Struct(">BBBx")


class Status(enum.IntEnum):
    """op_common.status values (``usbip_network.h``)."""

    OK = 0x00
    NA = 0x01
    DEV_BUSY = 0x02
    DEV_ERR = 0x03
    NODEV = 0x04
    ERROR = 0x05


class Speed(enum.IntEnum):
    """``enum usb_device_speed`` as carried in the device record."""

    UNKNOWN = 0
    LOW = 1
    FULL = 2
    HIGH = 3
    WIRELESS = 4
    SUPER = 5
    SUPER_PLUS = 6


class Direction(enum.IntEnum):
    """usbip_header_basic.direction."""

    OUT = 0
    IN = 1


class TransferType(enum.IntEnum):
    """bmAttributes bits 1..0 of an endpoint descriptor (USB 2.0 Table 9-13)."""

    CONTROL = 0
    ISOCHRONOUS = 1
    BULK = 2
    INTERRUPT = 3


def _fail(reason: Reason, detail: str) -> UsbipProtocolError:
    return UsbipProtocolError(reason, detail)


def _slice(buf: bytes | bytearray | memoryview, start: int, end: int) -> bytes:
    """``bytes(buf[start:end])`` with one copy, whatever the buffer type.

    The temporary view is released before returning, so the caller's bytearray
    can be resized afterwards (a live export would make that raise).
    """
    with memoryview(buf) as mv, mv[start:end] as part:
        return bytes(part)


def _need(buf: bytes | bytearray | memoryview, n: int, what: str) -> None:
    if len(buf) < n:
        raise _fail(Reason.TRUNCATED, f"{what}: need {n} bytes, have {len(buf)}")


def _cstring(raw: bytes, what: str) -> str:
    """A zero-terminated, zero-padded field; refuse what is not ASCII text."""
    text = raw.split(b"\0", 1)[0]
    try:
        return text.decode("ascii")
    except UnicodeDecodeError:
        raise _fail(Reason.BAD_STRING, f"{what} is not ASCII") from None


def _encode_cstring(text: str, size: int, what: str) -> bytes:
    raw = text.encode("ascii")
    # One byte stays for the terminating zero the C side relies on.
    if len(raw) >= size or b"\0" in raw:
        raise _fail(Reason.BAD_STRING, f"{what} {text!r} does not fit {size} bytes")
    return raw


def _check_op_header(buf: bytes | bytearray | memoryview, code: int) -> int:
    _need(buf, OP_HEADER.size, "op header")
    version, got, status = OP_HEADER.unpack_from(buf)
    if version != USBIP_VERSION:
        raise _fail(Reason.BAD_VERSION, f"version {version:#06x}")
    if got != code:
        raise _fail(Reason.UNKNOWN_CODE, f"code {got:#06x}, expected {code:#06x}")
    return int(status)


# --------------------------------------------------------------------------- #
# Device records (spec: OP_REP_DEVLIST / OP_REP_IMPORT)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Interface:
    """One interface in an OP_REP_DEVLIST device record (4 bytes, ``>BBBx``).

    ::

        0        1           2           3
        +--------+-----------+-----------+---------+
        | class  | subclass  | protocol  | padding |
        +--------+-----------+-----------+---------+
    """

    interface_class: int
    interface_subclass: int
    interface_protocol: int

    def pack(self) -> bytes:
        return INTERFACE.pack(
            self.interface_class, self.interface_subclass, self.interface_protocol
        )

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> Interface:
        _need(buf, INTERFACE.size, "interface")
        c, s, p = INTERFACE.unpack_from(buf)
        return cls(c, s, p)


@dataclass(frozen=True)
class UsbDevice:
    """An exported device record, 312 bytes (``>256s32sIIIHHHBBBBBB``).

    Spec: OP_REP_DEVLIST offsets 0x0C..0x143, OP_REP_IMPORT offsets 0x08..0x13F.
    In OP_REP_DEVLIST it is followed by ``bNumInterfaces`` :class:`Interface`
    records; in OP_REP_IMPORT it is not (``interfaces`` is then empty and
    ``num_interfaces`` keeps the count).

    ::

        0                                                   256
        +---------------------------------------------------+
        | path (256, zero-terminated, zero-padded)          |
        +---------------------------------------------------+
        | busid (32, zero-terminated)                       |  256..287
        +-------------+-------------+-------------+---------+
        | busnum (4)  | devnum (4)  | speed (4)   |            288..299
        +------+------+------+------+---+---+---+---+---+---+
        |idVendor|idProduct|bcdDevice|cls|sub|pro|cfg|ncf|nif| 300..311
        +------+------+------+------+---+---+---+---+---+---+
    """

    path: str
    busid: str
    busnum: int
    devnum: int
    speed: int
    id_vendor: int
    id_product: int
    bcd_device: int
    device_class: int
    device_subclass: int
    device_protocol: int
    configuration_value: int
    num_configurations: int
    num_interfaces: int
    interfaces: tuple[Interface, ...] = ()

    @property
    def devid(self) -> int:
        """``busnum << 16 | devnum`` (spec: usbip_header_basic.devid)."""
        return ((self.busnum & 0xFFFF) << 16) | (self.devnum & 0xFFFF)

    def pack(self, *, with_interfaces: bool) -> bytes:
        head = DEVICE.pack(
            _encode_cstring(self.path, 256, "path"),
            _encode_cstring(self.busid, 32, "busid"),
            self.busnum,
            self.devnum,
            self.speed,
            self.id_vendor,
            self.id_product,
            self.bcd_device,
            self.device_class,
            self.device_subclass,
            self.device_protocol,
            self.configuration_value,
            self.num_configurations,
            self.num_interfaces,
        )
        if not with_interfaces:
            return head
        if len(self.interfaces) != self.num_interfaces:
            raise _fail(Reason.TOO_MANY_INTERFACES, "num_interfaces != len(interfaces)")
        return head + b"".join(i.pack() for i in self.interfaces)

    @classmethod
    def unpack(
        cls, buf: bytes | bytearray | memoryview, *, with_interfaces: bool
    ) -> tuple[UsbDevice, int]:
        """Parse one record; return it and the number of bytes it used."""
        _need(buf, DEVICE.size, "device record")
        (path, busid, busnum, devnum, speed, vid, pid, bcd, dcls, dsub, dpro, cfg, ncfg, nif) = (
            DEVICE.unpack_from(buf)
        )
        if nif > MAX_INTERFACES:
            raise _fail(Reason.TOO_MANY_INTERFACES, f"bNumInterfaces {nif}")
        used = DEVICE.size
        ifaces: list[Interface] = []
        if with_interfaces:
            _need(buf, used + nif * INTERFACE.size, "interface records")
            for k in range(nif):
                ifaces.append(Interface.unpack(buf[used + k * 4 : used + k * 4 + 4]))
            used += nif * INTERFACE.size
        dev = cls(
            _cstring(path, "path"),
            _cstring(busid, "busid"),
            busnum,
            devnum,
            speed,
            vid,
            pid,
            bcd,
            dcls,
            dsub,
            dpro,
            cfg,
            ncfg,
            nif,
            tuple(ifaces),
        )
        return dev, used


# --------------------------------------------------------------------------- #
# Operation phase
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class OpReqDevlist:
    """OP_REQ_DEVLIST, 8 bytes (``>HHI``); spec "OP_REQ_DEVLIST".

    ::

        0          2          4                     8
        +----------+----------+---------------------+
        | version  |  0x8005  | status (unused, 0)  |
        +----------+----------+---------------------+
    """

    def pack(self) -> bytes:
        return OP_HEADER.pack(USBIP_VERSION, OP_REQ_DEVLIST, 0)

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> OpReqDevlist:
        _check_op_header(buf, OP_REQ_DEVLIST)
        return cls()


@dataclass(frozen=True)
class OpRepDevlist:
    """OP_REP_DEVLIST, 12 + n device records (``>HHII`` + records); spec "OP_REP_DEVLIST".

    ::

        0          2          4             8             12
        +----------+----------+-------------+-------------+------------------
        | version  |  0x0005  | status      | ndev        | device[0] ...
        +----------+----------+-------------+-------------+------------------

    Each device is a :class:`UsbDevice` record followed by its interfaces.  A
    non-zero status ends the message after the status field (``usbipd`` sends
    nothing more then).
    """

    status: int
    devices: tuple[UsbDevice, ...] = ()

    def pack(self) -> bytes:
        head = OP_HEADER.pack(USBIP_VERSION, OP_REP_DEVLIST, self.status)
        if self.status != Status.OK:
            return head
        body = b"".join(d.pack(with_interfaces=True) for d in self.devices)
        return head + struct.pack(">I", len(self.devices)) + body

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> tuple[OpRepDevlist, int] | None:
        """Incremental parse: ``None`` while incomplete, else (message, bytes used)."""
        if len(buf) < OP_HEADER.size:
            return None
        status = _check_op_header(buf, OP_REP_DEVLIST)
        if status != Status.OK:
            return cls(status), OP_HEADER.size
        if len(buf) < 12:
            return None
        (ndev,) = struct.unpack_from(">I", buf, 8)
        if ndev > MAX_DEVICES:
            raise _fail(Reason.TOO_MANY_DEVICES, f"ndev {ndev}")
        used = 12
        devices: list[UsbDevice] = []
        view = bytes(buf)  # a copy: never hold an export of the caller's bytearray
        for _ in range(ndev):
            if len(buf) < used + DEVICE.size:
                return None
            (nif,) = struct.unpack_from(">B", buf, used + DEVICE.size - 1)
            if nif > MAX_INTERFACES:
                raise _fail(Reason.TOO_MANY_INTERFACES, f"bNumInterfaces {nif}")
            if len(buf) < used + DEVICE.size + nif * INTERFACE.size:
                return None
            dev, n = UsbDevice.unpack(view[used:], with_interfaces=True)
            devices.append(dev)
            used += n
        return cls(status, tuple(devices)), used

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> OpRepDevlist:
        got = cls.parse(buf)
        if got is None:
            raise _fail(Reason.TRUNCATED, "OP_REP_DEVLIST")
        return got[0]


@dataclass(frozen=True)
class OpReqImport:
    """OP_REQ_IMPORT, 40 bytes (``>HHI32s``); spec "OP_REQ_IMPORT".

    ::

        0          2          4                     8                      40
        +----------+----------+---------------------+----------------------+
        | version  |  0x8003  | status (unused, 0)  | busid (32, zero-term)|
        +----------+----------+---------------------+----------------------+
    """

    busid: str
    SIZE = 40

    def pack(self) -> bytes:
        raw = _encode_cstring(self.busid, 32, "busid")
        return OP_HEADER.pack(USBIP_VERSION, OP_REQ_IMPORT, 0) + raw.ljust(32, b"\0")

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> OpReqImport:
        _check_op_header(buf, OP_REQ_IMPORT)
        _need(buf, cls.SIZE, "OP_REQ_IMPORT")
        return cls(_cstring(bytes(buf[8:40]), "busid"))


@dataclass(frozen=True)
class OpRepImport:
    """OP_REP_IMPORT, 8 bytes, or 320 on success (``>HHI`` + record); spec "OP_REP_IMPORT".

    ::

        0          2          4             8                           320
        +----------+----------+-------------+---------------------------+
        | version  |  0x0003  | status      | device record (if OK)     |
        +----------+----------+-------------+---------------------------+

    The record has no interface list here.
    """

    status: int
    device: UsbDevice | None = None

    def pack(self) -> bytes:
        head = OP_HEADER.pack(USBIP_VERSION, OP_REP_IMPORT, self.status)
        if self.status != Status.OK:
            return head
        if self.device is None:
            raise _fail(Reason.BAD_STATUS, "OP_REP_IMPORT OK needs a device")
        return head + self.device.pack(with_interfaces=False)

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview) -> tuple[OpRepImport, int] | None:
        if len(buf) < OP_HEADER.size:
            return None
        status = _check_op_header(buf, OP_REP_IMPORT)
        if status != Status.OK:
            return cls(status), OP_HEADER.size
        if len(buf) < OP_HEADER.size + DEVICE.size:
            return None
        dev, n = UsbDevice.unpack(bytes(buf[8:]), with_interfaces=False)
        return cls(status, dev), 8 + n

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> OpRepImport:
        got = cls.parse(buf)
        if got is None:
            raise _fail(Reason.TRUNCATED, "OP_REP_IMPORT")
        return got[0]


# --------------------------------------------------------------------------- #
# URB phase
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class SetupPacket:
    """The USB SETUP packet, 8 bytes, LITTLE-endian (``<BBHHH``); USB 2.0 §9.3.

    ::

        0              1          2         4         6         8
        +--------------+----------+---------+---------+---------+
        | bmRequestType| bRequest | wValue  | wIndex  | wLength |
        +--------------+----------+---------+---------+---------+
    """

    request_type: int
    request: int
    value: int
    index: int
    length: int
    FORMAT = struct.Struct("<BBHHH")

    def pack(self) -> bytes:
        return self.FORMAT.pack(
            self.request_type, self.request, self.value, self.index, self.length
        )

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> SetupPacket:
        _need(buf, 8, "setup packet")
        return cls(*cls.FORMAT.unpack_from(buf))

    @property
    def is_out(self) -> bool:
        """Data stage direction as the Linux USB core decides it (``usb_submit_urb``)."""
        return not (self.request_type & 0x80) or self.length == 0


@dataclass(frozen=True)
class IsoPacket:
    """One ISO packet descriptor, 16 bytes (``>IIIi``); spec "iso_packet_descriptor".

    ::

        0            4            8               12           16
        +------------+------------+---------------+------------+
        | offset     | length     | actual_length | status     |
        +------------+------------+---------------+------------+

    ``offset`` and ``length`` locate the packet in the (padded) transfer buffer.
    """

    offset: int
    length: int
    actual_length: int = 0
    status: int = 0

    def pack(self) -> bytes:
        return ISO_DESCRIPTOR.pack(self.offset, self.length, self.actual_length, self.status)

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> IsoPacket:
        _need(buf, ISO_DESCRIPTOR.size, "iso descriptor")
        return cls(*ISO_DESCRIPTOR.unpack_from(buf))


def _unpack_isos(buf: bytes, count: int) -> tuple[IsoPacket, ...]:
    _need(buf, count * ISO_DESCRIPTOR.size, "iso descriptors")
    return tuple(
        IsoPacket(*ISO_DESCRIPTOR.unpack_from(buf, k * ISO_DESCRIPTOR.size)) for k in range(count)
    )


def check_iso_bounds(isos: tuple[IsoPacket, ...], buffer_length: int, *, check_actual: bool) -> int:
    """Every descriptor inside the buffer; return the sum of actual lengths.

    The checks ``usbip_pad_iso`` / ``usbip_recv_iso`` gained after the
    descriptor-offset over-reads (CVE-2017-16911 family).
    """
    total = 0
    for k, p in enumerate(isos):
        if p.offset + p.length > buffer_length:
            raise _fail(Reason.BAD_ISO_DESCRIPTOR, f"packet {k} ends past the buffer")
        if check_actual and p.actual_length > p.length:
            raise _fail(Reason.BAD_ISO_DESCRIPTOR, f"packet {k} actual_length > length")
        total += p.actual_length
    return total


def _check_packets(number_of_packets: int) -> int:
    """Descriptor count implied by number_of_packets; -1 and 0 mean none."""
    if number_of_packets in (0, -1):
        return 0
    if number_of_packets < 0 or number_of_packets > MAX_ISO_PACKETS:
        raise _fail(Reason.BAD_ISO, f"number_of_packets {number_of_packets}")
    return number_of_packets


@dataclass(frozen=True)
class BasicHeader:
    """usbip_header_basic, the first 20 bytes of every URB-phase frame (``>IIIII``).

    ::

        0          4          8          12         16         20
        +----------+----------+----------+----------+----------+
        | command  | seqnum   | devid    | direction| ep       |
        +----------+----------+----------+----------+----------+
    """

    command: int
    seqnum: int
    devid: int
    direction: int
    ep: int

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> BasicHeader:
        _need(buf, BASIC_HEADER.size, "basic header")
        return cls(*BASIC_HEADER.unpack_from(buf))


CMD_SUBMIT_TAIL = struct.Struct(">IiiiI8s")


@dataclass(frozen=True)
class CmdSubmit:
    """USBIP_CMD_SUBMIT: 48-byte header, OUT data, ISO descriptors; spec "USBIP_CMD_SUBMIT".

    Header format ``>IIIII`` + ``>IiiiI8s``::

        0          4          8          12         16         20
        +----------+----------+----------+----------+----------+
        | 0x000001 | seqnum   | devid    | direction| ep       |
        +----------+----------+----------+----------+----------+
        20              24           28           32                36         40
        +---------------+------------+------------+-----------------+----------+
        | transfer_flags| buf_length | start_frame| number_of_packets| interval |
        +---------------+------------+------------+-----------------+----------+
        40                                48
        +---------------------------------+----------------------+--------------+
        | setup (8, little-endian fields) | data (OUT: buf_length)| iso desc x n |
        +---------------------------------+----------------------+--------------+

    ``number_of_packets`` is 0xffffffff (-1) or 0 for non-ISO transfers.
    """

    seqnum: int
    devid: int
    direction: int
    ep: int
    transfer_flags: int
    transfer_buffer_length: int
    start_frame: int = 0
    number_of_packets: int = -1
    interval: int = 0
    setup: bytes = bytes(8)
    data: bytes = b""
    iso_packets: tuple[IsoPacket, ...] = ()

    def pack_parts(self) -> list[bytes]:
        """Header, payload and descriptors as separate chunks (the payload uncopied)."""
        head = BASIC_HEADER.pack(
            USBIP_CMD_SUBMIT, self.seqnum, self.devid, self.direction, self.ep
        ) + CMD_SUBMIT_TAIL.pack(
            self.transfer_flags,
            self.transfer_buffer_length,
            self.start_frame,
            self.number_of_packets,
            self.interval,
            self.setup,
        )
        return [head, self.data, b"".join(p.pack() for p in self.iso_packets)]

    def pack(self) -> bytes:
        return b"".join(self.pack_parts())

    @staticmethod
    def frame_length(head: BasicHeader, buf: bytes | bytearray | memoryview) -> int:
        """Total frame size implied by a complete 48-byte header; validates it first."""
        _need(buf, URB_HEADER_LEN, "CMD_SUBMIT header")
        if head.ep > MAX_ENDPOINT:
            raise _fail(Reason.BAD_ENDPOINT, f"ep {head.ep}")
        if head.direction not in (Direction.OUT, Direction.IN):
            raise _fail(Reason.BAD_DIRECTION, f"direction {head.direction}")
        _flags, length, _sf, npk, _iv, _setup = CMD_SUBMIT_TAIL.unpack_from(buf, 20)
        if length < 0 or length > MAX_TRANSFER_LENGTH:
            raise _fail(Reason.BAD_LENGTH, f"transfer_buffer_length {length}")
        n = _check_packets(npk)
        data = length if head.direction == Direction.OUT else 0
        return URB_HEADER_LEN + data + n * ISO_DESCRIPTOR.size

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> CmdSubmit:
        head = BasicHeader.unpack(buf)
        if head.command != USBIP_CMD_SUBMIT:
            raise _fail(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
        total = cls.frame_length(head, buf)
        _need(buf, total, "CMD_SUBMIT")
        flags, length, sf, npk, iv, setup = CMD_SUBMIT_TAIL.unpack_from(buf, 20)
        dlen = length if head.direction == Direction.OUT else 0
        data = _slice(buf, URB_HEADER_LEN, URB_HEADER_LEN + dlen)
        isos = _unpack_isos(_slice(buf, URB_HEADER_LEN + dlen, total), _check_packets(npk))
        # A request's actual_length fields are meaningless; only bounds matter.
        check_iso_bounds(isos, length, check_actual=False)
        return cls(
            head.seqnum, head.devid, head.direction, head.ep, flags, length, sf, npk, iv,
            bytes(setup), data, isos,
        )  # fmt: skip


RET_SUBMIT_TAIL = struct.Struct(">iiiii8x")


@dataclass(frozen=True)
class RetSubmit:
    """USBIP_RET_SUBMIT: 48-byte header, IN data, ISO descriptors; spec "USBIP_RET_SUBMIT".

    Header format ``>IIIII`` + ``>iiiii8x``::

        0          4          8          12         16         20
        +----------+----------+----------+----------+----------+
        | 0x000003 | seqnum   | devid=0  | dir=0    | ep=0     |
        +----------+----------+----------+----------+----------+
        20         24              28           32                36           40
        +----------+---------------+------------+-----------------+------------+
        | status   | actual_length | start_frame| number_of_packets| error_count|
        +----------+---------------+------------+-----------------+------------+
        40                 48
        +------------------+----------------------------+--------------+
        | padding (8 zero) | data (IN: actual_length)   | iso desc x n |
        +------------------+----------------------------+--------------+

    The reply does not say whether the URB was IN or OUT, nor ISO: the parser
    needs the request (``direction_in``, ``iso_count``), which the connection keeps.
    For ISO IN the data is the packets' actual bytes back to back (no padding).
    """

    seqnum: int
    status: int
    actual_length: int
    start_frame: int = 0
    number_of_packets: int = -1
    error_count: int = 0
    data: bytes = b""
    iso_packets: tuple[IsoPacket, ...] = ()
    devid: int = 0
    direction: int = 0
    ep: int = 0

    def pack_parts(self) -> list[bytes]:
        """Header, payload and descriptors as separate chunks (the payload uncopied)."""
        head = BASIC_HEADER.pack(
            USBIP_RET_SUBMIT, self.seqnum, self.devid, self.direction, self.ep
        ) + RET_SUBMIT_TAIL.pack(
            self.status,
            self.actual_length,
            self.start_frame,
            self.number_of_packets,
            self.error_count,
        )
        return [head, self.data, b"".join(p.pack() for p in self.iso_packets)]

    def pack(self) -> bytes:
        return b"".join(self.pack_parts())

    @staticmethod
    def frame_length(
        buf: bytes | bytearray | memoryview,
        *,
        direction_in: bool,
        requested_length: int,
        iso_count: int,
    ) -> int:
        """Frame size implied by a complete header and its request; validates it first."""
        _need(buf, URB_HEADER_LEN, "RET_SUBMIT header")
        _status, actual, _sf, npk, _ec = RET_SUBMIT_TAIL.unpack_from(buf, 20)
        if actual < 0 or actual > requested_length:
            raise _fail(
                Reason.BAD_ACTUAL_LENGTH, f"actual_length {actual} > requested {requested_length}"
            )
        n = _check_packets(npk)
        if n != iso_count:
            raise _fail(Reason.BAD_ISO, f"number_of_packets {npk}, request had {iso_count}")
        return URB_HEADER_LEN + (actual if direction_in else 0) + n * ISO_DESCRIPTOR.size

    @classmethod
    def unpack(
        cls,
        buf: bytes | bytearray | memoryview,
        *,
        direction_in: bool,
        requested_length: int = MAX_TRANSFER_LENGTH,
        iso_count: int | None = None,
    ) -> RetSubmit:
        """Parse a complete frame.  ``iso_count`` None: take the header's count."""
        head = BasicHeader.unpack(buf)
        if head.command != USBIP_RET_SUBMIT:
            raise _fail(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
        _need(buf, URB_HEADER_LEN, "RET_SUBMIT header")
        status, actual, sf, npk, ec = RET_SUBMIT_TAIL.unpack_from(buf, 20)
        if iso_count is None:
            iso_count = _check_packets(npk)
        total = cls.frame_length(
            buf, direction_in=direction_in, requested_length=requested_length, iso_count=iso_count
        )
        _need(buf, total, "RET_SUBMIT")
        dlen = actual if direction_in else 0
        data = _slice(buf, URB_HEADER_LEN, URB_HEADER_LEN + dlen)
        isos = _unpack_isos(_slice(buf, URB_HEADER_LEN + dlen, total), iso_count)
        if isos:
            got = check_iso_bounds(isos, requested_length, check_actual=True)
            # usbip_recv_iso: the packets' actual lengths must add up.
            if got != actual:
                raise _fail(Reason.BAD_ISO_DESCRIPTOR, f"iso actual sum {got} != {actual}")
        return cls(
            head.seqnum, status, actual, sf, npk, ec, data, isos, head.devid, head.direction,
            head.ep,
        )  # fmt: skip


UNLINK_TAIL = struct.Struct(">i24x")


@dataclass(frozen=True)
class CmdUnlink:
    """USBIP_CMD_UNLINK, 48 bytes (``>IIIII`` + ``>I24x``); spec "USBIP_CMD_UNLINK".

    ::

        0          4          8          12         16         20             24      48
        +----------+----------+----------+----------+----------+--------------+-------+
        | 0x000002 | seqnum   | devid    | direction| ep (0)   | unlink_seqnum| pad   |
        +----------+----------+----------+----------+----------+--------------+-------+
    """

    seqnum: int
    devid: int
    unlink_seqnum: int
    direction: int = 0
    ep: int = 0

    def pack(self) -> bytes:
        return BASIC_HEADER.pack(
            USBIP_CMD_UNLINK, self.seqnum, self.devid, self.direction, self.ep
        ) + struct.pack(">I24x", self.unlink_seqnum)

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> CmdUnlink:
        head = BasicHeader.unpack(buf)
        if head.command != USBIP_CMD_UNLINK:
            raise _fail(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
        _need(buf, URB_HEADER_LEN, "CMD_UNLINK")
        (target,) = struct.unpack_from(">I", buf, 20)
        return cls(head.seqnum, head.devid, target, head.direction, head.ep)


@dataclass(frozen=True)
class RetUnlink:
    """USBIP_RET_UNLINK, 48 bytes (``>IIIII`` + ``>i24x``); spec "USBIP_RET_UNLINK".

    ::

        0          4          8          12         16         20        24           48
        +----------+----------+----------+----------+----------+---------+------------+
        | 0x000004 | seqnum   | devid=0  | dir=0    | ep=0     | status  | padding    |
        +----------+----------+----------+----------+----------+---------+------------+

    ``seqnum`` is the CMD_UNLINK's own seqnum; ``status`` is ``-ECONNRESET``
    when the URB was cancelled, 0 when it had already completed.
    """

    seqnum: int
    status: int
    devid: int = 0
    direction: int = 0
    ep: int = 0

    def pack(self) -> bytes:
        return BASIC_HEADER.pack(
            USBIP_RET_UNLINK, self.seqnum, self.devid, self.direction, self.ep
        ) + UNLINK_TAIL.pack(self.status)

    @classmethod
    def unpack(cls, buf: bytes | bytearray | memoryview) -> RetUnlink:
        head = BasicHeader.unpack(buf)
        if head.command != USBIP_RET_UNLINK:
            raise _fail(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
        _need(buf, URB_HEADER_LEN, "RET_UNLINK")
        (status,) = UNLINK_TAIL.unpack_from(buf, 20)
        return cls(head.seqnum, status, head.devid, head.direction, head.ep)


@dataclass(frozen=True)
class Endpoint:
    """An endpoint of an exported device, as the server core needs it for checks.

    Not a wire format: the server takes these from the device's descriptors.
    """

    address: int
    """bEndpointAddress: number in bits 3..0, bit 7 set for IN."""
    transfer_type: TransferType
    max_packet_size: int = field(default=64)

    @property
    def number(self) -> int:
        return self.address & 0x0F

    @property
    def direction(self) -> Direction:
        return Direction.IN if self.address & 0x80 else Direction.OUT
