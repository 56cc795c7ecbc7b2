"""H.264 (ITU-T H.264 / ISO/IEC 14496-10) as far as recognising a stream needs.

NAL units in a transport stream come in the Annex B byte stream format: each is
preceded by a start code ``00 00 01`` (or ``00 00 00 01``); inside a NAL unit,
``00 00 03`` is an emulation prevention sequence whose 03 is removed before the
bits are read (section 7.4.1). The NAL header byte is ``F(1) NRI(2) type(5)``;
type 7 is a sequence parameter set.

The SPS (section 7.3.2.1.1) is read up to the VUI timing information: profile,
constraint flags, level, chroma format and bit depth (high profiles), the frame
size in macroblocks with the frame cropping rectangle, and the frame rate when
the VUI carries ``time_scale / (2 * num_units_in_tick)`` (Annex E). Values are
bounded as the standard bounds them, so a hostile SPS cannot make a huge number.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MpegTsError

NAL_SPS = 7
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
MAX_MBS = 1024
"""Frame width or height in macroblocks we accept (16384 pixels; level 6.2 is 8192)."""

_SAR = (
    (0, 0), (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11),
    (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1),
)  # fmt: skip
"""Table E-1: sample aspect ratio by aspect_ratio_idc."""

_PROFILE_NAMES = {
    66: "Baseline",
    77: "Main",
    88: "Extended",
    100: "High",
    110: "High 10",
    122: "High 4:2:2",
    244: "High 4:4:4 Predictive",
    44: "CAVLC 4:4:4",
    118: "Multiview High",
    128: "Stereo High",
}


def profile_name(profile_idc: int, constraint_flags: int) -> str:
    """The profile as ffprobe names it (libavcodec's ``ff_h264_get_profile``)."""
    name = _PROFILE_NAMES.get(profile_idc, f"profile {profile_idc}")
    if profile_idc == 66 and constraint_flags & 0x40:  # constraint_set1
        return "Constrained Baseline"
    if profile_idc in (110, 122, 244) and constraint_flags & 0x10:  # constraint_set3
        return "High 4:4:4 Intra" if profile_idc == 244 else name + " Intra"
    return name


@dataclass(frozen=True, slots=True)
class H264Sps:
    """What a sequence parameter set says about the picture."""

    profile_idc: int
    """profile_idc (66 Baseline, 77 Main, 100 High, 244 High 4:4:4 Predictive ...)."""
    constraint_flags: int
    """The byte of constraint_set0..5 flags (set0 is the top bit)."""
    level_idc: int
    """level_idc: ten times the level (31 = level 3.1), as ffprobe's ``level``."""
    width: int
    """Frame width in pixels, cropping applied."""
    height: int
    """Frame height in pixels, cropping applied."""
    chroma_format_idc: int = 1
    """0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4."""
    bit_depth: int = 8
    """Luma bit depth."""
    frame_mbs_only: bool = True
    """False for interlaced coding (fields or MBAFF)."""
    frame_rate: float | None = None
    """Frames per second from the VUI timing info, if present."""
    sample_aspect_ratio: tuple[int, int] | None = None
    """SAR from the VUI, if present."""

    @property
    def profile(self) -> str:
        return profile_name(self.profile_idc, self.constraint_flags)


class _Bits:
    """An MSB-first bit reader over RBSP bytes; reading past the end raises."""

    __slots__ = ("n", "pos", "v")

    def __init__(self, data: bytes) -> None:
        self.v = int.from_bytes(data, "big")
        self.n = len(data) * 8
        self.pos = 0

    def u(self, k: int) -> int:
        if self.pos + k > self.n:
            raise MpegTsError("sps", "truncated")
        self.pos += k
        return (self.v >> (self.n - self.pos)) & ((1 << k) - 1)

    def ue(self, limit: int) -> int:
        """Exp-Golomb ue(v), refused above ``limit`` (the standard's range)."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MpegTsError("sps", "exp-Golomb code longer than 32 bits")
        value = (1 << zeros) - 1 + self.u(zeros)
        if value > limit:
            raise MpegTsError("sps", f"value {value} above {limit}")
        return value

    def se(self, limit: int) -> int:
        k = self.ue(2 * limit)
        return (k + 1) // 2 if k & 1 else -(k // 2)


def unescape(nal: bytes) -> bytes:
    """NAL unit payload to RBSP: drop the 03 of each ``00 00 03``."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    i = 0
    while True:
        j = nal.find(b"\x00\x00\x03", i)
        if j < 0:
            out += nal[i:]
            return bytes(out)
        out += nal[i : j + 2]
        i = j + 3


def find_nal(buf: bytes | bytearray, nal_type: int, final: bool = False) -> bytes | None:
    """The first whole H.264 NAL unit of ``nal_type`` in Annex B bytes, header included.

    Whole means another start code follows it, or ``final`` says the bytes end there.
    """
    return scan_nal(buf, nal_type, 0, final)[0]


def scan_nal(
    buf: bytes | bytearray, nal_type: int, start: int = 0, final: bool = False
) -> tuple[bytes | None, int]:
    """:func:`find_nal` from ``start``, for bytes that keep growing: also returns where
    the next scan must start (a wanted NAL unit that may be incomplete, else the
    last bytes), so that each byte is looked at about once."""
    i = buf.find(b"\x00\x00\x01", start)
    resume = max(start, len(buf) - 3)  # a start code may straddle the end
    while i >= 0:
        begin = i + 3
        if begin >= len(buf):
            return None, i  # a start code, its NAL header byte yet to come
        nxt = buf.find(b"\x00\x00\x01", begin)
        if buf[begin] & 0x1F == nal_type:
            if nxt < 0:  # the NAL unit may not be whole yet: look again from here
                return (bytes(buf[begin:]) if final else None), i
            end = nxt
            while end > begin and buf[end - 1] == 0:  # trailing_zero_8bits / 4-byte code
                end -= 1
            return bytes(buf[begin:end]), nxt
        i = nxt
    return None, resume


def parse_sps(nal: bytes) -> H264Sps:
    """Parse an SPS NAL unit (header byte included); :class:`MpegTsError` if malformed."""
    if not nal or nal[0] & 0x1F != NAL_SPS or nal[0] & 0x80:
        raise MpegTsError("sps", "not an SPS NAL unit")
    r = _Bits(unescape(nal[1:]))
    profile = r.u(8)
    constraints = r.u(8)
    level = r.u(8)
    r.ue(31)  # seq_parameter_set_id
    chroma = 1
    separate_planes = False
    bit_depth = 8
    if profile in HIGH_PROFILES:
        chroma = r.ue(3)
        if chroma == 3:
            separate_planes = bool(r.u(1))
        bit_depth = 8 + r.ue(6)
        r.ue(6)  # bit_depth_chroma_minus8
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue(12)  # log2_max_frame_num_minus4
    poc_type = r.ue(2)
    if poc_type == 0:
        r.ue(12)  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.u(1)  # delta_pic_order_always_zero_flag
        r.se(1 << 31)  # offset_for_non_ref_pic
        r.se(1 << 31)  # offset_for_top_to_bottom_field
        for _ in range(r.ue(255)):
            r.se(1 << 31)  # offset_for_ref_frame[i]
    r.ue(16)  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = r.ue(MAX_MBS - 1) + 1
    height_units = r.ue(MAX_MBS - 1) + 1
    frame_mbs_only = bool(r.u(1))
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_units * 16 * (1 if frame_mbs_only else 2)
    if r.u(1):  # frame_cropping_flag
        crops = [r.ue(8 * MAX_MBS) for _ in range(4)]  # left, right, top, bottom
        # Crop units (7.4.2.1.1): by chroma subsampling, and doubled vertically for fields.
        array_type = 0 if separate_planes else chroma
        unit_x = 1 if array_type in (0, 3) else 2
        unit_y = (2 if array_type == 1 else 1) * (1 if frame_mbs_only else 2)
        width -= unit_x * (crops[0] + crops[1])
        height -= unit_y * (crops[2] + crops[3])
        if width <= 0 or height <= 0:
            raise MpegTsError("sps", f"cropping leaves {width}x{height}")
    frame_rate = None
    sar = None
    if r.u(1):  # vui_parameters_present_flag
        frame_rate, sar = _vui(r)
    return H264Sps(
        profile_idc=profile,
        constraint_flags=constraints,
        level_idc=level,
        width=width,
        height=height,
        chroma_format_idc=chroma,
        bit_depth=bit_depth,
        frame_mbs_only=frame_mbs_only,
        frame_rate=frame_rate,
        sample_aspect_ratio=sar,
    )


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + r.se(128) + 256) % 256
        last = nxt or last


def _vui(r: _Bits) -> tuple[float | None, tuple[int, int] | None]:
    """Annex E.1.1 up to the timing info: (frame rate, sample aspect ratio)."""
    sar = None
    if r.u(1):  # aspect_ratio_info_present_flag
        idc = r.u(8)
        if idc == 255:
            sar = (r.u(16), r.u(16))
        elif 0 < idc < len(_SAR):
            sar = _SAR[idc]
    if r.u(1):  # overscan_info_present_flag
        r.u(1)
    if r.u(1):  # video_signal_type_present_flag
        r.u(4)  # video_format, video_full_range_flag
        if r.u(1):  # colour_description_present_flag
            r.u(24)
    if r.u(1):  # chroma_loc_info_present_flag
        r.ue(5)
        r.ue(5)
    if r.u(1):  # timing_info_present_flag
        ticks, scale = r.u(32), r.u(32)
        if ticks and scale:
            return scale / (2 * ticks), sar
    return None, sar
