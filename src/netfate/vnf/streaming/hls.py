"""HLS playlists (RFC 8216): reading ffmpeg's, writing masters and VoD ones. Pure.

A media playlist as ffmpeg's hls muxer writes it::

    #EXTM3U
    #EXT-X-VERSION:7
    #EXT-X-TARGETDURATION:1
    #EXT-X-MEDIA-SEQUENCE:12
    #EXT-X-MAP:URI="init.mp4"          (fMP4 segments only)
    #EXTINF:1.000000,
    seg12.m4s
    ...
    #EXT-X-ENDLIST                     (once it finished)

:func:`parse_media` reads one (tags it does not need are skipped; a malformed
EXTINF or a URI without EXTINF raises :class:`HlsError`). :func:`vod_playlist`
writes the seekable playlist of a recording made of one or more *runs* (one per
segmenter process: a restart or a migration starts a new run with its own
initialisation section, announced by EXT-X-DISCONTINUITY).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_PLAYLIST = 1 << 20
"""Bytes of a playlist the parser reads at most."""
_URI = re.compile(r'URI="([^"]{1,512})"')


class HlsError(ValueError):
    """A playlist that cannot be read."""


@dataclass(frozen=True)
class Segment:
    uri: str
    duration: float
    discontinuity: bool = False


@dataclass
class MediaPlaylist:
    target_duration: int = 0
    media_sequence: int = 0
    map_uri: str | None = None
    segments: list[Segment] = field(default_factory=list)
    ended: bool = False
    playlist_type: str | None = None

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)


def parse_media(text: str) -> MediaPlaylist:
    if len(text) > MAX_PLAYLIST:
        raise HlsError("playlist too large")
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise HlsError("no #EXTM3U header")
    pl = MediaPlaylist()
    duration: float | None = None
    discontinuity = False
    for ln in lines[1:]:
        if not ln:
            continue
        if ln.startswith("#"):
            tag, _, value = ln.partition(":")
            if tag == "#EXTINF":
                try:
                    duration = float(value.split(",", 1)[0])
                except ValueError:
                    raise HlsError(f"bad EXTINF {value!r}") from None
                if not math.isfinite(duration) or duration < 0:
                    raise HlsError(f"bad EXTINF {value!r}")
            elif tag == "#EXT-X-TARGETDURATION":
                pl.target_duration = _int(value, tag)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                pl.media_sequence = _int(value, tag)
            elif tag == "#EXT-X-MAP":
                m = _URI.search(value)
                if m is None:
                    raise HlsError("EXT-X-MAP without URI")
                pl.map_uri = m.group(1)
            elif tag == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif tag == "#EXT-X-ENDLIST":
                pl.ended = True
            elif tag == "#EXT-X-PLAYLIST-TYPE":
                pl.playlist_type = value
            continue
        if duration is None:
            raise HlsError(f"segment {ln!r} without #EXTINF")
        pl.segments.append(Segment(ln, duration, discontinuity))
        duration, discontinuity = None, False
    return pl


def _int(value: str, tag: str) -> int:
    if not value.isdigit() or len(value) > 18:
        raise HlsError(f"bad {tag} {value!r}")
    return int(value)


@dataclass(frozen=True)
class Run:
    """Segments written by one segmenter process."""

    segments: tuple[Segment, ...]
    map_uri: str | None = None


def vod_playlist(runs: Sequence[Run], version: int = 7) -> str:
    """A complete, seekable playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST)."""
    segs = [s for r in runs for s in r.segments]
    target = max((math.ceil(s.duration) for s in segs), default=1)
    out = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{version}",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    first = True
    for r in runs:
        if not r.segments:
            continue
        if not first:
            out.append("#EXT-X-DISCONTINUITY")
        first = False
        if r.map_uri:
            out.append(f'#EXT-X-MAP:URI="{r.map_uri}"')
        for s in r.segments:
            out += [f"#EXTINF:{s.duration:.6f},", s.uri]
    out.append("#EXT-X-ENDLIST")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Variant:
    uri: str
    bandwidth: int
    """Peak bits per second (required by RFC 8216 4.3.4.2)."""
    resolution: tuple[int, int] | None = None
    name: str = ""


def master_playlist(variants: Sequence[Variant]) -> str:
    out = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: -v.bandwidth):
        attrs = [f"BANDWIDTH={max(v.bandwidth, 1)}"]
        if v.resolution is not None:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.name:
            attrs.append(f'NAME="{v.name}"')
        out += ["#EXT-X-STREAM-INF:" + ",".join(attrs), v.uri]
    return "\n".join(out) + "\n"


CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".sdp": "application/sdp",
}
FILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\.(m3u8|ts|m4s|mp4)")
"""The only file names the HLS endpoints serve (no paths, no dot files)."""


# ----------------------------------------------------------------------- low latency


@dataclass(frozen=True)
class Part:
    """One partial segment (an ffmpeg segment of ``part_s`` written with split_by_time)."""

    index: int
    uri: str
    duration: float
    independent: bool
    """It starts with a sync sample (fmp4.starts_independent)."""


@dataclass
class LlSegment:
    msn: int
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    discontinuity: bool = False

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)


class LowLatencyPlaylist:
    """An LL-HLS media playlist (RFC 8216bis 4.4.4.9, 4.4.5.2, 6.2.5.2) built from parts.

    Parts arrive in order (:meth:`add_part`). A segment is made of consecutive
    parts: a new one starts at an independent part once the open segment holds at
    least 80% of ``segment_s`` (so segments follow the key frames where parts do),
    and otherwise where the open one would pass ``segment_s`` by more than half a
    part. ffmpeg cuts parts by time (split_by_time), so a key frame usually falls
    inside a part rather than at its start: such segments are not independent
    (EXT-X-INDEPENDENT-SEGMENTS is not claimed), which players handle by decoding
    from the next key frame. Segments are numbered (media sequence numbers) from 0
    and never renumbered.

    The playlist keeps ``window`` complete segments and the open one, lists the
    parts of the last three segments and of the open one, and hints the next part
    (EXT-X-PRELOAD-HINT). A player that does not do LL-HLS reads the segments and
    ignores the rest; one that does plays ``PART-HOLD-BACK`` (three part targets)
    behind the live edge.
    """

    def __init__(self, part_s: float, segment_s: float, window: int = 6) -> None:
        self.part_target = part_s
        self.segment_s = segment_s
        self.window = window
        self.segments: list[LlSegment] = []
        self.target = max(1, math.ceil(segment_s))
        self.next_index: int | None = None
        self._discontinuity = False

    def add_part(self, part: Part) -> None:
        open_ = self.segments[-1] if self.segments and not self.segments[-1].complete else None
        if open_ is not None and (
            (part.independent and open_.duration >= 0.8 * self.segment_s)
            or open_.duration + part.duration / 2 > self.segment_s
            or self._discontinuity
        ):
            open_.complete = True
            self.target = max(self.target, math.ceil(open_.duration))
            open_ = None
        if open_ is None:
            msn = self.segments[-1].msn + 1 if self.segments else 0
            open_ = LlSegment(msn, discontinuity=self._discontinuity)
            self._discontinuity = False
            self.segments.append(open_)
        open_.parts.append(part)
        self.part_target = max(self.part_target, math.ceil(part.duration * 1000) / 1000)
        self.next_index = part.index + 1
        complete = [s for s in self.segments if s.complete]
        if len(complete) > self.window:
            drop = len(complete) - self.window
            self.segments = self.segments[drop:]

    def discontinuity(self) -> None:
        """The segmenter restarted (new initialisation section): close the open segment."""
        self._discontinuity = True

    @property
    def last(self) -> tuple[int, int] | None:
        """(msn, part number within it) of the newest part."""
        if not self.segments:
            return None
        s = self.segments[-1]
        return s.msn, len(s.parts) - 1

    def has(self, msn: int, part: int | None) -> bool:
        """The playlist holds segment `msn` (complete) or its part number `part`."""
        for s in reversed(self.segments):
            if s.msn == msn:
                return s.complete if part is None else (s.complete or len(s.parts) > part)
            if s.msn < msn:
                return False
        return bool(self.segments) and msn < self.segments[0].msn

    def segment(self, msn: int) -> LlSegment | None:
        for s in self.segments:
            if s.msn == msn and s.complete:
                return s
        return None

    def render(self, map_uri: str = "init.mp4", suffix: str = "") -> str:
        complete = [s for s in self.segments if s.complete]
        recent = {s.msn for s in complete[-3:]}
        out = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{self.target}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * self.part_target:.3f}",
            f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.segments[0].msn if self.segments else 0}",
            f'#EXT-X-MAP:URI="{map_uri}"',
        ]
        for s in self.segments:
            if s.discontinuity:
                out.append("#EXT-X-DISCONTINUITY")
            if not s.complete or s.msn in recent:
                for p in s.parts:
                    flag = ",INDEPENDENT=YES" if p.independent else ""
                    out.append(f'#EXT-X-PART:DURATION={p.duration:.5f},URI="{p.uri}{suffix}"{flag}')
            if s.complete:
                out += [f"#EXTINF:{s.duration:.5f},", f"s{s.msn}.m4s{suffix}"]
        if self.next_index is not None:
            out.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p{self.next_index}.m4s{suffix}"')
        return "\n".join(out) + "\n"
