"""Virtual USB devices the HRH exports: CDC-ACM sensor, mass storage, HID keyboard.

A device sees URBs (already checked by the protocol core) and answers each
through a completion callback, at once or later: an IN URB on an endpoint with
nothing to send is parked until the device has data (the sensor's next reading)
or until the client unlinks it.  Devices never touch sockets or clocks; the
server calls ``tick()`` every ``tick_interval`` seconds.
"""

from __future__ import annotations

import abc
import math
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from netfate.proto.usbip import (
    Endpoint,
    Interface,
    IsoPacket,
    SetupPacket,
    Speed,
    TransferType,
    UrbSubmitted,
    UsbDevice,
)

from .descriptors import (
    BULK,
    INTERRUPT,
    LANGID_DESCRIPTOR,
    InterfaceSpec,
    all_endpoints,
    configuration_descriptor,
    device_descriptor,
    string_descriptor,
)

EPIPE = 32
"""URB status -EPIPE: the endpoint stalled (how a device refuses a request)."""


@dataclass(frozen=True)
class UrbResult:
    """How a device completed a URB."""

    status: int = 0
    data: bytes = b""
    actual_length: int | None = None
    iso_packets: tuple[IsoPacket, ...] = ()
    """Per-packet results of an isochronous URB (data holds the packets back to back)."""
    start_frame: int = 0


Completer = Callable[[int, UrbResult], None]
STALL = UrbResult(status=-EPIPE)


@dataclass
class _ParkedIn:
    seqnum: int
    length: int
    done: Completer


class VirtualDevice(abc.ABC):
    """Standard requests, endpoint bookkeeping and IN parking; subclasses add a class."""

    vendor = 0x1D6B  # Linux Foundation; these are virtual devices
    product = 0x0104
    manufacturer = "netfate"
    product_name = "virtual device"
    serial = "0001"
    speed = Speed.HIGH
    device_class = 0
    tick_interval: float | None = None

    def __init__(self, busid: str) -> None:
        self.busid = busid
        self.configuration = 0
        self._parked: dict[int, deque[_ParkedIn]] = {}

    # --- description ------------------------------------------------------ #

    @abc.abstractmethod
    def interfaces(self) -> list[InterfaceSpec]:
        """The device's interfaces and endpoints (each device kind describes its own)."""

    @property
    def endpoints(self) -> list[Endpoint]:
        return all_endpoints(self.interfaces())

    def record(self, busnum: int, devnum: int) -> UsbDevice:
        """The USB/IP device record (what ``usbip list -r`` shows)."""
        ifs = self.interfaces()
        return UsbDevice(
            path=f"/sys/devices/netfate/usb{busnum}/{self.busid}",
            busid=self.busid,
            busnum=busnum,
            devnum=devnum,
            speed=self.speed,
            id_vendor=self.vendor,
            id_product=self.product,
            bcd_device=0x0100,
            device_class=self.device_class,
            device_subclass=0,
            device_protocol=0,
            configuration_value=self.configuration,
            num_configurations=1,
            num_interfaces=len(ifs),
            interfaces=tuple(Interface(i.cls, i.subclass, i.protocol) for i in ifs),
        )

    # --- URBs --------------------------------------------------------------- #

    def submit(self, urb: UrbSubmitted, done: Completer) -> None:
        """Handle one URB; ``done`` is called exactly once unless it is cancelled."""
        if urb.ep == 0:
            if urb.setup is None:
                done(urb.seqnum, STALL)
                return
            done(urb.seqnum, self._control(urb.setup, urb.data))
            return
        if urb.iso_packets:
            done(urb.seqnum, self.on_iso(urb))
            return
        if urb.direction_in:
            self._parked.setdefault(urb.ep, deque()).append(
                _ParkedIn(urb.seqnum, urb.transfer_buffer_length, done)
            )
            self.pump(urb.ep)
        else:
            done(urb.seqnum, self.on_out(urb.ep, urb.data))

    def cancel(self, seqnum: int) -> None:
        """The client unlinked a URB: forget it if it is parked."""
        for q in self._parked.values():
            for p in list(q):
                if p.seqnum == seqnum:
                    q.remove(p)

    def disconnect(self) -> None:
        """The importing connection went away: drop parked URBs and class state."""
        self._parked.clear()
        self.configuration = 0

    def pump(self, ep: int) -> None:
        """Complete parked IN URBs on ``ep`` while the device has data for them."""
        q = self._parked.get(ep)
        while q:
            head = q[0]
            data = self.produce_in(ep, head.length)
            if data is None:
                return
            q.popleft()
            head.done(head.seqnum, UrbResult(data=data))

    def tick(self) -> None:
        """Called every ``tick_interval`` seconds by the server."""
        return None  # an optional hook: most devices have nothing to do on a tick

    # --- hooks -------------------------------------------------------------- #

    def produce_in(self, ep: int, max_length: int) -> bytes | None:
        """Data for an IN URB of at most ``max_length`` bytes, or None to keep it parked."""
        return None

    def on_out(self, ep: int, data: bytes) -> UrbResult:
        return UrbResult()

    def on_iso(self, urb: UrbSubmitted) -> UrbResult:
        """An isochronous URB (answered at once: ISO never waits for data)."""
        return STALL

    def class_control(self, setup: SetupPacket, data: bytes) -> UrbResult | None:
        """Class/vendor requests; None stalls."""
        return None

    def class_descriptor(self, setup: SetupPacket) -> bytes | None:
        return None

    # --- chapter 9 ---------------------------------------------------------- #

    def descriptor(self) -> bytes:
        return device_descriptor(
            vendor=self.vendor, product=self.product, device_class=self.device_class
        )

    def _control(self, setup: SetupPacket, data: bytes) -> UrbResult:
        kind = setup.request_type & 0x60
        if kind != 0:  # class or vendor
            got = self.class_control(setup, data)
            return got if got is not None else STALL
        rt, req = setup.request_type, setup.request
        if rt == 0x80 and req == 6:  # GET_DESCRIPTOR (device)
            body = self._standard_descriptor(setup.value >> 8, setup.value & 0xFF)
            return STALL if body is None else UrbResult(data=body[: setup.length])
        if rt == 0x81 and req == 6:  # GET_DESCRIPTOR (interface): HID report descriptor
            body = self.class_descriptor(setup)
            return STALL if body is None else UrbResult(data=body[: setup.length])
        if rt == 0x00 and req == 9:  # SET_CONFIGURATION
            self.configuration = setup.value & 0xFF
            return UrbResult()
        if rt == 0x80 and req == 8:  # GET_CONFIGURATION
            return UrbResult(data=bytes([self.configuration])[: setup.length])
        if req == 0 and rt & 0x80:  # GET_STATUS (device/interface/endpoint)
            return UrbResult(data=bytes(2)[: setup.length])
        if rt in (0x00, 0x01, 0x02) and req in (1, 3):  # CLEAR/SET_FEATURE
            return UrbResult()
        if rt == 0x01 and req == 11:  # SET_INTERFACE (only alt 0 exists)
            return UrbResult() if setup.value == 0 else STALL
        if rt == 0x81 and req == 10:  # GET_INTERFACE
            return UrbResult(data=b"\0"[: setup.length])
        return STALL

    def _standard_descriptor(self, kind: int, index: int) -> bytes | None:
        if kind == 1:
            return self.descriptor()
        if kind == 2:
            return configuration_descriptor(self.interfaces())
        if kind == 3:
            strings = {
                0: LANGID_DESCRIPTOR,
                1: string_descriptor(self.manufacturer),
                2: string_descriptor(self.product_name),
                3: string_descriptor(self.serial),
            }
            return strings.get(index)
        return None  # device qualifier etc.: stall, the host copes


# --------------------------------------------------------------------------- #
# CDC-ACM serial sensor (the paper's Arduino over Bluetooth SPP)
# --------------------------------------------------------------------------- #

CDC_SET_LINE_CODING = 0x20
CDC_GET_LINE_CODING = 0x21
CDC_SET_CONTROL_LINE_STATE = 0x22
SERIAL_BUFFER = 64 * 1024


class SerialSensor(VirtualDevice):
    """A CDC-ACM serial port printing ``temp=<celsius>`` lines and answering ``ping``.

    Interfaces: 0 = communications (notification interrupt IN 0x83), 1 = data
    (bulk IN 0x81, bulk OUT 0x02).  A line ``ping`` is answered with ``pong``
    at once, for the paper's RTT test.  Unread output beyond 64 KiB is dropped
    oldest-first, as a UART FIFO would overrun.
    """

    product = 0x0105
    product_name = "netfate temperature sensor (CDC-ACM)"
    device_class = 0x02
    tick_interval: float | None = 1.0

    def __init__(self, busid: str, *, period: float = 1.0, base_celsius: float = 21.0) -> None:
        super().__init__(busid)
        self.tick_interval = period
        self.base = base_celsius
        self.readings = 0
        self.line_coding = struct.pack("<IBBB", 9600, 0, 0, 8)
        self.dtr = False
        self._tx = bytearray()
        self._rx = bytearray()

    def interfaces(self) -> list[InterfaceSpec]:
        functional = (
            bytes([5, 0x24, 0x00, 0x10, 0x01])  # header, CDC 1.10
            + bytes([5, 0x24, 0x01, 0x00, 0x01])  # call management, data iface 1
            + bytes([4, 0x24, 0x02, 0x02])  # ACM: line coding + control line state
            + bytes([5, 0x24, 0x06, 0x00, 0x01])  # union: master 0, slave 1
        )
        return [
            InterfaceSpec(
                0, 0x02, 0x02, 0x01, (Endpoint(0x83, INTERRUPT, 16),), functional, {0x83: 16}
            ),
            InterfaceSpec(
                1, 0x0A, 0x00, 0x00, (Endpoint(0x81, BULK, 512), Endpoint(0x02, BULK, 512))
            ),
        ]

    def write(self, data: bytes) -> None:
        """Queue bytes for the host (device → host)."""
        self._tx += data
        if len(self._tx) > SERIAL_BUFFER:
            del self._tx[: len(self._tx) - SERIAL_BUFFER]
        self.pump(1)

    def reading(self) -> float:
        """Deterministic temperature: a slow sine around the base (no clock, no RNG)."""
        return round(self.base + 1.5 * math.sin(self.readings / 10.0), 2)

    def tick(self) -> None:
        self.write(f"temp={self.reading():.2f}\r\n".encode())
        self.readings += 1

    def produce_in(self, ep: int, max_length: int) -> bytes | None:
        if ep != 1 or not self._tx:
            return None  # the notification endpoint never fires
        out = bytes(self._tx[:max_length])
        del self._tx[:max_length]
        return out

    def on_out(self, ep: int, data: bytes) -> UrbResult:
        self._rx += data
        while b"\n" in self._rx or b"\r" in self._rx:
            cut = min(i for i in (self._rx.find(b"\n"), self._rx.find(b"\r")) if i >= 0)
            line = bytes(self._rx[:cut]).strip()
            del self._rx[: cut + 1]
            if line == b"ping":
                self.write(b"pong\r\n")
        if len(self._rx) > SERIAL_BUFFER:
            self._rx.clear()
        return UrbResult()

    def class_control(self, setup: SetupPacket, data: bytes) -> UrbResult | None:
        if setup.request_type == 0x21 and setup.request == CDC_SET_LINE_CODING:
            if len(data) == 7:
                self.line_coding = data
            return UrbResult()
        if setup.request_type == 0xA1 and setup.request == CDC_GET_LINE_CODING:
            return UrbResult(data=self.line_coding[: setup.length])
        if setup.request_type == 0x21 and setup.request == CDC_SET_CONTROL_LINE_STATE:
            self.dtr = bool(setup.value & 1)
            return UrbResult()
        return None

    def disconnect(self) -> None:
        super().disconnect()
        self._rx.clear()


# --------------------------------------------------------------------------- #
# Mass storage: SCSI transparent command set over bulk-only transport
# --------------------------------------------------------------------------- #

CBW = struct.Struct("<4sIIBBB16s")
CSW = struct.Struct("<4sIIB")
SENSE_NONE = (0, 0, 0)
SENSE_INVALID_OPCODE = (0x05, 0x20, 0x00)
SENSE_INVALID_FIELD = (0x05, 0x24, 0x00)
SENSE_LBA_RANGE = (0x05, 0x21, 0x00)
SENSE_WRITE_PROTECTED = (0x07, 0x27, 0x00)


class MassStorage(VirtualDevice):
    """A USB pendrive backed by a file: BOT (USB MSC BOT 1.0) + SCSI (SPC-3, SBC-2).

    Commands: INQUIRY, TEST UNIT READY, READ CAPACITY(10), READ(10), WRITE(10),
    MODE SENSE(6), REQUEST SENSE, plus the no-ops hosts send (PREVENT ALLOW
    MEDIUM REMOVAL, START STOP UNIT, SYNCHRONIZE CACHE, VERIFY).  Anything else
    fails with ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.

    BOT phases: IDLE (expect a CBW on OUT) → DATA_IN / DATA_OUT → STATUS (CSW
    on IN) → IDLE.  IN URBs that arrive early (a pipelining client sends the CSW
    read with the CBW) are parked until their phase comes.
    """

    product = 0x0106
    product_name = "netfate pendrive (mass storage)"
    block_size = 512

    def __init__(self, busid: str, image: Path, *, read_only: bool = False) -> None:
        super().__init__(busid)
        self.image = image
        self.read_only = read_only
        self._fd = os.open(image, os.O_RDONLY if read_only else os.O_RDWR)
        self.blocks = os.fstat(self._fd).st_size // self.block_size
        self._sense = SENSE_NONE
        self._reset_bot()

    def close(self) -> None:
        os.close(self._fd)

    def interfaces(self) -> list[InterfaceSpec]:
        return [
            InterfaceSpec(
                0, 0x08, 0x06, 0x50, (Endpoint(0x81, BULK, 512), Endpoint(0x02, BULK, 512))
            )
        ]

    def _reset_bot(self) -> None:
        self._phase = "IDLE"
        self._tag = 0
        self._expected = 0
        self._in_data = b""  # small replies
        self._in_file = (0, 0)  # (byte offset, bytes left) for READ(10)
        self._out_file = (0, 0)  # (byte offset, bytes left) for WRITE(10)
        self._status = 0
        self._residue = 0

    def disconnect(self) -> None:
        super().disconnect()
        self._reset_bot()

    def class_control(self, setup: SetupPacket, data: bytes) -> UrbResult | None:
        if setup.request_type == 0xA1 and setup.request == 0xFE:  # GET MAX LUN
            return UrbResult(data=b"\0"[: setup.length])
        if setup.request_type == 0x21 and setup.request == 0xFF:  # BOT reset
            self._reset_bot()
            return UrbResult()
        return None

    # --- BOT ---------------------------------------------------------------- #

    def on_out(self, ep: int, data: bytes) -> UrbResult:
        if self._phase == "IDLE":
            if len(data) != CBW.size or data[:4] != b"USBC":
                return STALL  # BOT 6.6.1: invalid CBW
            _sig, tag, dlen, flags, _lun, cblen, cdb = CBW.unpack(data)
            self._tag, self._expected = tag, dlen
            self._execute(cdb[: max(1, min(cblen, 16))], dlen, bool(flags & 0x80))
            self.pump(1)
            return UrbResult()
        if self._phase == "DATA_OUT":
            off, left = self._out_file
            chunk = data[:left]
            if chunk and self._status == 0:
                os.pwrite(self._fd, chunk, off)
            self._out_file = (off + len(chunk), left - len(chunk))
            self._residue = max(0, self._residue - len(data))
            if self._out_file[1] == 0:
                self._phase = "STATUS"
                self.pump(1)
            return UrbResult()
        return STALL  # OUT while we owe data or status: a phase error

    def produce_in(self, ep: int, max_length: int) -> bytes | None:
        if self._phase == "DATA_IN":
            off, left = self._in_file
            if left:
                n = min(left, max_length)
                out = os.pread(self._fd, n, off)
                self._in_file = (off + n, left - n)
                left -= n
            else:
                out = self._in_data[:max_length]
                self._in_data = self._in_data[len(out) :]
            self._residue = max(0, self._residue - len(out))
            if not left and not self._in_data:
                self._phase = "STATUS"
            return out
        if self._phase == "STATUS":
            self._phase = "IDLE"
            return CSW.pack(b"USBS", self._tag, self._residue, self._status)
        return None

    # --- SCSI --------------------------------------------------------------- #

    def _reply(self, data: bytes, dlen: int) -> None:
        data = data[:dlen]
        self._in_data = data
        self._residue = dlen - len(data)
        self._phase = "DATA_IN" if data else "STATUS"

    def _fail(self, sense: tuple[int, int, int], dlen: int, direction_in: bool) -> None:
        self._sense = sense
        self._status = 1
        self._residue = dlen
        if dlen and direction_in:
            self._phase = "DATA_IN"  # one short (empty) packet ends the data phase
            self._in_data = b""
            self._in_file = (0, 0)
        elif dlen:
            self._phase = "DATA_OUT"  # swallow the host's data, then fail
            self._out_file = (0, dlen)
        else:
            self._phase = "STATUS"

    def _execute(self, cdb: bytes, dlen: int, direction_in: bool) -> None:
        self._status = 0
        self._residue = 0
        self._in_data = b""
        self._in_file = (0, 0)
        op = cdb[0]
        if op == 0x12:  # INQUIRY
            inq = bytes([0x00, 0x80, 0x04, 0x02, 31, 0, 0, 0])
            inq += b"netfate ".ljust(8) + b"Virtual Pendrive".ljust(16) + b"1.0 "
            self._sense = SENSE_NONE
            self._reply(inq, dlen)
        elif op == 0x03:  # REQUEST SENSE
            key, asc, ascq = self._sense
            sense = bytes([0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0])
            self._sense = SENSE_NONE
            self._reply(sense, dlen)
        elif op == 0x00:  # TEST UNIT READY
            self._phase = "STATUS"
        elif op == 0x25:  # READ CAPACITY(10)
            self._reply(struct.pack(">II", max(self.blocks - 1, 0), self.block_size), dlen)
        elif op == 0x1A:  # MODE SENSE(6): header only, WP bit if read-only
            self._reply(bytes([3, 0, 0x80 if self.read_only else 0, 0]), dlen)
        elif op in (0x1E, 0x1B, 0x2F):  # PREVENT ALLOW, START STOP, VERIFY(10)
            self._phase = "STATUS"
        elif op == 0x35:  # SYNCHRONIZE CACHE(10)
            os.fsync(self._fd)
            self._phase = "STATUS"
        elif op in (0x28, 0x2A):  # READ(10) / WRITE(10)
            lba, count = struct.unpack(">xxIxHx", cdb[:10].ljust(10, b"\0"))
            nbytes = count * self.block_size
            if lba + count > self.blocks:
                self._fail(SENSE_LBA_RANGE, dlen, direction_in)
            elif op == 0x2A and self.read_only:
                self._fail(SENSE_WRITE_PROTECTED, dlen, direction_in)
            elif nbytes != dlen or direction_in != (op == 0x28):
                self._fail(SENSE_INVALID_FIELD, dlen, direction_in)  # BOT case 4..13
            elif op == 0x28:
                self._in_file = (lba * self.block_size, nbytes)
                self._phase = "DATA_IN" if nbytes else "STATUS"
            else:
                self._out_file = (lba * self.block_size, nbytes)
                self._phase = "DATA_OUT" if nbytes else "STATUS"
        else:
            self._fail(SENSE_INVALID_OPCODE, dlen, direction_in)


# --------------------------------------------------------------------------- #
# HID: a boot keyboard
# --------------------------------------------------------------------------- #

KEYBOARD_REPORT_DESCRIPTOR = bytes.fromhex(
    "05010906a101050719e029e715002501750195088102950175088101"
    "950575010508190129059102950175039101"
    "95067508150025650507190029658100c0"
)


class HidKeyboard(VirtualDevice):
    """A HID boot keyboard (HID 1.11 Appendix B): 8-byte reports on interrupt IN 0x81."""

    product = 0x0107
    product_name = "netfate keyboard (HID)"

    def __init__(self, busid: str) -> None:
        super().__init__(busid)
        self._reports: deque[bytes] = deque(maxlen=256)
        self.last_report = bytes(8)
        self.idle = 0
        self.protocol = 1

    def interfaces(self) -> list[InterfaceSpec]:
        hid = struct.pack("<BBHBBBH", 9, 0x21, 0x0111, 0, 1, 0x22, len(KEYBOARD_REPORT_DESCRIPTOR))
        return [
            InterfaceSpec(0, 0x03, 0x01, 0x01, (Endpoint(0x81, INTERRUPT, 8),), hid, {0x81: 10})
        ]

    def press(self, keycode: int, modifiers: int = 0) -> None:
        """Queue a key press and release."""
        self._reports.append(bytes([modifiers, 0, keycode, 0, 0, 0, 0, 0]))
        self._reports.append(bytes(8))
        self.pump(1)

    def produce_in(self, ep: int, max_length: int) -> bytes | None:
        if ep != 1 or not self._reports:
            return None
        self.last_report = self._reports.popleft()
        return self.last_report[:max_length]

    def class_descriptor(self, setup: SetupPacket) -> bytes | None:
        if setup.value >> 8 == 0x22:
            return KEYBOARD_REPORT_DESCRIPTOR
        return None

    def class_control(self, setup: SetupPacket, data: bytes) -> UrbResult | None:
        rt, req = setup.request_type, setup.request
        if rt == 0xA1 and req == 0x01:  # GET_REPORT
            return UrbResult(data=self.last_report[: setup.length])
        if rt == 0x21 and req == 0x0A:  # SET_IDLE
            self.idle = setup.value >> 8
            return UrbResult()
        if rt == 0x21 and req == 0x0B:  # SET_PROTOCOL
            self.protocol = setup.value
            return UrbResult()
        if rt == 0x21 and req == 0x09:  # SET_REPORT (LEDs)
            return UrbResult()
        return None


# --------------------------------------------------------------------------- #
# Isochronous stream: a sampled sensor (stands in for the paper's webcam flow)
# --------------------------------------------------------------------------- #


class IsoStream(VirtualDevice):
    """A vendor-class device streaming samples on isochronous IN endpoint 0x81.

    Each packet of a URB carries up to ``packet_size`` bytes: a 4-byte
    big-endian sample counter and a fill pattern, so a reader can check order
    and loss.  Every ``drop_every``-th packet (0: never) is reported as lost
    (status -EXDEV, no data), as a busy bus would.
    """

    product = 0x0108
    product_name = "netfate sample stream (isochronous)"

    def __init__(self, busid: str, *, packet_size: int = 192, drop_every: int = 0) -> None:
        super().__init__(busid)
        self.packet_size = packet_size
        self.drop_every = drop_every
        self.counter = 0
        self.frame = 0

    def interfaces(self) -> list[InterfaceSpec]:
        ep = Endpoint(0x81, TransferType.ISOCHRONOUS, self.packet_size)
        return [InterfaceSpec(0, 0xFF, 0x00, 0x00, (ep,), b"", {0x81: 1})]

    def on_iso(self, urb: UrbSubmitted) -> UrbResult:
        if not urb.direction_in or urb.ep != 1:
            return STALL
        data: list[bytes] = []
        results: list[IsoPacket] = []
        errors = 0
        for p in urb.iso_packets:
            self.counter += 1
            if self.drop_every and self.counter % self.drop_every == 0:
                results.append(IsoPacket(p.offset, p.length, 0, -18))
                errors += 1
                continue
            n = min(p.length, self.packet_size)
            sample = self.counter.to_bytes(4, "big") + bytes([self.counter & 0xFF]) * (n - 4)
            data.append(sample[:n])
            results.append(IsoPacket(p.offset, p.length, n, 0))
        start = self.frame
        self.frame += len(urb.iso_packets)
        body = b"".join(data)
        return UrbResult(
            status=0, data=body, iso_packets=tuple(results), start_frame=start,
            actual_length=len(body),
        )  # fmt: skip
