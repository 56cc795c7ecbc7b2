"""Fuzz the streaming functions' readers of outside input (hypothesis).

- Configurations come from the orchestrator as JSON: any JSON value is either read
  or refused with a ConfigError (never another exception, never a crash).
- Playlists (read back from ffmpeg's files): parsed or HlsError; fMP4 fragments
  (LL-HLS parts): a yes/no or Mp4Error.
- Tokens and the join endpoint's arguments come from viewers: never raise.
- The edge streamer's recordings on demand (vod.py): any request to /vod answers
  with a status (without a user's token nothing reaches the storage); a playlist
  from the storage is rewritten, every URI a plain segment name with the user's
  token, or refused with an HttpError.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.vnf.portal.http import HttpError, Request
from netfate.vnf.runtime import Context
from netfate.vnf.streaming import tokens
from netfate.vnf.streaming.acquirer import AcquirerConfig
from netfate.vnf.streaming.config import ConfigError
from netfate.vnf.streaming.edge import Content, EdgeConfig, EdgeStreamer
from netfate.vnf.streaming.fmp4 import Mp4Error, starts_independent
from netfate.vnf.streaming.hls import FILE_NAME, HlsError, parse_media
from netfate.vnf.streaming.relay import RelayConfig
from netfate.vnf.streaming.storage import StorageConfig
from netfate.vnf.streaming.vod import VodSettings, rewrite
from streaming_configs import json_values

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(json_values())
def test_configurations_are_read_or_refused_with_a_config_error(value: Any) -> None:
    for parse in (AcquirerConfig.parse, RelayConfig.parse, EdgeConfig.parse, StorageConfig.parse,
                  VodSettings.parse):  # fmt: skip
        with contextlib.suppress(ConfigError):
            parse(value)


@SETTINGS
@given(st.lists(st.sampled_from(["#EXTM3U", "#EXTINF:", "#EXTINF:1.5,", "#EXT-X-MAP:URI=\"a\"",
                                 "#EXT-X-MEDIA-SEQUENCE:", "#EXT-X-TARGETDURATION:9",
                                 "seg1.ts", "", "#EXT-X-ENDLIST"]) | st.text(max_size=30),
                max_size=12))  # fmt: skip
def test_playlists_parse_or_raise_hls_error(lines: list[str]) -> None:
    with contextlib.suppress(HlsError):
        parse_media("\n".join(lines))


@SETTINGS
@given(st.text(max_size=300), st.text(max_size=40), st.floats(allow_nan=True))
def test_token_checks_never_raise(token: str, scope: str, now: float) -> None:
    assert tokens.check("0123456789abcdef", scope, token, now) in (True, False)


@SETTINGS
@given(st.sampled_from(["GET", "POST", "PUT"]), st.lists(st.text(max_size=12), max_size=5),
       st.dictionaries(st.sampled_from(["port", "token", "x"]), st.text(max_size=12)))  # fmt: skip
def test_the_edge_endpoints_answer_anything_with_a_status(
    tmp_path_factory: Any, method: str, parts: list[str], query: dict[str, str]
) -> None:
    fn = _edge(tmp_path_factory.getbasetemp())
    req = Request(method, "/" + "/".join(parts), query, {}, b"", "10.0.0.9", local="10.0.0.4")
    status = asyncio.run(fn.handle(req)).status
    assert 200 <= status < 600


@SETTINGS
@given(st.lists(st.sampled_from(["vod", "r5", "index.m3u8", "r0_0.ts", "..", "%2F"])
                | st.text(max_size=12), max_size=4),
       st.dictionaries(st.sampled_from(["token", "x"]), st.text(max_size=40)))  # fmt: skip
def test_the_vod_endpoint_answers_anything_with_a_status_and_fetches_nothing(
    tmp_path_factory: Any, parts: list[str], query: dict[str, str]
) -> None:
    fn = _edge(tmp_path_factory.getbasetemp())
    req = Request("GET", "/vod/" + "/".join(parts), query, {}, b"", "10.0.0.9", local="10.0.0.4")
    status = asyncio.run(fn.handle(req)).status
    assert 200 <= status < 600 and status != 200  # no user's token: nothing served


async def _no_fetch(url: str) -> bytes:
    raise AssertionError(f"fetched {url} without a user's token")


@SETTINGS
@given(st.lists(st.sampled_from(["#EXTM3U", "#EXTINF:2.0,", "r0_0.ts?token=g", "r0_1.ts",
                                 "../x.ts", "http://a/b.ts", "x.m3u8", ""])
                | st.text(max_size=30), max_size=12),
       st.none() | st.text(max_size=20))  # fmt: skip
def test_storage_playlists_are_rewritten_or_refused(lines: list[str], token: str | None) -> None:
    try:
        out = rewrite("\n".join(lines), token)
    except HttpError as e:
        assert e.status == 502
        return
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name = line.split("?", 1)[0]
            assert FILE_NAME.fullmatch(name) and name.endswith(".ts")
            assert line == name + (f"?token={quote(token)}" if token else "")


_EDGES: dict[Path, EdgeStreamer] = {}


def _edge(base: Path) -> EdgeStreamer:
    if base not in _EDGES:
        vod = {"secret": "k" * 16, "recordings": [
            {"id": "r5", "user": "alice", "origin": "http://10.0.1.2:8081/vod/r5/"}]}  # fmt: skip
        cfg = {"contents": [{"id": "X", "port": 7000}], "work_dir": str(base / "edge-fuzz"),
               "vod": vod}  # fmt: skip
        fn = EdgeStreamer(Context(instance="edge", config=cfg))
        fn.vod.fetch = _no_fetch
        fn.contents = {x.id: Content(x, fn) for x in fn.cfg.contents}
        _EDGES[base] = fn
    return _EDGES[base]


def _box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


TFHD = _box(b"tfhd", bytes.fromhex("000000200000000101010000"))
TRUN = _box(b"trun", bytes.fromhex("00000205000000020000000002000000") + bytes(8))
FRAGMENT = (
    _box(b"styp", b"msdh") + _box(b"moof", _box(b"traf", TFHD + TRUN)) + _box(b"mdat", bytes(16))
)
"""A video fragment starting on a key frame, as ffmpeg writes one."""


@SETTINGS
@given(st.binary(max_size=200) | st.builds(
    lambda cut, flip, at: (FRAGMENT[:cut] if flip is None else
                           FRAGMENT[:at] + bytes([flip]) + FRAGMENT[at + 1:]),
    st.integers(0, len(FRAGMENT)), st.none() | st.integers(0, 255),
    st.integers(0, len(FRAGMENT) - 1)))  # fmt: skip
def test_fmp4_fragments_answer_or_raise_mp4_error(data: bytes) -> None:
    assert starts_independent(FRAGMENT)
    with contextlib.suppress(Mp4Error):
        assert starts_independent(data) in (True, False)
