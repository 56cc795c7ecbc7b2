"""MPEG-TS sans-I/O core: packets, resync, PSI with CRC, PES, codec headers, and the
stream analyzer, on vectors made by ffmpeg 5.1 (figures cross-checked with ffprobe)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.proto.mpegts import (
    NULL_PID,
    PACKET_SIZE,
    PCR_HZ,
    AdaptationField,
    BitrateMeasured,
    ContinuityError,
    Descriptor,
    GarbageSkipped,
    MpegTsError,
    Pat,
    PcrJumped,
    Pmt,
    PmtStream,
    ProgramRecognised,
    SectionAssembler,
    SectionRejected,
    StreamAnalyzer,
    TsFramer,
    TsPacket,
    align_datagram,
    build_pes_header,
    classify,
    crc32_mpeg2,
    decode_pcr,
    encode_pcr,
    find_nal,
    packetize_pes,
    packetize_section,
    parse_ac3,
    parse_adts,
    parse_mpeg_audio,
    parse_packet,
    parse_pat,
    parse_pes_header,
    parse_pmt,
    parse_section,
    parse_sps,
    scan_nal,
)
from netfate.proto.mpegts.events import Event
from rtp_capture import read_rtpdump

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "rtp_mpegts_h264_aac.rtpdump"

# SPS NAL units from ffmpeg 5.1 + libx264 (testsrc); ffprobe's figures for each stream.
SPS_BASELINE_1080P30 = bytes.fromhex("6742c028d900780227e5c044000003000400000300f03c60c920")
SPS_HIGH_1080I25 = bytes.fromhex("67640028acd94078044fde0220000003002000000643e2c5b2c0")
SPS_HIGH422_10BIT = bytes.fromhex("677a001eb6cd940a02ff89c04400000fa40003a9803c58b658")
# First frame headers from ffmpeg's mp2 / ac3 / eac3 / libmp3lame encoders.
MP2_48K_STEREO_192K = bytes.fromhex("fffda40455333344")
AC3_48K_6CH_384K = bytes.fromhex("0b771e8b1c40ebf8")
EAC3_48K_STEREO = bytes.fromhex("0b77017f3487c000")
MP3_22K_MONO_64K = bytes.fromhex("fff380c400197862")


def capture_payloads() -> list[tuple[float, bytes]]:
    """(arrival, RTP payload) of the captured ffmpeg stream: 7 TS packets each."""
    return [(d.at, d.data[12:]) for d in read_rtpdump(VECTOR) if not d.rtcp]


def capture_ts() -> bytes:
    return b"".join(p for _, p in capture_payloads())


def feed(analyzer: StreamAnalyzer, payloads: list[tuple[float, bytes]]) -> list[Event]:
    events: list[Event] = []
    for at, payload in payloads:
        events += analyzer.receive_datagram(payload, at)
    return events


def of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


# ------------------------------------------------------------------- packets


def test_packet_header_layout() -> None:
    wire = TsPacket(0x1FF, 5, b"\xaa" * 184, payload_unit_start=True).build()
    assert wire[:4] == bytes([0x47, 0x41, 0xFF, 0x15])
    assert len(wire) == PACKET_SIZE


def test_packet_round_trip_with_adaptation_field() -> None:
    af = AdaptationField(
        discontinuity=True,
        random_access=True,
        es_priority=True,
        pcr=123456789,
        opcr=PCR_HZ * 3600 * 26,
        splice_countdown=-3,
        private_data=b"priv",
        extension=b"\x00\x01",
    )
    p = TsPacket(0x100, 15, b"payload", True, af, priority=True, scrambling=2)
    back = parse_packet(p.build())
    assert back.adaptation is not None
    assert back.adaptation.stuffing == 184 - 1 - len(af.body()) - len(b"payload")
    assert back == dataclasses.replace(
        p, adaptation=dataclasses.replace(af, stuffing=back.adaptation.stuffing)
    )


def test_adaptation_only_and_short_payload_stuffing() -> None:
    only = parse_packet(TsPacket(0x100, 3, has_payload=False).build())
    assert not only.has_payload and only.payload == b""
    assert only.adaptation == AdaptationField(stuffing=182)
    short = parse_packet(TsPacket(0x100, 3, b"x" * 183).build())  # AF of length 0
    assert short.payload == b"x" * 183 and short.adaptation == AdaptationField()


@settings(max_examples=200, deadline=None)
@given(
    pid=st.integers(0, NULL_PID),
    cc=st.integers(0, 15),
    payload=st.binary(max_size=184),
    pusi=st.booleans(),
    pcr=st.none() | st.integers(0, (1 << 33) * 300 - 1),
)
def test_packet_round_trip_property(
    pid: int, cc: int, payload: bytes, pusi: bool, pcr: int | None
) -> None:
    af = AdaptationField(pcr=pcr) if pcr is not None else None
    p = TsPacket(pid, cc, payload, pusi, af)
    if not payload or (af is not None and len(payload) > 184 - 8):
        with pytest.raises(MpegTsError):
            p.build()
        return
    back = parse_packet(p.build())
    assert (back.pid, back.continuity_counter, back.payload, back.payload_unit_start) == (
        pid, cc, payload, pusi,
    )  # fmt: skip
    assert (back.adaptation.pcr if back.adaptation else None) == pcr


def test_pcr_encoding() -> None:
    for value in (0, 299, 300, 27_000_000 * 3600, (1 << 33) * 300 - 1):
        assert decode_pcr(encode_pcr(value)) == value
    with pytest.raises(MpegTsError):
        encode_pcr((1 << 33) * 300)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"\x47" * 100, "truncated"),
        (b"\x46" + b"\x00" * 187, "sync"),
        (bytes([0x47, 0, 0x10, 0x00]) + b"\x00" * 184, "adaptation_field_control"),
        (bytes([0x47, 0, 0x10, 0x20, 182]) + b"\x00" * 183, "adaptation_field"),  # AF only: 183
        (bytes([0x47, 0, 0x10, 0x30, 183]) + b"\x00" * 183, "adaptation_field"),  # max 182
        (bytes([0x47, 0, 0x10, 0x30, 3, 0x10]) + b"\x00" * 182, "adaptation_field"),  # PCR cut
    ],
)
def test_malformed_packets(wire: bytes, reason: str) -> None:
    with pytest.raises(MpegTsError) as e:
        parse_packet(wire)
    assert e.value.reason == reason


def test_align_datagram() -> None:
    pkts = [TsPacket(0x100, k, bytes([k]) * 184).build() for k in range(7)]
    clean = b"".join(pkts)
    assert align_datagram(clean) == (clean, 0)
    assert align_datagram(b"junk" + clean) == (clean, 4)
    assert align_datagram(clean + pkts[0][:100]) == (clean, 100)
    assert align_datagram(pkts[0][:50] + clean) == (clean, 50)
    assert align_datagram(b"\x00" * 1316) == (b"", 1316)
    # A lone 0x47 inside garbage is not a packet: nothing 188 bytes on confirms it.
    assert align_datagram(b"\x00\x47" + b"\x00" * 400) == (b"", 402)


def test_framer_any_chunking_and_resync() -> None:
    ts = capture_ts()
    rng = random.Random(7)
    framer = TsFramer()
    out = b""
    garbage = b"garbage\x47\x00\x47" * 10
    data = ts[: 188 * 100] + garbage + ts[188 * 100 :]
    i = 0
    while i < len(data):
        k = rng.randint(1, 700)
        out += framer.feed(data[i : i + k])
        i += k
    assert out == ts
    assert framer.garbage == len(garbage)
    assert framer.sync_losses == 1
    assert framer.pending() == 0


def test_framer_holds_at_most_three_packets_while_hunting() -> None:
    framer = TsFramer()
    assert framer.feed(b"\x47" + b"\x00" * 5000) == b""
    assert framer.pending() <= 3 * PACKET_SIZE
    assert not framer.locked


# ------------------------------------------------------------------- PSI


def test_crc32_mpeg2_check_value() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7


def test_pat_pmt_round_trip() -> None:
    pat = Pat(0x1234, ((1, 0x1000), (2, 0x1001)), version=3, network_pid=0x10)
    assert parse_pat(pat.build()) == pat
    pmt = Pmt(
        1,
        0x100,
        (
            PmtStream(0x1B, 0x100),
            PmtStream(0x0F, 0x101, (Descriptor(0x0A, b"eng\x00"),)),
            PmtStream(0x06, 0x102, (Descriptor(0x6A, b"\x00"),)),
        ),
        version=7,
        descriptors=(Descriptor(0x05, b"HDMV"),),
    )
    assert parse_pmt(pmt.build()) == pmt


def test_section_crc_and_length_checks() -> None:
    good = Pat(1, ((1, 0x1000),)).build()
    bad = bytearray(good)
    bad[9] ^= 1
    with pytest.raises(MpegTsError) as e:
        parse_pat(bytes(bad))
    assert e.value.reason == "crc"
    with pytest.raises(MpegTsError) as e:
        parse_section(good[:-1])
    assert e.value.reason == "section_length"
    with pytest.raises(MpegTsError) as e:
        parse_pmt(good)
    assert e.value.reason == "table_id"


def test_capture_pat_pmt_as_ffmpeg_writes_them() -> None:
    """ffmpeg's defaults: programme 1, PMT on 0x1000, video 0x100 (PCR), audio 0x101."""
    ts = capture_ts()
    asm = {0: SectionAssembler(), 0x1000: SectionAssembler()}
    tables: dict[int, bytes] = {}
    for off in range(0, len(ts), PACKET_SIZE):
        p = parse_packet(ts, off)
        if p.pid in asm:
            for section in asm[p.pid].push(p.payload, p.payload_unit_start):
                tables.setdefault(p.pid, section)
    pat = parse_pat(tables[0])
    assert pat.programs == ((1, 0x1000),)
    pmt = parse_pmt(tables[0x1000])
    assert pmt.pcr_pid == 0x100
    assert [(s.stream_type, s.pid) for s in pmt.streams] == [(0x1B, 0x100), (0x0F, 0x101)]


def test_section_assembler_across_packets_and_several_per_packet() -> None:
    big = Pmt(1, 0x100, tuple(PmtStream(0x0F, 0x200 + k, (Descriptor(0x0A, b"eng\x00"),))
                             for k in range(40))).build()  # fmt: skip
    assert len(big) > 2 * 184
    asm = SectionAssembler()
    got = []
    for pkt in packetize_section(0x1000, big):
        p = parse_packet(pkt)
        got += asm.push(p.payload, p.payload_unit_start)
    assert got == [big]
    # Two small sections in one payload, the second right after the first.
    a, b = Pat(1, ((1, 0x1000),)).build(), Pat(1, ((2, 0x1001),), version=1).build()
    assert asm.push(b"\x00" + a + b + b"\xff" * 10, True) == [a, b]
    # pointer_field: the tail of a section, then a new one.
    assert asm.push(b"\x00" + a[:5], True) == []
    assert asm.push(bytes([len(a) - 5]) + a[5:] + b, True) == [a, b]
    assert asm.errors == {}


def test_section_assembler_errors_are_counted_not_raised() -> None:
    asm = SectionAssembler()
    assert asm.push(b"\x05\x00", True) == []  # pointer beyond the payload
    assert asm.push(b"", True) == []
    assert asm.push(b"\x00\x02\xbf\xff", True) == []  # section_length 4095 > 1024
    assert asm.push(b"\x00\x00\xb0\x20", True) == []  # opened, then cut by a new start:
    assert asm.push(b"\x00\xff", True) == []
    assert asm.errors == {"pointer_field": 2, "section_length": 1, "section_truncated": 1}


# ------------------------------------------------------------------- PES


def test_pes_round_trip() -> None:
    hdr = build_pes_header(0xE0, None, pts=(1 << 33) - 1, dts=12345, data_alignment=True)
    pes = parse_pes_header(hdr + b"\x00\x00\x00\x01\x09")
    assert (pes.stream_id, pes.packet_length, pes.pts, pes.dts) == (0xE0, 0, (1 << 33) - 1, 12345)
    assert pes.header_length == len(hdr) == 19 and pes.data_alignment
    audio = parse_pes_header(build_pes_header(0xC0, 100, pts=90000))
    assert audio.packet_length == 3 + 5 + 100 and audio.pts == 90000 and audio.dts is None
    padding = parse_pes_header(build_pes_header(0xBE, 10))
    assert padding.header_length == 6 and padding.pts is None


def test_capture_first_video_pes() -> None:
    ts = capture_ts()
    for off in range(0, len(ts), PACKET_SIZE):
        p = parse_packet(ts, off)
        if p.pid == 0x100 and p.payload_unit_start:
            pes = parse_pes_header(p.payload)
            assert pes.stream_id == 0xE0 and pes.pts is not None
            assert p.adaptation is not None and p.adaptation.random_access
            return
    raise AssertionError("no video PES start in the capture")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00\x02\xe0\x00\x00\x80\x00\x00", "pes_start_code"),
        (b"\x00\x00\x01\xe0\x00\x00\x40\x00\x00", "pes_header"),
        (b"\x00\x00\x01\xe0\x00\x00\x80\x40\x05" + b"\x00" * 5, "pes_header"),  # flags 01
        (b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21", "truncated"),
        (b"\x00\x00\x01\xe0\x00\x00\x80\x80\x02\x21\x00", "pes_header"),  # no room for PTS
        (b"\x00\x00\x01\xe0\x00\x02\x80\x80\x05" + b"\x21" * 5, "pes_length"),
    ],
)
def test_malformed_pes(data: bytes, reason: str) -> None:
    with pytest.raises(MpegTsError) as e:
        parse_pes_header(data)
    assert e.value.reason == reason


# ------------------------------------------------------------------- codec headers


@pytest.mark.parametrize(
    ("nal", "want"),
    [
        (SPS_BASELINE_1080P30, ("Constrained Baseline", 40, 1920, 1080, 30.0, 1, 8, True)),
        (SPS_HIGH_1080I25, ("High", 40, 1920, 1080, 25.0, 1, 8, False)),
        (SPS_HIGH422_10BIT, ("High 4:2:2", 30, 640, 360, 30000 / 1001, 2, 10, True)),
    ],
)
def test_sps_against_ffprobe(nal: bytes, want: tuple[object, ...]) -> None:
    sps = parse_sps(nal)
    got = (
        sps.profile, sps.level_idc, sps.width, sps.height, sps.frame_rate,
        sps.chroma_format_idc, sps.bit_depth, sps.frame_mbs_only,
    )  # fmt: skip
    assert got == pytest.approx(want)


def test_sps_refuses_truncation_and_huge_values() -> None:
    for cut in range(1, len(SPS_BASELINE_1080P30) - 4):
        with pytest.raises(MpegTsError):
            parse_sps(SPS_BASELINE_1080P30[:cut])
    with pytest.raises(MpegTsError):
        parse_sps(b"\x67\x42\x00\x28" + b"\x00" * 8 + b"\x01")  # a 60-bit exp-Golomb code
    with pytest.raises(MpegTsError):
        parse_sps(b"\x68" + SPS_BASELINE_1080P30[1:])  # a PPS, not an SPS


def test_find_nal_in_annex_b() -> None:
    stream = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x00\x01" + SPS_BASELINE_1080P30
    assert find_nal(stream, 7) is None  # not known to be whole yet
    assert find_nal(stream, 7, final=True) == SPS_BASELINE_1080P30
    assert find_nal(stream + b"\x00\x00\x00\x01\x68\xce", 7) == SPS_BASELINE_1080P30


def test_scan_nal_incrementally() -> None:
    """Bytes arriving in pieces: the SPS is found once whole, and the resume point
    never goes back before a start code that could still hold it."""
    stream = (
        b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x01\x06" + b"\x05" * 700  # AUD, SEI
        + b"\x00\x00\x00\x01" + SPS_BASELINE_1080P30 + b"\x00\x00\x00\x01\x68\xce"
    )  # fmt: skip
    buf = bytearray()
    at = 0
    found = None
    for i in range(0, len(stream), 5):
        buf += stream[i : i + 5]
        found, nxt = scan_nal(buf, 7, at)
        assert at <= nxt <= len(buf)
        at = nxt
        if found is not None:
            break
    assert found == SPS_BASELINE_1080P30
    assert scan_nal(b"\x05" * 100, 7, 0) == (None, 97)  # nothing: resume near the end


def test_audio_headers_against_ffprobe() -> None:
    mp2 = parse_mpeg_audio(MP2_48K_STEREO_192K)
    assert (mp2.codec, mp2.sample_rate, mp2.channels, mp2.bitrate) == ("mp2", 48000, 2, 192000)
    mp3 = parse_mpeg_audio(MP3_22K_MONO_64K)
    assert (mp3.codec, mp3.sample_rate, mp3.channels, mp3.bitrate) == ("mp3", 22050, 1, 64000)
    ac3 = parse_ac3(AC3_48K_6CH_384K)
    assert (ac3.codec, ac3.sample_rate, ac3.channels, ac3.bitrate) == ("ac3", 48000, 6, 384000)
    eac3 = parse_ac3(EAC3_48K_STEREO)
    assert (eac3.codec, eac3.sample_rate, eac3.channels) == ("eac3", 48000, 2)
    adts = parse_adts(bytes.fromhex("fff15040 0b7ffc"))  # LC, 44.1 kHz, mono (the capture)
    assert (adts.codec, adts.profile, adts.sample_rate, adts.channels) == ("aac", "LC", 44100, 1)
    for parser, junk in ((parse_adts, b"\xff\xf1\xfc\x40\x0b\x7f\xfc"), (parse_ac3, b"\x0b\x77"),
                         (parse_mpeg_audio, b"\xff\xff\xff\xff")):  # fmt: skip
        with pytest.raises(MpegTsError):
            parser(junk)


def test_classify() -> None:
    assert classify(0x1B) == ("h264", "video")
    assert classify(0x24) == ("hevc", "video")
    assert classify(0x06, (Descriptor(0x6A, b""),)) == ("ac3", "audio")
    assert classify(0x06, (Descriptor(0x05, b"Opus"),)) == ("opus", "audio")
    assert classify(0x06, (Descriptor(0x59, b""),)) == ("dvb_subtitle", "subtitle")
    assert classify(0x99) == ("unknown", "data")


# ------------------------------------------------------------------- analyzer


def test_analyzer_recognises_the_ffmpeg_stream() -> None:
    analyzer = StreamAnalyzer()
    events = feed(analyzer, capture_payloads())
    (prog,) = of(events, ProgramRecognised)
    assert prog.complete and prog.container == "mpegts"
    assert (prog.program_number, prog.pmt_pid, prog.pcr_pid) == (1, 0x1000, 0x100)
    video, audio = prog.streams
    assert (video.codec, video.kind, video.pid) == ("h264", "video", 0x100)
    assert video.video is not None
    assert (video.video.width, video.video.height) == (320, 240)
    assert (video.video.profile, video.video.level) == ("High 4:4:4 Predictive", 13)
    assert video.video.frame_rate == 25.0 and video.video.chroma_format == "4:4:4"
    assert (audio.codec, audio.kind) == ("aac", "audio")
    assert audio.audio is not None
    assert (audio.audio.sample_rate, audio.audio.channels, audio.audio.profile) == (44100, 1, "LC")
    # ffprobe: 75012 bytes, bit_rate 302586 over the file's 1.983 s.
    for basis in ("pcr", "arrival"):
        rates = [e.bits_per_second for e in of(events, BitrateMeasured) if e.basis == basis]
        assert rates, basis
        assert 0.75 * 302586 < rates[0] < 1.33 * 302586, (basis, rates)
    assert of(events, ContinuityError) == [] and of(events, GarbageSkipped) == []
    c = analyzer.counters()
    assert c["packets"] == 399 and c.get("continuity_errors", 0) == 0
    assert c.get("section_errors", 0) == 0


def test_analyzer_counts_loss_as_continuity_errors() -> None:
    payloads = capture_payloads()
    del payloads[20]
    events = feed(StreamAnalyzer(), payloads)
    errors = of(events, ContinuityError)
    # Each PID that had packets in the lost datagram reports once, at its next packet.
    assert errors[0].at == payloads[20][0]
    pids = [e.pid for e in errors]
    assert len(pids) == len(set(pids)) and set(pids) <= {0x100, 0x101, 0x0, 0x1000}


def test_analyzer_survives_garbage_and_recovers() -> None:
    rng = random.Random(3)
    payloads = capture_payloads()
    mixed: list[tuple[float, bytes]] = []
    for at, p in payloads:
        mixed.append((at, p))
        mixed.append((at, rng.randbytes(rng.randint(0, 1400))))
    mixed.insert(5, (0.0, b"\x47" * 1316))  # sync bytes everywhere, nothing else right
    analyzer = StreamAnalyzer()
    events = feed(analyzer, mixed)
    (prog,) = of(events, ProgramRecognised)
    assert prog.streams[0].video is not None and prog.streams[0].video.width == 320
    assert (
        sum(e.octets for e in of(events, GarbageSkipped)) == analyzer.counters()["garbage_octets"]
    )


def test_analyzer_byte_stream_input() -> None:
    ts = capture_ts()
    analyzer = StreamAnalyzer()
    events: list[Event] = []
    rng = random.Random(5)
    i = 0
    while i < len(ts):
        k = rng.randint(1, 3000)
        events += analyzer.receive_bytes(b"\xde\xad" + ts[i : i + k], i / 40000)
        i += k
    (prog,) = of(events, ProgramRecognised)
    assert prog.complete and [s.codec for s in prog.streams] == ["h264", "aac"]


def synthetic(
    streams: tuple[PmtStream, ...],
    es: dict[int, bytes],
    pmt_version: int = 0,
    pcr: int = 0,
    cc: int = 0,
) -> list[bytes]:
    """PAT + PMT + one PES per stream (the first with a PCR), as TS packets."""
    pkts = packetize_section(0, Pat(1, ((1, 0x1000),)).build(), cc)
    pkts += packetize_section(0x1000, Pmt(1, streams[0].pid, streams, pmt_version).build(), cc)
    for k, st_ in enumerate(streams):
        if st_.pid in es:
            sid = 0xE0 if classify(st_.stream_type, st_.descriptors)[1] == "video" else 0xC0
            pes = build_pes_header(sid, len(es[st_.pid]), pts=0) + es[st_.pid]
            pkts += packetize_pes(st_.pid, pes, cc, pcr=pcr if k == 0 else None)
    return pkts


def test_analyzer_synthetic_programme_with_languages_and_audio_codecs() -> None:
    streams = (
        PmtStream(0x24, 0x100),  # HEVC: codec named, parameters not read
        PmtStream(0x04, 0x101, (Descriptor(0x0A, b"ita\x00"),)),
        PmtStream(0x06, 0x102, (Descriptor(0x6A, b"\x00"), Descriptor(0x0A, b"eng\x00"))),
        PmtStream(0x87, 0x103),
    )
    es = {0x101: MP2_48K_STEREO_192K * 4, 0x102: AC3_48K_6CH_384K * 4, 0x103: EAC3_48K_STEREO}
    analyzer = StreamAnalyzer()
    events = analyzer.receive_datagram(b"".join(synthetic(streams, es)), 1.0)
    (prog,) = of(events, ProgramRecognised)
    assert prog.complete and prog.at == 1.0
    got = [(s.codec, s.kind, s.language) for s in prog.streams]
    assert got == [
        ("hevc", "video", None), ("mp2", "audio", "ita"), ("ac3", "audio", "eng"),
        ("eac3", "audio", None),
    ]  # fmt: skip
    assert prog.streams[2].audio is not None and prog.streams[2].audio.channels == 6


def test_analyzer_recognition_timeout_without_sps() -> None:
    streams = (PmtStream(0x1B, 0x100), PmtStream(0x0F, 0x101))
    pkts = synthetic(streams, {0x100: b"\x00\x00\x00\x01\x09\xf0" * 10})
    analyzer = StreamAnalyzer(recognition_timeout=5.0)
    assert of(analyzer.receive_datagram(b"".join(pkts), 0.0), ProgramRecognised) == []
    assert of(analyzer.receive_datagram(b"", 4.9), ProgramRecognised) == []
    (prog,) = of(analyzer.receive_datagram(b"", 5.0), ProgramRecognised)
    assert not prog.complete
    assert [(s.codec, s.video, s.audio) for s in prog.streams] == [
        ("h264", None, None), ("aac", None, None),
    ]  # fmt: skip


@pytest.mark.parametrize("tail", [b"\x00\x00\x01\x09\xf0", b""])
def test_analyzer_gives_up_on_malformed_sps_without_waiting_for_the_timeout(tail: bytes) -> None:
    """With a NAL unit after it the SPS is judged as it arrives; without, when the PES
    ends (the next one starts): both paths give up after max_probe_failures."""
    bad_sps = b"\x00\x00\x00\x01\x67\x42\x00"  # cut after the constraint flags
    pkts = synthetic((PmtStream(0x1B, 0x100),), {})
    for k in range(10):
        pes = build_pes_header(0xE0, None, pts=k * 3600) + bad_sps + tail
        pkts += packetize_pes(0x100, pes, k)
    analyzer = StreamAnalyzer(max_probe_failures=8, recognition_timeout=60.0)
    (prog,) = of(analyzer.receive_datagram(b"".join(pkts), 0.0), ProgramRecognised)
    assert not prog.complete and prog.streams[0].video is None
    assert analyzer.counters()["codec_header_errors"] == 8


def test_analyzer_new_pmt_version_is_announced_again() -> None:
    analyzer = StreamAnalyzer()
    v0 = synthetic((PmtStream(0x24, 0x100),), {})
    v0_again = synthetic((PmtStream(0x24, 0x100),), {}, cc=1)
    v1 = synthetic((PmtStream(0x24, 0x100), PmtStream(0x86, 0x101)), {}, pmt_version=1, cc=2)
    first = of(analyzer.receive_datagram(b"".join(v0), 0.0), ProgramRecognised)
    assert analyzer.receive_datagram(b"".join(v0_again), 0.1) == []  # the same table: no news
    second = of(analyzer.receive_datagram(b"".join(v1), 0.2), ProgramRecognised)
    assert [len(p.streams) for p in first + second] == [1, 2]
    assert second[0].version == 1


def test_analyzer_rejects_corrupt_pmt_and_reports_it() -> None:
    pkts = synthetic((PmtStream(0x24, 0x100),), {})
    bad = bytearray(pkts[1])
    bad[20] ^= 0xFF
    events = StreamAnalyzer().receive_datagram(bytes(pkts[0]) + bytes(bad), 0.0)
    assert of(events, ProgramRecognised) == []
    (rej,) = of(events, SectionRejected)
    assert (rej.pid, rej.reason) == (0x1000, "crc")


def test_analyzer_pcr_bitrate_and_jump() -> None:
    """A CBR-like stream: 100 packets between PCRs 10 ms apart is 15.04 Mbit/s."""
    analyzer = StreamAnalyzer()
    head = synthetic((PmtStream(0x24, 0x100),), {})
    analyzer.receive_datagram(b"".join(head), 0.0)
    events: list[Event] = []
    pcr = 0
    for k in range(200):
        pcr = k * PCR_HZ // 100
        if k >= 150:
            pcr += 60 * PCR_HZ  # a jump the stream does not announce
        pkt = TsPacket(0x100, k & 0xF, b"", adaptation=AdaptationField(pcr=pcr), has_payload=False)
        filler = TsPacket(NULL_PID, 0, b"\xff" * 184).build() * 99
        events += analyzer.receive_datagram(pkt.build() + filler, 0.0)
    rates = [e.bits_per_second for e in of(events, BitrateMeasured) if e.basis == "pcr"]
    assert rates and all(r == pytest.approx(100 * 188 * 8 * 100) for r in rates)
    assert of(events, PcrJumped) == [PcrJumped(0x100, False, 0.0)]


def test_analyzer_duplicate_packet_allowed_once() -> None:
    analyzer = StreamAnalyzer()
    p0 = TsPacket(0x300, 0, b"a" * 184).build()
    p1 = TsPacket(0x300, 1, b"b" * 184).build()
    assert of(analyzer.receive_datagram(p0 + p1 + p1, 0.0), ContinuityError) == []
    (err,) = of(analyzer.receive_datagram(p1, 0.0), ContinuityError)  # a third copy
    assert (err.pid, err.expected, err.got) == (0x300, 2, 1)
