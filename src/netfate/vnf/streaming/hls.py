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
