"""The edge streamer: a leaf of the delivery tree, on the viewers' access PE.

It takes one or more *contents* (the paper's rule reuses a streamer already
serving content X, or gives one with spare capacity another content), each
arriving as RTP/MPEG-TS on its own port, and serves each in up to five
*renditions*: ``source`` (the stream as it arrives) and lower ones transcoded by
ffmpeg when configured. Each rendition reaches viewers two ways:

- **RTP** to native clients: the streamer copies the rendition's datagrams to
  every viewer (the same fan-out as a forwarder). A viewer joins with
  ``POST /rtp/CONTENT/RENDITION/join?port=P`` (the stream goes to the address the
  request came from, port P; the answer is its SDP) and leaves with ``.../leave``;
  joins hold a lease (``join.lease_s``) and a join again renews it. The
  configuration may also list viewers (no lease). ``GET
  /rtp/CONTENT/RENDITION.sdp?port=P`` gives the SDP without joining.
- **HLS** to browsers: an ffmpeg segmenter per rendition (``-c copy``) writes
  fMP4 (or TS) segments into the streamer's work directory, served from
  ``/hls/CONTENT/RENDITION/index.m3u8``; ``/hls/CONTENT/index.m3u8`` is the master
  playlist over the renditions. A new viewer's first frame comes soon: the stream
  held while it was recognised starts the segmenter (``hls.preroll_s``: its first
  segment begins at the key frame recognition waited for), ffmpeg probes briefly
  (``hls.probe_s``: the streamer already knows the codecs), a media playlist asked
  for before its first segment is held until it exists (``hls.wait_first_s``), and
  players start ``hls.start_segments`` back from the live edge (EXT-X-START).

A lower rendition is an ffmpeg transcoder fed with the source's TS on stdin and
sending RTP/MPEG-TS to an internal port, from where it is served exactly as the
source is (its own viewers and segmenter). Its key frames are forced on the
segment boundaries, so its HLS segments are exactly ``hls.segment_s`` long.

Bounded: ``join.max_viewers`` over all contents and ``join.per_address``
viewers per address (beyond: 503 with the reason); with ``join.secret`` a join
needs a token (tokens.py, scope ``join:CONTENT:ADDRESS``), since a join makes
the streamer send to the joining address.

Config::

    {"contents": [{"id": "X", "port": 7000, "sources": ["10.0.9.1"],   # sources optional
                   "hls": true,
                   "renditions": [{"name": "low", "height": 240, "video_kbps": 400,
                                   "audio_kbps": 64}],
                   "viewers": [{"host": "10.0.3.7", "port": 5004, "rendition": "source"}]}],
     "http_port": 8080, "bind": "0.0.0.0",
     "hls": {"segment_s": 1.0, "list_size": 6, "format": "fmp4", "probe_s": 0.5,
             "start_segments": 2, "preroll_s": 2, "wait_first_s": 8},
     "join": {"secret": null, "lease_s": 300, "max_viewers": 200, "per_address": 8},
     "work_dir": null, "source_timeout": 10,
     "vod": {"secret": "...", "recordings": [{"id": "r5", "user": "alice",
             "origin": "http://10.0.1.2:8081/vod/r5/", "origin_secret": "..."}]}}

``vod``: recordings played on demand through this streamer, pulled from the
storage function and cached (vod.py): ``GET /vod/RECORDING/index.m3u8?token=T``.

``configure`` applies content, viewer, rendition and join changes in place
(existing viewers keep receiving); ``http_port``, ``bind``, ``hls``, ``work_dir``
and ``source_timeout`` need a restart. State: joined viewers with their leases,
and the event outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import tempfile
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.vnf.portal.http import HttpError, Request, Response
from netfate.vnf.runtime import Context

from . import config as c
from . import tokens
from .base import StreamingFunction, StreamInput, open_all
from .events import ViewerJoined, ViewerLeft
from .ffmpeg import FfmpegChild
from .fmp4 import Mp4Error, starts_independent
from .hls import (
    CONTENT_TYPES,
    FILE_NAME,
    HlsError,
    LowLatencyPlaylist,
    MediaPlaylist,
    Part,
    Variant,
    master_playlist,
    parse_media,
)
from .net import Fanout, UdpPort
from .path import RelaySettings, RtpPath, internal_input
from .sdp import stream_sdp
from .vod import VodRelay, VodSettings

MAX_CONTENTS = 16
MAX_RENDITIONS = 4
SOURCE = "source"
PROBE = ("-probesize", "1000000", "-analyzeduration", "2000000")
"""The transcoders' probe (the segmenters': ``hls.probe_s``)."""
PART_POLL_S = 0.02
PREROLL_BYTES = 4 << 20
"""At most this much of the stream is held for a segmenter's start (hls.preroll_s)."""
"""How often an LL-HLS feed looks at ffmpeg's parts playlist (a stat when unchanged)."""


@dataclass(frozen=True)
class RenditionConfig:
    name: str
    height: int
    video_kbps: int
    audio_kbps: int = 96

    @classmethod
    def parse(cls, value: Any, where: str) -> RenditionConfig:
        d = c.obj(value, where, ("name", "height", "video_kbps", "audio_kbps"))
        r = cls(
            name=c.name(d, "name", where),
            height=c.integer(d, "height", where, lo=72, hi=2160),
            video_kbps=c.integer(d, "video_kbps", where, lo=50, hi=50000),
            audio_kbps=c.integer(d, "audio_kbps", where, lo=16, hi=512, default=96),
        )
        if r.name == SOURCE or r.height % 2:
            raise c.ConfigError(f"{where}: the name {SOURCE!r} is taken; heights are even")
        return r


@dataclass(frozen=True)
class ViewerConfig:
    hop: c.Hop
    rendition: str = SOURCE

    @classmethod
    def parse(cls, value: Any, where: str) -> ViewerConfig:
        d = c.obj(value, where, ("host", "port", "rendition"))
        hop = c.Hop.parse({"host": d.get("host"), "port": d.get("port")}, where)
        return cls(hop, c.name(d, "rendition", where, default=SOURCE))


@dataclass(frozen=True)
class ContentConfig:
    id: str
    port: int
    sources: frozenset[str] | None = None
    hls: bool = True
    renditions: tuple[RenditionConfig, ...] = ()
    viewers: tuple[ViewerConfig, ...] = ()

    @classmethod
    def parse(cls, value: Any, where: str) -> ContentConfig:
        d = c.obj(value, where, ("id", "port", "sources", "hls", "renditions", "viewers"))
        rends = [
            RenditionConfig.parse(r, f"{where}.renditions[{i}]")
            for i, r in enumerate(c.listed(d, "renditions", where, max_items=MAX_RENDITIONS))
        ]
        c.unique(rends, lambda r: r.name, f"{where}.renditions", "rendition")
        viewers = [
            ViewerConfig.parse(v, f"{where}.viewers[{i}]")
            for i, v in enumerate(c.listed(d, "viewers", where, max_items=c.MAX_HOPS))
        ]
        names = {SOURCE, *(r.name for r in rends)}
        for i, v in enumerate(viewers):
            if v.rendition not in names:
                raise c.ConfigError(f"{where}.viewers[{i}]: no rendition {v.rendition!r}")
        c.unique(viewers, lambda v: (v.rendition, v.hop.key), f"{where}.viewers", "viewer")
        return cls(
            id=c.name(d, "id", where),
            port=c.integer(d, "port", where, lo=1, hi=65534),
            sources=c.addresses(d, "sources", where),
            hls=c.boolean(d, "hls", where, default=True),
            renditions=tuple(rends),
            viewers=tuple(viewers),
        )


@dataclass(frozen=True)
class HlsSettings:
    segment_s: float = 1.0
    list_size: int = 6
    format: str = "fmp4"
    low_latency: bool = False
    """LL-HLS: ffmpeg writes parts of ``part_s``; the streamer writes the playlist."""
    part_s: float = 0.2
    probe_s: float = 0.5
    """The segmenter's ffmpeg analyses this much stream (-analyzeduration) before it
    writes. The streamer starts it only once its own analyser recognised the stream,
    and ffmpeg reads on until it has the codecs' parameters anyway (up to the probe
    size), so a short one is enough; 2 s cost a new streamer's first segment 1.4 s."""
    start_segments: float = 2.0
    """EXT-X-START:TIME-OFFSET of the media playlists, in segments back from the live
    edge (0: none). Players (hls.js, ffmpeg with prefer_x_start) start there instead
    of three target durations back; two 1 s segments keep HLS glass-to-glass < 3 s."""
    preroll_s: float = 2.0
    """A segmenter starts with the stream's last seconds, held while the stream was
    recognised and ffmpeg spawned: its first segment begins at the key frame the
    recognition waited for, not at the next one a GOP later (0: none)."""
    wait_first_s: float = 8.0
    """A media playlist asked for before its first segment is held this long for it,
    as a blocking reload, rather than a 404 that players retry a second or more
    later (0: 404 at once)."""

    @classmethod
    def parse(cls, value: Any) -> HlsSettings:
        w = "config.hls"
        keys = ("segment_s", "list_size", "format", "low_latency", "part_s", "probe_s",
                "start_segments", "preroll_s", "wait_first_s")  # fmt: skip
        d = c.obj(value or {}, w, keys)
        hls = cls(
            segment_s=c.number(d, "segment_s", w, lo=0.2, hi=10, default=1.0),
            list_size=c.integer(d, "list_size", w, lo=3, hi=30, default=6),
            format=c.choice(d, "format", w, ("fmp4", "ts"), default="fmp4"),
            low_latency=c.boolean(d, "low_latency", w, default=False),
            part_s=c.number(d, "part_s", w, lo=0.1, hi=1.0, default=0.2),
            probe_s=c.number(d, "probe_s", w, lo=0.1, hi=5.0, default=0.5),
            start_segments=c.number(d, "start_segments", w, lo=0, hi=10, default=2.0),
            preroll_s=c.number(d, "preroll_s", w, lo=0, hi=10, default=2.0),
            wait_first_s=c.number(d, "wait_first_s", w, lo=0, hi=30, default=8.0),
        )
        if hls.low_latency and hls.format != "fmp4":
            raise c.ConfigError(f"{w}.low_latency: needs format fmp4")
        if hls.low_latency and hls.part_s > hls.segment_s / 2:
            raise c.ConfigError(f"{w}.part_s: at most half of segment_s")
        return hls


@dataclass(frozen=True)
class JoinSettings:
    secret: str | None = None
    lease_s: float = 300.0
    max_viewers: int = 200
    per_address: int = 8

    @classmethod
    def parse(cls, value: Any) -> JoinSettings:
        w = "config.join"
        d = c.obj(value or {}, w, ("secret", "lease_s", "max_viewers", "per_address"))
        secret = c.text(d, "secret", w, max_len=256) if d.get("secret") is not None else None
        if secret is not None and len(secret) < 16:
            raise c.ConfigError(f"{w}.secret: at least 16 characters")
        return cls(
            secret=secret,
            lease_s=c.number(d, "lease_s", w, lo=5, hi=86400, default=300.0),
            max_viewers=c.integer(d, "max_viewers", w, lo=1, hi=10000, default=200),
            per_address=c.integer(d, "per_address", w, lo=1, hi=64, default=8),
        )


@dataclass(frozen=True)
class EdgeConfig:
    contents: tuple[ContentConfig, ...]
    http_port: int = 8080
    bind: str = "0.0.0.0"
    hls: HlsSettings = field(default_factory=HlsSettings)
    join: JoinSettings = field(default_factory=JoinSettings)
    work_dir: str | None = None
    relay: RelaySettings = field(default_factory=RelaySettings)
    vod: VodSettings = field(default_factory=VodSettings)

    @classmethod
    def parse(cls, value: Any) -> EdgeConfig:
        w = "config"
        d = c.obj(value, w, (
            "contents", "http_port", "bind", "hls", "join", "work_dir", "source_timeout",
            "vod",
        ))  # fmt: skip
        contents = [
            ContentConfig.parse(x, f"{w}.contents[{i}]")
            for i, x in enumerate(c.listed(d, "contents", w, max_items=MAX_CONTENTS))
        ]
        c.unique(contents, lambda x: x.id, f"{w}.contents", "content")
        ports = [p for x in contents for p in (x.port, x.port + 1)]
        c.unique(ports, lambda p: p, f"{w}.contents", "port (RTP or RTCP)")
        http_port = c.port(d, "http_port", w, default=8080)
        if http_port in ports:
            raise c.ConfigError(f"{w}.http_port: {http_port} is a content's port")
        work_dir = c.text(d, "work_dir", w, max_len=1024) if d.get("work_dir") else None
        if work_dir is not None and not work_dir.startswith("/"):
            raise c.ConfigError(f"{w}.work_dir: must be an absolute path")
        return cls(
            contents=tuple(contents),
            http_port=http_port,
            bind=c.address(d.get("bind", "0.0.0.0"), f"{w}.bind"),
            hls=HlsSettings.parse(d.get("hls")),
            join=JoinSettings.parse(d.get("join")),
            work_dir=work_dir,
            relay=RelaySettings(
                source_timeout=c.number(d, "source_timeout", w, lo=1, hi=3600, default=10.0)
            ),
            vod=VodSettings.parse(d.get("vod")),
        )


def _probe(hls: HlsSettings) -> list[str]:
    return ["-probesize", "1000000", "-analyzeduration", str(round(hls.probe_s * 1e6))]


def with_start(playlist: bytes, hls: HlsSettings) -> bytes:
    """A live media playlist with EXT-X-START ``hls.start_segments`` back from its end
    (right after #EXTM3U; as it is when that is 0 or the playlist has one already)."""
    if hls.start_segments <= 0 or b"#EXT-X-START" in playlist:
        return playlist
    head, sep, rest = playlist.partition(b"\n")
    if head.strip() != b"#EXTM3U" or not sep:
        return playlist
    offset = -hls.start_segments * hls.segment_s
    return b"%s\n#EXT-X-START:TIME-OFFSET=%.3f\n%s" % (head, offset, rest)


def segmenter_args(
    hls: HlsSettings, start_number: int, restarted: bool, audio: Sequence[str] = ()
) -> list[str]:
    """ffmpeg arguments of a copy segmenter reading TS on stdin, run in its directory.
    `audio`: the audio codecs of the stream (AAC in fMP4 needs its ADTS headers
    turned into an AudioSpecificConfig)."""
    ext = "m4s" if hls.format == "fmp4" else "ts"
    # omit_endlist: a segmenter that restarts must not tell players the stream ended.
    flags = "delete_segments+independent_segments+temp_file+omit_endlist"
    if restarted:
        flags += "+discont_start"
    args = [*_probe(hls), "-f", "mpegts", "-i", "pipe:0", "-map", "0:v?", "-map", "0:a?"]
    args += ["-c", "copy"]
    if hls.format == "fmp4" and "aac" in audio:
        args += ["-bsf:a", "aac_adtstoasc"]
    args += ["-f", "hls", "-hls_time", f"{hls.segment_s:g}", "-hls_list_size", str(hls.list_size)]
    args += ["-hls_delete_threshold", "3", "-hls_flags", flags, "-start_number", str(start_number)]
    if hls.format == "fmp4":
        args += ["-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4"]
    return [*args, "-hls_segment_filename", f"seg%d.{ext}", "index.m3u8"]


def ll_segmenter_args(
    hls: HlsSettings, start_number: int, restarted: bool, audio: Sequence[str] = ()
) -> list[str]:
    """LL-HLS: ffmpeg (5.1 writes no EXT-X-PART) cuts ``part_s`` fMP4 fragments at any
    frame (split_by_time) into ``parts.m3u8``; the streamer groups them into segments
    and writes the LL-HLS playlist itself (hls.LowLatencyPlaylist)."""
    flags = "split_by_time+delete_segments+temp_file+omit_endlist"
    if restarted:
        flags += "+discont_start"
    # Enough parts for the streamer's window of segments of up to 2 * segment_s.
    keep = (hls.list_size + 4) * math.ceil(2 * hls.segment_s / hls.part_s)
    args = [*_probe(hls), "-f", "mpegts", "-i", "pipe:0", "-map", "0:v?", "-map", "0:a?"]
    args += ["-c", "copy"]
    if "aac" in audio:
        args += ["-bsf:a", "aac_adtstoasc"]
    return [
        *args, "-f", "hls", "-hls_time", f"{hls.part_s:g}", "-hls_list_size", str(keep),
        "-hls_delete_threshold", "3", "-hls_flags", flags, "-start_number", str(start_number),
        "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
        "-hls_segment_filename", "p%d.m4s", "parts.m3u8",
    ]  # fmt: skip


def transcoder_args(r: RenditionConfig, segment_s: float, rtp_port: int) -> list[str]:
    """ffmpeg arguments of a transcoder reading TS on stdin, sending RTP/MPEG-TS."""
    kbps = r.video_kbps
    return [
        *PROBE, "-f", "mpegts", "-i", "pipe:0", "-map", "0:v:0", "-map", "0:a?",
        "-vf", f"scale=-2:{r.height}", "-pix_fmt", "yuv420p",
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps}k",
        # Key frames on the segment boundaries: HLS segments of exactly segment_s.
        "-force_key_frames", f"expr:gte(t,n_forced*{segment_s:g})",
        "-c:a", "aac", "-b:a", f"{r.audio_kbps}k",
        "-f", "rtp_mpegts", f"rtp://127.0.0.1:{rtp_port}?pkt_size=1328",
    ]  # fmt: skip


def next_segment_number(directory: Path, prefix: str = "seg") -> int:
    """One past the highest segment number in `directory` (0 if none): a restarted
    segmenter continues the numbering, so players never see it go back."""
    best = -1
    for p in directory.glob(f"{prefix}*.*"):
        digits = p.stem[len(prefix) :]
        if digits.isdigit():
            best = max(best, int(digits))
    return best + 1


@dataclass
class Viewer:
    hop: c.Hop
    via: str
    """``config`` or ``join``."""
    expires: float | None = None
    """Monotonic time its lease ends (None: configured, no lease)."""


class Feed:
    """One rendition of a content: its RTP viewers and its HLS segmenter."""

    def __init__(self, content: str, name: str, fn: EdgeStreamer, directory: Path) -> None:
        self.content = content
        self.name = name
        self.fn = fn
        self.dir = directory
        self.fanout = Fanout(fn.sender)
        # Analysed: HLS needs the codecs, the master playlist the picture size and rate.
        self.path = RtpPath(self.fanout, fn.cfg.relay, analyze=True)
        self.want_hls = False
        self.preroll: deque[tuple[float, bytes]] = deque()
        self.preroll_bytes = 0
        self.ll: LowLatencyPlaylist | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()
        """Set (and replaced) whenever the LL-HLS playlist gets a part."""
        self.viewers: dict[str, Viewer] = {}
        self.segmenter: FfmpegChild | None = None
        self.transcoder: FfmpegChild | None = None
        self.internal: list[UdpPort] = []
        self.rendition: RenditionConfig | None = None

    def sync(self) -> None:
        self.fanout.set_hops(v.hop for v in self.viewers.values())

    def start_hls(self) -> None:
        """Start segmenting once the stream is recognised (the segmenter's arguments
        depend on its codecs); until then `want_hls` makes tick() try again."""
        self.want_hls = True
        prog = self.path.programme
        hls = self.fn.cfg.hls
        if self.segmenter is not None:
            return
        if prog is None:
            if hls.preroll_s > 0:
                self.path.sinks["hls"] = self._hold
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        audio = [s.codec for s in prog.streams if s.kind == "audio"]

        def args() -> list[str]:
            start = next_segment_number(self.dir)
            return segmenter_args(hls, start, restarted=start > 0, audio=audio)

        if hls.low_latency:

            def args() -> list[str]:
                start = next_segment_number(self.dir, "p")
                return ll_segmenter_args(hls, start, restarted=start > 0, audio=audio)

            self.ll = LowLatencyPlaylist(hls.part_s, hls.segment_s, hls.list_size)
            self.watcher = asyncio.get_running_loop().create_task(self._watch_parts())
        self.segmenter = FfmpegChild(
            f"hls:{self.content}/{self.name}", args, stdin=True, cwd=self.dir,
            on_exit=self.fn.helper_exited, preroll_s=hls.preroll_s,
        )  # fmt: skip
        for at, data in self.preroll:
            self.segmenter.hold(data, at)
        self.preroll.clear()
        self.preroll_bytes = 0
        self.path.sinks["hls"] = self.segmenter.feed
        self.segmenter.start()

    def _hold(self, data: bytes) -> None:
        """The stream while it is being recognised: its last ``hls.preroll_s`` seconds."""
        now = time.monotonic()
        self.preroll.append((now, data))
        self.preroll_bytes += len(data)
        keep = self.fn.cfg.hls.preroll_s
        while now - self.preroll[0][0] > keep or self.preroll_bytes > PREROLL_BYTES:
            self.preroll_bytes -= len(self.preroll.popleft()[1])

    async def _watch_parts(self) -> None:
        """Follow ffmpeg's parts.m3u8 (every PART_POLL_S) into the LL-HLS playlist."""
        playlist = self.dir / "parts.m3u8"
        seen: tuple[int, int] | None = None
        last = -1
        while True:
            await asyncio.sleep(PART_POLL_S)
            try:
                st = playlist.stat()
            except OSError:
                continue
            if (st.st_mtime_ns, st.st_size) == seen:
                continue
            seen = (st.st_mtime_ns, st.st_size)
            try:
                media = parse_media(playlist.read_text())
            except (OSError, HlsError):
                continue
            added = False
            for seg in media.segments:
                index = _part_index(seg.uri)
                if index is None or index <= last or self.ll is None:
                    continue
                try:
                    independent = starts_independent((self.dir / seg.uri).read_bytes())
                except (OSError, Mp4Error):
                    independent = False
                if seg.discontinuity:
                    self.ll.discontinuity()
                self.ll.add_part(Part(index, seg.uri, seg.duration, independent))
                last, added = index, True
            if added:
                self.changed.set()
                self.changed = asyncio.Event()

    async def wait_for(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Until `ready()` (re-checked at each new part) or `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True

    async def stop_hls(self) -> None:
        self.want_hls = False
        self.path.sinks.pop("hls", None)
        self.preroll.clear()
        self.preroll_bytes = 0
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None
        if self.segmenter is not None:
            seg, self.segmenter = self.segmenter, None
            await seg.stop(grace=2.0)

    def start_transcoder(self, r: RenditionConfig, source: RtpPath) -> None:
        """This feed is a lower rendition of `source`: ffmpeg in between."""
        self.rendition = r
        self.internal, port = internal_input(self.path)
        self.transcoder = FfmpegChild(
            f"transcode:{self.content}/{self.name}",
            transcoder_args(r, self.fn.cfg.hls.segment_s, port),
            stdin=True, on_exit=self.fn.helper_exited,
        )  # fmt: skip
        source.sinks[f"transcode:{self.name}"] = self.transcoder.feed
        self.transcoder.start()

    async def close(self, source: RtpPath | None = None) -> None:
        if source is not None:
            source.sinks.pop(f"transcode:{self.name}", None)
        self.fanout.set_hops(())
        for p in self.internal:
            p.close()
        self.internal = []
        if self.transcoder is not None:
            await self.transcoder.stop(grace=2.0)
        await self.stop_hls()

    def playlist(self) -> MediaPlaylist | None:
        try:
            return parse_media((self.dir / "index.m3u8").read_text())
        except (OSError, ValueError):
            return None

    def variant(self, content: str) -> Variant:
        uri = f"{self.name}/index.m3u8"
        if self.rendition is not None:
            r = self.rendition
            return Variant(uri, (r.video_kbps + r.audio_kbps) * 1100, None, self.name)
        res = None
        prog = self.path.programme
        if prog is not None:
            for s in prog.streams:
                if s.video is not None:
                    res = (s.video.width, s.video.height)
        rate = self.path.bitrate.get("pcr") or self.path.bitrate.get("arrival") or 5e6
        return Variant(uri, int(rate * 1.2), res, self.name)

    def stats(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "viewers": [
                {
                    "viewer": k,
                    "via": v.via,
                    "lease_left_s": None if v.expires is None else round(v.expires - now, 1),
                }
                for k, v in self.viewers.items()
            ],
            "path": self.path.stats(now),
        }
        if self.segmenter is not None:
            out["hls"] = self.segmenter.stats()
            if self.ll is not None:
                out["hls"].update(
                    segments=len([s for s in self.ll.segments if s.complete]),
                    newest_part=self.ll.last,
                    part_target=self.ll.part_target,
                )
            else:
                pl = self.playlist()
                out["hls"].update(
                    segments=len(pl.segments) if pl else 0,
                    media_sequence=pl.media_sequence if pl else None,
                )
        if self.transcoder is not None:
            out["transcoder"] = self.transcoder.stats()
        return out


class Content:
    """One content: its input port and its feeds (``source`` and lower renditions)."""

    def __init__(self, cfg: ContentConfig, fn: EdgeStreamer) -> None:
        self.cfg = cfg
        self.fn = fn
        self.dir = fn.work / "hls" / cfg.id
        self.source = Feed(cfg.id, SOURCE, fn, self.dir / SOURCE)
        self.source.path.sources = cfg.sources
        self.feeds: dict[str, Feed] = {SOURCE: self.source}
        self.input = StreamInput(fn, cfg.port, self.source.path, bind=fn.cfg.bind)

    def start(self) -> None:
        self.apply(self.cfg)

    def apply(self, cfg: ContentConfig) -> None:
        """Bring renditions, HLS and configured viewers to `cfg` (same port)."""
        self.cfg = cfg
        self.source.path.sources = cfg.sources
        wanted = {r.name: r for r in cfg.renditions}
        for name, feed in list(self.feeds.items()):
            if name != SOURCE and (name not in wanted or feed.rendition != wanted[name]):
                del self.feeds[name]
                self.fn.later(feed.close(self.source.path))
        for name, r in wanted.items():
            if name not in self.feeds:
                feed = Feed(cfg.id, name, self.fn, self.dir / name)
                feed.start_transcoder(r, self.source.path)
                self.feeds[name] = feed
        for feed in self.feeds.values():
            if cfg.hls:
                feed.start_hls()
            elif feed.want_hls:
                self.fn.later(feed.stop_hls())
        configured = {(v.rendition, v.hop.key): v for v in cfg.viewers}
        for feed in self.feeds.values():
            for key, v in list(feed.viewers.items()):
                if v.via == "config" and (feed.name, key) not in configured:
                    del feed.viewers[key]
                    self.fn.left(cfg.id, feed.name, key, "removed")
        for (rendition, key), vc in configured.items():
            feed = self.feeds[rendition]
            old = feed.viewers.get(key)
            if old is None or old.via != "config":
                feed.viewers[key] = Viewer(vc.hop, "config")
                if old is None:
                    self.fn.joined(cfg.id, rendition, key, "config")
        for feed in self.feeds.values():
            feed.sync()

    async def close(self) -> None:
        self.input.close()
        for name, feed in self.feeds.items():
            await feed.close(self.source.path if name != SOURCE else None)


class EdgeStreamer(StreamingFunction):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = EdgeConfig.parse(ctx.config)
        self._own_work = self.cfg.work_dir is None
        self.work = Path(
            self.cfg.work_dir or tempfile.mkdtemp(prefix=f"netfate-edge-{ctx.instance[:32]}-")
        )
        self.contents: dict[str, Content] = {}
        self.vod = VodRelay(self.cfg.vod, self.work / "vod")
        self.requests = 0
        self.joins = 0
        self.refused_joins: dict[str, int] = {}

    # ----- life ----------------------------------------------------------------------

    async def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        contents = [Content(cc, self) for cc in self.cfg.contents]
        open_all(x.input for x in contents)
        for content in contents:
            self.contents[content.cfg.id] = content
            content.start()
        await self.serve_http(self.cfg.bind, self.cfg.http_port, self.handle)
        await super().start()

    async def stop(self) -> None:
        for content in self.contents.values():
            await content.close()
        await super().stop()
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def joined(self, content: str, rendition: str, viewer: str, via: str) -> None:
        self.emit(ViewerJoined(content, rendition, viewer, via, time.time()))

    def left(self, content: str, rendition: str, viewer: str, reason: str) -> None:
        self.emit(ViewerLeft(content, rendition, viewer, reason, time.time()))

    def tick(self, now: float) -> None:
        for content in self.contents.values():
            for feed in content.feeds.values():
                feed.path.poll(now)
                feed.path.take_events()
                feed.path.take_recognition()
                if feed.want_hls and feed.segmenter is None:
                    feed.start_hls()
                expired = [k for k, v in feed.viewers.items() if v.expires and v.expires < now]
                for key in expired:
                    del feed.viewers[key]
                    self.left(content.cfg.id, feed.name, key, "lease_expired")
                if expired:
                    feed.sync()

    # ----- viewers -------------------------------------------------------------------

    def viewer_count(self) -> int:
        return sum(len(f.viewers) for x in self.contents.values() for f in x.feeds.values())

    def join(self, content: str, rendition: str, host: str, port: int, token: str) -> str | None:
        """Add (or renew) a joined viewer; None, or why not (the HTTP status's reason)."""
        feed = self._feed(content, rendition)
        secret = self.cfg.join.secret
        if secret is not None and not tokens.check(
            secret, f"join:{content}:{host}", token, time.time()
        ):
            return "forbidden: no valid token for this content and address"
        hop = c.Hop(host, port)
        lease = time.monotonic() + self.cfg.join.lease_s
        old = feed.viewers.get(hop.key)
        if old is not None:
            if old.via == "join":
                old.expires = lease
            return None
        if self.viewer_count() >= self.cfg.join.max_viewers:
            return f"full: this streamer serves its maximum of {self.cfg.join.max_viewers} viewers"
        mine = sum(
            1
            for x in self.contents.values()
            for f in x.feeds.values()
            for v in f.viewers.values()
            if v.hop.host == host
        )
        if mine >= self.cfg.join.per_address:
            return f"full: {host} already has {mine} streams from this streamer"
        feed.viewers[hop.key] = Viewer(hop, "join", lease)
        feed.sync()
        self.joins += 1
        self.joined(content, rendition, hop.key, "join")
        return None

    def leave(self, content: str, rendition: str, host: str, port: int) -> bool:
        feed = self._feed(content, rendition)
        key = c.Hop(host, port).key
        v = feed.viewers.get(key)
        if v is None or v.via != "join":
            return False
        del feed.viewers[key]
        feed.sync()
        self.left(content, rendition, key, "left")
        return True

    def _feed(self, content: str, rendition: str) -> Feed:
        x = self.contents.get(content)
        feed = x.feeds.get(rendition) if x is not None else None
        if feed is None:
            raise HttpError(404, f"no content {content!r} in rendition {rendition!r} here")
        return feed

    # ----- HTTP ----------------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        self.requests += 1
        parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
        try:
            if parts in ([], ["contents"]) and req.method == "GET":
                return _json(self.catalogue())
            if len(parts) == 3 and parts[0] == "rtp" and parts[2].endswith(".sdp"):
                _method(req, "GET")
                self._feed(parts[1], parts[2][:-4])
                return _sdp(req, parts[1], parts[2][:-4], _viewer_port(req.query))
            if len(parts) == 4 and parts[0] == "rtp" and parts[3] in ("join", "leave"):
                _method(req, "POST")
                args = {**req.query, **req.form()}
                port = _viewer_port(args)
                content, rendition = parts[1], parts[2]
                if parts[3] == "leave":
                    if not self.leave(content, rendition, req.peer, port):
                        raise HttpError(404, "not joined")
                    return Response(200, b"left\n", "text/plain")
                why = self.join(content, rendition, req.peer, port, args.get("token", ""))
                if why is not None:
                    self.refused_joins[why.split(":")[0]] = (
                        self.refused_joins.get(why.split(":")[0], 0) + 1
                    )
                    raise HttpError(403 if why.startswith("forbidden") else 503, why)
                return _sdp(req, content, rendition, port)
            if parts and parts[0] == "hls" and req.method == "GET":
                return await self._hls(parts[1:], req.query)
            if parts and parts[0] == "vod" and req.method == "GET":
                return await self.vod.handle(parts[1:], req.query)
        except HttpError as e:
            return Response(e.status, f"{e}\n".encode(), "text/plain")
        return Response(404, b"not found\n", "text/plain")

    async def _hls(self, parts: Sequence[str], query: Mapping[str, str]) -> Response:
        if len(parts) == 2 and parts[1] == "index.m3u8":
            x = self.contents.get(parts[0])
            if x is None or not x.cfg.hls:
                raise HttpError(404, "no such content")
            body = master_playlist([f.variant(x.cfg.id) for f in x.feeds.values()])
            return _file_response("index.m3u8", body.encode())
        if len(parts) == 3 and FILE_NAME.fullmatch(parts[2]):
            feed = self._feed(parts[0], parts[1])
            if feed.ll is not None:
                return await self._ll(feed, parts[2], query)
            path = feed.dir / parts[2]
            if parts[2] == "index.m3u8" and feed.want_hls:
                await _appears(path, self.cfg.hls.wait_first_s)
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError:
                raise HttpError(404, "no such segment (yet, or any more)") from None
            if parts[2] == "index.m3u8":
                data = with_start(data, self.cfg.hls)
            return _file_response(parts[2], data)
        raise HttpError(404, "not found")

    async def _ll(self, feed: Feed, name: str, query: Mapping[str, str]) -> Response:
        """LL-HLS: the playlist (blocking reload), parts (blocking preload hint),
        segments (their parts, concatenated) and the initialisation section."""
        ll = feed.ll
        if ll is None:
            raise HttpError(404, "not found")
        hold = 3 * ll.target + 1.0
        if name == "index.m3u8":
            msn = _query_int(query, "_HLS_msn")
            part = _query_int(query, "_HLS_part")
            if part is not None and msn is None:
                raise HttpError(400, "_HLS_part without _HLS_msn")
            if msn is not None:
                last = ll.last
                if last is not None and msn > last[0] + 2:
                    raise HttpError(400, "_HLS_msn is more than two segments ahead")
                await feed.wait_for(lambda: ll.has(msn, part), hold)
            return _file_response("index.m3u8", ll.render().encode())
        if name.startswith("s") and name.endswith(".m4s") and name[1:-4].isdigit():
            seg = ll.segment(int(name[1:-4]))
            if seg is None:
                raise HttpError(404, "no such segment (yet, or any more)")
            try:
                data = b"".join([await asyncio.to_thread((feed.dir / p.uri).read_bytes)
                                 for p in seg.parts])  # fmt: skip
            except OSError:
                raise HttpError(404, "segment gone") from None
            return _file_response(name, data)
        index = _part_index(name)
        if index is not None and index == ll.next_index:
            await feed.wait_for(lambda: ll.next_index != index, 3 * ll.part_target + 1.0)
        try:
            data = await asyncio.to_thread((feed.dir / name).read_bytes)
        except OSError:
            raise HttpError(404, "no such part (yet, or any more)") from None
        return _file_response(name, data)

    def catalogue(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cid, x in self.contents.items():
            out[cid] = {
                "hls": f"/hls/{cid}/index.m3u8" if x.cfg.hls else None,
                "renditions": {
                    name: {
                        "sdp": f"/rtp/{cid}/{name}.sdp",
                        "join": f"/rtp/{cid}/{name}/join",
                        "hls": f"/hls/{cid}/{name}/index.m3u8" if x.cfg.hls else None,
                        "viewers": len(f.viewers),
                        "live": f.path.stats(time.monotonic())["source"] is not None,
                    }
                    for name, f in x.feeds.items()
                },
            }
        return {"contents": out}

    # ----- control -------------------------------------------------------------------

    def configure(self, config: dict[str, Any]) -> bool:
        new = EdgeConfig.parse(config)
        fixed = ("http_port", "bind", "hls", "work_dir", "relay")
        if any(getattr(new, k) != getattr(self.cfg, k) for k in fixed):
            return False
        wanted = {x.id: x for x in new.contents}
        fresh = {
            cid: Content(x, self)
            for cid, x in wanted.items()
            if cid not in self.contents or self.contents[cid].cfg.port != x.port
        }
        open_all(x.input for x in fresh.values())
        self.cfg = new
        self.vod.apply(new.vod)
        for cid, cur in list(self.contents.items()):
            if cid not in wanted or cid in fresh:
                del self.contents[cid]
                for feed in cur.feeds.values():
                    for key in feed.viewers:
                        self.left(cid, feed.name, key, "removed")
                self.later(cur.close())
        for cid, x in wanted.items():
            if cid in fresh:
                self.contents[cid] = fresh[cid]
                fresh[cid].start()
            else:
                self.contents[cid].apply(x)
        return True

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            **super().stats(),
            "contents": {
                cid: {
                    "port": x.cfg.port,
                    "feeds": {name: f.stats(now) for name, f in x.feeds.items()},
                }
                for cid, x in self.contents.items()
            },
            "viewers": self.viewer_count(),
            "vod": self.vod.stats(),
            "http": {
                "requests": self.requests,
                "joins": self.joins,
                "refused_joins": dict(self.refused_joins),
            },
        }

    def export_state(self) -> dict[str, Any]:
        now = time.monotonic()
        joined: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for cid, x in self.contents.items():
            for name, f in x.feeds.items():
                for v in f.viewers.values():
                    if v.via == "join" and v.expires is not None:
                        joined.setdefault(cid, {}).setdefault(name, []).append(
                            {**v.hop.to_dict(), "lease_left_s": max(0.0, v.expires - now)}
                        )
        return {**super().export_state(), "joined": joined}

    def import_state(self, state: dict[str, Any]) -> None:
        super().import_state(state)
        joined = state.get("joined")
        if not isinstance(joined, Mapping):
            return
        now = time.monotonic()
        for cid, rends in joined.items():
            x = self.contents.get(cid)
            if x is None or not isinstance(rends, Mapping):
                continue
            for name, viewers in rends.items():
                feed = x.feeds.get(name)
                if feed is None or not isinstance(viewers, list):
                    continue
                for i, v in enumerate(viewers[: c.MAX_HOPS]):
                    try:
                        hop = c.Hop.parse({"host": v["host"], "port": v["port"]}, f"joined[{i}]")
                        left = float(v.get("lease_left_s", self.cfg.join.lease_s))
                    except (c.ConfigError, KeyError, TypeError, ValueError):
                        continue
                    if hop.key not in feed.viewers:
                        feed.viewers[hop.key] = Viewer(hop, "join", now + min(left, 86400.0))
                feed.sync()


def _part_index(name: str) -> int | None:
    """N of an LL-HLS part file pN.m4s."""
    if name.startswith("p") and name.endswith(".m4s") and name[1:-4].isdigit():
        return int(name[1:-4])
    return None


def _query_int(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise HttpError(400, f"{key} must be a non-negative integer")
    return int(text)


def _method(req: Request, method: str) -> None:
    if req.method != method:
        raise HttpError(405, f"use {method}")


def _viewer_port(args: Mapping[str, str]) -> int:
    text = args.get("port", "")
    if not text.isdigit() or not 1024 <= int(text) <= 65534:
        raise HttpError(400, "port: the viewer's RTP port, 1024..65534 (RTCP on port + 1)")
    return int(text)


def _sdp(req: Request, content: str, rendition: str, port: int) -> Response:
    local = req.local or "127.0.0.1"
    body = stream_sdp(local, port, content, rendition).encode()
    return Response(200, body, "application/sdp", {"Access-Control-Allow-Origin": "*"})


def _json(doc: Any) -> Response:
    return Response(200, json.dumps(doc).encode(), "application/json")


async def _appears(path: Path, timeout: float) -> None:
    """Until ``path`` exists (a stat every 50 ms), at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _file_response(name: str, data: bytes) -> Response:
    ext = name[name.rfind(".") :]
    cache = "no-cache" if ext == ".m3u8" else "max-age=60"
    headers = {"Cache-Control": cache, "Access-Control-Allow-Origin": "*"}
    return Response(200, data, CONTENT_TYPES.get(ext, "application/octet-stream"), headers)
