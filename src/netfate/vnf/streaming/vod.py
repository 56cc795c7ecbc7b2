"""The edge streamer's recordings on demand: an HLS VoD relay in front of the storage.

MyShare plays a recording through the edge streamer the tree chose for the user,
not from the storage function itself. The streamer *pulls* over HTTP: the first
request for the playlist or a segment fetches it from the storage function
(``origin``, with the storage token the back-end gave the streamer) and keeps it in
the streamer's work directory; later requests (a seek back, a second player, a
reload) are served from there. Pull rather than a push of the recording down the
tree: a VoD viewer asks for what it needs when it needs it (a seek jumps ahead, a
pause fetches nothing), segments are immutable files, and the storage function
already serves them; an RTP replay would have to be paced, restarted at every
seek and could not be seekable at all.

Each recording is a user's own: the streamer serves ``/vod/ID/...`` only with a
token the back-end issued to that user (tokens.py, scope ``vod:ID:USER``, the
``secret`` in the config); another user's token, or none, is refused (403). The
playlist passes the user's token on to its segment URIs, and the streamer's own
origin token never leaves it.

The origin's playlist is final (EXT-X-PLAYLIST-TYPE:VOD with EXT-X-ENDLIST, the
whole recording: seekable) once the recording stopped, and cached from then on;
while it records it is an EVENT playlist that grows by a segment every target
duration: it is kept for half a target duration (at most ``LIVE_TTL_S``), and the
requests that come while it is fetched share that fetch, so N players reloading it
cost the storage about two fetches per segment, not N (a player sees a new segment
at most half a target duration late, well inside the reload interval HLS gives it).

Bounded: ``cache_bytes`` over all recordings (the oldest cached segments go first),
``MAX_FETCH`` bytes per object, one fetch per object at a time.

Config (the edge streamer's ``vod``)::

    {"secret": "...", "cache_bytes": 268435456,
     "recordings": [{"id": "r5", "user": "alice",
                     "origin": "http://10.0.1.2:8081/vod/r5/", "origin_secret": "..."}]}
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netfate.vnf.portal.http import HttpError, Response

from . import config as c
from . import tokens
from .hls import CONTENT_TYPES, FILE_NAME

MAX_RECORDINGS = 16
MAX_FETCH = 64 << 20
"""The largest playlist or segment the relay takes from its origin."""
FETCH_TIMEOUT_S = 10.0
DEFAULT_CACHE = 256 << 20
LIVE_TTL_S = 1.0
"""The longest a growing (EVENT) playlist is served from the relay's copy."""

Fetch = Callable[[str], Awaitable[bytes]]
"""GET a URL, its body (HttpError with the origin's status when it refuses)."""


@dataclass(frozen=True)
class VodRecording:
    id: str
    user: str
    origin: str
    """The storage's folder of the recording: ``http://ADDRESS:PORT/vod/ID/``."""
    origin_secret: str | None = None
    """The storage's token for it (scope ``vod:ID``), given to the streamer alone (a
    grant: named as a secret, so that no read of the configuration shows it)."""

    @classmethod
    def parse(cls, value: Any, where: str) -> VodRecording:
        d = c.obj(value, where, ("id", "user", "origin", "origin_secret"))
        rid = c.name(d, "id", where)
        origin = c.text(d, "origin", where, max_len=256)
        u = urllib.parse.urlsplit(origin)
        try:
            ok = u.scheme == "http" and u.hostname is not None and u.port is not None
            if ok:
                ipaddress.ip_address(u.hostname or "")
        except ValueError:
            ok = False
        if not ok or u.path != f"/vod/{rid}/" or u.query or u.fragment:
            raise c.ConfigError(f"{where}.origin: http://ADDRESS:PORT/vod/{rid}/, not {origin!r}")
        token = (
            c.text(d, "origin_secret", where, max_len=tokens.MAX_TOKEN)
            if d.get("origin_secret")
            else None
        )
        return cls(rid, c.name(d, "user", where), origin, token)


@dataclass(frozen=True)
class VodSettings:
    secret: str | None = None
    recordings: tuple[VodRecording, ...] = ()
    cache_bytes: int = DEFAULT_CACHE

    @classmethod
    def parse(cls, value: Any) -> VodSettings:
        w = "config.vod"
        d = c.obj(value or {}, w, ("secret", "recordings", "cache_bytes"))
        secret = c.text(d, "secret", w, max_len=256) if d.get("secret") is not None else None
        if secret is not None and len(secret) < 16:
            raise c.ConfigError(f"{w}.secret: at least 16 characters")
        recs = [
            VodRecording.parse(x, f"{w}.recordings[{i}]")
            for i, x in enumerate(c.listed(d, "recordings", w, max_items=MAX_RECORDINGS))
        ]
        c.unique(recs, lambda r: r.id, f"{w}.recordings", "recording")
        return cls(
            secret=secret,
            recordings=tuple(recs),
            cache_bytes=c.integer(
                d, "cache_bytes", w, lo=1 << 20, hi=1 << 40, default=DEFAULT_CACHE
            ),
        )


async def http_get(url: str) -> bytes:
    """GET ``url`` straight (no proxy from the environment), at most MAX_FETCH bytes."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get() -> bytes:
        try:
            with opener.open(url, timeout=FETCH_TIMEOUT_S) as r:
                body: bytes = r.read(MAX_FETCH + 1)
        except urllib.error.HTTPError as e:
            raise HttpError(e.code if e.code in (403, 404) else 502, f"origin: {e.code}") from None
        except (OSError, ValueError) as e:
            raise HttpError(502, f"origin unreachable: {e}") from None
        if len(body) > MAX_FETCH:
            raise HttpError(502, "origin: object too large")
        return body

    return await asyncio.to_thread(get)


def rewrite(playlist: str, token: str | None) -> str:
    """The origin's playlist with its segment URIs relative and carrying the user's
    token (the origin's token dropped); a URI that is no plain segment name is refused."""
    suffix = f"?token={urllib.parse.quote(token)}" if token else ""
    out = []
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            name = line.split("?", 1)[0]
            if not FILE_NAME.fullmatch(name) or not name.endswith(".ts"):
                raise HttpError(502, "origin: a segment URI that is not a segment name")
            line = name + suffix
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Played:
    """One recording the streamer relays: its figures."""

    cfg: VodRecording
    since: float = field(default_factory=time.monotonic)
    last: float | None = None
    requests: int = 0
    hits: int = 0
    fetches: int = 0
    refused: int = 0
    sent: int = 0
    playlist: str | None = None
    """The origin's final playlist, once it is final."""
    live: tuple[float, str] | None = None
    """The growing playlist while it records: when it was fetched, and its text."""

    def figures(self, now: float) -> dict[str, Any]:
        return {
            "user": self.cfg.user,
            "requests": self.requests,
            "hits": self.hits,
            "fetches": self.fetches,
            "refused": self.refused,
            "octets": self.sent,
            "final": self.playlist is not None,
            "idle_s": round(now - (self.last if self.last is not None else self.since), 3),
        }


class VodRelay:
    """The recordings an edge streamer relays, with their segment cache on disk."""

    def __init__(self, settings: VodSettings, directory: Path, fetch: Fetch = http_get) -> None:
        self.cfg = settings
        self.dir = directory
        self.fetch = fetch
        self.played: dict[str, Played] = {}
        self.cached: OrderedDict[Path, int] = OrderedDict()
        """Cached segment files, oldest first, with their sizes."""
        self.pending: dict[Path, asyncio.Future[bytes]] = {}
        shutil.rmtree(directory, ignore_errors=True)  # what a process before left: unaccounted
        self.apply(settings)

    def apply(self, settings: VodSettings) -> None:
        self.cfg = settings
        wanted = {r.id: r for r in settings.recordings}
        for rid, p in list(self.played.items()):
            new = wanted.get(rid)
            if new is None or (new.user, new.origin) != (p.cfg.user, p.cfg.origin):
                del self.played[rid]
                self._forget(rid)
            else:
                p.cfg = new  # a renewed grant: the cache stays
        for rid, r in wanted.items():
            self.played.setdefault(rid, Played(r))
        self._evict()

    def _forget(self, rid: str) -> None:
        d = self.dir / rid
        for p in [p for p in self.cached if p.parent == d]:
            del self.cached[p]
        shutil.rmtree(d, ignore_errors=True)

    def _evict(self) -> None:
        while self.cached and sum(self.cached.values()) > self.cfg.cache_bytes:
            p, _ = self.cached.popitem(last=False)
            with contextlib.suppress(OSError):
                p.unlink()

    async def handle(self, parts: list[str], query: Mapping[str, str]) -> Response:
        """``GET /vod/ID/NAME?token=T`` (``parts``: ID, NAME)."""
        if len(parts) != 2:
            raise HttpError(404, "not found")
        rid, name = parts
        p = self.played.get(rid)
        if p is None:
            raise HttpError(404, "no such recording here")
        token = query.get("token", "")
        secret = self.cfg.secret
        if secret is not None and not tokens.check(
            secret, f"vod:{rid}:{p.cfg.user}", token, time.time()
        ):
            p.refused += 1
            raise HttpError(403, "no valid token of this recording's user")
        p.requests += 1
        p.last = time.monotonic()
        headers = {"Access-Control-Allow-Origin": "*"}
        if name == "index.m3u8":
            text = p.playlist
            if text is None:
                text = await self._playlist(p)
            else:
                p.hits += 1
            body = rewrite(text, token or None).encode()
            headers["Cache-Control"] = "max-age=3600" if p.playlist else "no-cache"
            p.sent += len(body)
            return Response(200, body, CONTENT_TYPES[".m3u8"], headers)
        if not FILE_NAME.fullmatch(name) or not name.endswith(".ts"):
            raise HttpError(404, "not found")
        data = await self._segment(p, name)
        headers["Cache-Control"] = "max-age=3600"
        p.sent += len(data)
        return Response(200, data, CONTENT_TYPES[".ts"], headers)

    async def _playlist(self, p: Played) -> str:
        """The playlist while it is not known final: the relay's copy of a growing one
        while it is fresh, or the fetch in flight, or a new fetch."""
        if p.live is not None and time.monotonic() - p.live[0] < live_ttl(p.live[1]):
            p.hits += 1
            return p.live[1]

        async def keep(data: bytes) -> None:
            text = data.decode("utf-8", "replace")
            if "#EXT-X-ENDLIST" in text:
                p.playlist, p.live = text, None  # final: the whole recording, kept
            else:
                p.live = (time.monotonic(), text)

        return (await self._fetch_once(p, "index.m3u8", keep)).decode("utf-8", "replace")

    async def _origin(self, p: Played, name: str) -> bytes:
        grant = p.cfg.origin_secret
        tok = f"?token={urllib.parse.quote(grant)}" if grant else ""
        return await self.fetch(p.cfg.origin + name + tok)

    async def _segment(self, p: Played, name: str) -> bytes:
        path = self.dir / p.cfg.id / name
        if path in self.cached:
            with contextlib.suppress(OSError):
                data = await asyncio.to_thread(path.read_bytes)
                self.cached.move_to_end(path)
                p.hits += 1
                return data
            del self.cached[path]

        async def keep(data: bytes) -> None:
            if p.cfg.id in self.played:  # not removed meanwhile
                await asyncio.to_thread(_write, path, data)
                self.cached[path] = len(data)
                self._evict()

        return await self._fetch_once(p, name, keep)

    async def _fetch_once(
        self, p: Played, name: str, keep: Callable[[bytes], Awaitable[None]]
    ) -> bytes:
        """The origin's `name`, kept by `keep`; one fetch per object at a time: a
        request that comes meanwhile waits for that fetch (a hit), and shares its
        failure."""
        key = self.dir / p.cfg.id / name
        waiting = self.pending.get(key)
        if waiting is not None:
            p.hits += 1
            return await asyncio.shield(waiting)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pending[key] = fut
        try:
            data = await self._origin(p, name)
            p.fetches += 1
            await keep(data)
            fut.set_result(data)
            return data
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self.pending[key]

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "recordings": {rid: p.figures(now) for rid, p in self.played.items()},
            "cached_bytes": sum(self.cached.values()),
        }


def live_ttl(playlist: str) -> float:
    """How long a growing playlist is served from the relay's copy: half its target
    duration (a segment's longest), at most LIVE_TTL_S; 0 without a valid one."""
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            try:
                target = float(line.split(":", 1)[1])
            except ValueError:
                return 0.0
            return min(LIVE_TTL_S, target / 2) if target > 0 else 0.0
    return 0.0


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
