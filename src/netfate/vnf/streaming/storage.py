"""The storage subsystem: records contents on a volume, serves them as HLS VoD.

It joins the tree only when a recording is requested (the back-end adds a
branch to it for that content). Each *recording* is one user's request to
record one content; the content arrives once as RTP/MPEG-TS on its port and
feeds every recording of it.

On the volume (``volume`` in the config, a directory the service manages)::

    VOLUME/USER/RECORDING/recording.json     the manifest: who, what, state, runs
    VOLUME/USER/RECORDING/run0.m3u8          ffmpeg's playlist of run 0
    VOLUME/USER/RECORDING/r0_0.ts ...        its MPEG-TS segments

A *run* is one ffmpeg segmenter (``-c copy``, TS segments: any codec, and a
segment cut short by a crash still plays). A run starts when the recording is
requested and its content is flowing, and ends when either stops; a recording
that resumes (the stream came back, the function restarted or moved) starts
another run, joined in the VoD playlist with EXT-X-DISCONTINUITY. Everything
needed to serve a recording is on the volume: a restarted function (or one
that a migration started elsewhere on the same volume) scans it and serves
what it finds; ``export`` also carries the manifests.

Quota: the bytes under ``VOLUME/USER`` count against the user's quota (checked
every second while recording; a run can overshoot by at most a second of
stream). Reaching it stops the recording (``RecordingStopped`` reason
``quota``); a recording requested while the user is over quota is refused
(reason ``refused``). A stopped recording is final: recording again takes a new
id. ``state: "deleted"`` removes its files.

HTTP: ``GET /vod/RECORDING/index.m3u8`` (finished: EXT-X-PLAYLIST-TYPE:VOD with
EXT-X-ENDLIST, seekable; still recording: an EVENT playlist that grows),
``GET /vod/RECORDING/SEGMENT.ts``, ``GET /recordings[?user=U]``. With ``secret``,
each needs ``?token=`` (tokens.py; scope ``vod:RECORDING``, and the playlist
passes its token on to the segment URIs; ``recordings:USER`` for a user's list).

Config::

    {"volume": "/var/lib/netfate/rec", "http_port": 8081, "bind": "0.0.0.0",
     "contents": [{"id": "X", "port": 7100, "sources": ["10.0.9.1"]}],
     "recordings": [{"id": "r1", "user": "alice", "content": "X",
                     "state": "recording"}],              # or "stopped", "deleted"
     "quota": {"default_bytes": 1000000000, "users": {"alice": 500000000}},
     "segment_s": 2, "secret": null, "source_timeout": 10}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.vnf.portal.http import HttpError, Request, Response
from netfate.vnf.runtime import Context

from . import config as c
from . import tokens
from .base import StreamingFunction, StreamInput, open_all
from .events import RecordingStarted, RecordingStopped
from .ffmpeg import FfmpegChild
from .hls import (
    CONTENT_TYPES,
    FILE_NAME,
    HlsError,
    MediaPlaylist,
    Run,
    Segment,
    parse_media,
    vod_playlist,
)
from .net import Fanout
from .path import RelaySettings, RtpPath

MAX_CONTENTS = 16
MAX_RECORDINGS = 256
MAX_USERS = 1024
MANIFEST = "recording.json"
LIVE_WITHIN_S = 2.0
"""A content counts as flowing when its source sent within this many seconds."""
QUOTA_EVERY_S = 1.0
REQUESTED = ("recording", "stopped", "deleted")


@dataclass(frozen=True)
class RecordingConfig:
    id: str
    user: str
    content: str
    state: str = "recording"

    @classmethod
    def parse(cls, value: Any, where: str) -> RecordingConfig:
        d = c.obj(value, where, ("id", "user", "content", "state"))
        return cls(
            id=c.name(d, "id", where),
            user=c.name(d, "user", where),
            content=c.name(d, "content", where),
            state=c.choice(d, "state", where, REQUESTED, default="recording"),
        )


@dataclass(frozen=True)
class InputConfig:
    id: str
    port: int
    sources: frozenset[str] | None = None

    @classmethod
    def parse(cls, value: Any, where: str) -> InputConfig:
        d = c.obj(value, where, ("id", "port", "sources"))
        return cls(
            id=c.name(d, "id", where),
            port=c.integer(d, "port", where, lo=1, hi=65534),
            sources=c.addresses(d, "sources", where),
        )


@dataclass(frozen=True)
class StorageConfig:
    volume: str
    contents: tuple[InputConfig, ...] = ()
    recordings: tuple[RecordingConfig, ...] = ()
    default_quota: int = 1 << 30
    quotas: Mapping[str, int] = field(default_factory=dict)
    http_port: int = 8081
    bind: str = "0.0.0.0"
    segment_s: float = 2.0
    secret: str | None = None
    relay: RelaySettings = field(default_factory=RelaySettings)

    def quota(self, user: str) -> int:
        return self.quotas.get(user, self.default_quota)

    @classmethod
    def parse(cls, value: Any) -> StorageConfig:
        w = "config"
        d = c.obj(value, w, (
            "volume", "contents", "recordings", "quota", "http_port", "bind", "segment_s",
            "secret", "source_timeout",
        ))  # fmt: skip
        volume = c.text(d, "volume", w, max_len=1024)
        if not volume.startswith("/") or "/../" in f"{volume}/":
            raise c.ConfigError(f"{w}.volume: an absolute path without ..")
        contents = [
            InputConfig.parse(x, f"{w}.contents[{i}]")
            for i, x in enumerate(c.listed(d, "contents", w, max_items=MAX_CONTENTS))
        ]
        c.unique(contents, lambda x: x.id, f"{w}.contents", "content")
        c.unique([p for x in contents for p in (x.port, x.port + 1)], lambda p: p,
                 f"{w}.contents", "port (RTP or RTCP)")  # fmt: skip
        recs = [
            RecordingConfig.parse(r, f"{w}.recordings[{i}]")
            for i, r in enumerate(c.listed(d, "recordings", w, max_items=MAX_RECORDINGS))
        ]
        c.unique(recs, lambda r: r.id, f"{w}.recordings", "recording")
        q = c.obj(d.get("quota") or {}, f"{w}.quota", ("default_bytes", "users"))
        users = q.get("users") or {}
        if not isinstance(users, Mapping) or len(users) > MAX_USERS:
            raise c.ConfigError(f"{w}.quota.users: an object of at most {MAX_USERS} users")
        quotas = {}
        for u in users:
            if not isinstance(u, str) or not c.NAME.fullmatch(u):
                raise c.ConfigError(f"{w}.quota.users: {u!r} is not a user name")
            quotas[u] = c.integer(users, u, f"{w}.quota.users", lo=0, hi=1 << 50)
        secret = c.text(d, "secret", w, max_len=256) if d.get("secret") is not None else None
        if secret is not None and len(secret) < 16:
            raise c.ConfigError(f"{w}.secret: at least 16 characters")
        http_port = c.port(d, "http_port", w, default=8081)
        if any(http_port in (x.port, x.port + 1) for x in contents):
            raise c.ConfigError(f"{w}.http_port: {http_port} is a content's port")
        return cls(
            volume=volume,
            contents=tuple(contents),
            recordings=tuple(recs),
            default_quota=c.integer(
                q, "default_bytes", f"{w}.quota", lo=0, hi=1 << 50, default=1 << 30
            ),
            quotas=quotas,
            http_port=http_port,
            bind=c.address(d.get("bind", "0.0.0.0"), f"{w}.bind"),
            segment_s=c.number(d, "segment_s", w, lo=0.5, hi=30, default=2.0),
            secret=secret,
            relay=RelaySettings(
                source_timeout=c.number(d, "source_timeout", w, lo=1, hi=3600, default=10.0)
            ),
        )


def recorder_args(segment_s: float, run: int) -> list[str]:
    """A copy segmenter writing run `run` of a recording (in the recording's directory)."""
    return [
        "-probesize", "1000000", "-analyzeduration", "2000000",
        "-f", "mpegts", "-i", "pipe:0", "-map", "0:v?", "-map", "0:a?", "-c", "copy",
        "-f", "hls", "-hls_time", f"{segment_s:g}", "-hls_list_size", "0",
        "-hls_playlist_type", "event", "-hls_flags", "temp_file+independent_segments",
        "-hls_segment_filename", f"r{run}_%d.ts", f"run{run}.m3u8",
    ]  # fmt: skip


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, f)).st_size
    return total


@dataclass
class Recording:
    """A recording as the manifest on the volume describes it."""

    id: str
    user: str
    content: str
    state: str = "recording"
    """``recording`` or ``stopped`` (final)."""
    stop_reason: str | None = None
    created: float = 0.0
    runs: list[dict[str, Any]] = field(default_factory=list)
    """Per run: ``started``, ``ended`` (wall clock; None while it runs)."""
    child: FfmpegChild | None = None
    dir: Path = Path()

    def manifest(self) -> dict[str, Any]:
        return {
            "id": self.id, "user": self.user, "content": self.content, "state": self.state,
            "stop_reason": self.stop_reason, "created": self.created, "runs": self.runs,
        }  # fmt: skip

    @classmethod
    def from_manifest(cls, d: Mapping[str, Any], directory: Path) -> Recording:
        rec = cls(
            id=str(d["id"]),
            user=str(d["user"]),
            content=str(d["content"]),
            state="stopped" if d.get("state") == "stopped" else "recording",
            stop_reason=d.get("stop_reason") if isinstance(d.get("stop_reason"), str) else None,
            created=float(d.get("created", 0.0)),
            runs=[dict(r) for r in d.get("runs", ()) if isinstance(r, Mapping)],
            dir=directory,
        )
        if not (c.NAME.fullmatch(rec.id) and c.NAME.fullmatch(rec.user)):
            raise ValueError("bad names in manifest")
        return rec

    def save(self) -> None:
        """Write the manifest atomically (a crash leaves the old or the new one)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.manifest(), indent=1))
        os.replace(tmp, self.dir / MANIFEST)

    def playlists(self) -> list[MediaPlaylist]:
        out = []
        for i in range(len(self.runs)):
            try:
                out.append(parse_media((self.dir / f"run{i}.m3u8").read_text()))
            except (OSError, HlsError):
                out.append(MediaPlaylist())  # a run that wrote nothing (yet)
        return out

    def vod(self, token: str | None) -> tuple[str, bool]:
        """The recording's playlist and whether it is final (VOD) rather than EVENT."""
        suffix = f"?token={urllib.parse.quote(token)}" if token else ""
        runs = [
            Run(tuple(Segment(s.uri + suffix, s.duration) for s in pl.segments))
            for pl in self.playlists()
        ]
        text = vod_playlist(runs, version=3)
        if self.state == "recording":
            text = text.replace("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:EVENT")
            text = text.replace("#EXT-X-ENDLIST\n", "")
        return text, self.state != "recording"

    def media_bytes(self) -> int:
        """Bytes of its segments (the quota counts every file of the user's)."""
        total = 0
        for p in self.dir.glob("r*_*.ts"):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
        return total

    def figures(self) -> dict[str, Any]:
        pls = self.playlists()
        return {
            "user": self.user,
            "content": self.content,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "writing": self.child is not None,
            "runs": len(self.runs),
            "segments": sum(len(p.segments) for p in pls),
            "duration_s": round(sum(p.duration for p in pls), 3),
            "octets": self.media_bytes(),
            "path": str(self.dir),
        }


class Input(StreamInput):
    """A content the storage receives (once, whoever records it)."""

    def __init__(self, cfg: InputConfig, fn: Storage) -> None:
        path = RtpPath(Fanout(fn.sender), fn.cfg.relay, sources=cfg.sources)
        super().__init__(fn, cfg.port, path, bind=fn.cfg.bind)
        self.cfg = cfg

    def live(self, now: float) -> bool:
        figs = self.path.relay.figures(now)
        return bool(figs) and figs[0].active and now - figs[0].last_seen < LIVE_WITHIN_S


class Storage(StreamingFunction):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.cfg = StorageConfig.parse(ctx.config)
        self.volume = Path(self.cfg.volume)
        self.inputs: dict[str, Input] = {}
        self.recordings: dict[str, Recording] = {}
        self.usage: dict[str, int] = {}
        self.requests = 0
        self.owner = True
        """This copy writes the manifests (False once frozen: the next copy does)."""
        self._quota_at = 0.0

    # ----- life ----------------------------------------------------------------------

    async def start(self) -> None:
        self.volume.mkdir(parents=True, exist_ok=True)
        self.scan()
        inputs = [Input(ic, self) for ic in self.cfg.contents]
        open_all(inputs)
        self.inputs = {i.cfg.id: i for i in inputs}
        self.apply_requests()
        await self.serve_http(self.cfg.bind, self.cfg.http_port, self.handle)
        await super().start()

    async def stop(self) -> None:
        for inp in self.inputs.values():
            inp.close()
        await asyncio.gather(*(self._end_run(r) for r in self.recordings.values()))
        await super().stop()

    def freeze(self) -> None:
        """Stop writing: the runs end here (in the state this freeze exports) and the
        copy that takes over starts new ones. From now on the manifests on the volume
        are the new copy's to write: this one never saves them again."""
        super().freeze()
        self.owner = False
        for r in self.recordings.values():
            if r.child is not None:
                if r.runs and r.runs[-1].get("ended") is None:
                    r.runs[-1]["ended"] = time.time()
                self.later(self._end_run(r))

    def activate(self) -> None:
        super().activate()
        self.owner = True  # a migration given up: this copy writes again

    def scan(self) -> None:
        """Load every manifest on the volume (what a previous process recorded)."""
        for manifest in sorted(self.volume.glob(f"*/*/{MANIFEST}")):
            try:
                rec = Recording.from_manifest(json.loads(manifest.read_text()), manifest.parent)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if manifest.parent != self.volume / rec.user / rec.id or rec.id in self.recordings:
                continue
            for run in rec.runs:
                if run.get("ended") is None:  # its process is gone
                    run["ended"] = time.time()
            self.recordings[rec.id] = rec
        self.usage = {
            u: dir_bytes(self.volume / u) for u in {r.user for r in self.recordings.values()}
        }

    # ----- recordings ----------------------------------------------------------------

    def apply_requests(self) -> None:
        """Create requested recordings, stop or delete those the config says."""
        for rc in self.cfg.recordings:
            rec = self.recordings.get(rc.id)
            if rc.state == "deleted":
                if rec is not None:
                    self._delete(rec)
                continue
            if rec is None:
                rec = Recording(rc.id, rc.user, rc.content, created=time.time(),
                                dir=self.volume / rc.user / rc.id)  # fmt: skip
                self.recordings[rc.id] = rec
                if self.used(rc.user) >= self.cfg.quota(rc.user):
                    self._stopped(rec, "refused")
                    continue
                rec.save()
            if rc.state == "stopped" and rec.state == "recording":
                self._stopped(rec, "requested")

    def used(self, user: str) -> int:
        return self.usage.get(user, 0)

    def _delete(self, rec: Recording) -> None:
        del self.recordings[rec.id]
        child, rec.child = rec.child, None

        async def remove() -> None:
            if child is not None:
                await child.stop(grace=2.0)
            await asyncio.to_thread(shutil.rmtree, rec.dir, True)
            self.usage[rec.user] = await asyncio.to_thread(dir_bytes, self.volume / rec.user)

        self.later(remove())

    def _stopped(self, rec: Recording, reason: str) -> None:
        """Final: no more runs. Told once the last run has written its last segment."""
        rec.state, rec.stop_reason = "stopped", reason
        rec.save()

        async def finish() -> None:
            await self._end_run(rec)
            fig = await asyncio.to_thread(rec.figures)
            self.emit(RecordingStopped(rec.id, rec.user, reason, fig["duration_s"],
                                       fig["octets"], time.time()))  # fmt: skip

        self.later(finish())

    def _start_run(self, rec: Recording, inp: Input) -> None:
        run = len(rec.runs)
        rec.runs.append({"started": time.time(), "ended": None})
        rec.save()
        rec.child = FfmpegChild(
            f"record:{rec.id}", recorder_args(self.cfg.segment_s, run), stdin=True,
            cwd=rec.dir, on_exit=self.helper_exited,
        )  # fmt: skip
        inp.path.sinks[f"rec:{rec.id}"] = rec.child.feed
        rec.child.start()
        self.emit(RecordingStarted(rec.id, rec.user, rec.content, run > 0, time.time()))

    async def _end_run(self, rec: Recording) -> None:
        child, rec.child = rec.child, None
        inp = self.inputs.get(rec.content)
        if inp is not None:
            inp.path.sinks.pop(f"rec:{rec.id}", None)
        if child is None:
            return
        await child.stop(grace=5.0)  # EOF: ffmpeg writes its last segment and ENDLIST
        if rec.runs and rec.runs[-1].get("ended") is None:
            rec.runs[-1]["ended"] = time.time()
        if self.owner:
            rec.save()

    def tick(self, now: float) -> None:
        for inp in self.inputs.values():
            inp.path.poll(now)
            inp.path.take_events()
        if now - self._quota_at >= QUOTA_EVERY_S:
            self._quota_at = now
            writing = {r.user for r in self.recordings.values() if r.child is not None}
            for user in writing:
                self.usage[user] = dir_bytes(self.volume / user)
            for rec in list(self.recordings.values()):
                if rec.child is not None and self.used(rec.user) >= self.cfg.quota(rec.user):
                    self._stopped(rec, "quota")
        if not self.active:
            return
        for rec in self.recordings.values():
            src = self.inputs.get(rec.content)
            live = src is not None and src.live(now)
            if rec.state == "recording" and live and rec.child is None and src is not None:
                self._start_run(rec, src)
            elif rec.child is not None and (not live or rec.state != "recording"):
                self.later(self._end_run(rec))

    # ----- HTTP ----------------------------------------------------------------------

    async def handle(self, req: Request) -> Response:
        self.requests += 1
        parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
        try:
            if req.method != "GET":
                raise HttpError(405, "use GET")
            if parts == ["recordings"]:
                user = req.query.get("user")
                if self.cfg.secret is not None and not (
                    user is not None
                    and tokens.check(self.cfg.secret, f"recordings:{user}",
                                     req.query.get("token", ""), time.time())
                ):  # fmt: skip
                    raise HttpError(403, "a user's list needs ?user=U&token=T")
                doc = {rid: r.figures() for rid, r in self.recordings.items()
                       if user is None or r.user == user}  # fmt: skip
                return Response(200, json.dumps({"recordings": doc}).encode(), "application/json")
            if len(parts) == 3 and parts[0] == "vod":
                return await self._vod(parts[1], parts[2], req.query.get("token"))
        except HttpError as e:
            return Response(e.status, f"{e}\n".encode(), "text/plain")
        return Response(404, b"not found\n", "text/plain")

    async def _vod(self, rid: str, name: str, token: str | None) -> Response:
        rec = self.recordings.get(rid)
        if rec is None:
            raise HttpError(404, "no such recording")
        if self.cfg.secret is not None and not tokens.check(
            self.cfg.secret, f"vod:{rid}", token or "", time.time()
        ):
            raise HttpError(403, "no valid token for this recording")
        headers = {"Access-Control-Allow-Origin": "*"}
        if name == "index.m3u8":
            text, final = rec.vod(token)
            headers["Cache-Control"] = "max-age=3600" if final else "no-cache"
            return Response(200, text.encode(), CONTENT_TYPES[".m3u8"], headers)
        if not FILE_NAME.fullmatch(name) or not name.endswith(".ts"):
            raise HttpError(404, "not found")
        try:
            data = await asyncio.to_thread((rec.dir / name).read_bytes)
        except OSError:
            raise HttpError(404, "no such segment") from None
        headers["Cache-Control"] = "max-age=3600"
        return Response(200, data, CONTENT_TYPES[".ts"], headers)

    # ----- control -------------------------------------------------------------------

    def configure(self, config: dict[str, Any]) -> bool:
        new = StorageConfig.parse(config)
        fixed = ("volume", "http_port", "bind", "relay")
        if any(getattr(new, k) != getattr(self.cfg, k) for k in fixed):
            return False
        fresh = {
            ic.id: Input(ic, self)
            for ic in new.contents
            if ic.id not in self.inputs or self.inputs[ic.id].cfg.port != ic.port
        }
        open_all(fresh.values())
        self.cfg = new
        wanted = {ic.id: ic for ic in new.contents}
        for cid, inp in list(self.inputs.items()):
            if cid not in wanted or cid in fresh:
                del self.inputs[cid]
                inp.close()
                for rec in self.recordings.values():
                    if rec.content == cid and rec.child is not None:
                        self.later(self._end_run(rec))
        for cid, ic in wanted.items():
            if cid in fresh:
                self.inputs[cid] = fresh[cid]
            else:
                self.inputs[cid].cfg = ic
                self.inputs[cid].path.sources = ic.sources
        self.apply_requests()
        return True

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        users = {r.user for r in self.recordings.values()}
        return {
            **super().stats(),
            "volume": str(self.volume),
            "recordings": {rid: r.figures() for rid, r in self.recordings.items()},
            "users": {u: {"used": self.used(u), "quota": self.cfg.quota(u)} for u in users},
            "contents": {cid: i.path.stats(now) for cid, i in self.inputs.items()},
            "http": {"requests": self.requests},
        }

    def export_state(self) -> dict[str, Any]:
        return {
            **super().export_state(),
            "recordings": {rid: r.manifest() for rid, r in self.recordings.items()},
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """The files are on the volume; the peer's manifests say what is where. A
        recording the volume does not hold (yet) is known from the state alone."""
        super().import_state(state)
        recs = state.get("recordings")
        if not isinstance(recs, Mapping):
            return
        for rid, m in list(recs.items())[:MAX_RECORDINGS]:
            if rid in self.recordings or not isinstance(m, Mapping):
                continue
            try:
                user = str(m["user"])
                rec = Recording.from_manifest(m, self.volume / user / str(rid))
            except (KeyError, TypeError, ValueError):
                continue
            self.recordings[rec.id] = rec
