"""Audio frame headers, enough to name the codec's parameters.

ADTS (ISO/IEC 14496-3 section 1.A.2.2, AAC in a TS with stream_type 0x0F), 7 bytes::

    | syncword 0xFFF (12) |ID|layer(2)|A| profile(2) | sf_index(4) |p| channels(3) |
    |o|h|c|c| frame_length (13) | buffer_fullness (11) | raw_blocks (2) |

MPEG audio (ISO/IEC 11172-3 / 13818-3 section 2.4.1.3, stream_types 0x03/0x04)::

    | sync 0x7FF (11) | version(2) | layer(2) |P| bitrate(4) | rate(2) |p|x| mode(2) | ...

AC-3 (ATSC A/52 section 5.3, stream_type 0x81 or a DVB AC-3 descriptor)::

    | syncword 0x0B77 (16) | crc1 (16) | fscod(2) | frmsizecod(6) | bsid(5) | bsmod(3) |
    | acmod(3) | [cmixlev(2)] [surmixlev(2)] [dsurmod(2)] | lfeon(1) |
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MpegTsError

ADTS_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
AAC_PROFILES = ("Main", "LC", "SSR", "LTP")
"""ADTS profile field (object type - 1), named as ffprobe names them."""

_MPA_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_MPA_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
"""kbit/s by (MPEG-1 or 2/2.5, layer) and bitrate_index 0..14 (0: free format)."""

_AC3_RATES = (48000, 44100, 32000)
_AC3_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640)
_AC3_CHANNELS = (2, 1, 2, 3, 3, 4, 4, 5)
"""Full-bandwidth channels by acmod (A/52 table 5.8)."""


@dataclass(frozen=True, slots=True)
class AudioHeader:
    """What an audio frame header says."""

    codec: str
    """As ffprobe names it: ``aac``, ``mp1``, ``mp2``, ``mp3``, ``ac3``, ``eac3``."""
    sample_rate: int
    """Samples per second."""
    channels: int
    """Channel count (LFE included); 0 when the header leaves it to other syntax."""
    profile: str | None = None
    """AAC profile (``LC`` ...); None for the others."""
    bitrate: int | None = None
    """Bits per second when the header says it (MPEG audio, AC-3)."""


def parse_adts(b: bytes | bytearray) -> AudioHeader:
    if len(b) < 7:
        raise MpegTsError("adts", f"{len(b)} bytes, the header is 7")
    if b[0] != 0xFF or b[1] & 0xF6 != 0xF0:
        raise MpegTsError("adts", "no ADTS syncword (or layer != 0)")
    profile = b[2] >> 6
    sf_index = b[2] >> 2 & 0xF
    if sf_index >= len(ADTS_RATES):
        raise MpegTsError("adts", f"sampling_frequency_index {sf_index}")
    channel_config = (b[2] & 1) << 2 | b[3] >> 6
    frame_length = (b[3] & 3) << 11 | b[4] << 3 | b[5] >> 5
    if frame_length < 7:
        raise MpegTsError("adts", f"frame_length {frame_length}")
    return AudioHeader(
        codec="aac",
        sample_rate=ADTS_RATES[sf_index],
        channels=8 if channel_config == 7 else channel_config,
        profile=AAC_PROFILES[profile],
    )


def parse_mpeg_audio(b: bytes | bytearray) -> AudioHeader:
    if len(b) < 4:
        raise MpegTsError("mpeg_audio", f"{len(b)} bytes, the header is 4")
    if b[0] != 0xFF or b[1] & 0xE0 != 0xE0:
        raise MpegTsError("mpeg_audio", "no frame sync")
    version = b[1] >> 3 & 3  # 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5, 1 reserved
    layer = 4 - (b[1] >> 1 & 3)  # field 3 is layer I, 1 is layer III, 0 reserved
    rate_index = b[2] >> 2 & 3
    bitrate_index = b[2] >> 4
    if version == 1 or layer == 4 or rate_index == 3 or bitrate_index == 15:
        raise MpegTsError("mpeg_audio", "reserved version, layer, rate or bitrate")
    kbps = _MPA_KBPS[(1 if version == 3 else 2, layer if version == 3 or layer == 1 else 2)]
    return AudioHeader(
        codec=f"mp{layer}",
        sample_rate=_MPA_RATES[version][rate_index],
        channels=1 if b[3] >> 6 == 3 else 2,
        bitrate=kbps[bitrate_index] * 1000 or None,
    )


def parse_ac3(b: bytes | bytearray) -> AudioHeader:
    if len(b) < 7:
        raise MpegTsError("ac3", f"{len(b)} bytes, the header is 7")
    if b[0] != 0x0B or b[1] != 0x77:
        raise MpegTsError("ac3", "no AC-3 syncword")
    bsid = b[5] >> 3
    if bsid > 10:  # E-AC-3 (A/52 annex E): frame size and rate sit elsewhere
        return _parse_eac3(b, bsid)
    fscod, frmsizecod = b[4] >> 6, b[4] & 0x3F
    if fscod == 3 or frmsizecod >> 1 >= len(_AC3_KBPS):
        raise MpegTsError("ac3", f"fscod {fscod}, frmsizecod {frmsizecod}")
    bits = int.from_bytes(b[6:8].ljust(2, b"\0"), "big")
    acmod = bits >> 13
    skip = 3  # bits after acmod before lfeon: the optional mix levels
    skip += 2 if acmod & 1 and acmod != 1 else 0
    skip += 2 if acmod & 4 else 0
    skip += 2 if acmod == 2 else 0
    lfe = bits >> (15 - skip) & 1 if len(b) >= 8 else 0
    return AudioHeader(
        codec="ac3",
        sample_rate=_AC3_RATES[fscod],
        channels=_AC3_CHANNELS[acmod] + lfe,
        bitrate=_AC3_KBPS[frmsizecod >> 1] * 1000,
    )


def _parse_eac3(b: bytes | bytearray, bsid: int) -> AudioHeader:
    if bsid > 16:
        raise MpegTsError("ac3", f"bsid {bsid}")
    fscod = b[4] >> 6
    rate = _AC3_RATES[b[4] >> 4 & 3] // 2 if fscod == 3 else _AC3_RATES[fscod]
    if fscod == 3 and b[4] >> 4 & 3 == 3:
        raise MpegTsError("ac3", "reserved fscod2")
    acmod = b[4] >> 1 & 7
    return AudioHeader(codec="eac3", sample_rate=rate, channels=_AC3_CHANNELS[acmod] + (b[4] & 1))
