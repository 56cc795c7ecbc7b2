"""The edge streamer's recordings on demand (netfate.vnf.streaming.vod): a user's token
and no other plays a recording; the playlist stays VoD (seekable, whole) with the
user's token on its segments and never the streamer's grant; segments are fetched
from the storage once and then served from the cache (bounded); the configuration's
refusals. The storage is faked (a dict of URLs); no socket is opened."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from netfate.vnf.portal.http import HttpError, Request
from netfate.vnf.runtime import Context
from netfate.vnf.streaming import config as c
from netfate.vnf.streaming import tokens
from netfate.vnf.streaming.edge import EdgeStreamer
from netfate.vnf.streaming.hls import Run, Segment, parse_media, vod_playlist
from netfate.vnf.streaming.vod import (
    LIVE_TTL_S,
    VodRecording,
    VodRelay,
    VodSettings,
    live_ttl,
    rewrite,
)

KEY = "k" * 24
ORIGIN = "http://10.0.1.2:8081/vod/r5/"
GRANT = "123.storagegrant"


class Storage:
    """The storage function's VoD as the relay sees it: URL -> body, each fetch counted."""

    def __init__(self, final: bool = True) -> None:
        g = "?token=" + GRANT
        runs = [Run((Segment("r0_0.ts" + g, 2.0), Segment("r0_1.ts" + g, 2.0))),
                Run((Segment("r1_0.ts" + g, 1.5),))]  # fmt: skip
        text = vod_playlist(runs, version=3)
        if not final:
            text = text.replace("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:EVENT")
            text = text.replace("#EXT-X-ENDLIST\n", "")
        self.files = {
            f"{ORIGIN}index.m3u8?token={GRANT}": text.encode(),
            **{f"{ORIGIN}{n}.ts?token={GRANT}": n.encode() * 100 for n in ("r0_0", "r0_1", "r1_0")},
        }
        self.fetched: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        await asyncio.sleep(0.01)  # a fetch in flight while a second request comes
        if url not in self.files:
            raise HttpError(404, "origin: 404")
        return self.files[url]


def settings(**extra: Any) -> VodSettings:
    rec = {"id": "r5", "user": "alice", "origin": ORIGIN, "origin_secret": GRANT}
    return VodSettings.parse({"secret": KEY, "recordings": [rec], **extra})


def user_token(user: str = "alice", rid: str = "r5") -> str:
    return tokens.issue(KEY, f"vod:{rid}:{user}", int(time.time()) + 60)


def get(relay: VodRelay, name: str, token: str | None) -> tuple[int, bytes]:
    async def ask() -> tuple[int, bytes]:
        try:
            r = await relay.handle(["r5", name], {"token": token} if token is not None else {})
        except HttpError as e:
            return e.status, str(e).encode()
        return r.status, r.body

    return asyncio.run(ask())


def test_only_the_recordings_user_plays_it(tmp_path: Path) -> None:
    storage = Storage()
    relay = VodRelay(settings(), tmp_path, storage.fetch)
    assert get(relay, "index.m3u8", None)[0] == 403  # no token
    assert get(relay, "index.m3u8", user_token("bob"))[0] == 403  # another user's
    assert get(relay, "index.m3u8", user_token("alice", "r6"))[0] == 403  # another recording's
    assert get(relay, "r0_0.ts", GRANT)[0] == 403  # the storage's grant is no user's token
    expired = tokens.issue(KEY, "vod:r5:alice", int(time.time()) - 1)
    assert get(relay, "r0_0.ts", expired)[0] == 403
    assert storage.fetched == []  # nothing refused reached the storage
    assert relay.stats()["recordings"]["r5"]["refused"] == 5
    status, _ = get(relay, "index.m3u8", user_token())
    assert status == 200


def test_the_playlist_is_whole_seekable_vod_with_the_users_token(tmp_path: Path) -> None:
    storage = Storage()
    relay = VodRelay(settings(), tmp_path, storage.fetch)
    tok = user_token()
    status, body = get(relay, "index.m3u8", tok)
    text = body.decode()
    assert status == 200 and "#EXT-X-PLAYLIST-TYPE:VOD" in text and "#EXT-X-ENDLIST" in text
    assert parse_media(text).duration == pytest.approx(5.5)  # every run, whole
    assert "#EXT-X-DISCONTINUITY" in text
    assert f"r0_0.ts?token={tok}" in text and GRANT not in text
    assert get(relay, "index.m3u8", tok)[0] == 200
    assert len(storage.fetched) == 1  # final: kept, not fetched again


def test_a_growing_playlist_is_shared_for_half_a_target_duration(tmp_path: Path) -> None:
    growing = Storage(final=False)
    relay = VodRelay(settings(), tmp_path, growing.fetch)
    tok = user_token()
    url = f"{ORIGIN}index.m3u8?token={GRANT}"

    async def players(n: int) -> list[Any]:
        return await asyncio.gather(
            *(relay.handle(["r5", "index.m3u8"], {"token": tok}) for _ in range(n))
        )

    answers = asyncio.run(players(5))  # five players at once: one fetch
    assert {a.status for a in answers} == {200} and growing.fetched == [url]
    assert all("#EXT-X-PLAYLIST-TYPE:EVENT" in a.body.decode() for a in answers)
    assert get(relay, "index.m3u8", tok)[0] == 200 and len(growing.fetched) == 1  # still fresh
    p = relay.played["r5"]
    assert p.live is not None and p.playlist is None
    p.live = (p.live[0] - 1.0, p.live[1])  # target 2 s: kept 1 s, now stale
    assert get(relay, "index.m3u8", tok)[0] == 200 and len(growing.fetched) == 2
    figs = relay.stats()["recordings"]["r5"]
    assert figs["fetches"] == 2 and figs["hits"] == 5 and not figs["final"]
    # The recording stops: its final playlist replaces the copy, and is kept.
    growing.files[url] = Storage().files[url]
    p.live = (p.live[0] - 1.0, p.live[1]) if p.live else None
    status, body = get(relay, "index.m3u8", tok)
    assert status == 200 and "#EXT-X-ENDLIST" in body.decode() and p.live is None
    get(relay, "index.m3u8", tok)
    assert len(growing.fetched) == 3 and relay.stats()["recordings"]["r5"]["final"]


def test_a_failed_playlist_fetch_fails_every_waiting_player_and_is_retried(
    tmp_path: Path,
) -> None:
    growing = Storage(final=False)
    url = f"{ORIGIN}index.m3u8?token={GRANT}"
    text = growing.files.pop(url)  # the storage answers 404 for now
    relay = VodRelay(settings(), tmp_path, growing.fetch)
    tok = user_token()

    async def players() -> list[Any]:
        return await asyncio.gather(
            *(relay.handle(["r5", "index.m3u8"], {"token": tok}) for _ in range(3)),
            return_exceptions=True,
        )

    out = asyncio.run(players())
    assert all(isinstance(e, HttpError) and e.status == 404 for e in out)
    assert len(growing.fetched) == 1  # one fetch failed for all three
    growing.files[url] = text
    assert get(relay, "index.m3u8", tok)[0] == 200 and len(growing.fetched) == 2  # not kept


@pytest.mark.parametrize(
    ("target", "ttl"),
    [("2", 1.0), ("1", 0.5), ("6", LIVE_TTL_S), ("0", 0.0), ("-3", 0.0), ("x", 0.0),
     ("nan", 0.0), (None, 0.0)],
)  # fmt: skip
def test_live_ttl_is_half_the_target_duration_at_most_a_second(
    target: str | None, ttl: float
) -> None:
    head = "#EXTM3U\n#EXT-X-VERSION:3\n"
    text = head + (f"#EXT-X-TARGETDURATION:{target}\n" if target is not None else "") + "a.ts\n"
    assert live_ttl(text) == ttl


def test_segments_are_fetched_once_then_cached_within_bounds(tmp_path: Path) -> None:
    storage = Storage()
    relay = VodRelay(settings(cache_bytes=1 << 20), tmp_path, storage.fetch)
    tok = user_token()

    async def twice() -> list[Any]:
        return await asyncio.gather(
            relay.handle(["r5", "r0_1.ts"], {"token": tok}),
            relay.handle(["r5", "r0_1.ts"], {"token": tok}),
        )

    a, b = asyncio.run(twice())  # two players at once: one fetch
    assert a.body == b.body == b"r0_1" * 100
    assert get(relay, "r0_1.ts", tok) == (200, b"r0_1" * 100)  # a seek back: the cache
    assert storage.fetched == [f"{ORIGIN}r0_1.ts?token={GRANT}"]
    assert (tmp_path / "r5" / "r0_1.ts").read_bytes() == b"r0_1" * 100
    figs = relay.stats()["recordings"]["r5"]
    assert figs["fetches"] == 1 and figs["hits"] == 2 and figs["requests"] == 3
    assert get(relay, "nope.ts", tok)[0] == 404  # the storage has no such segment
    assert get(relay, "..%2Fx.ts", tok)[0] == 404 and get(relay, "a.mp4", tok)[0] == 404
    # Bounded: over cache_bytes the oldest cached segment goes.
    relay.cfg = VodSettings(KEY, relay.cfg.recordings, cache_bytes=500)
    get(relay, "r1_0.ts", tok)
    assert not (tmp_path / "r5" / "r0_1.ts").exists() and relay.stats()["cached_bytes"] <= 500
    # A renewed grant keeps the cache; a recording no longer relayed loses it.
    renewed = VodRecording("r5", "alice", ORIGIN, "456.renewed")
    relay.apply(VodSettings(KEY, (renewed,)))
    assert (tmp_path / "r5" / "r1_0.ts").exists() and relay.played["r5"].cfg == renewed
    get(relay, "r1_0.ts", tok)
    assert storage.fetched[-1] == f"{ORIGIN}r1_0.ts?token={GRANT}"  # from the cache
    # A recording no longer relayed: its cache goes, and it is not served.
    relay.apply(VodSettings(KEY, ()))
    assert not (tmp_path / "r5").exists() and get(relay, "index.m3u8", tok)[0] == 404


def test_idle_counts_from_the_last_request(tmp_path: Path) -> None:
    relay = VodRelay(settings(), tmp_path, Storage().fetch)
    p = relay.played["r5"]
    p.since -= 50
    assert relay.stats()["recordings"]["r5"]["idle_s"] >= 50  # never asked: since configured
    get(relay, "index.m3u8", user_token())
    assert relay.stats()["recordings"]["r5"]["idle_s"] < 5


def test_rewrite_refuses_what_is_no_segment_name() -> None:
    assert rewrite("#EXTM3U\nr0_0.ts?token=g\n", "t") == "#EXTM3U\nr0_0.ts?token=t\n"
    for bad in ("../etc/passwd", "http://elsewhere/x.ts", "x.m3u8"):
        with pytest.raises(HttpError):
            rewrite(f"#EXTM3U\n{bad}\n", "t")


def one(origin: str = ORIGIN, user: str = "a") -> dict[str, Any]:
    return {"recordings": [{"id": "r5", "user": user, "origin": origin}]}


@pytest.mark.parametrize(
    ("vod", "message"),
    [
        (one("http://h:1/vod/r5/"), "origin"),  # a name, not an address
        (one("ftp://10.0.0.1:1/vod/r5/"), "origin"),
        (one("http://10.0.0.1:1/vod/r6/"), "origin"),  # another recording's
        (one("http://10.0.0.1/vod/r5/"), "origin"),  # no port
        (one("http://10.0.0.1:1/vod/r5/?a=1"), "origin"),
        (one(user="a b"), "user"),
        ({"secret": "short"}, "secret"),
        ({"cache_bytes": 10}, "cache_bytes"),
        ({"extra": 1}, "unknown"),
    ],
)  # fmt: skip
def test_vod_config_refusals(vod: dict[str, Any], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message):
        VodSettings.parse(vod)


def test_the_edge_streamer_serves_and_reconfigures_its_recordings(tmp_path: Path) -> None:
    rec = {"id": "r5", "user": "alice", "origin": ORIGIN, "origin_secret": GRANT}
    cfg = {"contents": [], "work_dir": str(tmp_path), "vod": {"secret": KEY, "recordings": [rec]}}
    fn = EdgeStreamer(Context(instance="edge", config=cfg))
    storage = Storage()
    fn.vod.fetch = storage.fetch

    def ask(target: str) -> int:
        path, _, query = target.partition("?")
        args = dict(p.split("=", 1) for p in query.split("&") if p)
        req = Request("GET", path, args, {}, b"", "10.0.0.9", local="10.0.0.4")
        return asyncio.run(fn.handle(req)).status

    assert ask(f"/vod/r5/index.m3u8?token={user_token()}") == 200
    assert ask(f"/vod/r5/index.m3u8?token={user_token('bob')}") == 403
    assert ask("/vod/r5/index.m3u8") == 403
    assert fn.stats()["vod"]["recordings"]["r5"]["requests"] == 1
    assert fn.configure({**cfg, "vod": None})  # in place: no restart
    assert ask(f"/vod/r5/index.m3u8?token={user_token()}") == 404
