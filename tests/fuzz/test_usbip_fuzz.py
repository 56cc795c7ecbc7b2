"""Fuzz the USB/IP cores: any input is accepted or raises UsbipProtocolError, nothing else.

Arbitrary bytes and mutated valid frames, fed in arbitrary chunkings, to both
cores in every phase (h11 ``fuzz/README.rst`` style, with hypothesis).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto.usbip import (
    ClientConnection,
    CmdSubmit,
    CmdUnlink,
    Endpoint,
    Interface,
    IsoPacket,
    OpRepDevlist,
    OpRepImport,
    OpReqDevlist,
    OpReqImport,
    RetSubmit,
    RetUnlink,
    ServerConnection,
    SetupPacket,
    Speed,
    Status,
    TransferType,
    UrbCompleted,
    UrbSubmitted,
    UsbDevice,
    UsbipProtocolError,
)

DEV = UsbDevice(
    "/sys/devices/fuzz/1-1", "1-1", 1, 2, Speed.HIGH, 1, 2, 3, 0, 0, 0, 1, 1, 1,
    (Interface(8, 6, 0x50),),
)  # fmt: skip
ENDPOINTS = [
    Endpoint(0x81, TransferType.BULK),
    Endpoint(0x02, TransferType.BULK),
    Endpoint(0x83, TransferType.INTERRUPT),
    Endpoint(0x84, TransferType.ISOCHRONOUS),
]
SETTINGS = settings(
    max_examples=int(os.environ.get("USBIP_FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Valid frames of every kind, the seeds for mutation.
CLIENT_FRAMES = [
    OpReqDevlist().pack(),
    OpReqImport("1-1").pack(),
    CmdSubmit(1, DEV.devid, 1, 0, 0, 18, setup=SetupPacket(0x80, 6, 0x100, 0, 18).pack()).pack(),
    CmdSubmit(2, DEV.devid, 0, 2, 0, 4, data=b"abcd").pack(),
    CmdSubmit(3, DEV.devid, 1, 1, 0, 512).pack(),
    CmdSubmit(
        4, DEV.devid, 1, 4, 0, 64, number_of_packets=2,
        iso_packets=(IsoPacket(0, 32), IsoPacket(32, 32)),
    ).pack(),
    CmdUnlink(5, DEV.devid, 3).pack(),
]  # fmt: skip
SERVER_FRAMES = [
    OpRepDevlist(Status.OK, (DEV,)).pack(),
    OpRepImport(Status.OK, DEV).pack(),
    OpRepImport(Status.NODEV).pack(),
    RetSubmit(1, 0, 4, data=b"wxyz").pack(),
    RetSubmit(2, 0, 0).pack(),
    RetSubmit(3, 0, 3, 0, 2, 0, b"abc", (IsoPacket(0, 32, 1), IsoPacket(32, 32, 2))).pack(),
    RetUnlink(4, -104).pack(),
]


def server_in(phase: str) -> ServerConnection:
    s = ServerConnection()
    if phase == "urb":
        s.receive_data(OpReqImport("1-1").pack(), 0.0)
        s.accept_import(DEV, ENDPOINTS)
        s.data_to_send()
    return s


def client_in(phase: str) -> ClientConnection:
    c = ClientConnection()
    if phase == "devlist":
        c.request_devlist()
    elif phase in ("import", "urb"):
        c.request_import("1-1")
        if phase == "urb":
            c.receive_data(OpRepImport(Status.OK, DEV).pack(), 0.0)
            c.submit(1, True, length=4)
            c.submit(2, False, data=b"xy")
            c.submit(4, True, length=64, iso_packets=(IsoPacket(0, 32), IsoPacket(32, 32)))
            c.unlink(1)
    c.data_to_send()
    return c


def feed(
    make: Callable[[], ServerConnection | ClientConnection], data: bytes, cuts: list[int]
) -> None:
    conn = make()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for a, b in itertools.pairwise(points):
            events = conn.receive_data(data[a:b], 0.0)
            for ev in events:
                # answer what we can so the next phase is reachable too
                if isinstance(conn, ServerConnection) and isinstance(ev, UrbSubmitted):
                    conn.complete(ev.seqnum, data=b"\0" * min(ev.transfer_buffer_length, 3))
                elif isinstance(ev, UrbCompleted):
                    assert ev.actual_length <= 512
    except UsbipProtocolError:
        pass


def mutate(frame: bytes, edits: list[tuple[int, int]], trunc: int) -> bytes:
    raw = bytearray(frame)
    for pos, val in edits:
        raw[pos % len(raw)] = val
    return bytes(raw[: max(1, len(raw) - trunc)])


phases_s = st.sampled_from(["operation", "urb"])
phases_c = st.sampled_from(["operation", "devlist", "import", "urb"])
cuts = st.lists(st.integers(min_value=0, max_value=4096), max_size=8)
edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6)


@SETTINGS
@given(phase=phases_s, data=st.binary(max_size=2048), cuts=cuts)
def test_server_arbitrary_bytes(phase: str, data: bytes, cuts: list[int]) -> None:
    feed(lambda: server_in(phase), data, cuts)


@SETTINGS
@given(phase=phases_c, data=st.binary(max_size=2048), cuts=cuts)
def test_client_arbitrary_bytes(phase: str, data: bytes, cuts: list[int]) -> None:
    feed(lambda: client_in(phase), data, cuts)


@SETTINGS
@given(
    phase=phases_s,
    frames=st.lists(st.sampled_from(CLIENT_FRAMES), min_size=1, max_size=5),
    edits=edits,
    trunc=st.integers(0, 64),
    cuts=cuts,
)
def test_server_mutated_frames(
    phase: str, frames: list[bytes], edits: list[tuple[int, int]], trunc: int, cuts: list[int]
) -> None:
    data = b"".join(frames)
    feed(lambda: server_in(phase), mutate(data, edits, trunc), cuts)


@SETTINGS
@given(
    phase=phases_c,
    frames=st.lists(st.sampled_from(SERVER_FRAMES), min_size=1, max_size=5),
    edits=edits,
    trunc=st.integers(0, 64),
    cuts=cuts,
)
def test_client_mutated_frames(
    phase: str, frames: list[bytes], edits: list[tuple[int, int]], trunc: int, cuts: list[int]
) -> None:
    data = b"".join(frames)
    feed(lambda: client_in(phase), mutate(data, edits, trunc), cuts)


@SETTINGS
@given(data=st.binary(max_size=600))
def test_message_parsers_directly(data: bytes) -> None:
    parsers: list[Callable[[bytes], object]] = [
        OpReqDevlist.unpack,
        OpReqImport.unpack,
        OpRepDevlist.unpack,
        OpRepImport.unpack,
        CmdSubmit.unpack,
        CmdUnlink.unpack,
        RetUnlink.unpack,
        lambda b: RetSubmit.unpack(b, direction_in=True),
        lambda b: RetSubmit.unpack(b, direction_in=False, requested_length=16, iso_count=2),
    ]
    for parse in parsers:
        with contextlib.suppress(UsbipProtocolError):
            parse(data)
