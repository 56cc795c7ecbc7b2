"""The streaming functions' pure parts: configurations and their limits, arming and
refusals, the event outbox, the fan-out, the data path on a captured ffmpeg stream,
playlists, SDP, tokens, the edge streamer's join rules and HTTP answers, ffmpeg
arguments. No sockets are opened, no process is started."""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from netfate.proto.rtp import SourceValidated
from netfate.vnf.portal.http import Request
from netfate.vnf.runtime import Context
from netfate.vnf.streaming import config as c
from netfate.vnf.streaming import tokens
from netfate.vnf.streaming.acquirer import Acquirer, AcquirerConfig, Flow, FlowConfig, arming
from netfate.vnf.streaming.edge import (
    Content,
    EdgeConfig,
    EdgeStreamer,
    HlsSettings,
    RenditionConfig,
    ll_segmenter_args,
    next_segment_number,
    segmenter_args,
    transcoder_args,
    with_start,
)
from netfate.vnf.streaming.events import Outbox, StreamRefused, ViewerJoined
from netfate.vnf.streaming.ffmpeg import FfmpegChild
from netfate.vnf.streaming.fmp4 import Mp4Error, starts_independent
from netfate.vnf.streaming.hls import (
    HlsError,
    LowLatencyPlaylist,
    Part,
    Run,
    Segment,
    Variant,
    master_playlist,
    parse_media,
    vod_playlist,
)
from netfate.vnf.streaming.net import Fanout
from netfate.vnf.streaming.path import RtpPath, describe
from netfate.vnf.streaming.relay import RelayConfig
from netfate.vnf.streaming.sdp import stream_sdp
from netfate.vnf.streaming.storage import Recording, StorageConfig, recorder_args
from rtp_capture import read_rtpdump

VECTOR = Path(__file__).resolve().parents[3] / "vectors" / "rtp_mpegts_h264_aac.rtpdump"


class FakeSender:
    """Records what a fan-out sends; `fail` names destinations that refuse."""

    def __init__(self, fail: tuple[int, ...] = ()) -> None:
        self.sent: list[tuple[bytes, str, int]] = []
        self.fail = fail

    def sendto(self, data: bytes | memoryview, host: str, port: int) -> int:
        if port in self.fail:
            return 105  # ENOBUFS
        self.sent.append((bytes(data), host, port))
        return 0


def flow(**kw: Any) -> dict[str, Any]:
    base = {"id": "f1", "event": "ev1", "state": "started", "protocol": "rtp", "port": 5000}
    return {**base, **kw}


# ------------------------------------------------------------------------ configurations


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"flows": [flow()], "typo": 1}, "unknown key(s) typo"),
        ({"flows": [flow(port=70000)]}, "outside 1..65534"),
        ({"flows": [flow(port="5000")]}, "expected an integer"),
        ({"flows": [flow(protocol="http")]}, "is not one of"),
        ({"flows": [flow(), flow(id="f2", port=5001)]}, "UDP port 5001 appears twice"),
        ({"flows": [flow(), flow()]}, "flow f1 appears twice"),
        ({"flows": [flow(passphrase="0123456789")]}, "only SRT flows"),
        ({"flows": [flow(protocol="srt", passphrase="short")]}, "10 to 79"),
        ({"flows": [flow(armed_from=100, armed_until=50)]}, "not after armed_from"),
        ({"flows": [flow(port=6000)], "ports": {"first": 5000, "last": 5009}}, "outside the block"),
        ({"flows": [], "ports": {"first": 5000, "last": 6000}}, "1..256 ports"),
        ({"flows": [flow(next_hops=[{"host": "10.0.0.1", "port": 65535}])]}, "1..65534"),
        ({"flows": [flow(next_hops=[{"host": "example", "port": 5}])]}, "not an IP address"),
        ({"flows": [flow(id="../x")]}, "is not a name"),
        ({"flows": [flow(id=f"f{i}", port=5000 + 2 * i) for i in range(33)]}, "more than 32"),
        ({"flows": [flow(next_hops=[{"host": "10.0.0.1", "port": 5}] * 2)]}, "appears twice"),
    ],
)
def test_acquirer_config_refusals_name_the_field(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AcquirerConfig.parse(cfg)


def test_acquirer_config_reads_a_full_flow() -> None:
    cfg = AcquirerConfig.parse({
        "ports": {"first": 5000, "last": 5031},
        "flows": [flow(sources=["10.1.0.7"], next_hops=[{"host": "10.0.9.2", "port": 6000}]),
                  flow(id="s", protocol="srt", port=5010, passphrase="x" * 12, latency_ms=200),
                  flow(id="r", protocol="rtmp", port=5020, event=None)],
    })  # fmt: skip
    main, srt, rtmp = cfg.flows
    assert main.udp_ports == (5000, 5001) and main.sources == frozenset({"10.1.0.7"})
    assert main.next_hops == (c.Hop("10.0.9.2", 6000),)
    assert srt.udp_ports == (5010,) and srt.latency_ms == 200
    assert rtmp.udp_ports == () and rtmp.transport == "tcp" and rtmp.event is None
    assert len(cfg.udp_ports) == 32 and 5020 in cfg.tcp_ports


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"routes": [{"id": "a", "port": 6000}, {"id": "b", "port": 6001}]}, "port.*6001"),
        ({"routes": [{"id": "a", "port": 6000, "next_hops": "10.0.0.1"}]}, "expected a list"),
        ({"routes": [], "bind": "any"}, "not an IP address"),
        ({"routes": [], "source_timeout": 0}, "outside 1..3600"),
    ],
)
def test_relay_config_refusals(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message):
        RelayConfig.parse(cfg)


def test_relay_config_without_rtcp_frees_the_odd_ports() -> None:
    cfg = RelayConfig.parse({"rtcp": False, "routes": [{"id": "a", "port": 6000},
                                                       {"id": "b", "port": 6001}]})  # fmt: skip
    assert [r.port for r in cfg.routes] == [6000, 6001]


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"contents": [{"id": "X", "port": 7000,
                        "renditions": [{"name": "source", "height": 240, "video_kbps": 300}]}]},
         "is taken"),
        ({"contents": [{"id": "X", "port": 7000,
                        "renditions": [{"name": "low", "height": 241, "video_kbps": 300}]}]},
         "heights are even"),
        ({"contents": [{"id": "X", "port": 7000,
                        "viewers": [{"host": "10.0.0.1", "port": 5004, "rendition": "low"}]}]},
         "no rendition 'low'"),
        ({"contents": [{"id": "X", "port": 7000}], "http_port": 7001}, "a content's port"),
        ({"contents": [], "work_dir": "relative/dir"}, "absolute path"),
        ({"contents": [], "join": {"secret": "short"}}, "at least 16"),
        ({"contents": [], "hls": {"segment_s": 0.01}}, "outside 0.2..10"),
        ({"contents": [], "join": {"max_viewers": 0}}, "outside 1..10000"),
    ],
)  # fmt: skip
def test_edge_config_refusals(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message):
        EdgeConfig.parse(cfg)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"volume": "relative"}, "absolute path"),
        ({"volume": "/a/../b"}, "without \\.\\."),
        ({"volume": "/v", "quota": {"users": {"../x": 5}}}, "not a user name"),
        ({"volume": "/v", "quota": {"users": {"bob": -1}}}, "outside 0"),
        ({"volume": "/v", "recordings": [{"id": "r", "user": "u", "content": "X",
                                          "state": "paused"}]}, "is not one of"),
        ({"volume": "/v", "contents": [{"id": "X", "port": 8081}]}, "a content's port"),
    ],
)  # fmt: skip
def test_storage_config_refusals(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(c.ConfigError, match=message):
        StorageConfig.parse(cfg)


def test_storage_quota_per_user_and_default() -> None:
    cfg = StorageConfig.parse({"volume": "/v", "quota": {"default_bytes": 10,
                                                         "users": {"bob": 5}}})  # fmt: skip
    assert (cfg.quota("bob"), cfg.quota("alice")) == (5, 10)


# ------------------------------------------------------------------ arming and refusals


def test_arming_reasons() -> None:
    base = FlowConfig.parse(flow(), "f")
    assert arming(base, 1000.0) is None
    assert arming(FlowConfig.parse(flow(event=None), "f"), 0) == "no_event"
    assert arming(FlowConfig.parse(flow(state="ended"), "f"), 0) == "event_ended"
    window = FlowConfig.parse(flow(state="scheduled", armed_from=100, armed_until=200), "f")
    assert [arming(window, t) for t in (99, 100, 200, 201)] == [
        "outside_window",
        None,
        None,
        "outside_window",
    ]


def acquirer(cfg: dict[str, Any]) -> Acquirer:
    return Acquirer(Context(instance="acq", config=cfg))


def test_refusals_explain_and_emit_once_per_episode() -> None:
    fn = acquirer({"ports": {"first": 5000, "last": 5009},
                   "flows": [flow(sources=["10.0.0.7"]), flow(id="r", protocol="rtmp",
                                                              port=5004)]})  # fmt: skip
    # No sockets: start() is not called; the flows are built as it builds them.
    for fc in fn.cfg.flows:
        fn.flows[fc.id] = Flow(fc, fn)
    fn._index()
    f1, r = fn.flows["f1"], fn.flows["r"]
    assert fn.refusal(None, "udp", "10.0.0.7") == "wrong_port"
    assert fn.refusal(f1, "tcp", "10.0.0.7") == "wrong_protocol"
    assert fn.refusal(f1, "udp", "10.0.0.8") == "wrong_source"
    assert fn.refusal(f1, "udp", "10.0.0.7") is None
    assert fn.refusal(r, "udp", "10.0.0.7") == "wrong_protocol"
    assert fn.detail("wrong_port", None, 5002, "10.0.0.7") == (
        "port 5002 is not assigned to any stream; your event ev1 takes RTP on port 5000"
    )
    assert fn.detail("wrong_protocol", r, 5004, "x") == "port 5004 takes RTMP over TCP"
    for now in (0.0, 1.0, 2.0):  # one episode
        fn.refuse("wrong_port", None, 5002, "udp", "10.0.0.7", 100, now)
    fn.refuse("wrong_port", None, 5003, "udp", "10.0.0.7", 100, 3.0)  # another port
    fn.refuse("wrong_port", None, 5002, "udp", "10.0.0.7", 100, 13.0)  # quiet for 11 s
    events = fn.outbox.kinds("StreamRefused")
    assert [(e["port"], e["reason"]) for e in events] == [(5002, "wrong_port")] * 1 + [
        (5003, "wrong_port"), (5002, "wrong_port")
    ]  # fmt: skip
    assert fn.refused == {"wrong_port": 5} and fn.refused_octets == 500


# --------------------------------------------------------------------------- the outbox


def refused(port: int) -> StreamRefused:
    return StreamRefused(port, "udp", "10.0.0.1", "wrong_port", "d", None, None, 1.0)


def test_outbox_numbers_bounds_and_restores() -> None:
    box = Outbox(limit=3)
    for p in range(5):
        box.emit(refused(p))
    assert box.last_seq == 5 and box.dropped == 2
    assert [e["seq"] for e in box.since(3)] == [4, 5]
    assert box.items[-1]["kind"] == "StreamRefused" and box.items[-1]["port"] == 4
    # A migration target that emitted one event of its own before the import:
    target = Outbox(limit=3)
    target.emit(ViewerJoined("X", "source", "h:1", "join", 2.0))
    target.restore(json.loads(json.dumps(box.snapshot())))
    assert target.last_seq == 6 and [e["seq"] for e in target.items] == [4, 5, 6]
    assert target.items[-1]["kind"] == "ViewerJoined"
    target.restore("garbage")  # ignored
    assert target.last_seq == 6


# --------------------------------------------------------------------------- the fan-out


def test_fanout_swaps_hops_keeping_the_counters_of_kept_ones() -> None:
    sender = FakeSender(fail=(9002,))
    out = Fanout(sender, [c.Hop("10.0.0.1", 9000), c.Hop("10.0.0.2", 9002)])  # type: ignore[arg-type]
    out.send(b"a")
    out.send(b"r", rtcp=True)
    sent = [(h, p) for _, h, p in sender.sent]
    assert sent == [("10.0.0.1", 9000), ("10.0.0.1", 9001), ("10.0.0.2", 9003)]
    assert out.failed["10.0.0.2:9002"] == 1 and out.last_error["10.0.0.2:9002"] == "ENOBUFS"
    out.set_hops([c.Hop("10.0.0.3", 9004), c.Hop("10.0.0.1", 9000)])
    out.send(b"b")
    assert out.stats() == [
        {"hop": "10.0.0.3:9004", "sent": 1, "failed": 0},
        {"hop": "10.0.0.1:9000", "sent": 3, "failed": 0},
    ]


def test_rtp_path_delivers_held_datagrams_first_and_feeds_sinks_in_order() -> None:
    capture = [d for d in read_rtpdump(VECTOR) if not d.rtcp]
    sender = FakeSender()
    path = RtpPath(Fanout(sender, [c.Hop("10.0.0.1", 9000)]), analyze=True,  # type: ignore[arg-type]
                   sources=frozenset({"10.0.0.5"}))  # fmt: skip
    got: list[bytes] = []
    path.sinks["test"] = got.append
    path.on_rtp(capture[0].data, ("10.0.0.6", 1), 0.0)  # not an allowed sender
    assert path.foreign == 1 and not sender.sent
    for d in capture:
        path.on_rtp(d.data, ("10.0.0.5", 1), d.at)
    assert [s[0] for s in sender.sent] == [d.data for d in capture]  # nothing lost, in order
    assert b"".join(got) == b"".join(d.data[12:] for d in capture)
    assert any(isinstance(e, SourceValidated) and e.held for e in path.take_events())
    assert path.programme is not None
    streams = describe(path.programme)
    assert {s["codec"] for s in streams} == {"h264", "aac"}
    assert path.stats(capture[-1].at)["source"]["packets"] == len(capture) - 1


# ---------------------------------------------------------------------------- playlists

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:12
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:1.000000,
seg12.m4s
#EXT-X-DISCONTINUITY
#EXTINF:0.960000,
seg13.m4s
#EXT-X-ENDLIST
"""


def test_parse_media_reads_ffmpeg_playlists() -> None:
    pl = parse_media(FFMPEG_PLAYLIST)
    assert (pl.target_duration, pl.media_sequence, pl.map_uri, pl.ended) == (
        1,
        12,
        "init.mp4",
        True,
    )
    assert pl.segments == [Segment("seg12.m4s", 1.0), Segment("seg13.m4s", 0.96, True)]
    assert pl.duration == pytest.approx(1.96)


@pytest.mark.parametrize(
    "text",
    ["", "seg.ts", "#EXTM3U\nseg.ts", "#EXTM3U\n#EXTINF:abc,\nx.ts", "#EXTM3U\n#EXTINF:nan,\nx",
     "#EXTM3U\n#EXT-X-MAP:BYTERANGE=1", "#EXTM3U\n#EXT-X-TARGETDURATION:-1",
     "#EXTM3U\n" + "#" * (1 << 20)],
)  # fmt: skip
def test_parse_media_refuses_malformed_playlists(text: str) -> None:
    with pytest.raises(HlsError):
        parse_media(text)


def test_vod_playlist_joins_runs_with_discontinuities() -> None:
    runs = [Run((Segment("r0_0.ts", 2.0), Segment("r0_1.ts", 1.2))), Run(()),
            Run((Segment("r2_0.ts", 2.5),), map_uri="init2.mp4")]  # fmt: skip
    text = vod_playlist(runs)
    assert text.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:3", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXTINF:2.000000,", "r0_0.ts", "#EXTINF:1.200000,", "r0_1.ts",
        "#EXT-X-DISCONTINUITY", '#EXT-X-MAP:URI="init2.mp4"', "#EXTINF:2.500000,", "r2_0.ts",
        "#EXT-X-ENDLIST",
    ]  # fmt: skip
    assert parse_media(text).duration == pytest.approx(5.7)


def test_master_playlist_lists_variants_by_bandwidth() -> None:
    low = Variant("low/index.m3u8", 300_000, None, "low")
    text = master_playlist([low, Variant("source/index.m3u8", 2_000_000, (1280, 720), "source")])
    lines = text.splitlines()
    assert lines[3] == '#EXT-X-STREAM-INF:BANDWIDTH=2000000,RESOLUTION=1280x720,NAME="source"'
    assert lines[4] == "source/index.m3u8" and lines[6] == "low/index.m3u8"


def test_recording_playlist_is_event_while_recording_and_vod_after(tmp_path: Path) -> None:
    rec = Recording("r1", "alice", "X", dir=tmp_path, runs=[{"started": 1.0, "ended": None}])
    (tmp_path / "run0.m3u8").write_text(FFMPEG_PLAYLIST.replace(".m4s", ".ts"))
    text, final = rec.vod(None)
    assert not final and "#EXT-X-PLAYLIST-TYPE:EVENT" in text and "#EXT-X-ENDLIST" not in text
    rec.state = "stopped"
    text, final = rec.vod("123.abc")
    assert final and "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.endswith("#EXT-X-ENDLIST\n")
    assert "seg12.ts?token=123.abc" in text
    rec.save()
    again = Recording.from_manifest(json.loads((tmp_path / "recording.json").read_text()), tmp_path)
    assert again.manifest() == rec.manifest()


# ------------------------------------------------------------------ SDP and tokens


def test_stream_sdp() -> None:
    assert stream_sdp("10.0.0.4", 5004, "X", "source").split("\r\n") == [
        "v=0", "o=- 0 1 IN IP4 10.0.0.4", "s=X (source)", "c=IN IP4 10.0.0.4", "t=0 0",
        "m=video 5004 RTP/AVP 33", "a=rtpmap:33 MP2T/90000", "a=recvonly", "",
    ]  # fmt: skip
    six = stream_sdp("fd00::4", 5004, "X\r\nevil", "low")
    assert "c=IN IP6 fd00::4" in six and "s=X??evil (low)" in six


def test_tokens_grant_one_scope_until_they_expire() -> None:
    t = tokens.issue("0123456789abcdef", "join:X:10.0.0.1", 2000)
    assert tokens.check("0123456789abcdef", "join:X:10.0.0.1", t, 1999.0)
    assert not tokens.check("0123456789abcdef", "join:X:10.0.0.1", t, 2001.0)
    assert not tokens.check("0123456789abcdef", "join:X:10.0.0.2", t, 1999.0)
    assert not tokens.check("another-secret-16", "join:X:10.0.0.1", t, 1999.0)
    for bad in ("", "x", ".", "2000.", "2000.zz", "9" * 300, "-1.abc", "1e9.abc"):
        assert not tokens.check("0123456789abcdef", "join:X:10.0.0.1", bad, 0)


# ------------------------------------------------------------------ the edge streamer


def edge(tmp_path: Path, **extra: Any) -> EdgeStreamer:
    cfg = {"contents": [{"id": "X", "port": 7000}], "work_dir": str(tmp_path), **extra}
    fn = EdgeStreamer(Context(instance="edge", config=cfg))
    fn.contents = {x.id: Content(x, fn) for x in fn.cfg.contents}  # not opened
    return fn


def test_joins_are_bounded_and_renew_their_lease(tmp_path: Path) -> None:
    fn = edge(tmp_path, join={"max_viewers": 3, "per_address": 2, "lease_s": 60})
    assert fn.join("X", "source", "10.0.0.1", 5004, "") is None
    lease = fn.contents["X"].source.viewers["10.0.0.1:5004"].expires
    assert fn.join("X", "source", "10.0.0.1", 5004, "") is None  # renewed, not added
    assert fn.contents["X"].source.viewers["10.0.0.1:5004"].expires >= lease  # type: ignore[operator]
    assert fn.join("X", "source", "10.0.0.1", 5006, "") is None
    assert "already has 2 streams" in (fn.join("X", "source", "10.0.0.1", 5008, "") or "")
    assert fn.join("X", "source", "10.0.0.2", 5004, "") is None
    assert "maximum of 3 viewers" in (fn.join("X", "source", "10.0.0.3", 5004, "") or "")
    hops = [h.key for h in fn.contents["X"].source.fanout.hops]
    assert hops == ["10.0.0.1:5004", "10.0.0.1:5006", "10.0.0.2:5004"]
    assert fn.leave("X", "source", "10.0.0.1", 5004)
    assert not fn.leave("X", "source", "10.0.0.1", 5004)
    fn.tick(float("inf"))  # every lease has expired
    assert fn.viewer_count() == 0
    kinds = [(e["kind"], e.get("reason")) for e in fn.outbox.items]
    assert kinds.count(("ViewerLeft", "lease_expired")) == 2


def test_joins_need_a_token_when_the_streamer_has_a_secret(tmp_path: Path) -> None:
    fn = edge(tmp_path, join={"secret": "s" * 16})
    assert (fn.join("X", "source", "10.0.0.1", 5004, "") or "").startswith("forbidden")
    good = tokens.issue("s" * 16, "join:X:10.0.0.1", int(time.time()) + 60)
    assert fn.join("X", "source", "10.0.0.2", 5004, good) is not None  # another address
    assert fn.join("X", "source", "10.0.0.1", 5004, good) is None


def request(method: str, target: str, peer: str = "10.0.0.9") -> Request:
    path, _, query = target.partition("?")
    args = dict(p.split("=", 1) for p in query.split("&") if p)
    return Request(method, path, args, {}, b"", peer, local="10.0.0.4")


def test_http_answers(tmp_path: Path) -> None:
    fn = edge(tmp_path)

    def ask(method: str, target: str) -> tuple[int, bytes, str]:
        r = asyncio.run(fn.handle(request(method, target)))
        return r.status, r.body, r.content_type

    status, body, ctype = ask("POST", "/rtp/X/source/join?port=5004")
    assert status == 200 and ctype == "application/sdp"
    assert b"c=IN IP4 10.0.0.4" in body and b"m=video 5004 " in body
    assert fn.contents["X"].source.viewers["10.0.0.9:5004"].via == "join"
    assert ask("GET", "/rtp/X/source.sdp?port=5010")[0] == 200
    assert fn.viewer_count() == 1  # reading an SDP joins nothing
    assert ask("GET", "/rtp/X/source.sdp")[0] == 400
    assert ask("POST", "/rtp/X/source/join?port=1023")[0] == 400
    assert ask("POST", "/rtp/X/source/join?port=99999")[0] == 400
    assert ask("GET", "/rtp/X/source/join?port=5004")[0] == 405
    assert ask("POST", "/rtp/Y/source/join?port=5004")[0] == 404
    assert ask("POST", "/rtp/X/hd/join?port=5004")[0] == 404
    assert ask("GET", "/hls/X/source/..%2Findex.m3u8")[0] == 404
    assert ask("GET", "/hls/X/source/seg1.m4s")[0] == 404  # not written
    (fn.contents["X"].source.dir).mkdir(parents=True)
    (fn.contents["X"].source.dir / "seg1.m4s").write_bytes(b"data")
    assert ask("GET", "/hls/X/source/seg1.m4s")[:3] == (200, b"data", "video/iso.segment")
    status, body, _ = ask("GET", "/contents")
    assert json.loads(body)["contents"]["X"]["renditions"]["source"]["viewers"] == 1
    assert ask("POST", "/rtp/X/source/leave?port=5004")[0] == 200


def test_segment_numbering_continues_after_a_restart(tmp_path: Path) -> None:
    assert next_segment_number(tmp_path) == 0
    for name in ("seg3.m4s", "seg11.m4s", "seg.tmp", "segx.m4s", "init.mp4"):
        (tmp_path / name).write_bytes(b"")
    assert next_segment_number(tmp_path) == 12


def test_ffmpeg_arguments() -> None:
    hls = HlsSettings(segment_s=1.0, list_size=6, format="fmp4")
    args = segmenter_args(hls, 0, restarted=False, audio=["aac"])
    assert args[args.index("-bsf:a") + 1] == "aac_adtstoasc"
    assert "omit_endlist" in args[args.index("-hls_flags") + 1]
    assert "discont_start" not in args[args.index("-hls_flags") + 1]
    again = segmenter_args(hls, 12, restarted=True, audio=["mp2"])
    assert "-bsf:a" not in again and again[again.index("-start_number") + 1] == "12"
    assert "discont_start" in again[again.index("-hls_flags") + 1]
    ts = segmenter_args(HlsSettings(format="ts"), 0, False, ["aac"])
    assert "-bsf:a" not in ts and ts[-2:] == ["seg%d.ts", "index.m3u8"]
    tr = transcoder_args(RenditionConfig("low", 240, 400, 64), 2.0, 40000)
    assert tr[tr.index("-force_key_frames") + 1] == "expr:gte(t,n_forced*2)"
    assert tr[-1] == "rtp://127.0.0.1:40000?pkt_size=1328" and "scale=-2:240" in tr
    rec = recorder_args(2.0, 3)
    assert rec[-1] == "run3.m3u8" and "r3_%d.ts" in rec and "event" in rec
    assert args[args.index("-analyzeduration") + 1] == "500000"
    slow = segmenter_args(HlsSettings.parse({"probe_s": 2}), 0, False)
    assert slow[slow.index("-analyzeduration") + 1] == "2000000"
    ll = ll_segmenter_args(HlsSettings.parse({"probe_s": 0.2}), 0, False)
    assert ll[ll.index("-analyzeduration") + 1] == "200000"


def test_media_playlists_tell_players_where_to_start() -> None:
    live = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg0.m4s\n"
    two = with_start(live, HlsSettings.parse({"segment_s": 1.0}))
    assert two.split(b"\n")[:2] == [b"#EXTM3U", b"#EXT-X-START:TIME-OFFSET=-2.000"]
    assert two.replace(b"#EXT-X-START:TIME-OFFSET=-2.000\n", b"") == live
    assert parse_media(two.decode()).segments[0].uri == "seg0.m4s"
    half = with_start(live, HlsSettings.parse({"segment_s": 2.0, "start_segments": 1.5}))
    assert b"#EXT-X-START:TIME-OFFSET=-3.000\n" in half
    assert with_start(live, HlsSettings.parse({"start_segments": 0})) == live
    assert with_start(two, HlsSettings()) == two  # one tag only
    assert with_start(b"garbage", HlsSettings()) == b"garbage"
    with pytest.raises(c.ConfigError, match="start_segments"):
        HlsSettings.parse({"start_segments": -1})
    with pytest.raises(c.ConfigError, match="probe_s"):
        HlsSettings.parse({"probe_s": 0})


# ------------------------------------------------------------------------------ LL-HLS


def parts(n: int, key_every: int = 5, start: int = 0, d: float = 0.2) -> list[Part]:
    return [Part(i, f"p{i}.m4s", d, (i - start) % key_every == 0) for i in range(start, start + n)]


def test_low_latency_segments_follow_independent_parts() -> None:
    ll = LowLatencyPlaylist(part_s=0.2, segment_s=1.0, window=3)
    for p in parts(23):
        ll.add_part(p)
    # Key frames every fifth part: segments of five parts, each starting on one.
    assert [len(s.parts) for s in ll.segments] == [5, 5, 5, 3]
    assert [s.msn for s in ll.segments] == [1, 2, 3, 4]  # the window keeps 3 complete
    assert all(s.parts[0].independent for s in ll.segments)
    assert ll.last == (4, 2) and ll.next_index == 23
    assert ll.has(4, 2) and not ll.has(4, 3) and ll.has(3, None) and not ll.has(4, None)
    assert ll.has(0, None)  # older than the window: long past
    assert ll.segment(3) is not None and ll.segment(4) is None  # open: not served whole


def test_low_latency_segments_without_key_frames_at_part_starts_are_cut_by_time() -> None:
    ll = LowLatencyPlaylist(part_s=0.2, segment_s=1.0)
    for p in parts(12, key_every=1000, start=1):  # no part starts on a key frame
        ll.add_part(p)
    assert [len(s.parts) for s in ll.segments] == [5, 5, 2]


def test_low_latency_playlist_text() -> None:
    ll = LowLatencyPlaylist(part_s=0.2, segment_s=1.0, window=6)
    for p in parts(22):
        ll.add_part(p)
    ll.discontinuity()
    ll.add_part(Part(40, "p40.m4s", 0.21, True))  # the segmenter restarted
    text = ll.render()
    lines = text.splitlines()
    assert lines[:7] == [
        "#EXTM3U", "#EXT-X-VERSION:9", "#EXT-X-TARGETDURATION:1",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.630",
        "#EXT-X-PART-INF:PART-TARGET=0.210", "#EXT-X-MEDIA-SEQUENCE:0",
        '#EXT-X-MAP:URI="init.mp4"',
    ]  # fmt: skip
    # Parts are listed for the last three complete segments and the open one only.
    # (Segments: s0 = p0-p4 ... s3 = p15-p19, s4 = p20-p21 closed by the restart, s5 open.)
    assert '#EXT-X-PART:DURATION=0.20000,URI="p5.m4s",INDEPENDENT=YES' not in lines
    assert '#EXT-X-PART:DURATION=0.20000,URI="p10.m4s",INDEPENDENT=YES' in lines
    assert '#EXT-X-PART:DURATION=0.20000,URI="p11.m4s"' in lines
    assert lines[-1] == '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p41.m4s"'
    restarted = '#EXT-X-PART:DURATION=0.21000,URI="p40.m4s",INDEPENDENT=YES'
    assert lines[-3:-1] == ["#EXT-X-DISCONTINUITY", restarted]
    # A player that does not do LL-HLS reads it as a plain media playlist.
    plain = parse_media(text)
    assert [s.uri for s in plain.segments] == ["s0.m4s", "s1.m4s", "s2.m4s", "s3.m4s", "s4.m4s"]


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def traf(
    first_flags: int | None, default_flags: int | None, per_sample: int | None = None
) -> bytes:
    tfhd_flags = 0x20 if default_flags is not None else 0
    tfhd = struct.pack(">II", tfhd_flags, 1) + (struct.pack(">I", default_flags)
                                               if default_flags is not None else b"")  # fmt: skip
    if first_flags is not None:
        trun = struct.pack(">III", 0x205, 2, 0) + struct.pack(">I", first_flags) + b"\0" * 8
    elif per_sample is not None:
        trun = struct.pack(">III", 0x601, 1, 0) + struct.pack(">II", 100, per_sample)
    else:
        trun = struct.pack(">III", 0x201, 1, 0) + b"\0" * 4
    return box(b"traf", box(b"tfhd", tfhd) + box(b"trun", trun))


def fragment(*trafs: bytes) -> bytes:
    return box(b"styp", b"msdh") + box(b"moof", b"".join(trafs)) + box(b"mdat", b"\0" * 16)


def test_fmp4_fragment_starts_independent() -> None:
    video_key = traf(0x02000000, 0x01010000)
    video_delta = traf(None, 0x01010000)
    audio = traf(None, 0x02000000)
    assert starts_independent(fragment(video_key, audio))
    assert not starts_independent(fragment(video_delta, audio))
    assert starts_independent(fragment(traf(None, None, per_sample=0x02000000)))
    assert not starts_independent(fragment(traf(None, None)))  # flags only in the init segment
    assert not starts_independent(box(b"mdat", b""))  # no moof at all
    # Largesize boxes and a box running to the end (size 0).
    big = struct.pack(">I4sQ", 1, b"free", 16)
    assert starts_independent(big + fragment(video_key))
    assert not starts_independent(struct.pack(">I4s", 0, b"mdat") + b"\0" * 30)
    cut_tfhd = box(b"moof", box(b"traf", b"\0\0\0\x0ctfhd"))
    for bad in (b"\0\0\0", b"\0\0\0\x20moof", struct.pack(">I4s", 4, b"moof"),
                struct.pack(">I4sI", 1, b"moof", 0), cut_tfhd):  # fmt: skip
        with pytest.raises(Mp4Error):
            starts_independent(bad)


def test_fmp4_on_parts_ffmpeg_wrote(tmp_path: Path) -> None:
    """ffmpeg's own split_by_time parts: those that start on a key frame, and no others."""
    src = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi",
           "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i", "sine", "-t", "3",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-f", "mpegts", str(tmp_path / "in.ts")]  # fmt: skip
    subprocess.run(src, check=True, timeout=60)
    hls = HlsSettings(segment_s=1.0, part_s=0.2, low_latency=True)
    args = ll_segmenter_args(hls, 0, False, ["aac"])
    args[args.index("pipe:0")] = str(tmp_path / "in.ts")
    subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", *args],
                   check=True, timeout=60, cwd=tmp_path)  # fmt: skip
    media = parse_media((tmp_path / "parts.m3u8").read_text())
    assert len(media.segments) >= 14 and all(s.duration <= 0.21 for s in media.segments)
    flags = [starts_independent((tmp_path / s.uri).read_bytes()) for s in media.segments]
    # The file starts on a key frame, one every 25 frames: every fifth 0.2 s part.
    assert [i for i, f in enumerate(flags) if f] == list(range(0, len(flags), 5))


def test_a_media_playlist_asked_for_early_is_held_until_its_first_segment(
    tmp_path: Path,
) -> None:
    """A player asking before the segmenter's first segment gets the playlist once it
    is written (not a 404 it would retry a second later), EXT-X-START included."""
    fn = edge(tmp_path)
    feed = fn.contents["X"].source
    feed.want_hls = True
    feed.dir.mkdir(parents=True)
    playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg0.m4s\n"

    async def ask_then_write() -> tuple[int, bytes]:
        asked = asyncio.create_task(fn.handle(request("GET", "/hls/X/source/index.m3u8")))
        await asyncio.sleep(0.1)
        assert not asked.done()
        (feed.dir / "index.m3u8").write_bytes(playlist)
        r = await asked
        return r.status, r.body

    status, body = asyncio.run(ask_then_write())
    assert status == 200 and body.startswith(b"#EXTM3U\n#EXT-X-START:TIME-OFFSET=-2.000\n")
    assert body.endswith(b"seg0.m4s\n")
    at_once = edge(tmp_path / "b", hls={"wait_first_s": 0})
    at_once.contents["X"].source.want_hls = True
    r = asyncio.run(at_once.handle(request("GET", "/hls/X/source/index.m3u8")))
    assert r.status == 404
    not_wanted = edge(tmp_path / "c")  # no HLS asked for: nothing to wait for
    r = asyncio.run(not_wanted.handle(request("GET", "/hls/X/source/index.m3u8")))
    assert r.status == 404


def test_a_segmenter_is_fed_the_stream_held_before_it_ran(tmp_path: Path) -> None:
    child = FfmpegChild("hls:x", [], stdin=True, preroll_s=100.0, max_backlog=25)
    t = time.monotonic() - 130  # feed() below holds at the current monotonic time
    child.hold(b"a" * 10, t)
    child.hold(b"b" * 10, t + 50)
    child.hold(b"c" * 10, t + 120)  # "a" is older than the pre-roll
    assert [d for _, d in child._held] == [b"b" * 10, b"c" * 10]
    child.hold(b"d" * 10, t + 130)  # 30 bytes held is over the bound: "b" goes
    assert [d for _, d in child._held] == [b"c" * 10, b"d" * 10]
    child.feed(b"e" * 5)  # no process yet: held too
    assert child._held[-1][1] == b"e" * 5 and child.dropped == 0

    written: list[bytes] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return 0

    class Stdin:
        transport = Transport()

        def write(self, data: bytes) -> None:
            written.append(data)

    class Proc:
        stdin = Stdin()
        returncode = None

    child.proc = Proc()  # type: ignore[assignment]
    child._write_held()  # what _supervise does once the process runs
    assert written == [b"c" * 10, b"d" * 10, b"e" * 5]
    assert not child._held and child.fed == sum(map(len, written))
    plain = FfmpegChild("hls:y", [], stdin=True)
    plain.feed(b"x" * 7)
    assert plain.dropped == 7 and not plain._held


def test_an_edge_streamer_holds_its_stream_until_recognised(tmp_path: Path) -> None:
    feed = edge(tmp_path).contents["X"].source
    feed.start_hls()  # nothing recognised yet: no segmenter, the stream held
    assert feed.segmenter is None and feed.want_hls
    feed.path.sinks["hls"](b"\x47" * 188)
    assert [d for _, d in feed.preroll] == [b"\x47" * 188]
    asyncio.run(feed.stop_hls())
    assert not feed.preroll and "hls" not in feed.path.sinks
    off = edge(tmp_path / "b", hls={"preroll_s": 0}).contents["X"].source
    off.start_hls()
    assert "hls" not in off.path.sinks
