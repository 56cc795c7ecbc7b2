"""What an elementary stream is, from its PMT entry (ISO/IEC 13818-1 table 2-34).

The stream_type names most codecs. Type 0x06 (PES private data) does not: the
descriptors do, the DVB ones (ETSI EN 300 468: 0x6A AC-3, 0x7A E-AC-3, 0x7B DTS,
0x59 subtitling, 0x56 teletext) or a registration descriptor (tag 0x05) whose
format_identifier is registered with SMPTE-RA ("Opus", "HEVC", "KLVA" ...). Names
are the ones ffprobe prints as ``codec_name``.
"""

from __future__ import annotations

from .psi import Descriptor

STREAM_TYPES: dict[int, tuple[str, str]] = {
    0x01: ("mpeg1video", "video"),
    0x02: ("mpeg2video", "video"),
    0x03: ("mp3", "audio"),  # MPEG-1 audio; the frame header tells mp1/mp2/mp3
    0x04: ("mp3", "audio"),  # MPEG-2 audio; likewise
    0x0F: ("aac", "audio"),  # ADTS
    0x10: ("mpeg4", "video"),
    0x11: ("aac_latm", "audio"),
    0x15: ("timed_id3", "data"),  # metadata in PES
    0x1B: ("h264", "video"),
    0x1C: ("aac", "audio"),  # MPEG-4 audio without transport syntax
    0x24: ("hevc", "video"),
    0x33: ("vvc", "video"),
    0x42: ("cavs", "video"),
    0x81: ("ac3", "audio"),  # ATSC A/52
    0x86: ("scte_35", "data"),
    0x87: ("eac3", "audio"),  # ATSC A/52 annex G
    0xD1: ("dirac", "video"),
    0xEA: ("vc1", "video"),
}
"""stream_type -> (codec, kind)."""

DVB_DESCRIPTORS: dict[int, tuple[str, str]] = {
    0x56: ("dvb_teletext", "subtitle"),
    0x59: ("dvb_subtitle", "subtitle"),
    0x6A: ("ac3", "audio"),
    0x7A: ("eac3", "audio"),
    0x7B: ("dts", "audio"),
}

REGISTRATIONS: dict[bytes, tuple[str, str]] = {
    b"AC-3": ("ac3", "audio"),
    b"EAC3": ("eac3", "audio"),
    b"DTS1": ("dts", "audio"),
    b"DTS2": ("dts", "audio"),
    b"DTS3": ("dts", "audio"),
    b"Opus": ("opus", "audio"),
    b"BSSD": ("s302m", "audio"),
    b"HEVC": ("hevc", "video"),
    b"VC-1": ("vc1", "video"),
    b"AV01": ("av1", "video"),
    b"KLVA": ("klv", "data"),
    b"ID3 ": ("timed_id3", "data"),
}

TAG_REGISTRATION = 0x05
TAG_LANGUAGE = 0x0A


def classify(stream_type: int, descriptors: tuple[Descriptor, ...] = ()) -> tuple[str, str]:
    """(codec, kind) of an elementary stream; ("unknown", "data") if nothing says."""
    known = STREAM_TYPES.get(stream_type)
    if known is not None:
        return known
    for d in descriptors:
        if d.tag in DVB_DESCRIPTORS and stream_type == 0x06:
            return DVB_DESCRIPTORS[d.tag]
        if d.tag == TAG_REGISTRATION and d.data[:4] in REGISTRATIONS:
            return REGISTRATIONS[d.data[:4]]
    return ("unknown", "data")


def language(descriptors: tuple[Descriptor, ...]) -> str | None:
    """The first ISO 639 language code (descriptor 0x0A), e.g. ``"eng"``."""
    for d in descriptors:
        if d.tag == TAG_LANGUAGE and len(d.data) >= 3:
            code = d.data[:3]
            if code.isascii() and code.isalpha():
                return code.decode("ascii").lower()
    return None
