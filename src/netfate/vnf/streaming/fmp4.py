"""Just enough ISO BMFF (ISO/IEC 14496-12) to tell whether a fragment starts with
a sync sample: an LL-HLS part that does is INDEPENDENT=YES (a player may start
decoding there). Pure; bounded; one error type.

A box::

    size:u32 type:4cc [largesize:u64 when size == 1] payload     (size 0: to the end)

A fragment is ``moof`` (``traf`` per track: ``tfhd``, ``trun``...) then ``mdat``.
The first sample's flags come from, in this order (14496-12 8.8.8, 8.8.7)::

    trun first_sample_flags        (trun flags & 0x000004)
    trun sample_flags of sample 0  (trun flags & 0x000400)
    tfhd default_sample_flags      (tfhd flags & 0x000020)

and a sample is a sync sample when ``sample_is_non_sync_sample`` (bit 16 of the
flags) is clear. Audio tracks mark every sample sync, so "every track's first
sample is a sync sample" is "the video starts on a key frame". When a track's
flags are nowhere in the fragment (they would be in the init segment's
``trex``), the answer is False: no independence is claimed that cannot be shown.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

NON_SYNC = 0x10000
MAX_DEPTH_BYTES = 1 << 26
_U32 = struct.Struct(">I")


class Mp4Error(ValueError):
    """Bytes that are not the boxes they claim to be."""


def boxes(
    data: bytes | memoryview, start: int = 0, end: int | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box between `start` and `end`."""
    end = len(data) if end is None else end
    off = start
    while off < end:
        if end - off < 8:
            raise Mp4Error(f"{end - off} bytes left, a box header needs 8")
        size = _U32.unpack_from(data, off)[0]
        kind = bytes(data[off + 4 : off + 8])
        header = 8
        if size == 1:
            if end - off < 16:
                raise Mp4Error("a 64-bit box size cut short")
            size = struct.unpack_from(">Q", data, off + 8)[0]
            header = 16
        elif size == 0:
            size = end - off
        if size < header or off + size > end:
            raise Mp4Error(f"box {kind!r} of {size} bytes does not fit in {end - off}")
        yield kind, off + header, off + size
        off += size


def _full_box(data: bytes | memoryview, start: int, end: int) -> int:
    if end - start < 4:
        raise Mp4Error("full box without version and flags")
    return int(_U32.unpack_from(data, start)[0] & 0xFFFFFF)


def _first_sample_flags(data: bytes | memoryview, start: int, end: int) -> int | None:
    """The first sample's flags of one ``traf``, when the fragment says them."""
    default: int | None = None
    first: int | None = None
    for kind, s, e in boxes(data, start, end):
        if kind == b"tfhd":
            flags = _full_box(data, s, e)
            p = s + 8  # version/flags, track_ID
            p += 8 if flags & 0x01 else 0  # base_data_offset
            p += 4 if flags & 0x02 else 0  # sample_description_index
            p += 4 if flags & 0x08 else 0  # default_sample_duration
            p += 4 if flags & 0x10 else 0  # default_sample_size
            if flags & 0x20:
                if p + 4 > e:
                    raise Mp4Error("tfhd cut short")
                default = _U32.unpack_from(data, p)[0]
        elif kind == b"trun" and first is None:
            flags = _full_box(data, s, e)
            if e - s < 8:
                raise Mp4Error("trun cut short")
            count = _U32.unpack_from(data, s + 4)[0]
            p = s + 8 + (4 if flags & 0x01 else 0)  # data_offset
            if flags & 0x04:
                if p + 4 > e:
                    raise Mp4Error("trun cut short")
                first = _U32.unpack_from(data, p)[0]
            elif flags & 0x400 and count:
                p += (4 if flags & 0x100 else 0) + (4 if flags & 0x200 else 0)
                if p + 4 > e:
                    raise Mp4Error("trun cut short")
                first = _U32.unpack_from(data, p)[0]
    return first if first is not None else default


def starts_independent(part: bytes | memoryview) -> bool:
    """True when the first ``moof`` of `part` starts every track on a sync sample."""
    if len(part) > MAX_DEPTH_BYTES:
        raise Mp4Error("fragment too large")
    for kind, s, e in boxes(part):
        if kind != b"moof":
            continue
        tracks = [(ts, te) for k, ts, te in boxes(part, s, e) if k == b"traf"]
        if not tracks:
            return False
        for ts, te in tracks:
            flags = _first_sample_flags(part, ts, te)
            if flags is None or flags & NON_SYNC:
                return False
        return True
    return False
