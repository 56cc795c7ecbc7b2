"""Sans-I/O USB/IP connections: ``ServerConnection`` (exports, HRH) and ``ClientConnection``.

Bytes go in through ``receive_data(data, now)``, which returns events; bytes to
write come out of ``data_to_send()``.  No socket, no clock (DESIGN.md §1).

Unlink race semantics (spec: the UNLINK diagrams; kernel ``stub_rx.c``
``stub_recv_cmd_unlink`` and ``vhci_rx.c`` ``vhci_recv_ret_unlink``):

* The URB was still in flight when CMD_UNLINK arrived: the server cancels it and
  sends RET_UNLINK with status ``-ECONNRESET``; **no RET_SUBMIT is ever sent for
  it**.  A later ``complete()`` for it is dropped (returns False).  A RET_SUBMIT
  that nevertheless arrives at the client is a protocol error
  (``REPLY_AFTER_UNLINK``), as it is for vhci ("cannot find a urb").
* The URB had already completed: its RET_SUBMIT was queued first (TCP keeps the
  order) and the server then sends RET_UNLINK with status 0.  The client reports
  ``UrbCompleted`` and later ``UrbUnlinked(cancelled=False)``.
* The kernel stub answers an in-flight unlink only when the host controller gives
  the URB back, and may then report status 0 with the data lost.  The client
  accepts that too (``UrbUnlinked(cancelled=True, status=0)``).  Our server
  cancels at once, because cancelling a virtual device's URB is synchronous.
"""

from __future__ import annotations

import abc
import enum
from collections import deque
from dataclasses import dataclass

from .errors import Reason, UsbipProtocolError
from .events import (
    DeviceImported,
    DeviceListReceived,
    DeviceListRequested,
    Event,
    ImportRefused,
    ImportRequested,
    UrbCompleted,
    UrbSubmitted,
    UrbUnlinked,
)
from .messages import (
    ECONNRESET,
    MAX_ENDPOINT,
    MAX_ISO_PACKETS,
    MAX_TRANSFER_LENGTH,
    OP_HEADER,
    OP_REQ_DEVLIST,
    OP_REQ_IMPORT,
    URB_HEADER_LEN,
    USBIP_CMD_SUBMIT,
    USBIP_CMD_UNLINK,
    USBIP_RET_SUBMIT,
    USBIP_RET_UNLINK,
    USBIP_VERSION,
    BasicHeader,
    CmdSubmit,
    CmdUnlink,
    Direction,
    Endpoint,
    IsoPacket,
    OpRepDevlist,
    OpRepImport,
    OpReqDevlist,
    OpReqImport,
    RetSubmit,
    RetUnlink,
    SetupPacket,
    Status,
    TransferType,
    UsbDevice,
    check_iso_bounds,
)

MAX_PENDING_INPUT = 64 * 1024
"""Bytes a peer may send ahead while we owe it an operation-phase reply."""
MAX_URBS_IN_FLIGHT = 8192
"""URBs a peer may have outstanding at once (each costs state; a parked IN costs
it for as long as the device has nothing to send)."""
_RECENT_UNLINKS = 4096
"""How many cancelled seqnums we remember, to tell a late reply from a made-up one."""


class Phase(enum.Enum):
    """Connection phases; see the transition tables below."""

    OPERATION = "operation"
    DEVLIST_PENDING = "devlist_pending"
    IMPORT_PENDING = "import_pending"
    URB = "urb"
    CLOSED = "closed"


# --------------------------------------------------------------------------- #
# State machine tables.
#
# A connection starts in OPERATION.  One operation request is outstanding at a
# time: DEVLIST_PENDING and IMPORT_PENDING mean "request sent (client) / received
# (server), reply not yet".  A devlist reply returns to OPERATION (usbipd then
# closes; we let the client decide).  A successful import moves to the URB
# phase for the rest of the connection; a refused one closes it.  Any protocol
# error, and close(), moves to CLOSED from anywhere.  A (phase, trigger) pair
# missing from a table is an illegal transition and raises.
# --------------------------------------------------------------------------- #

SERVER_TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.OPERATION, "recv_req_devlist"): Phase.DEVLIST_PENDING,
    (Phase.OPERATION, "recv_req_import"): Phase.IMPORT_PENDING,
    (Phase.DEVLIST_PENDING, "send_rep_devlist"): Phase.OPERATION,
    (Phase.IMPORT_PENDING, "send_import_ok"): Phase.URB,
    (Phase.IMPORT_PENDING, "send_import_refused"): Phase.CLOSED,
    (Phase.URB, "recv_cmd"): Phase.URB,
    (Phase.URB, "send_ret"): Phase.URB,
}

CLIENT_TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.OPERATION, "send_req_devlist"): Phase.DEVLIST_PENDING,
    (Phase.OPERATION, "send_req_import"): Phase.IMPORT_PENDING,
    (Phase.DEVLIST_PENDING, "recv_rep_devlist"): Phase.OPERATION,
    (Phase.IMPORT_PENDING, "recv_import_ok"): Phase.URB,
    (Phase.IMPORT_PENDING, "recv_import_refused"): Phase.CLOSED,
    (Phase.URB, "send_cmd"): Phase.URB,
    (Phase.URB, "recv_ret"): Phase.URB,
}


@dataclass
class _InFlight:
    direction_in: bool
    length: int
    iso_count: int
    unlink_seqnum: int | None = None


class _Core(abc.ABC):
    _table: dict[tuple[Phase, str], Phase]

    def __init__(self) -> None:
        self.phase = Phase.OPERATION
        self.last_activity: float | None = None
        """``now`` of the last receive_data call (drivers use it for idle timeouts)."""
        self._in = bytearray()
        """Bytes of an incomplete frame kept between receive_data calls."""
        # While parsing: the bytes being read (``_in``, or the caller's data when
        # nothing was buffered, so that whole frames are never copied into
        # ``_in``) and the read position in them.
        self._src: bytes | bytearray | memoryview = b""
        self._pos = 0
        # Outgoing chunks, joined once in data_to_send: payloads are not copied
        # into an intermediate buffer (bulk data is most of the bytes).
        self._out: list[bytes] = []
        self._in_flight: dict[int, _InFlight] = {}
        self._recent_unlinked: deque[int] = deque(maxlen=_RECENT_UNLINKS)
        self._recent_set: set[int] = set()

    # --- shared plumbing ------------------------------------------------- #

    def _transition(self, trigger: str) -> None:
        nxt = self._table.get((self.phase, trigger))
        if nxt is None:
            raise UsbipProtocolError(
                Reason.ILLEGAL_TRANSITION, f"{trigger} in phase {self.phase.value}"
            )
        self.phase = nxt

    def _remember_unlinked(self, seqnum: int) -> None:
        if len(self._recent_unlinked) == self._recent_unlinked.maxlen:
            self._recent_set.discard(self._recent_unlinked[0])
        self._recent_unlinked.append(seqnum)
        self._recent_set.add(seqnum)

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order; empties the outgoing buffer."""
        out = b"".join(self._out)
        self._out.clear()
        return out

    def data_to_send_chunks(self) -> list[bytes]:
        """The same bytes as ``data_to_send`` as separate chunks, payloads uncopied
        (a driver that writes them one by one saves joining megabytes)."""
        out = self._out
        self._out = []
        return [c for c in out if c]

    def close(self) -> None:
        """Move to CLOSED (connection lost or ended locally)."""
        self.phase = Phase.CLOSED

    @property
    def urbs_in_flight(self) -> int:
        """URBs submitted and not yet completed or unlinked."""
        return len(self._in_flight)

    @property
    def pending_seqnums(self) -> frozenset[int]:
        """Seqnums of the URBs in flight."""
        return frozenset(self._in_flight)

    @property
    def buffered(self) -> int:
        """Received bytes not yet forming a complete frame (non-zero at EOF: truncated)."""
        return len(self._in)

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """Feed bytes from the peer; return the events they complete.

        Raises :class:`UsbipProtocolError` (and closes) on anything the protocol
        forbids.  Partial frames stay buffered until complete.
        """
        if self.phase is Phase.CLOSED:
            raise UsbipProtocolError(Reason.CLOSED, "connection is closed")
        self.last_activity = now
        if self._in:
            self._in += data
            self._src = self._in
        else:
            self._src = data
        return self._run_parse()

    def _run_parse(self) -> list[Event]:
        self._pos = 0
        events: list[Event] = []
        try:
            self._parse(events)
        except UsbipProtocolError:
            self.phase = Phase.CLOSED
            self._in = bytearray()  # rebind: never resize a buffer a traceback may view
            self._src = b""
            raise
        if self._src is self._in:
            del self._in[: self._pos]  # O(1): bytearray deletes from the front
        elif self._pos < len(self._src):
            with memoryview(self._src) as mv, mv[self._pos :] as tail:
                self._in = bytearray(tail)  # only an incomplete frame is copied
        self._src = b""
        self._pos = 0
        return events

    @abc.abstractmethod
    def _parse(self, events: list[Event]) -> None:
        """Parse whole frames of this side's phase into `events` (each side its own)."""

    def _avail(self) -> int:
        return len(self._src) - self._pos

    def _view(self) -> memoryview:
        """The unread bytes, without a copy (callers must not keep it)."""
        return memoryview(self._src)[self._pos :]

    def _consume(self, n: int) -> bytes:
        with memoryview(self._src) as mv, mv[self._pos : self._pos + n] as part:
            frame = bytes(part)
        self._pos += n
        return frame

    def _bound_pending_input(self) -> None:
        if self._avail() > MAX_PENDING_INPUT:
            raise UsbipProtocolError(
                Reason.BUFFER_OVERFLOW, f"{self._avail()} bytes sent ahead of our reply"
            )


class ServerConnection(_Core):
    """The exporting side (the Home Radio Head): answers OP_REQs, runs URBs.

    ``receive_data`` yields :class:`DeviceListRequested`, :class:`ImportRequested`,
    :class:`UrbSubmitted` and :class:`UrbUnlinked`; answer them with
    ``send_devlist``, ``accept_import`` / ``refuse_import`` and ``complete``.
    """

    _table = SERVER_TRANSITIONS

    def __init__(self) -> None:
        super().__init__()
        self.device: UsbDevice | None = None
        self._endpoints: dict[tuple[int, int], TransferType] = {}

    # --- replies ---------------------------------------------------------- #

    def send_devlist(self, devices: list[UsbDevice] | tuple[UsbDevice, ...]) -> list[Event]:
        """Answer OP_REQ_DEVLIST (devices need their interface lists).

        Returns events from input the client sent ahead of this reply.
        """
        msg = OpRepDevlist(Status.OK, tuple(devices)).pack()
        self._transition("send_rep_devlist")
        self._out.append(msg)
        return self._parse_held_back()

    def accept_import(self, device: UsbDevice, endpoints: list[Endpoint]) -> list[Event]:
        """Answer OP_REQ_IMPORT with OK; the URB phase starts.

        ``endpoints`` are the device's non-zero endpoints (all alternate
        settings); endpoint 0 is implied.  URBs for others are refused.
        Returns events from input the client sent ahead of this reply.
        """
        msg = OpRepImport(Status.OK, device).pack()
        self._transition("send_import_ok")
        self.device = device
        self._endpoints = {(0, Direction.OUT): TransferType.CONTROL}
        self._endpoints[(0, Direction.IN)] = TransferType.CONTROL
        for ep in endpoints:
            self._endpoints[(ep.number, ep.direction)] = ep.transfer_type
        self._out.append(msg)
        return self._parse_held_back()

    def refuse_import(self, status: Status) -> None:
        """Answer OP_REQ_IMPORT with an error status (``NODEV``, ``DEV_BUSY`` …); closes."""
        if status == Status.OK:
            raise UsbipProtocolError(Reason.BAD_STATUS, "refuse_import needs an error status")
        self._transition("send_import_refused")
        self._out.append(OpRepImport(status).pack())

    def complete(
        self,
        seqnum: int,
        *,
        status: int = 0,
        data: bytes = b"",
        actual_length: int | None = None,
        iso_packets: tuple[IsoPacket, ...] = (),
        start_frame: int = 0,
        error_count: int = 0,
    ) -> bool:
        """Send RET_SUBMIT for a URB; False if the client unlinked it meanwhile.

        IN: ``data`` is the payload (ISO: packets back to back) and
        ``actual_length`` defaults to its size.  OUT: ``actual_length`` defaults
        to the requested length.
        """
        if self.phase is not Phase.URB:
            raise UsbipProtocolError(Reason.ILLEGAL_TRANSITION, f"complete in {self.phase.value}")
        # Checked before it leaves the table: a refused completion (a local bug)
        # leaves the URB in flight, to be completed properly or unlinked.
        req = self._in_flight.get(seqnum)
        if req is None:
            if seqnum in self._recent_set:
                return False
            raise UsbipProtocolError(Reason.UNKNOWN_SEQNUM, f"complete of unknown {seqnum}")
        if req.direction_in:
            actual = len(data)
        else:
            actual = req.length if actual_length is None else actual_length
            data = b""
        if actual > req.length or actual < 0:
            raise UsbipProtocolError(Reason.BAD_ACTUAL_LENGTH, f"{actual} > {req.length}")
        if status != 0 and not iso_packets and req.iso_count:
            # An ISO URB that failed as a whole: every packet failed, none moved data.
            iso_packets = (IsoPacket(0, 0, 0, status),) * req.iso_count
            actual, data = 0, b""
        if len(iso_packets) != req.iso_count:
            raise UsbipProtocolError(Reason.BAD_ISO, "iso packet count differs from request")
        if iso_packets:
            total = check_iso_bounds(iso_packets, req.length, check_actual=True)
            if total != actual:
                raise UsbipProtocolError(Reason.BAD_ISO_DESCRIPTOR, "iso actual sum != length")
        npk = req.iso_count if req.iso_count else -1
        self._transition("send_ret")
        del self._in_flight[seqnum]
        self._out.extend(
            RetSubmit(
                seqnum, status, actual, start_frame, npk, error_count, data, iso_packets
            ).pack_parts()
        )
        return True

    # --- parsing ---------------------------------------------------------- #

    def _parse_held_back(self) -> list[Event]:
        # Input that arrived ahead of our reply was held back; read it now.
        self._src = self._in
        return self._run_parse()

    def _parse(self, events: list[Event]) -> None:
        while self._avail():
            if self.phase in (Phase.DEVLIST_PENDING, Phase.IMPORT_PENDING):
                self._bound_pending_input()
                return
            if self.phase is Phase.OPERATION:
                if not self._parse_op(events):
                    return
            elif self.phase is Phase.URB:
                if not self._parse_urb(events):
                    return
            else:
                raise UsbipProtocolError(Reason.CLOSED, "data after close")

    def _parse_op(self, events: list[Event]) -> bool:
        if self._avail() < OP_HEADER.size:
            return False
        version, code, _status = OP_HEADER.unpack_from(self._src, self._pos)
        if version != USBIP_VERSION:
            raise UsbipProtocolError(Reason.BAD_VERSION, f"version {version:#06x}")
        if code == OP_REQ_DEVLIST:
            OpReqDevlist.unpack(self._consume(OP_HEADER.size))
            self._transition("recv_req_devlist")
            events.append(DeviceListRequested())
            return True
        if code == OP_REQ_IMPORT:
            if self._avail() < OpReqImport.SIZE:
                return False
            req = OpReqImport.unpack(self._consume(OpReqImport.SIZE))
            self._transition("recv_req_import")
            events.append(ImportRequested(req.busid))
            return True
        raise UsbipProtocolError(Reason.UNKNOWN_CODE, f"op code {code:#06x}")

    def _parse_urb(self, events: list[Event]) -> bool:
        if self._avail() < URB_HEADER_LEN:
            return False
        view = self._view()
        head = BasicHeader.unpack(view)
        device = self.device
        if device is None:  # accept_import always sets it; keep mypy and a fuzzer honest
            raise UsbipProtocolError(Reason.ILLEGAL_TRANSITION, "URB phase without a device")
        if head.command not in (USBIP_CMD_SUBMIT, USBIP_CMD_UNLINK):
            raise UsbipProtocolError(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
        if head.devid != device.devid:
            raise UsbipProtocolError(Reason.BAD_DEVID, f"devid {head.devid:#x}")
        if head.seqnum in self._in_flight:
            raise UsbipProtocolError(Reason.DUPLICATE_SEQNUM, f"seqnum {head.seqnum} in flight")
        if len(self._in_flight) >= MAX_URBS_IN_FLIGHT and head.command == USBIP_CMD_SUBMIT:
            raise UsbipProtocolError(Reason.TOO_MANY_URBS, f"{MAX_URBS_IN_FLIGHT} in flight")
        if head.command == USBIP_CMD_UNLINK:
            unlink = CmdUnlink.unpack(self._consume(URB_HEADER_LEN))
            self._transition("recv_cmd")
            self._on_unlink(unlink, events)
            return True
        total = CmdSubmit.frame_length(head, view)  # checks ep, direction, lengths
        ttype = self._endpoints.get((head.ep, head.direction))
        if ttype is None:
            raise UsbipProtocolError(
                Reason.BAD_DIRECTION if head.ep <= MAX_ENDPOINT else Reason.BAD_ENDPOINT,
                f"no endpoint {head.ep} {Direction(head.direction).name}",
            )
        length, npk = _submit_length_and_packets(view)
        if ttype is TransferType.ISOCHRONOUS:
            if npk < 1 or npk > MAX_ISO_PACKETS:
                raise UsbipProtocolError(Reason.BAD_ISO, f"iso endpoint, {npk} packets")
        elif npk not in (0, -1):
            raise UsbipProtocolError(Reason.BAD_ISO, f"{npk} packets on a non-iso endpoint")
        setup: SetupPacket | None = None
        if ttype is TransferType.CONTROL:
            setup = SetupPacket.unpack(view[40:48])
            if setup.is_out != (head.direction == Direction.OUT):
                raise UsbipProtocolError(Reason.BAD_DIRECTION, "direction differs from setup")
            if setup.length != length:
                raise UsbipProtocolError(Reason.BAD_LENGTH, "length differs from wLength")
        if len(view) < total:
            return False
        msg = CmdSubmit.unpack(view)  # copies only the payload, from the buffer
        self._pos += total
        self._transition("recv_cmd")
        direction_in = msg.direction == Direction.IN
        self._in_flight[msg.seqnum] = _InFlight(
            direction_in, msg.transfer_buffer_length, len(msg.iso_packets)
        )
        events.append(
            UrbSubmitted(
                seqnum=msg.seqnum,
                ep=msg.ep,
                direction_in=direction_in,
                transfer_flags=msg.transfer_flags,
                transfer_buffer_length=msg.transfer_buffer_length,
                setup=setup,
                data=msg.data,
                iso_packets=msg.iso_packets,
                start_frame=msg.start_frame,
                interval=msg.interval,
            )
        )
        return True

    def _on_unlink(self, unlink: CmdUnlink, events: list[Event]) -> None:
        target = self._in_flight.pop(unlink.unlink_seqnum, None)
        status = -ECONNRESET if target is not None else 0
        if target is not None:
            self._remember_unlinked(unlink.unlink_seqnum)
        self._out.append(RetUnlink(unlink.seqnum, status).pack())
        events.append(
            UrbUnlinked(unlink.unlink_seqnum, unlink.seqnum, status, cancelled=target is not None)
        )


def _submit_length_and_packets(buf: memoryview) -> tuple[int, int]:
    length = int.from_bytes(buf[24:28], "big", signed=True)
    npk = int.from_bytes(buf[32:36], "big", signed=True)
    return length, npk


class ClientConnection(_Core):
    """The importing side (the ISP function): lists, imports, submits and unlinks URBs.

    ``receive_data`` yields :class:`DeviceListReceived`, :class:`DeviceImported`,
    :class:`ImportRefused`, :class:`UrbCompleted` and :class:`UrbUnlinked`.
    """

    _table = CLIENT_TRANSITIONS

    def __init__(self) -> None:
        super().__init__()
        self.device: UsbDevice | None = None
        self._next_seqnum = 1
        self._pending_unlinks: dict[int, int] = {}

    # --- requests ------------------------------------------------------------ #

    def request_devlist(self) -> None:
        """Send OP_REQ_DEVLIST."""
        self._transition("send_req_devlist")
        self._out.append(OpReqDevlist().pack())

    def request_import(self, busid: str) -> None:
        """Send OP_REQ_IMPORT for ``busid``."""
        msg = OpReqImport(busid).pack()
        self._transition("send_req_import")
        self._out.append(msg)

    def _alloc_seqnum(self) -> int:
        while True:
            s = self._next_seqnum
            self._next_seqnum = (s % 0xFFFFFFFF) + 1  # 1..2**32-1, never 0
            if s not in self._in_flight and s not in self._pending_unlinks:
                return s

    def submit(
        self,
        ep: int,
        direction_in: bool,
        *,
        length: int | None = None,
        data: bytes = b"",
        setup: SetupPacket | None = None,
        transfer_flags: int = 0,
        interval: int = 0,
        iso_packets: tuple[IsoPacket, ...] | None = None,
        start_frame: int = 0,
    ) -> int:
        """Queue CMD_SUBMIT; return its seqnum.

        IN: ``length`` bytes are requested.  OUT: ``data`` is sent.  Endpoint 0
        needs ``setup``.  ``iso_packets`` (offset/length only) makes it ISO.
        """
        if self.phase is not Phase.URB or self.device is None:
            raise UsbipProtocolError(Reason.ILLEGAL_TRANSITION, f"submit in {self.phase.value}")
        if not 0 <= ep <= MAX_ENDPOINT:
            raise UsbipProtocolError(Reason.BAD_ENDPOINT, f"ep {ep}")
        if len(self._in_flight) >= MAX_URBS_IN_FLIGHT:
            raise UsbipProtocolError(Reason.TOO_MANY_URBS, f"{MAX_URBS_IN_FLIGHT} in flight")
        tbl = (length or 0) if direction_in else len(data)
        if direction_in and data:
            raise UsbipProtocolError(Reason.BAD_DIRECTION, "IN transfer with OUT data")
        if tbl < 0 or tbl > MAX_TRANSFER_LENGTH:
            raise UsbipProtocolError(Reason.BAD_LENGTH, f"length {tbl}")
        if ep == 0:
            if setup is None:
                raise UsbipProtocolError(Reason.BAD_LENGTH, "control transfer without setup")
            if setup.is_out == direction_in:
                raise UsbipProtocolError(Reason.BAD_DIRECTION, "direction differs from setup")
            if setup.length != tbl:
                raise UsbipProtocolError(Reason.BAD_LENGTH, "length differs from wLength")
        isos = iso_packets or ()
        if iso_packets is not None:
            if not 1 <= len(isos) <= MAX_ISO_PACKETS:
                raise UsbipProtocolError(Reason.BAD_ISO, f"{len(isos)} iso packets")
            check_iso_bounds(isos, tbl, check_actual=False)
        seqnum = self._alloc_seqnum()
        parts = CmdSubmit(
            seqnum=seqnum,
            devid=self.device.devid,
            direction=Direction.IN if direction_in else Direction.OUT,
            ep=ep,
            transfer_flags=transfer_flags,
            transfer_buffer_length=tbl,
            start_frame=start_frame,
            number_of_packets=len(isos) if iso_packets is not None else -1,
            interval=interval,
            setup=setup.pack() if setup is not None else bytes(8),
            data=b"" if direction_in else data,
            iso_packets=isos,
        ).pack_parts()
        self._transition("send_cmd")
        self._in_flight[seqnum] = _InFlight(direction_in, tbl, len(isos))
        self._out.extend(parts)
        return seqnum

    def unlink(self, seqnum: int) -> int:
        """Queue CMD_UNLINK for an in-flight URB; return the unlink's own seqnum."""
        if self.phase is not Phase.URB or self.device is None:
            raise UsbipProtocolError(Reason.ILLEGAL_TRANSITION, f"unlink in {self.phase.value}")
        req = self._in_flight.get(seqnum)
        if req is None or req.unlink_seqnum is not None:
            raise UsbipProtocolError(Reason.UNKNOWN_SEQNUM, f"no URB {seqnum} to unlink")
        own = self._alloc_seqnum()
        req.unlink_seqnum = own
        self._pending_unlinks[own] = seqnum
        self._transition("send_cmd")
        self._out.append(CmdUnlink(own, self.device.devid, seqnum).pack())
        return own

    # --- parsing ---------------------------------------------------------- #

    def _parse(self, events: list[Event]) -> None:
        while self._avail():
            if self.phase is Phase.OPERATION:
                raise UsbipProtocolError(Reason.UNEXPECTED_MESSAGE, "data with no request out")
            if self.phase is Phase.DEVLIST_PENDING:
                got_d = OpRepDevlist.parse(self._view())
                if got_d is None:
                    return
                rep, n = got_d
                self._consume(n)
                self._transition("recv_rep_devlist")
                events.append(DeviceListReceived(rep.status, rep.devices))
            elif self.phase is Phase.IMPORT_PENDING:
                got_i = OpRepImport.parse(self._view())
                if got_i is None:
                    return
                imp, n = got_i
                self._consume(n)
                if imp.status == Status.OK and imp.device is not None:
                    self._transition("recv_import_ok")
                    self.device = imp.device
                    events.append(DeviceImported(imp.device))
                else:
                    self._transition("recv_import_refused")
                    events.append(ImportRefused(imp.status))
                    if self._avail():
                        raise UsbipProtocolError(Reason.UNEXPECTED_MESSAGE, "data after refusal")
            elif self.phase is Phase.URB:
                if not self._parse_urb(events):
                    return
            else:
                raise UsbipProtocolError(Reason.CLOSED, "data after close")

    def _parse_urb(self, events: list[Event]) -> bool:
        if self._avail() < URB_HEADER_LEN:
            return False
        view = self._view()
        head = BasicHeader.unpack(view)
        if head.command == USBIP_RET_SUBMIT:
            req = self._in_flight.get(head.seqnum)
            if req is None:
                if head.seqnum in self._recent_set:
                    raise UsbipProtocolError(
                        Reason.REPLY_AFTER_UNLINK, f"RET_SUBMIT {head.seqnum} after its unlink"
                    )
                raise UsbipProtocolError(Reason.UNKNOWN_SEQNUM, f"RET_SUBMIT {head.seqnum}")
            total = RetSubmit.frame_length(
                view,
                direction_in=req.direction_in,
                requested_length=req.length,
                iso_count=req.iso_count,
            )
            if len(view) < total:
                return False
            ret = RetSubmit.unpack(
                view,
                direction_in=req.direction_in,
                requested_length=req.length,
                iso_count=req.iso_count,
            )
            self._pos += total
            self._transition("recv_ret")
            del self._in_flight[head.seqnum]
            events.append(
                UrbCompleted(
                    seqnum=ret.seqnum,
                    status=ret.status,
                    actual_length=ret.actual_length,
                    data=ret.data,
                    iso_packets=ret.iso_packets,
                    start_frame=ret.start_frame,
                    error_count=ret.error_count,
                )
            )
            return True
        if head.command == USBIP_RET_UNLINK:
            target = self._pending_unlinks.pop(head.seqnum, None)
            if target is None:
                raise UsbipProtocolError(Reason.UNKNOWN_SEQNUM, f"RET_UNLINK {head.seqnum}")
            ret_u = RetUnlink.unpack(self._consume(URB_HEADER_LEN))
            self._transition("recv_ret")
            cancelled = self._in_flight.pop(target, None) is not None
            if cancelled:
                self._remember_unlinked(target)
            events.append(UrbUnlinked(target, ret_u.seqnum, ret_u.status, cancelled=cancelled))
            return True
        raise UsbipProtocolError(Reason.UNKNOWN_CODE, f"command {head.command:#x}")
