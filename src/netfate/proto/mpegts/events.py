"""Events of the MPEG-TS stream analyzer, and the values they carry: past-tense,
one docstring per field (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass

from .audio import AudioHeader


@dataclass(frozen=True)
class VideoInfo:
    """What the analyzer read from a video stream's parameter sets."""

    width: int
    """Displayed width in pixels (cropping applied)."""
    height: int
    """Displayed height in pixels."""
    profile: str
    """Profile as ffprobe names it, e.g. ``"High"``, ``"Constrained Baseline"``."""
    level: int
    """Level as ffprobe gives it (H.264: level_idc, 31 for 3.1)."""
    frame_rate: float | None = None
    """Frames per second, when the stream says (H.264 VUI timing)."""
    chroma_format: str = "4:2:0"
    """Chroma subsampling: ``"4:0:0"``, ``"4:2:0"``, ``"4:2:2"`` or ``"4:4:4"``."""
    bit_depth: int = 8
    """Luma bits per sample."""


@dataclass(frozen=True)
class ElementaryStream:
    """One stream of a programme, as recognised."""

    pid: int
    """The PID carrying it."""
    stream_type: int
    """The PMT stream_type (0x1B H.264, 0x0F AAC ...)."""
    codec: str
    """Codec as ffprobe's ``codec_name`` (``h264``, ``hevc``, ``aac``, ``mp2``, ``ac3`` ...)."""
    kind: str
    """``video``, ``audio``, ``subtitle`` or ``data``."""
    language: str | None = None
    """ISO 639 code from the PMT, if any."""
    video: VideoInfo | None = None
    """Picture parameters, when read (H.264 SPS)."""
    audio: AudioHeader | None = None
    """Audio parameters, when read (ADTS, MPEG audio, AC-3 headers)."""


@dataclass(frozen=True)
class Event:
    """Base of everything :class:`~netfate.proto.mpegts.analyzer.StreamAnalyzer` returns."""


@dataclass(frozen=True)
class ProgramRecognised(Event):
    """A programme's PMT arrived and its streams were identified (again, after a new
    PMT version)."""

    program_number: int
    """The programme (from the PAT)."""
    pmt_pid: int
    """PID of its PMT."""
    pcr_pid: int
    """PID of its clock reference."""
    version: int
    """PMT version_number."""
    streams: tuple[ElementaryStream, ...]
    """Its elementary streams, in PMT order."""
    complete: bool
    """True if every stream whose parameters the analyzer reads was read; False if the
    recognition timeout came first, or its headers kept being malformed (codecs are
    known, some parameters are not)."""
    at: float
    """``now`` when recognised."""
    container: str = "mpegts"
    """The container format."""


@dataclass(frozen=True)
class BitrateMeasured(Event):
    """A transport bitrate over one measurement window."""

    basis: str
    """``"pcr"``: TS bytes between two PCRs over their clock difference (13818-1
    2.4.2.2), the rate the multiplexer intended; ``"arrival"``: TS bytes received
    over ``now`` differences, the rate the network delivered."""
    bits_per_second: float
    """The rate."""
    window: float
    """Seconds the figure covers."""
    at: float
    """``now`` at the end of the window."""


@dataclass(frozen=True)
class ContinuityError(Event):
    """A continuity_counter skipped: TS packets of the PID were lost (or reordered)."""

    pid: int
    """The PID."""
    expected: int
    """The counter value due."""
    got: int
    """The counter value received."""
    at: float
    """``now`` of the packet."""


@dataclass(frozen=True)
class GarbageSkipped(Event):
    """Bytes that were no TS packet were skipped (the framer re-synchronised)."""

    octets: int
    """How many in this input."""
    at: float
    """``now`` of the input."""


@dataclass(frozen=True)
class SectionRejected(Event):
    """A PSI section was dropped (bad CRC, bad length, cut short ...)."""

    pid: int
    """The PID it came on."""
    reason: str
    """Why, as a short word (``crc``, ``section_length``, ``pointer_field`` ...)."""
    at: float
    """``now`` of the packet that completed or broke it."""


@dataclass(frozen=True)
class PcrJumped(Event):
    """The programme clock jumped (a discontinuity): PCR bitrate measuring restarts."""

    pid: int
    """The PCR PID."""
    signalled: bool
    """The stream said so (discontinuity_indicator); False: a jump of over
    ``max_pcr_gap`` seconds, or backwards, without notice."""
    at: float
    """``now`` of the packet."""
