"""Fuzz the RTP and MPEG-TS cores (h11 ``fuzz/README.rst`` style, with hypothesis).

Every parser either accepts its input or raises its protocol's one exception type
(RtpError, MpegTsError). The cores (RelayCore, StreamAnalyzer, SectionAssembler,
TsFramer) never raise at all: whatever arrives is forwarded, dropped or counted.
Inputs are arbitrary bytes and mutations of what ffmpeg sent (the captured vector).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto import mpegts, rtp
from netfate.proto.mpegts import MpegTsError
from netfate.proto.rtp import RtpError
from rtp_capture import read_rtpdump

SETTINGS = settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "rtp_mpegts_h264_aac.rtpdump"
CAPTURE = read_rtpdump(VECTOR)
RTP_SEEDS = [d.data for d in CAPTURE if not d.rtcp][:12]
RTCP_SEEDS = [d.data for d in CAPTURE if d.rtcp] + [
    rtp.build_compound(
        [
            rtp.ReceiverReport(1, (rtp.ReportBlock(2, 1, 2, 3, 4, 5, 6),)),
            rtp.SourceDescription((rtp.SdesChunk(1, ((rtp.SdesType.CNAME, b"a@b"),)),)),
            rtp.Goodbye((1,), b"bye"),
        ]
    )
]
TS_PAYLOADS = [d.data[12:] for d in CAPTURE if not d.rtcp]
TS_PACKETS = [p[i : i + 188] for p in TS_PAYLOADS[:6] for i in range(0, len(p), 188)]
SPS = bytes.fromhex("6742c028d900780227e5c044000003000400000300f03c60c920")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with bytes overwritten, inserted or cut."""
    b = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 8))):
        how = draw(st.integers(0, 2))
        i = draw(st.integers(0, max(0, len(b) - 1)))
        if how == 0 and b:
            b[i] = draw(st.integers(0, 255))
        elif how == 1:
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del b[i : i + draw(st.integers(1, 16))]
    return bytes(b)


def accepts_or_raises(fn: Callable[[bytes], object], data: bytes, error: type) -> None:
    with contextlib.suppress(error):
        fn(data)


def inputs(seeds: list[bytes], max_size: int = 1500) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=max_size), mutated(seeds))


# ------------------------------------------------------------------- RTP


@SETTINGS
@given(inputs(RTP_SEEDS))
def test_rtp_parsers(data: bytes) -> None:
    accepts_or_raises(rtp.parse_rtp, data, RtpError)
    accepts_or_raises(rtp.payload_bounds, data, RtpError)
    try:
        p = rtp.parse_rtp(data)
    except RtpError:
        return
    # What parses builds back to the same bytes, up to the padding's filler.
    wire = p.build()
    assert len(wire) == len(data) and wire[: len(data) - p.padding] == data[: len(data) - p.padding]
    if p.extension is not None:
        accepts_or_raises(lambda _: p.extension.elements() if p.extension else (), data, RtpError)


@SETTINGS
@given(st.integers(0, 0xFFFF), st.binary(max_size=80))
def test_rfc8285_elements(profile: int, data: bytes) -> None:
    ext = rtp.HeaderExtension(profile, data)
    try:
        elements = ext.elements()
    except RtpError:
        return
    assert all(1 <= e.id <= 255 for e in elements)


@SETTINGS
@given(inputs(RTCP_SEEDS, 600), st.booleans())
def test_rtcp_parser(data: bytes, reduced: bool) -> None:
    try:
        packets = rtp.parse_rtcp(data, reduced_size=reduced)
    except RtpError:
        return
    assert packets and sum(len(p.build()) for p in packets) <= len(data)


@SETTINGS
@given(st.lists(st.one_of(inputs(RTP_SEEDS), inputs(RTCP_SEEDS, 200)), max_size=30))
def test_relay_core_never_raises(datagrams: list[bytes]) -> None:
    relay = rtp.RelayCore(min_sequential=1, max_sources=4)
    for k, d in enumerate(datagrams):
        verdict = relay.receive(d, k * 0.01)
        assert isinstance(verdict, rtp.Verdict)
        assert isinstance(relay.receive_rtcp(d, k * 0.01), rtp.Verdict)
        relay.events()
    relay.poll(100.0)
    relay.figures(100.0)
    assert len(relay.sources) <= 4
    c = relay.counters()
    assert c["datagrams"] == 2 * len(datagrams)
    assert (
        c["forwarded"]
        + c["rtcp_forwarded"]
        + sum(v for k, v in c.items() if k.startswith("dropped_"))
        == c["datagrams"]
    )


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)), max_size=200))
def test_source_state_any_sequence(packets: list[tuple[int, int]]) -> None:
    s = rtp.SourceState(1, packets[0][0] if packets else 0, 0.0, clock_rate=90000)
    for k, (seq, ts) in enumerate(packets):
        assert isinstance(s.update(seq, ts, k * 0.001, 100), rtp.Arrival)
    block = s.report_block(1.0)
    assert 0 <= block.fraction_lost <= 255 and block.jitter >= 0
    block.build()  # always representable on the wire


# ------------------------------------------------------------------- MPEG-TS


@SETTINGS
@given(inputs(TS_PACKETS, 200))
def test_ts_packet_parser(data: bytes) -> None:
    try:
        p = mpegts.parse_packet(data)
    except MpegTsError:
        return
    assert 0 <= p.pid <= 0x1FFF and 0 <= p.continuity_counter <= 15


@SETTINGS
@given(st.binary(max_size=300))
def test_section_and_table_parsers(data: bytes) -> None:
    for fn in (mpegts.parse_section, mpegts.parse_pat, mpegts.parse_pmt):
        accepts_or_raises(fn, data, MpegTsError)


@SETTINGS
@given(st.binary(max_size=300))
def test_sections_with_a_valid_crc(body: bytes) -> None:
    """Random tables that pass the CRC: the table parsers' own checks must hold."""
    for table_id in (0x00, 0x02):
        try:
            section = mpegts.build_section(table_id, 1, 0, body)
        except MpegTsError:
            continue
        accepts_or_raises(mpegts.parse_pat, section, MpegTsError)
        accepts_or_raises(mpegts.parse_pmt, section, MpegTsError)


@SETTINGS
@given(st.one_of(st.binary(max_size=64), mutated([SPS])))
def test_codec_header_parsers(data: bytes) -> None:
    for fn in (
        mpegts.parse_sps,
        mpegts.parse_pes_header,
        mpegts.parse_adts,
        mpegts.parse_mpeg_audio,
        mpegts.parse_ac3,
        mpegts.AdaptationField.parse,
    ):
        accepts_or_raises(fn, data, MpegTsError)
    try:
        sps = mpegts.parse_sps(b"\x67" + data[1:])
    except MpegTsError:
        return
    assert 0 < sps.width <= 16384 and 0 < sps.height <= 32768


@SETTINGS
@given(st.lists(st.tuples(st.binary(max_size=190), st.booleans()), max_size=20))
def test_section_assembler_never_raises(pushes: list[tuple[bytes, bool]]) -> None:
    asm = mpegts.SectionAssembler()
    for payload, start in pushes:
        for section in asm.push(payload, start):
            assert 3 <= len(section) <= 1024


@SETTINGS
@given(st.lists(st.one_of(inputs(TS_PAYLOADS), st.binary(max_size=400)), max_size=12))
def test_framer_conserves_bytes(chunks: list[bytes]) -> None:
    framer = mpegts.TsFramer()
    out = b"".join(framer.feed(c) for c in chunks)
    assert len(out) % 188 == 0 and all(out[i] == 0x47 for i in range(0, len(out), 188))
    assert len(out) + framer.garbage + framer.pending() == sum(len(c) for c in chunks)


@SETTINGS
@given(st.lists(st.one_of(inputs(TS_PAYLOADS), st.binary(max_size=1400)), max_size=25))
def test_analyzer_never_raises(datagrams: list[bytes]) -> None:
    by_datagram = mpegts.StreamAnalyzer(probe_limit=4096)
    by_stream = mpegts.StreamAnalyzer(probe_limit=4096)
    for k, d in enumerate(datagrams):
        for ev in by_datagram.receive_datagram(d, k * 0.04) + by_stream.receive_bytes(d, k * 0.04):
            assert isinstance(ev, mpegts.Event)
    by_datagram.receive_datagram(b"", 60.0)  # past every recognition timeout
    assert by_datagram.counters()["packets"] >= 0
