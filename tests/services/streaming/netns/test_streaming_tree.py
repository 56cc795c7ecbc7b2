"""The streaming tree's data plane in real namespaces, with real ffmpeg and ffprobe.

A provider's ffmpeg test source (testsrc: its frame counter is the visible clock)
sends RTP/MPEG-TS to the acquirer, which forwards it to a forwarder, which
duplicates it to two edge streamers; viewers decode frames through RTP (SDP from
the streamer's HTTP endpoint) and HLS. A recording is made mid-stream and played
back as VoD. SRT and RTMP ingest; refusals with reasons; garbage. Each function
runs as the platform runs it (python -m netfate.vnf in its namespace, driven over
its control socket). Addresses: streaming_rig.HOSTS.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.host import netns
from netfate.proto.rtp import PT_MP2T, RtpPacket
from netfate.vnf.streaming import tokens
from netfate.vnf.streaming.sdp import stream_sdp
from streaming_rig import HOSTS, Lan, source_args
from waiting import until

H = HOSTS
SRT_PASSPHRASE = "provider-secret-42"
RTMP_KEY = "rtmp-stream-key-42"
BLOCK = {"first": 5000, "last": 5039}


def acquirer_config() -> dict[str, Any]:
    return {
        "ports": BLOCK,
        "flows": [
            {"id": "main", "event": "ev1", "state": "started", "protocol": "rtp", "port": 5000,
             "sources": [H["prov"]], "next_hops": [{"host": H["fwd"], "port": 6000}]},
            {"id": "srt", "event": "ev2", "state": "started", "protocol": "srt", "port": 5010,
             "passphrase": SRT_PASSPHRASE, "next_hops": [{"host": H["v1"], "port": 9000}]},
            {"id": "rtmp", "event": "ev3", "state": "started", "protocol": "rtmp",
             "port": 5020, "stream_secret": RTMP_KEY,
             "next_hops": [{"host": H["v2"], "port": 9000}]},
            {"id": "over", "event": "ev0", "state": "ended", "protocol": "rtp", "port": 5030},
            {"id": "free", "protocol": "rtp", "port": 5034},
            {"id": "later", "event": "ev9", "state": "scheduled", "protocol": "rtp",
             "port": 5036, "armed_from": time.time() + 86400},
        ],
    }  # fmt: skip


def relay_config(*extra: dict[str, Any]) -> dict[str, Any]:
    hops = [{"host": H["edge1"], "port": 7000}, {"host": H["edge2"], "port": 7000}, *extra]
    return {"routes": [{"id": "X", "port": 6000, "next_hops": hops}]}


EDGE1 = {
    "contents": [{"id": "X", "port": 7000,
                  "renditions": [{"name": "low", "height": 120, "video_kbps": 150,
                                  "audio_kbps": 32}]}],
    "http_port": 8080,
}  # fmt: skip
EDGE2 = {
    "contents": [{"id": "X", "port": 7000, "viewers": [{"host": H["v2"], "port": 5006}]}],
    "http_port": 8080,
    "hls": {"low_latency": True, "part_s": 0.2, "segment_s": 1},
}


def storage_config(volume: Path, recordings: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "volume": str(volume),
        "contents": [{"id": "X", "port": 7100}],
        "recordings": recordings,
        "quota": {"default_bytes": 50_000_000, "users": {"bob": 120_000}},
        "segment_s": 1,
        "http_port": 8081,
    }


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    lan = Lan(tmp_path_factory.mktemp("tree"))
    try:
        lan.build()
        lan.start("acq", "acq", "acquirer", acquirer_config())
        lan.start("fwd", "fwd", "relay", relay_config())
        lan.start("edge1", "edge1", "edge", EDGE1)
        lan.start("edge2", "edge2", "edge", EDGE2)
        lan.start("sto", "sto", "storage", storage_config(lan.tmp / "volume", []))
        lan.popen("source", "prov", [*source_args(900), "-f", "rtp_mpegts",
                                     f"rtp://{H['acq']}:5000"])  # fmt: skip
        yield lan
    finally:
        lan.close()


def send_udp(lan: Lan, host: str, dst: str, port: int, datagrams: list[bytes]) -> None:
    s = netns.socket_in(lan.ns(host), socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        for d in datagrams:
            s.sendto(d, (dst, port))


def rtp(seq: int, ssrc: int = 0x1234) -> bytes:
    payload = b"\x47\x1f\xff\x10" + b"\xff" * 184  # one null TS packet
    return RtpPacket(payload_type=PT_MP2T, sequence=seq, timestamp=seq * 3600, ssrc=ssrc,
                     payload=payload * 7).build()  # fmt: skip


# ---------------------------------------------------------------------------- the tree


def test_acquirer_recognises_the_stream_and_tells(tree: Lan) -> None:
    started = tree.wait_event("acq", "StreamStarted", flow="main")
    assert started["event"] == "ev1" and started["source"] == H["prov"]
    assert started["transport"] == "rtp"
    rec = tree.wait_event("acq", "StreamRecognised", flow="main")
    assert rec["container"] == "mpegts" and rec["complete"]
    kinds = {s["kind"]: s for s in rec["streams"]}
    assert kinds["video"]["codec"] == "h264"
    assert (kinds["video"]["width"], kinds["video"]["height"]) == (320, 240)
    assert kinds["video"]["frame_rate"] == 25.0
    assert kinds["audio"]["codec"] == "aac" and kinds["audio"]["sample_rate"] == 44100
    measured = tree.wait_event("acq", "StreamMeasured", flow="main")
    assert 50_000 < measured["bitrate_bps"] < 5_000_000
    flow = tree.stats("acq")["flows"]["main"]
    assert flow["armed"] and flow["streaming"] and flow["recognised"]["complete"]
    assert flow["path"]["hops"][0]["hop"] == f"{H['fwd']}:6000"
    assert flow["path"]["hops"][0]["sent"] > 0


def test_rtp_viewer_joins_and_decodes_through_the_sdp(tree: Lan) -> None:
    edge = H["edge1"]
    status, sdp = tree.http("v1", f"http://{edge}:8080/rtp/X/source/join?port=5004", "POST")
    assert status == 200, sdp
    assert f"c=IN IP4 {edge}" in sdp and "m=video 5004 RTP/AVP 33" in sdp
    assert "a=rtpmap:33 MP2T/90000" in sdp
    path = tree.tmp / "v1-source.sdp"
    path.write_text(sdp)
    got = tree.probe("v1", str(path), sdp=True)
    assert got["frames"] > 25 and (got["width"], got["height"]) == (320, 240), got
    joined = tree.wait_event("edge1", "ViewerJoined", viewer=f"{H['v1']}:5004")
    assert joined["via"] == "join" and joined["rendition"] == "source"
    status, _ = tree.http("v1", f"http://{edge}:8080/rtp/X/source/leave?port=5004", "POST")
    assert status == 200
    tree.wait_event("edge1", "ViewerLeft", viewer=f"{H['v1']}:5004", reason="left")
    feed = tree.stats("edge1")["contents"]["X"]["feeds"]["source"]
    assert feed["viewers"] == [] and feed["path"]["hops"] == []


def test_configured_viewer_decodes_through_the_second_streamer(tree: Lan) -> None:
    """The forwarder's second copy: edge2 sends to the viewer its config lists."""
    status, sdp = tree.http("v2", f"http://{H['edge2']}:8080/rtp/X/source.sdp?port=5006")
    assert status == 200 and "m=video 5006" in sdp
    path = tree.tmp / "v2-source.sdp"
    path.write_text(sdp)
    got = tree.probe("v2", str(path), sdp=True)
    assert got["frames"] > 25 and got["codec"] == "h264", got
    fwd = tree.stats("fwd")["routes"]["X"]
    sent = {h["hop"]: h["sent"] for h in fwd["hops"]}
    assert sent[f"{H['edge1']}:7000"] > 0 and sent[f"{H['edge2']}:7000"] > 0


def test_hls_viewers_decode_the_source_and_a_lower_rendition(tree: Lan) -> None:
    master_url = f"http://{H['edge2']}:8080/hls/X/index.m3u8"
    assert until(lambda: tree.http("v2", master_url)[0] == 200, 30)
    _, master = tree.http("v2", master_url)
    assert "source/index.m3u8" in master and "RESOLUTION=320x240" in master
    source_url = f"http://{H['edge2']}:8080/hls/X/source/index.m3u8"
    assert until(lambda: "#EXTINF" in tree.http("v2", source_url)[1], 30)
    got = tree.probe("v2", master_url)
    assert got["frames"] > 25 and (got["width"], got["height"]) == (320, 240), got

    low = f"http://{H['edge1']}:8080/hls/X/low/index.m3u8"
    assert until(lambda: "#EXTINF" in tree.http("v1", low)[1], 40), tree.stats("edge1")
    got = tree.probe("v1", low)
    assert got["frames"] > 25 and (got["width"], got["height"]) == (160, 120), got
    _, playlist = tree.http("v1", low)
    assert '#EXT-X-MAP:URI="init.mp4"' in playlist  # fMP4 segments
    _, master = tree.http("v1", f"http://{H['edge1']}:8080/hls/X/index.m3u8")
    assert "low/index.m3u8" in master and "source/index.m3u8" in master


def holds(playlist: str, msn: int, part: int) -> bool:
    """An LL-HLS playlist lists segment `msn` whole, or at least its part number `part`."""
    seq = int(playlist.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
    current, parts = seq, 0
    for line in playlist.splitlines():
        if line.startswith("#EXT-X-PART:"):
            parts += 1
        elif line.startswith("s") and line.endswith(".m4s"):
            if current == msn:
                return True
            current, parts = current + 1, 0
    return current == msn and parts > part


def test_low_latency_hls_blocks_for_parts_and_hints_the_next(tree: Lan) -> None:
    """edge2 serves LL-HLS (above, a plain HLS client read the same playlist)."""
    url = f"http://{H['edge2']}:8080/hls/X/source/index.m3u8"
    assert until(lambda: "#EXT-X-PART:" in tree.http("v2", url)[1], 30)
    _, text = tree.http("v2", url)
    assert "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=" in text
    assert "#EXT-X-PART-INF:PART-TARGET=" in text
    sequence = int(text.split("#EXT-X-MEDIA-SEQUENCE:")[1].split()[0])
    msn = sequence + text.count("#EXTINF")  # the open segment
    # Blocking reload: ask for part 3 of the open segment; the answer holds it.
    _, later = tree.http("v2", f"{url}?_HLS_msn={msn}&_HLS_part=3")
    assert holds(later, msn, 3), later
    # Preload hint: the next part is answered once written.
    hint = later.split('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="')[1].split('"')[0]
    assert tree.status("v2", url.replace("index.m3u8", hint)) == 200
    # A segment is its parts, concatenated; too far ahead is refused.
    seg = [ln for ln in later.splitlines() if ln.startswith("s") and ln.endswith(".m4s")][-1]
    assert tree.status("v2", url.replace("index.m3u8", seg)) == 200
    assert tree.http("v2", f"{url}?_HLS_msn={msn + 50}")[0] == 400
    assert tree.http("v2", f"{url}?_HLS_part=1")[0] == 400
    st = tree.stats("edge2")["contents"]["X"]["feeds"]["source"]["hls"]
    assert st["segments"] >= 1 and st["part_target"] >= 0.2


def test_bad_join_requests_are_refused_with_a_reason(tree: Lan) -> None:
    base = f"http://{H['edge1']}:8080/rtp"
    assert tree.http("v1", f"{base}/X/source/join?port=80", "POST")[0] == 400
    assert tree.http("v1", f"{base}/X/source/join", "POST")[0] == 400
    assert tree.http("v1", f"{base}/nope/source/join?port=5004", "POST")[0] == 404
    assert tree.http("v1", f"{base}/X/source/join?port=5004", "GET")[0] == 405
    assert tree.http("v1", f"{base}/X/source/leave?port=5008", "POST")[0] == 404
    assert tree.http("v1", f"http://{H['edge1']}:8080/hls/X/source/..%2f..%2fetc")[0] == 404


# ----------------------------------------------------------------------- a recording


def test_recording_made_mid_stream_plays_back_as_vod(tree: Lan) -> None:
    # The storage joins only now: the forwarder gets a third hop, in place.
    tree.call("fwd", {"op": "configure", "config": relay_config({"host": H["sto"], "port": 7100})})
    volume = tree.tmp / "volume"
    rec = [{"id": "r1", "user": "alice", "content": "X"}]
    assert tree.call("sto", {"op": "configure", "config": storage_config(volume, rec)})["applied"]
    tree.wait_event("sto", "RecordingStarted", recording="r1")
    assert until(lambda: tree.stats("sto")["recordings"]["r1"]["duration_s"] >= 5, 40)
    rec[0]["state"] = "stopped"
    tree.call("sto", {"op": "configure", "config": storage_config(volume, rec)})
    stopped = tree.wait_event("sto", "RecordingStopped", recording="r1")
    assert stopped["reason"] == "requested" and stopped["duration_s"] >= 5

    url = f"http://{H['sto']}:8081/vod/r1/index.m3u8"
    status, playlist = tree.http("v1", url)
    assert status == 200
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in playlist and playlist.rstrip().endswith("#EXT-X-ENDLIST")
    fmt = tree.run("v1", ["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "json", url])  # fmt: skip
    assert float(json.loads(fmt.stdout)["format"]["duration"]) >= 5, fmt.stdout

    def first_frame_from(position: str) -> float:
        """pts of the first video frame ffprobe reads after seeking to `position`."""
        out = tree.run("v1", ["ffprobe", "-v", "error", "-i", url, "-select_streams", "v",
                              "-read_intervals", f"{position}%+#1",
                              "-show_entries", "frame=pts_time", "-of", "json"])  # fmt: skip
        frames = json.loads(out.stdout or "{}").get("frames", [])
        assert frames, out.stderr
        return float(frames[0]["pts_time"])

    # Seek: reading from 3 s past the first frame starts 3 s (plus at most a GOP) in.
    first = first_frame_from("")
    assert 2.9 <= first_frame_from(f"{first + 3:.3f}") - first <= 4.1
    # On the volume: the manifest and the segments, under the user's directory.
    assert (volume / "alice" / "r1" / "recording.json").exists()
    assert list((volume / "alice" / "r1").glob("r0_*.ts"))


def test_a_recording_plays_through_an_edge_streamer_with_its_users_token(tree: Lan) -> None:
    """edge1 relays r1 (recorded above) from the real storage, which now wants a grant:
    alice's token plays it (a whole VOD, seekable), bob's or none is refused."""
    key = "k" * 24
    volume = tree.tmp / "volume"
    rec = [{"id": "r1", "user": "alice", "content": "X", "state": "stopped"}]
    sto_url = f"http://{H['sto']}:8081/vod/r1/"
    grant = tokens.issue(key, "vod:r1", int(time.time()) + 600)
    relayed = {"id": "r1", "user": "alice", "origin": sto_url, "origin_secret": grant}
    try:
        sto = {**storage_config(volume, rec), "secret": key}
        assert tree.call("sto", {"op": "configure", "config": sto})["applied"]
        vod = {"secret": key, "recordings": [relayed]}
        assert tree.call("edge1", {"op": "configure", "config": {**EDGE1, "vod": vod}})["applied"]
        assert tree.http("v1", sto_url + "index.m3u8")[0] == 403  # no grant, no recording

        def token(user: str) -> str:
            return tokens.issue(key, f"vod:r1:{user}", int(time.time()) + 600)

        url = f"http://{H['edge1']}:8080/vod/r1/index.m3u8"
        mine = token("alice")
        alice = f"{url}?token={mine}"
        status, playlist = tree.http("v1", alice)
        assert status == 200 and "#EXT-X-PLAYLIST-TYPE:VOD" in playlist
        assert playlist.rstrip().endswith("#EXT-X-ENDLIST") and grant not in playlist
        assert f".ts?token={mine}" in playlist  # her token on its segments
        assert tree.http("v1", url)[0] == 403
        assert tree.http("v1", f"{url}?token={token('bob')}")[0] == 403
        fmt = tree.run("v1", ["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "json", alice])  # fmt: skip
        whole = float(json.loads(fmt.stdout)["format"]["duration"])
        assert whole >= 5, fmt.stdout
        out = tree.run("v1", ["ffprobe", "-v", "error", "-i", alice, "-select_streams", "v",
                              "-read_intervals", f"{whole / 2:.3f}%+#1",
                              "-show_entries", "frame=pts_time", "-of", "json"])  # fmt: skip
        assert json.loads(out.stdout or "{}").get("frames"), out.stderr  # a seek to its middle
        figs = tree.stats("edge1")["vod"]["recordings"]["r1"]
        assert figs["fetches"] > 0 and figs["hits"] > 0 and figs["refused"] == 2
    finally:
        tree.call("edge1", {"op": "configure", "config": EDGE1})
        tree.call("sto", {"op": "configure", "config": storage_config(volume, rec)})


def test_recording_quota_stops_then_refuses(tree: Lan) -> None:
    volume = tree.tmp / "volume"
    recs = [{"id": "r1", "user": "alice", "content": "X", "state": "stopped"},
            {"id": "b1", "user": "bob", "content": "X"}]  # fmt: skip
    tree.call("sto", {"op": "configure", "config": storage_config(volume, recs)})
    stopped = tree.wait_event("sto", "RecordingStopped", timeout=60, recording="b1")
    assert stopped["reason"] == "quota"
    st = tree.stats("sto")
    assert st["users"]["bob"]["quota"] == 120_000
    # At most about a second of stream past the quota.
    assert 120_000 <= st["users"]["bob"]["used"] < 120_000 + 400_000
    recs.append({"id": "b2", "user": "bob", "content": "X"})
    tree.call("sto", {"op": "configure", "config": storage_config(volume, recs)})
    refused = tree.wait_event("sto", "RecordingStopped", recording="b2")
    assert refused["reason"] == "refused" and refused["octets"] == 0
    # What bob has recorded still plays.
    status, playlist = tree.http("v1", f"http://{H['sto']}:8081/vod/b1/index.m3u8")
    assert status == 200 and "#EXT-X-ENDLIST" in playlist


def test_recordings_survive_a_restart_of_the_function(tree: Lan) -> None:
    volume = tree.tmp / "volume"
    tree.stop("sto")
    tree.start("sto", "sto", "storage", storage_config(volume, []))
    status, body = tree.http("v1", f"http://{H['sto']}:8081/recordings?user=alice")
    assert status == 200 and '"r1"' in body
    got = tree.probe("v1", f"http://{H['sto']}:8081/vod/r1/index.m3u8", seconds=2)
    assert got["frames"] > 25, got


# ------------------------------------------------------------------ SRT and RTMP ingest


def acquirer_sdp(tree: Lan, name: str) -> Path:
    """The SDP of the acquirer's copy for a viewer listening on port 9000."""
    path = tree.tmp / name
    path.write_text(stream_sdp(H["acq"], 9000, name, "source"))
    return path


def test_srt_ingest_is_recognised_and_forwarded(tree: Lan) -> None:
    sdp = acquirer_sdp(tree, "v1-srt.sdp")
    url = f"srt://{H['acq']}:5010?mode=caller&passphrase={SRT_PASSPHRASE}"
    tree.popen("srt-source", "prov", [*source_args(60), "-f", "mpegts", url])
    started = tree.wait_event("acq", "StreamStarted", timeout=30, flow="srt")
    assert started["transport"] == "srt" and started["source"] == H["prov"]
    rec = tree.wait_event("acq", "StreamRecognised", timeout=30, flow="srt")
    assert {s["codec"] for s in rec["streams"]} == {"h264", "aac"}
    got = tree.probe("v1", str(sdp), sdp=True)
    assert got["frames"] > 25 and got["width"] == 320, got
    # The passphrase reaches the acquirer's ffmpeg in a 0600 file: no argument list
    # holds it but the provider's own tool's, and the function's stats do not show it.
    ours = argvs(tree)
    holders = [a for a in ours if any(SRT_PASSPHRASE in x for x in a)]
    assert holders and all(any("mode=caller" in x for x in a) for a in holders), holders
    ingest = [a for a in ours if any(x.endswith("ingest.ffconcat") for x in a)]
    assert len(ingest) == 1 and ingest[0][0].endswith("ffmpeg"), ingest
    assert SRT_PASSPHRASE not in json.dumps(tree.call("acq", {"op": "status"}))
    tree.stop("srt-source")


def argvs(tree: Lan) -> list[list[str]]:
    """The argument list (/proc/PID/cmdline) of every process in this run's
    namespaces: not another run's (other tests run the same programs at once)."""
    mine = {os.stat(f"/var/run/netns/{tree.ns(h)}").st_ino for h in H}
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            with contextlib.suppress(OSError):  # ended meanwhile
                if os.stat(f"/proc/{pid}/ns/net").st_ino not in mine:
                    continue
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                out.append([a.decode(errors="replace") for a in raw.split(b"\0") if a])
    return out


def test_rtmp_ingest_is_recognised_and_forwarded(tree: Lan) -> None:
    sdp = acquirer_sdp(tree, "v2-rtmp.sdp")
    url = f"rtmp://{H['acq']}:5020/live/{RTMP_KEY}"  # as OBS: server .../live, the key
    tree.popen("rtmp-source", "prov", [*source_args(60), "-f", "flv", url])
    started = tree.wait_event("acq", "StreamStarted", timeout=30, flow="rtmp")
    assert started["transport"] == "rtmp" and started["source"] == H["prov"]
    rec = tree.wait_event("acq", "StreamRecognised", timeout=30, flow="rtmp")
    assert {s["codec"] for s in rec["streams"]} == {"h264", "aac"}
    got = tree.probe("v2", str(sdp), sdp=True)
    assert got["frames"] > 25 and got["height"] == 240, got
    # A second publisher while the first is connected is refused: busy.
    s = netns.socket_in(tree.ns("v1"), socket.AF_INET, socket.SOCK_STREAM)
    with s:
        s.settimeout(5)
        s.connect((H["acq"], 5020))
        assert s.recv(10) == b""  # closed at once
    ev = tree.wait_event("acq", "StreamRefused", port=5020, reason="busy")
    assert "already has a provider" in ev["detail"]
    tree.stop("rtmp-source")
    # ffmpeg warns of the stream name it did not expect: the key is hidden in its stats.
    assert RTMP_KEY not in json.dumps(tree.call("acq", {"op": "status"}))


def test_a_wrong_rtmp_key_or_srt_passphrase_is_refused_with_the_reason(tree: Lan) -> None:
    """A publisher with another stream key, an SRT caller with another passphrase or
    none: refused with the reason on their flow, never the keys in the event; the
    right key is taken after (the flow is unchanged)."""
    acq = H["acq"]
    last = max([e["seq"] for e in tree.events("acq")], default=0)
    before = tree.stats("acq")["refused"]
    tree.popen("bad-rtmp", "prov", [*source_args(5), "-f", "flv",
                                    f"rtmp://{acq}:5020/live/not-the-key"])  # fmt: skip
    ev = tree.wait_event("acq", "StreamRefused", timeout=30, after=last, reason="wrong_key")
    assert ev["flow"] == "rtmp" and ev["event"] == "ev3" and ev["port"] == 5020, ev
    assert ev["transport"] == "tcp" and ev["source"] == H["prov"]
    assert ev["detail"] == "the RTMP stream key is not event ev3's: use the URL your studio shows"
    tree.stop("bad-rtmp")
    s = netns.socket_in(tree.ns("prov"), socket.AF_INET, socket.SOCK_STREAM)
    with s:  # not RTMP at all
        s.settimeout(5)
        s.connect((acq, 5020))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(10) == b""  # closed
    ev = tree.wait_event("acq", "StreamRefused", timeout=30, after=last, reason="not_rtmp")
    assert ev["flow"] == "rtmp" and "RTMP version 71" in ev["detail"], ev
    for name, q, reason, says in (
        ("bad-srt", "&passphrase=another-passphrase", "wrong_passphrase", "is not event ev2's"),
        ("no-srt", "", "no_passphrase", "is missing: it is event ev2's"),
    ):
        url = f"srt://{acq}:5010?mode=caller{q}"
        tree.popen(name, "prov", [*source_args(5), "-f", "mpegts", url])
        ev = tree.wait_event("acq", "StreamRefused", timeout=30, after=last, reason=reason)
        assert ev["flow"] == "srt" and ev["event"] == "ev2" and ev["port"] == 5010, ev
        assert ev["source"] == H["prov"] and ev["transport"] == "udp"
        assert f"the SRT passphrase {says}" in ev["detail"], ev
        tree.stop(name)
    refused = tree.stats("acq")["refused"]
    for reason in ("wrong_key", "wrong_passphrase", "no_passphrase"):
        assert refused.get(reason, 0) > before.get(reason, 0), (reason, refused)
    # Nothing changed for the flows: the right key streams again.
    last = max(e["seq"] for e in tree.events("acq"))
    url = f"rtmp://{acq}:5020/live/{RTMP_KEY}"
    tree.popen("rtmp-again", "prov", [*source_args(30), "-f", "flv", url])
    tree.wait_event("acq", "StreamStarted", timeout=30, after=last, flow="rtmp")
    # The refused sessions ended ffmpeg's listener by the acquirer's doing: no failure.
    assert not [e for e in tree.events("acq", "HelperFailed") if e["role"] == "ingest:rtmp"]
    assert tree.stats("acq")["flows"]["main"]["streaming"]
    status = json.dumps(tree.call("acq", {"op": "status"}))
    assert RTMP_KEY not in status and SRT_PASSPHRASE not in status
    assert "not-the-key" not in status and "another-passphrase" not in status
    tree.stop("rtmp-again")


# ---------------------------------------------------------------------------- refusals


def test_wrong_port_and_unarmed_flows_are_refused_with_the_reason(tree: Lan) -> None:
    acq = H["acq"]
    before = tree.stats("acq")["refused"]
    send_udp(tree, "prov", acq, 5006, [rtp(i) for i in range(5)])  # in the block, no flow
    send_udp(tree, "prov", acq, 5030, [rtp(i) for i in range(5)])  # its event ended
    send_udp(tree, "prov", acq, 5034, [rtp(i) for i in range(5)])  # no event
    send_udp(tree, "prov", acq, 5036, [rtp(i) for i in range(5)])  # armed tomorrow
    send_udp(tree, "v1", acq, 5000, [rtp(i) for i in range(5)])  # not the provider
    send_udp(tree, "prov", acq, 5020, [rtp(i) for i in range(5)])  # UDP to an RTMP port
    s = netns.socket_in(tree.ns("prov"), socket.AF_INET, socket.SOCK_STREAM)
    with s:  # TCP to an RTP port
        s.settimeout(5)
        s.connect((acq, 5000))
        assert s.recv(10) == b""

    wrong = tree.wait_event("acq", "StreamRefused", port=5006)
    assert wrong["reason"] == "wrong_port" and wrong["source"] == H["prov"]
    assert "ev1 takes RTP on port 5000" in wrong["detail"], wrong
    for port, reason, word in ((5030, "event_ended", "ended"), (5034, "no_event", "no event"),
                               (5036, "outside_window", "from"),
                               (5020, "wrong_protocol", "RTMP over TCP")):  # fmt: skip
        ev = tree.wait_event("acq", "StreamRefused", port=port)
        assert ev["reason"] == reason and word in ev["detail"], ev
    ev = tree.wait_event("acq", "StreamRefused", port=5000, transport="udp")
    assert ev["reason"] == "wrong_source" and ev["source"] == H["v1"]
    ev = tree.wait_event("acq", "StreamRefused", port=5000, transport="tcp")
    assert ev["reason"] == "wrong_protocol"
    after = tree.stats("acq")
    expected = {"wrong_port": 5, "event_ended": 5, "no_event": 5, "outside_window": 5,
                "wrong_source": 5, "wrong_protocol": 6}  # fmt: skip
    for reason, n in expected.items():
        assert after["refused"].get(reason, 0) - before.get(reason, 0) == n, (reason, after)
    # One event per episode, not per datagram.
    assert len([e for e in tree.events("acq", "StreamRefused") if e["port"] == 5006]) == 1
    flows = after["flows"]
    assert flows["over"]["not_armed_because"] == "event_ended"
    assert flows["later"]["not_armed_because"] == "outside_window"
    assert flows["main"]["streaming"]


def drops(counters: dict[str, int]) -> int:
    return sum(v for k, v in counters.items() if k.startswith("dropped_"))


JUNK = [
    b"",  # empty
    b"\x80",  # one byte
    bytes(range(11)),  # shorter than an RTP header
    b"\x00" * 1400,  # version 0
    b"\x81\xc8" + bytes(range(50)),  # RTCP sender report with a wrong length
    b"\xbf" * 60000,  # RTP-like, CSRC count and extension past the end
    b"GET / HTTP/1.1\r\n\r\n",
    RtpPacket(payload_type=96, sequence=1, timestamp=0, ssrc=7, payload=b"x").build(),
    b"\xa0\x21\x00\x01" + b"\x00" * 8 + b"\x05",  # padding longer than the payload
]


def test_garbage_is_counted_and_dropped_never_a_crash(tree: Lan) -> None:
    def acq() -> dict[str, int]:
        c: dict[str, int] = tree.stats("acq")["flows"]["main"]["path"]["counters"]
        return c

    def fwd() -> dict[str, int]:
        c: dict[str, int] = tree.stats("fwd")["routes"]["X"]["counters"]
        return c

    def edge() -> dict[str, int]:
        c: dict[str, int] = tree.stats("edge1")["contents"]["X"]["feeds"]["source"]["path"]
        return c["counters"]  # type: ignore[no-any-return]

    before = {"acq": drops(acq()), "fwd": drops(fwd()), "edge": drops(edge())}
    n = len(JUNK) * 3
    for _ in range(3):
        send_udp(tree, "prov", H["acq"], 5000, JUNK)
        send_udp(tree, "acq", H["fwd"], 6000, JUNK)
        send_udp(tree, "fwd", H["edge1"], 7000, JUNK)
        send_udp(tree, "fwd", H["sto"], 7100, JUNK)
    assert until(lambda: drops(acq()) - before["acq"] >= n), acq()
    assert until(lambda: drops(fwd()) - before["fwd"] >= n), fwd()
    assert until(lambda: drops(edge()) - before["edge"] >= n), edge()
    counters = acq()
    assert counters["dropped_garbage"] > 0 and counters["dropped_payload_type"] > 0
    assert any(k.startswith("garbage_") for k in counters), counters
    for name in ("acq", "fwd", "edge1", "edge2", "sto"):
        assert tree.alive(name), tree.log(name)
    # The stream flows on: the acquirer keeps forwarding the provider's datagrams.
    forwarded = counters["forwarded"]
    assert until(lambda: acq()["forwarded"] > forwarded)
