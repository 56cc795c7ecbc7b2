"""Issue 14's streaming figures in one run: ``netfate bench streaming --json``.

Each part measures ours against a baseline in the same run where one exists:

- ``join`` (the paper's testbed, services/streaming/topologies/streaming.yaml):
  request -> first decodable frame for a new edge streamer (case 4) and a warm one
  (case 1), against the probe's own floor (bench/streaming_join.py's rounds), and
  where the new streamer's time goes: pollers (every 50 ms, one per stage) of the
  platform's instance (created, running), the streamer's HTTP (answering, the
  content's datagrams arriving), the HLS initialisation section (the segmenter's
  probe done) and the media playlist (its first segment listed), each time since
  the request. ``join_dataplane`` (this benchmark's namespaces): the edge
  streamer's own share, before and after this change in the same rounds: the
  stream already at its port, from the function's start to ffprobe's first frame.
- ``recovery`` (same testbed, the fault tests' scenario: the lecture watched at pe2
  and pe5 so its tree branches at c1, where a forwarder runs): an RTP viewer joined
  at each edge streamer decodes (ffmpeg showinfo) and notes each frame's arrival
  and whether it is a key frame; the forwarder is killed (-9; its agent starts it
  again) or lost (its instance destroyed; the tree's loop builds a new one). The
  gap: from the last frame before the longest silence around the fault to the
  first key frame after it (the frames between reference lost data); the
  baseline: the longest silence in the window before the fault.
- ``capacity`` (this benchmark's namespaces, bench/streaming_relay.py's rig): one
  edge streamer fed a real 2 Mbit/s H.264 stream; N RTP viewers (joined over HTTP,
  sockets in the viewers' namespace), then N HLS viewers (clients polling the
  playlist, fetching each new segment), N growing; the serving process's CPU from
  /proc. The viewers' namespace gets as many addresses as the largest step needs:
  64 RTP joins and 16 HLS clients at most per address (the streamer's HTTP server
  admits 16 connections from one address, as a portal must; nginx has no such
  cap), so a step measures capacity, not that cap. What *served* means and how
  viewers per core are derived: the result's ``served_means``. The HLS baseline:
  nginx serving the streamer's own directory to the same clients, alternating per
  step.
- ``g2g``: glass-to-glass at the viewer (bench/streaming_relay.py): ours (RTP, HLS,
  LL-HLS) against the encoder-decoder floor and nginx-rtmp's HLS, and ours with
  the edge streamer's former HLS behaviour (``before``) in the same rounds.

    netfate bench streaming --json [--parts join,recovery,capacity,g2g] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.demo.platform import Api
from netfate.demo.sdn import until
from netfate.host import links, netns
from netfate.services.streaming.demo import TOPOLOGY, Scene, gone, live, restarted
from netfate.testbed.builder import Testbed
from netfate.vnf.portal.http import MAX_PER_CLIENT

PARTS = ("join", "recovery", "capacity", "g2g")
POLL_S = 0.05


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench streaming")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    p.add_argument("--rounds", type=int, default=3, help="rounds of join and recovery")
    p.add_argument("--g2g-rounds", type=int, default=1)
    p.add_argument("--g2g-seconds", type=float, default=15.0)
    p.add_argument("--step-seconds", type=float, default=6.0, help="capacity: time per step")
    p.add_argument("--rtp-steps", default="1,25,50,100,150")
    p.add_argument("--hls-steps", default="1,25,50,100")
    a = p.parse_args(argv)
    unknown = set(a.parts.split(",")) - set(PARTS)
    if unknown:
        p.error(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    return a


def http_in(ns: str, url: str, method: str = "GET", timeout: float = 3.0) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 request made from namespace ``ns``; (0, b"") when
    nothing answers."""
    u = urllib.parse.urlsplit(url)
    try:
        sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(timeout)
            sock.connect((u.hostname or "", u.port or 80))
            path = u.path + (f"?{u.query}" if u.query else "")
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: {u.hostname}\r\nConnection: close\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
            data = bytearray()
            while chunk := sock.recv(1 << 16):
                data += chunk
    except OSError:
        return 0, b""
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


# ------------------------------------------------------------------------------ join


class Stages(threading.Thread):
    """Seconds from ``t0`` until each stage of a new edge streamer was first seen."""

    def __init__(self, sc: Scene, ns: str, streamer: str, hls: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.sc, self.ns, self.name, self.hls, self.t0 = sc, ns, f"streamer-{streamer}", hls, t0
        u = urllib.parse.urlsplit(hls)
        self.root = f"{u.scheme}://{u.netloc}/"
        self.content = u.path.split("/")[2]
        # The answer's URL is the master playlist; the source rendition's is below it.
        self.media = f"{self.root}hls/{self.content}/source/index.m3u8"
        self.init = f"{self.root}hls/{self.content}/source/init.mp4"
        self.seen: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.done = threading.Event()
        self.start()

    def mark(self, stage: str, cond: bool) -> None:
        if cond and stage not in self.seen:
            self.seen[stage] = round(time.monotonic() - self.t0, 3)

    def run(self) -> None:
        # One poller per check: a held request (the first playlist) delays no other.
        checks = (self.instance, self.http, self.init_written, self.listed)
        pollers = [threading.Thread(target=self.poll, args=(c,), daemon=True) for c in checks]
        for t in pollers:
            t.start()
        for t in pollers:
            t.join()

    def poll(self, check: Any) -> None:
        while not self.done.is_set() and time.monotonic() - self.t0 < 60:
            try:
                check()
            except Exception as e:  # a failed poll is a stage not seen yet
                self.errors[check.__name__] = repr(e)[:200]
            time.sleep(POLL_S)

    def instance(self) -> None:
        inst = live(self.sc.api, self.name)
        self.mark("instance_created", inst is not None)
        self.mark("instance_running", inst is not None and inst["state"] == "running")

    def http(self) -> None:
        status, body = http_in(self.ns, self.root, timeout=1)
        self.mark("http_answers", status == 200)
        if status == 200:
            cat = json.loads(body)["contents"].get(self.content, {})
            fed = cat.get("renditions", {}).get("source", {}).get("live")
            self.mark("stream_arrives", bool(fed))

    def init_written(self) -> None:
        self.mark("hls_init_written", http_in(self.ns, self.init, timeout=1)[0] == 200)

    def listed(self) -> None:
        status, body = http_in(self.ns, self.media, timeout=10)
        self.mark("first_segment_listed", status == 200 and b"#EXTINF" in body)


def join_rounds(sc: Scene, rounds: int) -> dict[str, Any]:
    jb = common.load_sibling("streaming_join")
    ns = sc.tb.netns_of("phone")
    samples: dict[str, list[float]] = {"new_streamer": [], "warm": [], "floor": []}
    stages: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    for i in range(rounds):
        for user in (f"new{i}", f"warm{i}"):  # viewers sign in first: not timed
            sc.api.as_user(user)
        t0 = time.monotonic()
        a = sc.join(f"new{i}", "phone", "lecture")
        assert a["case"] == 4, a
        watch = Stages(sc, ns, a["streamer"], a["hls"], t0)
        samples["new_streamer"].append(jb.until_frame(ns, a["hls"], t0))
        watch.done.set()
        watch.join()
        for k, v in watch.seen.items():
            stages.setdefault(k, []).append(v)
        errors.update(watch.errors)
        t0 = time.monotonic()
        b = sc.join(f"warm{i}", "phone", "lecture")
        assert b["case"] == 1, b
        samples["warm"].append(jb.until_frame(ns, b["hls"], t0))
        samples["floor"].append(jb.until_frame(ns, b["hls"], time.monotonic()))
        for client in (f"new{i}", f"warm{i}"):
            sc.leave(client)
        until("the streamer's release", gone(sc.api, f"streamer-{a['streamer']}"), 60)
    out: dict[str, Any] = {k: common.summary(v) for k, v in samples.items()}
    floor = out["floor"]["median"]
    out["ratio_to_floor"] = {
        k: common.ratio(out[k]["median"], floor) for k in ("new_streamer", "warm")
    }
    order = sorted(stages, key=lambda k: common.percentile(stages[k], 50))
    out["new_streamer_stages_s"] = {k: common.summary(stages[k]) for k in order}
    out["goals_s"] = {"warm": 1.0, "new_streamer": 3.0}
    if errors:
        out["stage_poll_errors"] = errors
    return out


# -------------------------------------------------------------------------- recovery


class FrameClock(threading.Thread):
    """An RTP viewer joined at an edge streamer: ffmpeg decodes it (showinfo: one line
    per frame, key frames marked) and the wall time of each frame is noted."""

    def __init__(self, ns: str, sdp: str, name: str) -> None:
        super().__init__(daemon=True)
        argv = ["ffmpeg", "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
                "-protocol_whitelist", "file,rtp,udp", "-fflags", "+nobuffer", "-i", sdp,
                "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"]  # fmt: skip
        self.proc = netns.popen_in(ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.name = name
        self.frames: list[tuple[float, bool]] = []
        """(arrival, key frame) of each decoded frame."""
        self.start()

    def run(self) -> None:
        err = self.proc.stderr
        assert err is not None
        for line in err:
            if b"Parsed_showinfo" in line and b" iskey:" in line:
                self.frames.append((time.monotonic(), b" iskey:1" in line))

    def stop(self) -> None:
        common.stop_process(self.proc)

    def outage(self, t0: float, t1: float, lossy: bool = True) -> dict[str, float] | None:
        """The longest silence between two frames with the later one in (t0, t1]: its
        length (``silence``), and from the last frame before it to the first
        decodable one after (``gap``): with ``lossy`` (a fault lost datagrams) the
        first key frame at or after its end, since frames between lost their
        references; without, the frame that ended the silence."""
        fs = self.frames
        best: tuple[float, int] | None = None
        for i in range(1, len(fs)):
            if t0 < fs[i][0] <= t1 and (best is None or fs[i][0] - fs[i - 1][0] > best[0]):
                best = (fs[i][0] - fs[i - 1][0], i)
        if best is None:
            return None
        silence, i = best
        key = next((t for t, k in fs[i:] if k or not lossy), None)
        if key is None:
            return None
        return {"silence": silence, "gap": key - fs[i - 1][0]}


def rtp_viewer(sc: Scene, client: str, port: int, tmp: str) -> FrameClock:
    """Join ``client``'s edge streamer over RTP from its host and decode the stream."""
    v = sc.viewer(client)
    ns = sc.tb.netns_of(sc.hosts[client])
    u = urllib.parse.urlsplit(v["hls"])
    url = f"{u.scheme}://{u.netloc}/rtp/{v['content']}/source/join?port={port}"
    status, sdp = http_in(ns, url, method="POST")
    if status != 200:
        raise SystemExit(f"RTP join at {url}: {status} {sdp[:200]!r}")
    path = os.path.join(tmp, f"{client}.sdp")
    with open(path, "wb") as f:
        f.write(sdp)
    return FrameClock(ns, path, client)


def frames_flow(clocks: list[FrameClock], since: float, n: int = 15) -> bool:
    """Each viewer decoded ``n`` frames since ``since``, a key frame among them."""
    return all(len(fs := [k for t, k in c.frames if t > since]) >= n and any(fs) for c in clocks)


def recovery_rounds(sc: Scene, rounds: int, tmp: str) -> dict[str, Any]:
    viewers = (("alice", "phone"), ("erin", "laptop"))
    for client, host in viewers:
        a = sc.join(client, host, "lecture")
        assert a["case"] == 4, a
    sc.forwarder("c1", "lecture")
    for client, _ in viewers:
        sc.decodes(client)
    clocks = [rtp_viewer(sc, c, 5004 + 2 * i, tmp) for i, (c, _) in enumerate(viewers)]
    seen: dict[str, list[dict[str, float]]] = {"killed": [], "lost": [], "no_fault": []}
    try:
        until("frames at both RTP viewers", lambda: frames_flow(clocks, 0), 60)
        for _ in range(rounds):
            for fault in ("killed", "lost"):
                quiet = time.monotonic()
                until("frames flowing", lambda q=quiet: frames_flow(clocks, q, 30), 60)
                t_fault = time.monotonic()
                seen["no_fault"] += [o for c in clocks if (o := c.outage(quiet, t_fault, False))]
                inst = live(sc.api, "forwarder-c1")
                assert inst is not None and inst["pid"], inst
                if fault == "killed":
                    os.kill(int(inst["pid"]), signal.SIGKILL)  # this run's agent's child
                    until("the forwarder again", restarted(sc.api, "forwarder-c1", inst["pid"]),
                          120)  # fmt: skip
                else:
                    sc.api("DELETE", f"/instances/{inst['id']}")
                    until("a new forwarder on c1",
                          lambda old=inst["id"]: (i := live(sc.api, "forwarder-c1")) is not None
                          and i["id"] != old and i["state"] == "running", 120)  # fmt: skip
                until("frames after the fault", lambda t=t_fault: frames_flow(clocks, t, 30), 120)
                t_end = time.monotonic()
                seen[fault] += [o for c in clocks if (o := c.outage(t_fault, t_end))]
    finally:
        for c in clocks:
            c.stop()
        for client, _ in viewers:
            sc.leave(client)
    out: dict[str, Any] = {}
    for k, os_ in seen.items():
        if os_:
            out[f"{k}_gap_s"] = common.summary([o["gap"] for o in os_])
            out[f"{k}_silence_s"] = common.summary([o["silence"] for o in os_])
    base = out.get("no_fault_gap_s", {}).get("median")
    for k in ("killed", "lost"):
        if f"{k}_gap_s" in out:
            out[f"ratio_{k}_gap_to_no_fault"] = common.ratio(out[f"{k}_gap_s"]["median"], base)
    out["goal_s"] = 2.0
    out["method"] = (
        "RTP viewers joined at the edge streamers on pe2 and pe5 decode with ffmpeg (showinfo); "
        "gap: the last frame before the longest silence around the fault to the first key "
        "frame after it (frames between reference lost data); silence: no frame at all; "
        "no_fault (the baseline): the longest silence in the window before each fault, no "
        "loss there; one value per viewer per fault"
    )
    return out


def testbed_parts(a: argparse.Namespace, parts: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    tb = Testbed.up(TOPOLOGY)
    try:
        assert tb.api_url
        sc = Scene(tb, Api(tb.api_url), lambda _m: None)
        try:
            sc.start()
            sc.recognised("lecture")
            if "join" in parts:
                out["join"] = join_rounds(sc, a.rounds)
            if "recovery" in parts:
                with tempfile.TemporaryDirectory(prefix="nf-bench-recovery-") as tmp:
                    out["recovery"] = recovery_rounds(sc, a.rounds, tmp)
        finally:
            sc.stop()
    finally:
        problems = tb.down()
        if problems:
            out["teardown_problems"] = problems
    return out


# ------------------------------------------------------------------------ the rig parts

VIEW_FIRST, VIEW_LAST = 40, 250
"""The viewers' namespace's addresses: NET.40 (its own) and, as many as a step needs, the next."""
RTP_PER_ADDRESS = 64
"""RTP joins per viewer address: the edge streamer's `join.per_address` below."""
HLS_PER_ADDRESS = MAX_PER_CLIENT
"""HLS clients per viewer address: the streamer's HTTP server admits 16 connections
from one address (portal/http.py Admission); nginx has no such cap. Real viewers sit
behind many addresses: more clients per address would measure the cap, not capacity."""


def view_addr(net: str, i: int) -> str:
    """The viewers' i-th address."""
    if not 0 <= i <= VIEW_LAST - VIEW_FIRST:
        raise SystemExit(f"at most {VIEW_LAST - VIEW_FIRST + 1} viewer addresses")
    return f"{net}.{VIEW_FIRST + i}"


def addresses_needed(rtp_viewers: int, hls_viewers: int) -> int:
    """Viewer addresses for the largest steps: 64 RTP joins, 16 HLS clients each."""
    return max(1, -(-rtp_viewers // RTP_PER_ADDRESS), -(-hls_viewers // HLS_PER_ADDRESS))


def hls_sources(net: str, n: int) -> list[str]:
    """Each of N HLS clients' source address: spread evenly over as few addresses as
    hold them at HLS_PER_ADDRESS each."""
    k = addresses_needed(0, n)
    return [view_addr(net, i % k) for i in range(n)]


EDGE_URL = "http://{edge}:8080/hls/X/source/index.m3u8"


def edge_config(settings: dict[str, Any], hls: bool = True, **join: Any) -> dict[str, Any]:
    return {"contents": [{"id": "X", "port": 7000, "hls": hls}], "http_port": 8080,
            "hls": {"segment_s": 1, **settings},
            "join": {"per_address": RTP_PER_ADDRESS, **join},
            }  # fmt: skip


def join_dataplane(rig: Any, relay: Any, rounds: int) -> dict[str, Any]:
    """A new edge streamer's own share of a join, before and after in the same
    rounds: the stream already flows to its port; from the function's start until
    ffprobe in the viewers' namespace decodes a first frame of its HLS."""
    jb = common.load_sibling("streaming_join")
    url = EDGE_URL.format(edge=relay.addr("edge"))
    out = ["-f", "rtp_mpegts", f"rtp://{relay.addr('edge')}:7000"]
    src = relay.FrameSource(rig, out, "join-source", rounds * 2 * 40 + 20)
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        for i in range(rounds):
            for tag, settings in (("before", relay.BEFORE_HLS), ("after", {})):
                t0 = time.monotonic()
                p = rig.function("edge", "edge", edge_config(settings), f"edge-join-{tag}{i}")
                ready = time.monotonic() - t0
                frame = jb.until_frame(rig.ns("view"), url, t0)
                rig.stop(p)
                got = samples.setdefault(tag, {"function_ready": [], "first_frame": []})
                got["function_ready"].append(ready)
                got["first_frame"].append(frame)
    finally:
        rig.stop(src.proc)
    res: dict[str, Any] = {
        tag: {k: common.summary(v) for k, v in got.items()} for tag, got in samples.items()
    }
    res["ratio_after_to_before"] = common.ratio(
        res["after"]["first_frame"]["median"], res["before"]["first_frame"]["median"]
    )
    res["setup"] = (
        "640x360 at 25 fps, GOP 1 s, 1 s segments; the edge streamer started by hand "
        "(python -m netfate.vnf, as an agent does) with the stream already at its port"
    )
    return res


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


class RtpViewers(threading.Thread):
    """N UDP sockets in the viewers' namespace (64 per address); the kernel's arrival
    time of each datagram by RTP sequence number, per socket."""

    def __init__(self, rig: Any, relay: Any, n: int) -> None:
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.socks: list[socket.socket] = []
        self.rx: list[dict[int, float]] = []
        self.binds: list[tuple[str, int]] = []
        for i in range(n):
            port = 20000 + 2 * (i % RTP_PER_ADDRESS)
            bind = (view_addr(relay.NET, i // RTP_PER_ADDRESS), port)
            sock = netns.socket_in(rig.ns("view"), socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setsockopt(socket.SOL_SOCKET, relay.SO_TIMESTAMPNS, 1)
            sock.bind(bind)
            sock.setblocking(False)
            self.sel.register(sock, selectors.EVENT_READ, i)
            self.socks.append(sock)
            self.rx.append({})
            self.binds.append(bind)
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopped.is_set():
            for key, _ in self.sel.select(0.2):
                sock, i = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                while True:
                    try:
                        data, anc, _, _ = sock.recvmsg(2048, 64)
                    except BlockingIOError:
                        break
                    if len(data) < 12 or not anc:
                        continue
                    sec, nsec = struct.unpack("qq", anc[0][2][:16])
                    self.rx[i][struct.unpack_from("!H", data, 2)[0]] = sec + nsec / 1e9

    def close(self) -> None:
        self.stopped.set()
        self.join()
        for sock in self.socks:
            sock.close()

    def judge(self, t0: float, t1: float, frame_s: float) -> dict[str, Any]:
        """Over the datagrams some viewer got first within wall-clock [t0, t1] (so none
        in flight at either end counts): each viewer's loss, and each datagram's
        lateness behind the first viewer to get it."""
        union: dict[int, float] = {}
        for rx in self.rx:
            for seq, t in rx.items():
                union[seq] = min(t, union.get(seq, t))
        window = {seq: t for seq, t in union.items() if t0 <= t <= t1}
        if not window:
            return {"served": False, "why": "no datagram reached any viewer"}
        losses = [1 - len(window.keys() & rx.keys()) / len(window) for rx in self.rx]
        late = [rx[seq] - t for rx in self.rx for seq, t in window.items() if seq in rx]
        p99 = common.percentile(late, 99)
        worst = max(losses)
        return {
            "datagrams_per_viewer": len(window),
            "worst_loss": round(worst, 5),
            "lateness_p99_ms": round(p99 * 1e3, 2),
            "served": worst < 0.001 and p99 <= frame_s,
        }


def join_rtp(rig: Any, relay: Any, viewers: RtpViewers) -> None:
    """Each viewer joins the edge streamer over HTTP from its own address and port."""
    for host, port in viewers.binds:
        sock = netns.socket_in(rig.ns("view"), socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(5)
            sock.bind((host, 0))
            sock.connect((relay.addr("edge"), 8080))
            sock.sendall(f"POST /rtp/X/source/join?port={port} HTTP/1.1\r\nHost: e\r\n"
                         "Connection: close\r\nContent-Length: 0\r\n\r\n".encode())  # fmt: skip
            head = sock.recv(64)
        if b" 200 " not in head:
            raise SystemExit(f"RTP join from {host}:{port} refused: {head!r}")


@dataclass
class HlsViewers:
    """What N HLS clients saw: how long each request took (playlists, segments)."""

    playlists: list[float] = field(default_factory=list)
    segments: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def hls_client(
    src: str, host: str, port: int, path: str, until_t: float, out: HlsViewers
) -> None:
    """One HLS viewer from address ``src``: the playlist every 0.5 s, each segment new
    to it fetched once (a connection per request: the streamer's HTTP closes each).
    Runs in a thread switched into the viewers' namespace (its sockets are there)."""

    async def get(p: str) -> bytes:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=(src, 0)), 5
        )
        writer.write(f"GET {p} HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise OSError(f"GET {p}: {head[:40]!r}")
        return body

    base = path.rsplit("/", 1)[0]
    have: set[str] | None = None
    while time.monotonic() < until_t:
        try:
            t = time.monotonic()
            listed = re.findall(r"^([^#\s].*)$", (await get(path)).decode(), re.M)
            out.playlists.append(time.monotonic() - t)
            if have is None:  # a player starts near the end, not at the window's start
                have = set(listed[:-1])
            for uri in listed:
                if uri not in have:
                    have.add(uri)
                    t = time.monotonic()
                    await get(f"{base}/{uri}")
                    out.segments.append(time.monotonic() - t)
        except (OSError, TimeoutError) as e:
            out.errors.append(str(e)[:100])
        await asyncio.sleep(0.5)


def hls_step(rig: Any, relay: Any, port: int, n: int, seconds: float) -> dict[str, Any]:
    """N HLS viewers (spread over the viewers' addresses) for ``seconds``: served when
    no request failed and 99 % of requests (playlists and segments) took at most half
    a segment (0.5 s), so a player two segments behind never runs dry."""
    out = HlsViewers()
    host = relay.addr("edge")
    path = "/hls/X/source/index.m3u8"

    async def all_of_them() -> None:
        end = time.monotonic() + seconds
        srcs = hls_sources(relay.NET, n)
        await asyncio.gather(*(hls_client(srcs[i], host, port, path, end, out)
                               for i in range(n)))  # fmt: skip

    netns.in_netns(rig.ns("view"), lambda: asyncio.run(all_of_them()))
    if not out.segments:
        return {"served": False, "why": "nothing fetched", "errors": out.errors[:3]}
    p99 = common.percentile(out.playlists + out.segments, 99)
    return {
        "segments": len(out.segments),
        "failed_requests": len(out.errors),
        "failures": sorted(set(out.errors))[:3],
        "segment_ms": common.summary([x * 1e3 for x in out.segments], 1),
        "request_p99_ms": round(p99 * 1e3, 1),
        "served": not out.errors and p99 <= 0.5,
    }


def per_core(steps: list[dict[str, Any]], cpu_key: str) -> dict[str, Any]:
    """Viewers per core at the largest step served: that step's viewers over the CPU
    it took beyond the smallest step's (the per-content work: input, analysis,
    segmenter feed), i.e. 1 / the CPU one more viewer costs."""
    served = [s for s in steps if s.get("served")]
    if len(served) < 2:
        return {"most_served": served[-1]["viewers"] if served else 0, "per_core": None}
    lo, hi = served[0], max(served, key=lambda s: s["viewers"])
    extra = hi[cpu_key] - lo[cpu_key]
    per_viewer = extra / (hi["viewers"] - lo["viewers"]) if hi["viewers"] > lo["viewers"] else 0
    return {
        "most_served": hi["viewers"],
        "cpu_per_viewer": round(per_viewer, 6),
        "per_core": round(1 / per_viewer) if per_viewer > 0 else None,
        "all_served": len(served) == len(steps),
    }


def cbr_clip(rig: Any) -> Path:
    """12 s of 640x360 at 25 fps, GOP 1 s, 2 Mbit/s CBR (a provider's typical rate),
    encoded once: streamed looped with -c copy, it costs the machine little."""
    clip = rig.tmp / "cbr.ts"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=640x360:rate=25", "-t", "12", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "25", "-b:v", "2M", "-minrate", "2M",
                    "-maxrate", "2M", "-bufsize", "1M", "-x264-params", "nal-hrd=cbr",
                    "-pix_fmt", "yuv420p", "-f", "mpegts", str(clip)], check=True)  # fmt: skip
    return clip


def capacity(rig: Any, relay: Any, a: argparse.Namespace) -> dict[str, Any]:
    """Viewers one edge streamer serves, RTP then HLS, and its CPU per step."""
    steps = {"rtp": [int(x) for x in a.rtp_steps.split(",")],
             "hls": [int(x) for x in a.hls_steps.split(",")]}  # fmt: skip
    count = addresses_needed(max(steps["rtp"]), max(steps["hls"]))
    have = netns.run_in(rig.ns("view"), ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]).stdout
    for i in range(1, count):
        if f"{view_addr(relay.NET, i)}/" not in have:
            links.add_address(rig.ns("view"), "eth0", f"{view_addr(relay.NET, i)}/24")
    clip = cbr_clip(rig)
    src = rig.popen("src", ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
                            "-stream_loop", "-1", "-i", str(clip), "-c", "copy", "-f",
                            "rtp_mpegts", f"rtp://{relay.addr('edge')}:7000"],
                    "capacity-source", stdout=subprocess.DEVNULL)  # fmt: skip
    res: dict[str, Any] = {"rtp": [], "hls": [], "hls_nginx": [], "viewer_addresses": count}
    try:
        p = rig.function("edge", "edge", edge_config({}, hls=False, max_viewers=10000),
                         "edge-rtp")  # fmt: skip
        try:
            for n in steps["rtp"]:
                viewers = RtpViewers(rig, relay, n)
                try:
                    join_rtp(rig, relay, viewers)
                    time.sleep(1.0)
                    c0, t0, w0 = proc_cpu_s(p.pid), time.monotonic(), time.time()
                    time.sleep(a.step_seconds)
                    cpu = (proc_cpu_s(p.pid) - c0) / (time.monotonic() - t0)
                    w1 = time.time()
                    time.sleep(0.5)  # what was in flight at w1 arrives
                finally:
                    viewers.close()
                judged = viewers.judge(w0, w1, 1 / relay.FPS)
                res["rtp"].append({"viewers": n, "edge_cpu": round(cpu, 3), **judged})
                # The joins hold their leases: the next, larger step joins the same
                # addresses and ports again (a renewal) and more.
        finally:
            rig.stop(p)
        res["hls"], res["hls_nginx"] = hls_capacity(rig, relay, a, steps["hls"])
    finally:
        rig.stop(src)
    res["rtp_viewers"] = per_core(res["rtp"], "edge_cpu")
    res["hls_viewers"] = per_core(res["hls"], "server_cpu")
    res["hls_nginx_viewers"] = per_core(res["hls_nginx"], "server_cpu")
    res["ratio_hls_per_core_to_nginx"] = common.ratio(
        res["hls_viewers"]["per_core"], res["hls_nginx_viewers"]["per_core"]
    )
    res["served_means"] = (
        "RTP: every viewer lost < 0.1 % of the datagrams any viewer got and 99 % of them "
        "reached each viewer within one frame (40 ms) of the first viewer to get it; HLS "
        "(clients polling the playlist every 0.5 s, fetching each new segment): no failed "
        "request and 99 % of requests done within 0.5 s (half a segment). Per core: 1 / "
        "the CPU one more viewer costs, from the smallest to the largest step served, of "
        "the serving process (the edge streamer's Python process; the HLS segmenter's "
        "ffmpeg, one per content, not counted; nginx: master and worker). Source: "
        "640x360 at 25 fps, 2 Mbit/s CBR, looped. Viewers come from several addresses "
        f"of the viewers' namespace: {RTP_PER_ADDRESS} RTP joins, {HLS_PER_ADDRESS} HLS "
        "clients at most per address (the streamer's HTTP server admits 16 connections "
        "from one address), the same for nginx. The clients are one Python thread on "
        "the same 2 cores: at the larger HLS steps they, not the server, limit requests"
    )
    return res


Steps = list[dict[str, Any]]


def hls_capacity(
    rig: Any, relay: Any, a: argparse.Namespace, steps: list[int]
) -> tuple[Steps, Steps]:
    """HLS viewers of the edge streamer, then of nginx serving the streamer's own
    directory (the baseline), alternating per step."""
    work = rig.tmp / "edge-work"
    cfg = edge_config({})
    cfg["work_dir"] = str(work)
    p = rig.function("edge", "edge", cfg, "edge-hls")
    conf = rig.tmp / "nginx-files.conf"
    conf.write_text(NGINX_FILES.format(tmp=rig.tmp, addr=relay.addr("edge"), root=work))
    nginx = rig.popen("edge", ["nginx", "-c", str(conf), "-p", str(rig.tmp)], "nginx-files",
                      stdout=subprocess.DEVNULL)  # fmt: skip
    ours: Steps = []
    theirs: Steps = []
    try:
        relay.wait_playlist(rig, EDGE_URL.format(edge=relay.addr("edge")))
        for n in steps:
            for into, port in ((ours, 8080), (theirs, 8091)):
                pids = [p.pid] if port == 8080 else [nginx.pid, *children(nginx.pid)]
                c0, t0 = sum(proc_cpu_s(x) for x in pids), time.monotonic()
                step = hls_step(rig, relay, port, n, a.step_seconds)
                cpu = (sum(proc_cpu_s(x) for x in pids) - c0) / (time.monotonic() - t0)
                into.append({"viewers": n, "server_cpu": round(cpu, 3), **step})
    finally:
        rig.stop(nginx)
        rig.stop(p)
    return ours, theirs


NGINX_FILES = """daemon off; master_process on; worker_processes 1; user root;
pid {tmp}/nginx-files.pid; error_log {tmp}/nginx-files-error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {tmp}/nf-cb; proxy_temp_path {tmp}/nf-px;
  fastcgi_temp_path {tmp}/nf-fc; uwsgi_temp_path {tmp}/nf-uw; scgi_temp_path {tmp}/nf-sc;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }}
  server {{ listen {addr}:8091;
            location /hls/ {{ root {root}; add_header Cache-Control no-cache; }} }} }}
"""
"""The HLS baseline: nginx serving the edge streamer's work directory as files."""


def rig_parts(a: argparse.Namespace, parts: set[str]) -> dict[str, Any]:
    relay = common.load_sibling("streaming_relay")
    out: dict[str, Any] = {}
    rig = relay.Rig()
    try:
        rig.up()
        if "join" in parts:
            out["join_dataplane"] = join_dataplane(rig, relay, a.rounds)
        if "capacity" in parts:
            out["capacity"] = capacity(rig, relay, a)
        if "g2g" in parts:
            ga = argparse.Namespace(rounds=a.g2g_rounds, g2g_seconds=a.g2g_seconds,
                                    only="direct,rtp,before,hls,ll,nginx")  # fmt: skip
            out["glass_to_glass"] = relay.glass_to_glass(rig, ga)
    finally:
        rig.down()
    return out


# ------------------------------------------------------------------------------- run


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    common.need_root("the streaming benchmark")
    parts = set(a.parts.split(","))
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    with common.sigterm_interrupts():
        if parts & {"join", "capacity", "g2g"}:
            out.update(rig_parts(a, parts))
        if parts & {"join", "recovery"}:
            out.update(testbed_parts(a, parts))
    out["machine"]["load_after"] = os.getloadavg()
    return out


if __name__ == "__main__":
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
