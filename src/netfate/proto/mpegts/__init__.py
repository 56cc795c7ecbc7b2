"""Sans-I/O MPEG-2 transport stream (ISO/IEC 13818-1) and a stream analyzer.

Wire formats: TS packets (:func:`parse_packet` / :meth:`TsPacket.build`), finding
them in garbage (:class:`TsFramer`, :func:`align_datagram`), PSI sections with
CRC-32/MPEG-2 (:func:`parse_pat`, :func:`parse_pmt`, :class:`SectionAssembler`),
PES headers (:func:`parse_pes_header`), and the codec headers a recogniser needs
(:func:`parse_sps` for H.264, ADTS, MPEG audio, AC-3). The core the streaming
tree's acquirer stands on: :class:`StreamAnalyzer` (TS bytes + ``now`` in, events
out). Every refusal of bytes is an :class:`MpegTsError`; the analyzer counts it.
"""

from .analyzer import StreamAnalyzer
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
from .h264 import H264Sps, find_nal, parse_sps, profile_name, scan_nal
from .packet import (
    NULL_PID,
    PACKET_SIZE,
    PAT_PID,
    PCR_HZ,
    AdaptationField,
    TsFramer,
    TsPacket,
    align_datagram,
    decode_pcr,
    encode_pcr,
    parse_packet,
)
from .pes import PesHeader, build_pes_header, packetize_pes, parse_pes_header
from .psi import (
    Descriptor,
    Pat,
    Pmt,
    PmtStream,
    Section,
    SectionAssembler,
    build_section,
    crc32_mpeg2,
    packetize_section,
    parse_pat,
    parse_pmt,
    parse_section,
)
from .streams import STREAM_TYPES, classify

__all__ = [
    "NULL_PID",
    "PACKET_SIZE",
    "PAT_PID",
    "PCR_HZ",
    "STREAM_TYPES",
    "AdaptationField",
    "AudioHeader",
    "BitrateMeasured",
    "ContinuityError",
    "Descriptor",
    "ElementaryStream",
    "Event",
    "GarbageSkipped",
    "H264Sps",
    "MpegTsError",
    "Pat",
    "PcrJumped",
    "PesHeader",
    "Pmt",
    "PmtStream",
    "ProgramRecognised",
    "Section",
    "SectionAssembler",
    "SectionRejected",
    "StreamAnalyzer",
    "TsFramer",
    "TsPacket",
    "VideoInfo",
    "align_datagram",
    "build_pes_header",
    "build_section",
    "classify",
    "crc32_mpeg2",
    "decode_pcr",
    "encode_pcr",
    "find_nal",
    "packetize_pes",
    "packetize_section",
    "parse_ac3",
    "parse_adts",
    "parse_mpeg_audio",
    "parse_packet",
    "parse_pat",
    "parse_pes_header",
    "parse_pmt",
    "parse_section",
    "parse_sps",
    "profile_name",
    "scan_nal",
]
