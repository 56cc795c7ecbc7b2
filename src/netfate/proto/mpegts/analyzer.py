"""Sans-I/O MPEG-TS stream analyzer: TS bytes and ``now`` in, events out.

The acquirer of the streaming tree feeds it what a provider sends and tells the
back-end what the stream is::

    analyzer = StreamAnalyzer()
    for event in analyzer.receive_datagram(rtp_payload, now):   # RFC 2250 payloads
        ProgramRecognised -> container, codecs, picture size, audio rate ...
        BitrateMeasured   -> "pcr" (as multiplexed) or "arrival" (as delivered)
        ContinuityError   -> TS packets lost on a PID
        GarbageSkipped, SectionRejected, PcrJumped
    analyzer.receive_bytes(chunk, now)                           # a byte stream (SRT, TCP)
    analyzer.counters()

Per packet it checks the header, keeps the continuity counter of every PID
(13818-1 2.4.3.3: +1 per packet with payload; one duplicate packet allowed; not
checked across a discontinuity_indicator), reads PCRs on the primary programme's
PCR PID, and hands PSI payloads (PAT, PMTs) to section assemblers. A PMT names
the codecs; for the streams whose parameters it reads (H.264 SPS, ADTS, MPEG
audio, AC-3), it looks into the first bytes of each PES until it finds them,
then stops looking. A programme is announced once everything is read, or
``recognition_timeout`` seconds after its PMT, whichever comes first.

Nothing raised by a parser leaves this class: a malformed packet, section, PES
header or codec header is counted (``counters()``) and, where it tells the
operator something, reported as an event. State is bounded: 8192 PIDs,
``max_programs`` programmes, ``probe_limit`` bytes per stream being probed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .audio import AudioHeader, parse_ac3, parse_adts, parse_mpeg_audio
from .errors import MpegTsError
from .events import (
    BitrateMeasured,
    ContinuityError,
    ElementaryStream,
    Event,
    GarbageSkipped,
    PcrJumped,
    ProgramRecognised,
    SectionRejected,
    VideoInfo,
)
from .h264 import NAL_SPS, parse_sps, scan_nal
from .packet import (
    NULL_PID,
    PACKET_SIZE,
    PAT_PID,
    PCR_HZ,
    PCR_WRAP,
    TsFramer,
    align_datagram,
    decode_pcr,
)
from .pes import parse_pes_header
from .psi import (
    MAX_PSI_SECTION,
    TABLE_PAT,
    TABLE_PMT,
    Descriptor,
    Pat,
    Pmt,
    SectionAssembler,
    parse_pat,
    parse_pmt,
    parse_section,
)
from .streams import classify, language

_CHROMA = ("4:0:0", "4:2:0", "4:2:2", "4:4:4")
_AUDIO_PARSERS: dict[str, tuple[bytes, Callable[[bytes], AudioHeader]]] = {
    "aac": (b"\xff", parse_adts),
    "mp3": (b"\xff", parse_mpeg_audio),
    "ac3": (b"\x0b\x77", parse_ac3),
    "eac3": (b"\x0b\x77", parse_ac3),
}
"""Codecs whose frame headers the analyzer reads: the first sync bytes, the parser."""
AUDIO_SCAN = 2048
"""How far into a PES payload an audio frame header is looked for."""


@dataclass
class _Probe:
    """A stream whose parameters are still being looked for."""

    codec: str
    buf: bytearray = field(default_factory=bytearray)
    started: bool = False
    failures: int = 0
    scanned: int = 0
    """Where the next look into ``buf`` starts (bytes before it hold nothing)."""


@dataclass
class _Program:
    pmt_pid: int
    pmt: Pmt | None = None
    pmt_at: float = 0.0
    announced: bool = False


class StreamAnalyzer:
    """Recognises the programme in a transport stream and measures it."""

    def __init__(
        self,
        *,
        rate_window: float = 1.0,
        recognition_timeout: float = 5.0,
        max_programs: int = 16,
        probe_limit: int = 65536,
        max_probe_failures: int = 8,
        max_pcr_gap: float = 10.0,
    ) -> None:
        self.rate_window = rate_window
        self.recognition_timeout = recognition_timeout
        self.max_programs = max_programs
        self.probe_limit = probe_limit
        self.max_probe_failures = max_probe_failures
        self.max_pcr_gap = max_pcr_gap
        self._framer = TsFramer()
        self._cc = [-1] * (NULL_PID + 1)
        self._dup = bytearray(NULL_PID + 1)
        self._psi: dict[int, SectionAssembler] = {PAT_PID: SectionAssembler()}
        self._seen_sections: dict[tuple[int, bytes], bytes] = {}
        self._pat_version = -1
        self._pat_sections: dict[int, tuple[tuple[int, int], ...]] = {}
        self._programs: dict[int, _Program] = {}
        self._probes: dict[int, _Probe] = {}
        self._details: dict[int, VideoInfo | AudioHeader] = {}
        self._gave_up: set[int] = set()
        self._pending: set[int] = set()
        self.pcr_pid: int | None = None
        """PCR PID of the first programme in the PAT: the clock bitrates are measured by."""
        self._pcr_start: tuple[int, int] | None = None
        self._pcr_last = 0
        self._arrival_start: float | None = None
        self._arrival_octets = 0
        self.pcr_bitrate: float | None = None
        """Latest PCR-based bitrate (bit/s)."""
        self.arrival_bitrate: float | None = None
        """Latest arrival-based bitrate (bit/s)."""
        self.packets = 0
        self._counts: dict[str, int] = {}

    # ----- input ---------------------------------------------------------------------

    def receive_datagram(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """One datagram's payload of whole TS packets (RFC 2250; UDP/MPEG-TS)."""
        block, skipped = align_datagram(data)
        return self._input(block, skipped, now)

    def receive_bytes(self, data: bytes | bytearray | memoryview, now: float) -> list[Event]:
        """A piece of a TS byte stream, cut anywhere."""
        before = self._framer.garbage
        block = self._framer.feed(data)
        return self._input(block, self._framer.garbage - before, now)

    def _input(self, block: bytes, skipped: int, now: float) -> list[Event]:
        out: list[Event] = []
        self._count("inputs")
        if skipped:
            self._count("garbage_octets", skipped)
            out.append(GarbageSkipped(skipped, now))
        if block:
            self._packets(block, now, out)
        self._arrival(len(block), now, out)
        if self._pending:
            self._check_pending(now, out)
        return out

    def _count(self, key: str, n: int = 1) -> None:
        self._counts[key] = self._counts.get(key, 0) + n

    def counters(self) -> dict[str, int]:
        """packets, octets, garbage_octets, continuity_errors, ... so far."""
        return {"packets": self.packets, "octets": self.packets * PACKET_SIZE, **self._counts}

    @property
    def programs(self) -> dict[int, Pmt]:
        """Programme number -> its current PMT, for every programme whose PMT arrived."""
        return {n: p.pmt for n, p in self._programs.items() if p.pmt is not None}

    # ----- packets ----------------------------------------------------------------------

    def _packets(self, block: bytes, now: float, out: list[Event]) -> None:
        cc_table = self._cc
        dup = self._dup
        psi = self._psi
        probes = self._probes
        pcr_pid = self.pcr_pid
        index = self.packets
        for off in range(0, len(block), PACKET_SIZE):
            index += 1
            b1 = block[off + 1]
            pid = (b1 & 0x1F) << 8 | block[off + 2]
            b3 = block[off + 3]
            if b1 & 0x80:
                self._count("transport_errors")
                continue
            if pid == NULL_PID:
                continue
            afc = b3 >> 4 & 3
            if afc == 0:
                self._count("bad_packets")
                continue
            start = off + 4
            discontinuity = False
            if afc & 2:
                aflen = block[start]
                if (afc == 3 and aflen > 182) or (afc == 2 and aflen != 183):
                    self._count("bad_packets")
                    continue
                if aflen:
                    flags = block[start + 1]
                    discontinuity = bool(flags & 0x80)
                    if flags & 0x10 and pid == pcr_pid and aflen >= 7:
                        self._pcr(pid, block, start + 2, index, discontinuity, now, out)
                start += 1 + aflen
            if b3 & 0xC0:
                self._count("scrambled_packets")
            if not afc & 1:
                continue
            cc = b3 & 0xF
            last = cc_table[pid]
            if last >= 0 and not discontinuity and cc != (last + 1) & 0xF:
                if cc == last and not dup[pid]:
                    dup[pid] = 1  # one duplicate is allowed (2.4.3.3); skip its payload
                    continue
                self._count("continuity_errors")
                out.append(ContinuityError(pid, (last + 1) & 0xF, cc, now))
                asm = psi.get(pid)
                if asm is not None:
                    asm.reset()
                probe = probes.get(pid)
                if probe is not None:
                    probe.started = False
            dup[pid] = 0
            cc_table[pid] = cc
            if pid in psi:
                self._psi_payload(pid, block[start : off + PACKET_SIZE], b1 & 0x40, now, out)
                pcr_pid = self.pcr_pid  # a new PMT may have named it
            elif pid in probes:
                self._probe(pid, block[start : off + PACKET_SIZE], bool(b1 & 0x40), now, out)
        self.packets = index

    def _pcr(
        self,
        pid: int,
        block: bytes,
        at: int,
        index: int,
        signalled: bool,
        now: float,
        out: list[Event],
    ) -> None:
        """A PCR in packet number ``index``: transport rate = bytes between two PCRs
        over their 27 MHz difference (13818-1 2.4.2.2), per ``rate_window``."""
        pcr = decode_pcr(block, at)
        start = self._pcr_start
        gap = (pcr - self._pcr_last) % PCR_WRAP
        self._pcr_last = pcr
        if start is None or signalled or gap > self.max_pcr_gap * PCR_HZ:
            if start is not None:
                self._count("pcr_discontinuities")
                out.append(PcrJumped(pid, signalled, now))
            self._pcr_start = (pcr, index)
            return
        span = (pcr - start[0]) % PCR_WRAP
        if span >= self.rate_window * PCR_HZ:
            bps = (index - start[1]) * PACKET_SIZE * 8 * PCR_HZ / span
            self.pcr_bitrate = bps
            out.append(BitrateMeasured("pcr", bps, span / PCR_HZ, now))
            self._pcr_start = (pcr, index)

    def _arrival(self, octets: int, now: float, out: list[Event]) -> None:
        start = self._arrival_start
        if start is None:
            self._arrival_start = now
        elif now - start >= self.rate_window:
            bps = self._arrival_octets * 8 / (now - start)
            self.arrival_bitrate = bps
            out.append(BitrateMeasured("arrival", bps, now - start, now))
            self._arrival_start = now
            self._arrival_octets = 0
        self._arrival_octets += octets

    # ----- PSI ---------------------------------------------------------------------------

    def _psi_payload(
        self, pid: int, payload: bytes, unit_start: int, now: float, out: list[Event]
    ) -> None:
        asm = self._psi[pid]
        for raw in asm.push(payload, bool(unit_start)):
            self._section(pid, raw, now, out)
        if asm.errors:
            for reason, n in asm.errors.items():
                self._count("section_errors", n)
                out.append(SectionRejected(pid, reason, now))
            asm.errors.clear()

    def _section(self, pid: int, raw: bytes, now: float, out: list[Event]) -> None:
        # PAT and PMT repeat every few hundred ms unchanged: skip the CRC and parse then.
        key = (pid, raw[:8])
        if self._seen_sections.get(key) == raw:
            return
        try:
            section = parse_section(raw, MAX_PSI_SECTION)
            if not section.current_next:
                return
            if pid == PAT_PID and section.table_id == TABLE_PAT:
                self._on_pat(section.version, section.section_number, parse_pat(section))
            elif section.table_id == TABLE_PMT:
                self._on_pmt(pid, parse_pmt(section), now, out)
            else:
                return
        except MpegTsError as e:
            self._count("section_errors")
            if e.reason == "crc":
                self._count("crc_errors")
            out.append(SectionRejected(pid, e.reason, now))
            return
        if len(self._seen_sections) >= 4 * self.max_programs:
            self._seen_sections.clear()
        self._seen_sections[key] = raw

    def _on_pat(self, version: int, number: int, pat: Pat) -> None:
        if version != self._pat_version:
            self._pat_version = version
            self._pat_sections.clear()
        self._pat_sections[number] = pat.programs
        wanted: dict[int, int] = {}
        for entries in self._pat_sections.values():
            for program, pmt_pid in entries:
                if len(wanted) < self.max_programs and pmt_pid not in (PAT_PID, NULL_PID):
                    wanted.setdefault(program, pmt_pid)
        for program in list(self._programs):
            if wanted.get(program) != self._programs[program].pmt_pid:
                self._drop_program(program)
        for program, pmt_pid in wanted.items():
            if program not in self._programs:
                self._programs[program] = _Program(pmt_pid)
                self._psi.setdefault(pmt_pid, SectionAssembler())
        first = next(iter(self._programs.values()), None)
        self._set_pcr_pid(first.pmt.pcr_pid if first and first.pmt else None)

    def _drop_program(self, program: int) -> None:
        old = self._programs.pop(program)
        self._pending.discard(program)
        if old.pmt is not None:
            for st in old.pmt.streams:
                self._forget_stream(st.pid)
        if all(p.pmt_pid != old.pmt_pid for p in self._programs.values()):
            self._psi.pop(old.pmt_pid, None)

    def _forget_stream(self, pid: int) -> None:
        self._probes.pop(pid, None)
        self._details.pop(pid, None)
        self._gave_up.discard(pid)

    def _set_pcr_pid(self, pid: int | None) -> None:
        if pid == NULL_PID:
            pid = None
        if pid != self.pcr_pid:
            self.pcr_pid = pid
            self._pcr_start = None

    def _on_pmt(self, pid: int, pmt: Pmt, now: float, out: list[Event]) -> None:
        prog = self._programs.get(pmt.program_number)
        if prog is None or prog.pmt_pid != pid:
            self._count("unexpected_pmts")
            return
        old = prog.pmt
        if old is not None and old.version == pmt.version:
            return  # the same table again (recognition may still be pending)
        before = {st.pid: st.stream_type for st in old.streams} if old else {}
        for st in old.streams if old else ():
            if st.pid not in {s.pid for s in pmt.streams}:
                self._forget_stream(st.pid)
        for st in pmt.streams:
            if before.get(st.pid) != st.stream_type:
                self._forget_stream(st.pid)
            if st.pid in self._details or st.pid in self._probes:
                continue
            codec, _ = classify(st.stream_type, st.descriptors)
            if codec == "h264" or codec in _AUDIO_PARSERS:
                self._probes[st.pid] = _Probe(codec)
        prog.pmt = pmt
        prog.pmt_at = now
        prog.announced = False
        self._pending.add(pmt.program_number)
        if next(iter(self._programs.values())) is prog:
            self._set_pcr_pid(pmt.pcr_pid)
        self._check_pending(now, out)

    def _check_pending(self, now: float, out: list[Event]) -> None:
        for number in sorted(self._pending):
            prog = self._programs[number]
            pmt = prog.pmt
            if pmt is None:
                continue
            waiting = any(st.pid in self._probes for st in pmt.streams)
            if waiting and now - prog.pmt_at < self.recognition_timeout:
                continue
            self._pending.discard(number)
            prog.announced = True
            streams = tuple(
                self._describe(st.pid, st.stream_type, st.descriptors) for st in pmt.streams
            )
            out.append(
                ProgramRecognised(
                    program_number=number,
                    pmt_pid=prog.pmt_pid,
                    pcr_pid=pmt.pcr_pid,
                    version=pmt.version,
                    streams=streams,
                    complete=not waiting and all(s.pid not in self._gave_up for s in pmt.streams),
                    at=now,
                )
            )

    def _describe(self, pid: int, stream_type: int, ds: tuple[Descriptor, ...]) -> ElementaryStream:
        codec, kind = classify(stream_type, ds)
        info = self._details.get(pid)
        video = info if isinstance(info, VideoInfo) else None
        audio = info if isinstance(info, AudioHeader) else None
        if audio is not None:
            codec = audio.codec  # the frame header is more precise (mp2 vs mp3, ac3 vs eac3)
        return ElementaryStream(pid, stream_type, codec, kind, language(ds), video, audio)

    # ----- elementary stream probing ---------------------------------------------------

    def _probe(
        self, pid: int, payload: bytes, unit_start: bool, now: float, out: list[Event]
    ) -> None:
        probe = self._probes[pid]
        if unit_start:
            # The previous PES ends here: what it holds is all there is of it.
            if probe.started and self._detect(pid, probe, final=True):
                self._found(now, out)
                return
            try:
                header = parse_pes_header(payload)
            except MpegTsError:
                self._count("pes_errors")
                probe.started = False
                return
            probe.buf = bytearray(payload[header.header_length :])
            probe.started = True
            probe.scanned = 0
        elif probe.started:
            if len(probe.buf) >= self.probe_limit:
                return
            probe.buf += payload
        else:
            return
        if self._detect(pid, probe, final=False):
            self._found(now, out)

    def _found(self, now: float, out: list[Event]) -> None:
        if self._pending:
            self._check_pending(now, out)

    def _detect(self, pid: int, probe: _Probe, final: bool) -> bool:
        """Look for the stream's parameters in the PES bytes so far; True when the probe
        is over (found, or given up after ``max_probe_failures`` malformed headers)."""
        info: VideoInfo | AudioHeader | None = None
        try:
            if probe.codec == "h264":
                nal, probe.scanned = scan_nal(probe.buf, NAL_SPS, probe.scanned, final)
                if nal is None:
                    return False
                sps = parse_sps(nal)
                info = VideoInfo(
                    width=sps.width,
                    height=sps.height,
                    profile=sps.profile,
                    level=sps.level_idc,
                    frame_rate=sps.frame_rate,
                    chroma_format=_CHROMA[sps.chroma_format_idc],
                    bit_depth=sps.bit_depth,
                )
            else:
                info = _scan_audio(probe.codec, probe.buf)
                if info is None:
                    return False
        except MpegTsError:
            self._count("codec_header_errors")
            probe.failures += 1
            probe.started = False
            if probe.failures >= self.max_probe_failures:
                del self._probes[pid]  # give up on parameters; the codec is still known
                self._gave_up.add(pid)
                return True
            return False
        self._details[pid] = info
        del self._probes[pid]
        return True


def _scan_audio(codec: str, buf: bytearray) -> AudioHeader | None:
    """The first frame header in the PES bytes: at the start (an aligned PES), else at
    the first sync pattern within AUDIO_SCAN bytes that parses."""
    sync, parse = _AUDIO_PARSERS[codec]
    if len(buf) < 8:
        return None
    if buf.startswith(sync):
        return parse(bytes(buf[:8]))
    i = buf.find(sync, 0, AUDIO_SCAN)
    while i >= 0 and i + 8 <= len(buf):
        try:
            return parse(bytes(buf[i : i + 8]))
        except MpegTsError:
            i = buf.find(sync, i + 1, AUDIO_SCAN)
    if len(buf) >= AUDIO_SCAN:
        raise MpegTsError("audio_header", f"no {codec} frame header in {AUDIO_SCAN} bytes")
    return None
