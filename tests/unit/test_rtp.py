"""RTP/RTCP sans-I/O core: wire formats (RFC 3550, RFC 8285), the A.1/A.3/A.8
receiver rules, and the relay core; with vectors captured from ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.proto.rtp import (
    PT_MP2T,
    ActiveSourceChanged,
    Arrival,
    ExtensionElement,
    Goodbye,
    HeaderExtension,
    ReceiverReport,
    RelayCore,
    ReportBlock,
    RtcpUnknown,
    RtpError,
    RtpPacket,
    SdesChunk,
    SdesType,
    SenderReport,
    SenderReported,
    SourceDescription,
    SourceLeft,
    SourceRestarted,
    SourceState,
    SourceTimedOut,
    SourceValidated,
    Verdict,
    build_compound,
    is_rtcp,
    ntp_to_unix,
    parse_rtcp,
    parse_rtp,
    payload_bounds,
    unix_to_ntp,
)
from rtp_capture import read_rtpdump

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "rtp_mpegts_h264_aac.rtpdump"
# The sender report ffmpeg 5.1 sent during that capture (RTCP port), 28 bytes.
FFMPEG_SR = bytes.fromhex("80c80006662298f8eec047da7810624d4e29ce250000000000000000")


def rtp(seq: int, ts: int = 0, ssrc: int = 0x1234, pt: int = PT_MP2T, size: int = 100) -> bytes:
    return RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, b"\x47" * size).build()


# ------------------------------------------------------------------- RTP wire format


def test_fixed_header_layout() -> None:
    wire = RtpPacket(33, 0x1234, 0x01020304, 0xCAFEBABE, b"abc", marker=True).build()
    assert wire[:12] == bytes.fromhex("80a11234 01020304 cafebabe".replace(" ", ""))
    assert wire[12:] == b"abc"


def test_round_trip_everything() -> None:
    ext = HeaderExtension.from_elements(
        [ExtensionElement(1, b"\x01"), ExtensionElement(14, b"x" * 16)]
    )
    p = RtpPacket(96, 65535, 0xFFFFFFFF, 1, b"payload", True, (7, 8, 9), ext, padding=7)
    wire = p.build()
    assert wire[-1] == 7 and wire[-7:-1] == b"\0" * 6
    assert parse_rtp(wire) == p
    assert payload_bounds(wire) == (12 + 12 + 4 + 20, len(wire) - 7)


@settings(max_examples=300, deadline=None)
@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=300),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    elements=st.none()
    | st.lists(
        st.builds(ExtensionElement, st.integers(1, 255), st.binary(min_size=0, max_size=40)),
        max_size=6,
    ),
    padding=st.integers(0, 255),
)
def test_round_trip_property(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool,
    csrcs: list[int],
    elements: list[ExtensionElement] | None,
    padding: int,
) -> None:
    ext = None if elements is None else HeaderExtension.from_elements(elements)
    p = RtpPacket(pt, seq, ts, ssrc, payload, marker, tuple(csrcs), ext, padding)
    back = parse_rtp(p.build())
    assert back == p
    if ext is not None:
        assert back.extension is not None
        got = back.extension.elements()
        # The one-byte form cannot carry empty data; the packer then used two bytes.
        assert [(e.id, e.data) for e in got] == [(e.id, e.data) for e in elements or []]


def test_rfc8285_one_byte_form_padding_and_id15() -> None:
    # ID 1 (1 byte), a padding byte, ID 2 (2 bytes), then ID 15: the rest is ignored.
    data = bytes([0x10, 0xAA, 0x00, 0x21, 0xBB, 0xCC, 0xF0, 0x55])
    ext = HeaderExtension(0xBEDE, data)
    assert ext.elements() == (ExtensionElement(1, b"\xaa"), ExtensionElement(2, b"\xbb\xcc"))


def test_rfc8285_two_byte_form_with_appbits_and_empty_element() -> None:
    ext = HeaderExtension(0x1003, bytes([0x05, 0x00, 0x00, 0x20, 0x02, 0x61, 0x62, 0x00]))
    assert ext.is_two_byte
    assert ext.elements() == (ExtensionElement(5, b""), ExtensionElement(0x20, b"ab"))
    built = HeaderExtension.from_elements([ExtensionElement(5, b"")], appbits=3)
    assert built.profile == 0x1003 and built.elements() == (ExtensionElement(5, b""),)


@pytest.mark.parametrize(
    ("ext", "reason"),
    [
        (HeaderExtension(0xBEDE, bytes([0x13, 0xAA, 0x00, 0x00])), "extension_element"),
        (HeaderExtension(0xBEDE, bytes([0x0F, 0, 0, 0])), "extension_element"),
        (HeaderExtension(0x1000, bytes([0x01, 0x09, 0x00, 0x00])), "extension_element"),
        (HeaderExtension(0x1000, bytes([0x00, 0x00, 0x00, 0x07])), "extension_element"),
        (HeaderExtension(0x1234, b"\0\0\0\0"), "extension_profile"),
    ],
)
def test_rfc8285_malformed(ext: HeaderExtension, reason: str) -> None:
    with pytest.raises(RtpError) as e:
        ext.elements()
    assert e.value.reason == reason


def _raw(b0: int, tail: bytes = b"") -> bytes:
    return bytes([b0, 33]) + b"\x00\x01" + b"\x00" * 8 + tail


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x80\x21\x00", "truncated"),
        (_raw(0x40), "version"),
        (_raw(0x82, b"\x00\x00\x00\x01"), "truncated"),  # CC=2, one CSRC present
        (_raw(0x90, b"\xbe\xde"), "truncated"),  # extension head cut
        (_raw(0x90, b"\xbe\xde\x00\x02\x10\x00\x00\x00"), "truncated"),  # 2 words, 1 present
        (_raw(0xA0, b"abc\x00"), "padding"),  # padding count 0
        (_raw(0xA0, b"abc\x05"), "padding"),  # more padding than bytes after the header
        (_raw(0xA0), "padding"),  # P set, no byte after the header at all
    ],
)
def test_malformed_rtp(wire: bytes, reason: str) -> None:
    with pytest.raises(RtpError) as e:
        parse_rtp(wire)
    assert e.value.reason == reason


def test_build_refuses_out_of_range() -> None:
    for bad in (
        RtpPacket(128, 0, 0, 0),
        RtpPacket(0, 1 << 16, 0, 0),
        RtpPacket(0, 0, 1 << 32, 0),
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16))),
        RtpPacket(0, 0, 0, 0, padding=256),
        RtpPacket(0, 0, 0, 0, extension=HeaderExtension(0xBEDE, b"abc")),
    ):
        with pytest.raises(RtpError):
            bad.build()


def test_rtcp_demultiplexing() -> None:
    assert is_rtcp(FFMPEG_SR)
    assert not is_rtcp(rtp(1))
    assert not is_rtcp(RtpPacket(96, 1, 0, 0, marker=True).build())  # 0xE0 > 223


# ------------------------------------------------------------------- RTCP


def test_ffmpeg_sender_report_vector() -> None:
    (sr,) = parse_rtcp(FFMPEG_SR)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0x662298F8
    assert sr.reports == () and sr.packet_count == 0 and sr.octet_count == 0
    assert ntp_to_unix(sr.ntp_timestamp) > 1.6e9  # a wallclock of this era
    assert sr.build() == FFMPEG_SR


def test_compound_round_trip() -> None:
    blocks = (ReportBlock(0xAA, 25, -3, 0x1FFFF, 44, 0x12345678, 65536),)
    packets = (
        SenderReport(1, unix_to_ntp(1.7e9), 90000, 10, 13160, blocks, b"extn"),
        ReceiverReport(1, blocks),
        SourceDescription(
            (
                SdesChunk(1, ((SdesType.CNAME, b"acq@pe1"), (SdesType.TOOL, b"netfate"))),
                SdesChunk(2, ()),
                SdesChunk(3, ((SdesType.NAME, b"x" * 255),)),
            )
        ),
        RtcpUnknown(204, 1, b"name" + b"data"),
        Goodbye((1, 2), b"encoder restart"),
    )
    wire = build_compound(packets)
    assert parse_rtcp(wire) == packets
    assert ntp_to_unix(unix_to_ntp(1.7e9)) == pytest.approx(1.7e9, abs=1e-6)


def test_cumulative_loss_is_24_bit_signed_and_clamped() -> None:
    for lost, back in ((-1, -1), (0x7FFFFF, 0x7FFFFF), (10**9, 0x7FFFFF), (-(10**9), -0x800000)):
        wire = ReceiverReport(1, (ReportBlock(2, 0, lost, 0, 0),)).build()
        (rr,) = parse_rtcp(wire)
        assert isinstance(rr, ReceiverReport) and rr.reports[0].cumulative_lost == back


def test_padding_in_last_packet_only() -> None:
    sr = SenderReport(1, 0, 0, 0, 0)
    bye = Goodbye((1,))
    padded = build_compound([sr]) + bye.build(padding=8)
    assert parse_rtcp(padded) == (sr, bye)
    with pytest.raises(RtpError) as e:
        parse_rtcp(sr.build(padding=4) + bye.build())
    assert e.value.reason in ("first_packet", "padding")
    rr = ReceiverReport(1)
    with pytest.raises(RtpError) as e:
        parse_rtcp(rr.build() + bye.build(padding=4) + bye.build())
    assert e.value.reason == "padding"


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x80\xc8", "truncated"),
        (Goodbye((1,)).build(), "first_packet"),
        (b"\x40" + FFMPEG_SR[1:], "version"),
        (FFMPEG_SR[:-4], "length"),  # length field says more than the datagram
        (FFMPEG_SR + b"\x00\x00", "truncated"),  # stray bytes after the last packet
        (FFMPEG_SR + b"\x40\xcb\x00\x00", "version"),  # a second packet not version 2
        (bytes.fromhex("81c90001 00000001"), "length"),  # RC=1, no room for the block
        (ReceiverReport(1).build() + bytes.fromhex("81ca0001 00000001"), "sdes_chunk"),
        (ReceiverReport(1).build() + bytes.fromhex("81ca0002 00000001 01056162"), "sdes_item"),
        (ReceiverReport(1).build() + bytes.fromhex("81ca0002 00000001 01026162"), "sdes_chunk"),
        (ReceiverReport(1).build() + bytes.fromhex("82cb0001 00000001"), "length"),
        (ReceiverReport(1).build() + bytes.fromhex("81cb0002 00000001 09616263"), "length"),
        (ReceiverReport(1).build() + bytes.fromhex("a1cb0001 00000000"), "padding"),
    ],
)
def test_rtcp_validity_checks(wire: bytes, reason: str) -> None:
    """RFC 3550 A.2: version, first packet SR/RR, padding, lengths adding up."""
    with pytest.raises(RtpError) as e:
        parse_rtcp(bytes.fromhex(wire.hex()))
    assert e.value.reason == reason


def test_reduced_size_rtcp_allowed_when_asked() -> None:
    bye = Goodbye((5,)).build()
    assert parse_rtcp(bye, reduced_size=True) == (Goodbye((5,)),)


# ------------------------------------------------------------------- A.1 / A.3 / A.8


def test_probation_then_valid() -> None:
    s = SourceState(1, 100, 0.0)
    assert s.update(100, 0, 0.0, 10) == Arrival.PROBATION
    assert not s.valid
    assert s.update(101, 0, 0.1, 10) == Arrival.IN_ORDER
    assert s.valid and s.received == 1 and s.expected == 1 and s.lost == 0


def test_probation_restarts_on_out_of_sequence() -> None:
    s = SourceState(1, 100, 0.0, min_sequential=3)
    assert s.update(100, 0, 0, 1) == Arrival.PROBATION
    assert s.update(200, 0, 0, 1) == Arrival.PROBATION  # not 101: start again
    assert s.update(201, 0, 0, 1) == Arrival.PROBATION
    assert s.update(202, 0, 0, 1) == Arrival.IN_ORDER


def test_min_sequential_one_validates_the_first_packet() -> None:
    s = SourceState(1, 7, 0.0, min_sequential=1)
    assert s.update(7, 0, 0.0, 1) == Arrival.IN_ORDER


def valid_source(first: int = 0, ts: int = 0, **kw: int) -> SourceState:
    s = SourceState(1, first, 0.0, min_sequential=1, **kw)
    assert s.update(first, ts, 0.0, 1) == Arrival.IN_ORDER
    return s


def test_wrap_around_counts_a_cycle() -> None:
    s = valid_source(65533)
    for seq in (65534, 65535, 0, 1):
        assert s.update(seq, 0, 0, 1) == Arrival.IN_ORDER
    assert s.cycles == 65536 and s.extended_max == 65537
    assert s.expected == 5 and s.lost == 0


def test_loss_reorder_duplicate() -> None:
    s = valid_source(10)
    assert s.update(13, 0, 0, 1) == Arrival.IN_ORDER  # 11, 12 missing
    assert s.expected == 4 and s.lost == 2
    assert s.update(11, 0, 0, 1) == Arrival.LATE
    assert s.lost == 1 and s.reordered == 1
    assert s.update(11, 0, 0, 1) == Arrival.DUPLICATE
    assert s.update(13, 0, 0, 1) == Arrival.DUPLICATE
    assert s.lost == 1 and s.duplicates == 2


def test_late_across_the_wrap() -> None:
    s = valid_source(65534)
    assert s.update(1, 0, 0, 1) == Arrival.IN_ORDER  # 65535 and 0 missing
    assert s.update(65535, 0, 0, 1) == Arrival.LATE
    assert s.update(0, 0, 0, 1) == Arrival.LATE
    assert s.lost == 0 and s.reordered == 2


def test_jump_dropped_unless_confirmed_then_restart() -> None:
    s = valid_source(100)
    assert s.update(30000, 0, 0, 1) == Arrival.JUMPED
    assert s.update(101, 0, 0, 1) == Arrival.IN_ORDER  # the jump was a stray packet
    assert s.update(40000, 0, 0, 1) == Arrival.JUMPED
    assert s.update(40001, 0, 0, 1) == Arrival.RESTARTED  # the sender restarted
    assert s.restarts == 1 and s.base_seq == 40001 and s.lost == 0
    assert s.update(40002, 0, 0, 1) == Arrival.IN_ORDER
    assert s.packets == 4  # 100, 101, 40001, 40002


def test_report_block_fraction_lost_per_interval() -> None:
    s = valid_source(0)
    for seq in range(1, 10):
        s.update(seq, 0, 0, 1)
    for seq in range(14, 20):  # 10..13 lost: 4 of 10
        s.update(seq, 0, 0, 1)
    s.sender_report(unix_to_ntp(1000.0), now=5.0)
    b = s.report_block(now=5.5)
    assert b.cumulative_lost == 4 and b.highest_sequence == 19
    assert b.fraction_lost == (4 << 8) // 20  # the first interval covers all 20 expected
    assert b.delay_since_last_sr == 32768  # 0.5 s in 1/65536 s
    assert b.last_sr == (unix_to_ntp(1000.0) >> 16) & 0xFFFFFFFF
    for seq in range(20, 30):
        s.update(seq, 0, 0, 1)
    assert s.report_block(now=6.0).fraction_lost == 0  # nothing lost this interval


def test_jitter_constant_spacing_is_zero() -> None:
    s = valid_source(0, clock_rate=90000)
    for k in range(1, 100):
        s.update(k, k * 3600, k * 0.04, 100)
    assert s.jitter_seconds == pytest.approx(0.0, abs=1e-9)


def test_jitter_converges_to_a8_estimate() -> None:
    """Every other packet 10 ms late: |D| is 10 ms for every packet, so J -> 10 ms."""
    s = valid_source(0, clock_rate=90000)
    for k in range(1, 400):
        late = 0.010 if k % 2 else 0.0
        s.update(k, k * 3600, k * 0.04 + late, 100)
    assert s.jitter_seconds == pytest.approx(0.010, rel=1e-3)
    assert s.report_block(16.0).jitter == pytest.approx(900, abs=1)


def test_jitter_survives_timestamp_wrap() -> None:
    base = 0xFFFFFFFF - 3600 * 5
    s = valid_source(0, ts=base, clock_rate=90000)
    for k in range(1, 20):
        s.update(k, (base + k * 3600) & 0xFFFFFFFF, k * 0.04, 100)
    assert s.jitter_seconds == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------- relay core


def test_relay_validates_forwards_and_reports() -> None:
    relay = RelayCore(payload_types={PT_MP2T})
    assert relay.receive(rtp(1000, 0), 0.00) == Verdict.PROBATION
    assert relay.receive(rtp(1001, 3600), 0.04) == Verdict.FORWARD
    evs = relay.events()
    # The probation packet was held, and comes back to be sent first.
    assert evs == [
        SourceValidated(0x1234, PT_MP2T, 0.04, (rtp(1000, 0),)),
        ActiveSourceChanged(None, 0x1234, 0.04),
    ]
    for k in range(2, 60):
        if k == 30:
            continue  # one lost
        assert relay.receive(rtp(1000 + k, 3600 * k), 0.04 * k) == Verdict.FORWARD
    (fig,) = relay.figures(2.4)
    assert fig.ssrc == 0x1234 and fig.active and fig.payload_type == PT_MP2T
    assert fig.packets == 58 and fig.lost == 1 and fig.expected == 59  # 1001..1059
    assert fig.octets == 58 * 100
    assert fig.bitrate_bps == pytest.approx(100 * 8 / 0.04, rel=0.05)
    assert fig.jitter_s == pytest.approx(0, abs=1e-6)
    assert relay.counters()["forwarded"] == 58


def test_relay_counts_and_drops_garbage_never_raises() -> None:
    relay = RelayCore()
    for junk in (b"", b"\x00", b"\x47" * 188, b"\x80\x21", _raw(0xA0, b"abc\x09"), b"\x80\xc8zzzz"):
        assert relay.receive(junk, 0.0) == Verdict.GARBAGE
    c = relay.counters()
    assert c["dropped_garbage"] == 6
    assert c["garbage_truncated"] == 3 and c["garbage_version"] == 1
    assert c["garbage_padding"] == 1 and c["garbage_rtcp_length"] == 1
    assert relay.sources == {} and relay.events() == []


def test_relay_payload_type_filter() -> None:
    relay = RelayCore(payload_types={PT_MP2T})
    assert relay.receive(rtp(1, pt=96), 0.0) == Verdict.PAYLOAD_TYPE
    assert relay.sources == {}


def test_relay_duplicates_dropped_reorders_forwarded() -> None:
    relay = RelayCore(min_sequential=1)
    assert relay.receive(rtp(5), 0.0) == Verdict.FORWARD
    assert relay.receive(rtp(7), 0.0) == Verdict.FORWARD
    assert relay.receive(rtp(6), 0.0) == Verdict.FORWARD
    assert relay.receive(rtp(6), 0.0) == Verdict.DUPLICATE
    (fig,) = relay.figures(0.0)
    assert fig.reordered == 1 and fig.duplicates == 1 and fig.lost == 0


def test_relay_single_source_takeover_after_silence() -> None:
    relay = RelayCore(takeover_after=1.0)
    for k in range(5):
        relay.receive(rtp(k, ssrc=1), 0.1 * k)
    relay.events()
    # A second sender on the same port while the first is live: refused, held nothing.
    assert relay.receive(rtp(500, ssrc=2), 0.5) == Verdict.PROBATION
    assert relay.receive(rtp(501, ssrc=2), 0.6) == Verdict.OTHER_SOURCE
    assert relay.events() == [SourceValidated(2, PT_MP2T, 0.6, ())]
    # The first falls silent (an encoder restart with a new SSRC): the second takes over.
    assert relay.receive(rtp(502, ssrc=2), 1.5) == Verdict.FORWARD
    evs = relay.events()
    assert ActiveSourceChanged(1, 2, 1.5) in evs
    assert relay.active == 2
    assert relay.receive(rtp(5, ssrc=1), 1.6) == Verdict.OTHER_SOURCE
    figs = relay.figures(1.6)
    assert [f.ssrc for f in figs] == [2, 1] and figs[0].active and not figs[1].active


def test_relay_multi_source_forwards_all() -> None:
    relay = RelayCore(single_source=False, min_sequential=1)
    assert relay.receive(rtp(1, ssrc=1), 0.0) == Verdict.FORWARD
    assert relay.receive(rtp(9, ssrc=2), 0.0) == Verdict.FORWARD
    assert all(f.active for f in relay.figures(0.0))


def test_relay_restart_event() -> None:
    relay = RelayCore(min_sequential=1)
    relay.receive(rtp(10), 0.0)
    relay.events()
    assert relay.receive(rtp(20000), 0.1) == Verdict.SEQUENCE_JUMP
    assert relay.receive(rtp(20001), 0.2) == Verdict.FORWARD
    assert relay.events() == [SourceRestarted(0x1234, 20001, 0.2)]


def test_relay_rtcp_sender_report_and_bye() -> None:
    relay = RelayCore(min_sequential=1)
    relay.receive(rtp(1, ssrc=7), 0.0)
    relay.events()
    sr = SenderReport(7, unix_to_ntp(1.7e9), 1234, 1, 100)
    assert relay.receive(sr.build(), 0.5) == Verdict.FORWARD  # multiplexed on the RTP port
    (ev,) = relay.events()
    assert isinstance(ev, SenderReported) and ev.ssrc == 7 and ev.packet_count == 1
    assert ev.ntp_time == pytest.approx(1.7e9, abs=1e-3)
    assert relay.figures(0.5)[0].sender_octets == 100
    # Another SSRC's BYE cannot end the forwarded stream.
    assert relay.receive_rtcp(build_compound([ReceiverReport(8), Goodbye((7,))]), 0.6) == (
        Verdict.OTHER_SOURCE
    )
    bye = build_compound([ReceiverReport(7), Goodbye((7,), b"done")])
    assert relay.receive_rtcp(bye, 0.7) == Verdict.FORWARD
    assert relay.events() == [SourceLeft(7, "done", True)]
    assert relay.active is None and relay.sources == {}
    assert relay.receive(rtp(100, ssrc=9), 0.8) == Verdict.FORWARD  # a new sender at once


def test_relay_timeout() -> None:
    relay = RelayCore(min_sequential=1, source_timeout=5.0)
    relay.receive(rtp(1), 0.0)
    relay.events()
    assert relay.poll(4.9) == []
    assert relay.poll(5.0) == [SourceTimedOut(0x1234, 0.0, True)]
    assert relay.active is None and relay.figures(5.0) == ()


def test_probation_run_held_and_restarted() -> None:
    relay = RelayCore(min_sequential=3)
    assert relay.receive(rtp(10), 0.0) == Verdict.PROBATION
    assert relay.receive(rtp(50), 0.1) == Verdict.PROBATION  # out of sequence: a new run
    assert relay.receive(rtp(51), 0.2) == Verdict.PROBATION
    assert relay.receive(rtp(52), 0.3) == Verdict.FORWARD
    validated = relay.events()[0]
    assert isinstance(validated, SourceValidated) and validated.held == (rtp(50), rtp(51))


def test_relay_state_bounded_under_ssrc_flood() -> None:
    relay = RelayCore(min_sequential=2, max_sources=8)
    relay.receive(rtp(1, ssrc=1), 0.0)
    relay.receive(rtp(2, ssrc=1), 0.0)  # the real stream, validated
    for k in range(1000):
        assert relay.receive(rtp(k, ssrc=1000 + k), 0.1) == Verdict.PROBATION
    assert len(relay.sources) == 8 and 1 in relay.sources
    assert relay.receive(rtp(3, ssrc=1), 0.2) == Verdict.FORWARD


def test_relay_too_many_validated_sources() -> None:
    relay = RelayCore(single_source=False, min_sequential=1, max_sources=2)
    relay.receive(rtp(1, ssrc=1), 0.0)
    relay.receive(rtp(1, ssrc=2), 0.0)
    assert relay.receive(rtp(1, ssrc=3), 0.0) == Verdict.TOO_MANY_SOURCES


def test_relay_receiver_report_is_valid_compound() -> None:
    relay = RelayCore(min_sequential=1)
    for k in (0, 1, 3):
        relay.receive(rtp(k, 3600 * k), 0.04 * k)
    rr, sdes = parse_rtcp(relay.receiver_report(0xAB, b"fwd@core1", 1.0))
    assert isinstance(rr, ReceiverReport) and isinstance(sdes, SourceDescription)
    assert rr.reports[0].ssrc == 0x1234 and rr.reports[0].cumulative_lost == 1
    assert sdes.cname(0xAB) == b"fwd@core1"


def test_relay_on_ffmpeg_capture() -> None:
    """The captured ffmpeg stream: every datagram after probation forwarded, no loss."""
    datagrams = read_rtpdump(VECTOR)
    relay = RelayCore(payload_types={PT_MP2T}, rtcp_mux=False)
    verdicts = []
    for d in datagrams:
        if d.rtcp:
            verdicts.append(relay.receive_rtcp(d.data, d.at))
        else:
            verdicts.append(relay.receive(d.data, d.at))
    rtp_count = sum(not d.rtcp for d in datagrams)
    assert verdicts.count(Verdict.PROBATION) == 1
    (validated,) = [e for e in relay.events() if isinstance(e, SourceValidated)]
    assert validated.held == (next(d.data for d in datagrams if not d.rtcp),)
    assert verdicts.count(Verdict.FORWARD) == len(datagrams) - 1
    (fig,) = relay.figures(datagrams[-1].at)
    assert fig.packets == rtp_count - 1 and fig.lost == 0 and fig.reordered == 0
    assert fig.octets == (rtp_count - 1) * 7 * 188
    # ffmpeg paces -re output in bursts; jitter is real but well under a second.
    assert fig.jitter_s is not None and 0 <= fig.jitter_s < 0.5
    first = parse_rtp(next(d.data for d in datagrams if not d.rtcp))
    assert first.payload_type == PT_MP2T and len(first.payload) == 7 * 188
    assert first.ssrc == fig.ssrc
