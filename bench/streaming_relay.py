"""Streaming latency figures (issue 14), each against a baseline in the same run.

All traffic stays inside namespaces this benchmark creates (one Linux bridge,
10.79.0.0/24); every process it starts is stopped by its pid.

**relay**: added latency per relay level. A sender in ``src`` sends RTP/MPEG-TS
datagrams as an encoder does, a frame's worth back to back (``--burst``
datagrams of 7 TS packets, ``--fps`` times a second); each carries its send time
(CLOCK_REALTIME, ns). They cross 1, 2 or 3 relays (namespaces ``r1``..``r3``) to
``dst``, whose socket takes the kernel's receive time (SO_TIMESTAMPNS), so the
receiver's scheduling does not count. The relay is the forwarder function
(``python -m netfate.vnf ...relay:Relay``, as the platform runs it) or Debian's
``multicat`` (the paper's relay) in the same namespaces; ``direct`` (no relay)
is the floor. Per level: (median at N levels - median direct) / N, for N = 1..3,
and the same for p99; rounds alternate the two relays.

**glass_to_glass**: frame emitted by the source to frame decoded at the viewer.
A frame generator writes 640x360 frames into the provider's ffmpeg (x264
ultrafast/zerolatency, GOP 1 s), each carrying its number as a block code in its
top rows, and notes when it wrote each one. The viewer's ffmpeg decodes to raw
frames; the benchmark reads each frame's code back and takes the time. Paths:

- ``direct_rtp``: the provider's ffmpeg straight to the viewer's, RTP/MPEG-TS: the
  floor of encoding, one network hop and decoding;
- ``ours_rtp``: source -> acquirer -> forwarder -> edge streamer -> RTP viewer
  (joined over HTTP, reading the SDP; no buffering);
- ``ours_hls``: the same tree, the edge streamer's HLS (1 s fMP4 segments);
  ``before_hls``: the same with the streamer's former settings (no EXT-X-START, a
  2 s probe) in the same rounds;
- ``nginx_hls``: source -> nginx-rtmp (RTMP ingest, ``hls_fragment 1s``) in the
  edge's namespace -> the same HLS viewer;

each HLS path viewed two ways: ``player`` (ffmpeg ``-re`` from the playlist's
EXT-X-START as hls.js honours it, else 3 segments back, where hls.js and most
players start; played at 1x) and ``edge`` (``-live_start_index -1``, no pacing: the
age of a frame when its segment becomes fetchable, the floor any player could
reach). LL-HLS (``ours_llhls``): the bench's own LL-HLS client (below), since
ffmpeg 5.1 reads no EXT-X-PART.

    netfate bench streaming_relay --json [--seconds 10] [--rounds 2] [--g2g-seconds 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.host import links, netns

NET = "10.79.0"
HOSTS = {"src": 10, "r1": 11, "r2": 12, "r3": 13, "dst": 20, "edge": 30, "view": 40}
RELAY_FN = "netfate.vnf.streaming.relay:Relay"
FUNCTIONS = {
    "acquirer": "netfate.vnf.streaming.acquirer:Acquirer",
    "relay": RELAY_FN,
    "edge": "netfate.vnf.streaming.edge:EdgeStreamer",
}
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
WIDTH, HEIGHT, FPS = 640, 360, 25
BITS, BLOCK = 24, 16
"""The frame code: 24 blocks of 16x16 pixels in the top rows (16-bit number, 8-bit check)."""


def addr(host: str) -> str:
    return f"{NET}.{HOSTS[host]}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench streaming_relay")
    p.add_argument("--seconds", type=float, default=10.0, help="stream time per relay sample")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each figure")
    p.add_argument("--fps", type=int, default=25, help="frames (bursts) per second")
    p.add_argument("--burst", type=int, default=16, help="datagrams per frame (16: ~4 Mbit/s)")
    p.add_argument("--levels", type=int, default=3, help="relay levels, 1..3")
    p.add_argument("--g2g-seconds", type=float, default=20.0, help="frames measured per path")
    p.add_argument("--skip-relay", action="store_true")
    p.add_argument("--skip-g2g", action="store_true")
    p.add_argument(
        "--only", default="", help="comma-separated g2g paths: direct,rtp,before,hls,ll,nginx"
    )
    a = p.parse_args(argv)
    if not 1 <= a.levels <= 3:
        p.error("--levels must be 1..3")
    return a


# ------------------------------------------------------------------------- frame code


def frame_code(n: int) -> int:
    """24 bits: the frame number (16) and a check (8) that rejects misread codes."""
    n &= 0xFFFF
    return n << 8 | ((n * 37 + 101) & 0xFF)


def read_code(code: int) -> int | None:
    n = code >> 8
    return n if code == frame_code(n) else None


def draw_frame(n: int, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A gray frame: its code in the top rows, a bar moving so the encoder has work."""
    code = frame_code(n)
    row = bytearray(b"\x10" * width)
    for bit in range(BITS):
        if code >> (BITS - 1 - bit) & 1:
            row[bit * BLOCK : (bit + 1) * BLOCK] = b"\xeb" * BLOCK
    top = bytes(row) * BLOCK
    body = bytearray(b"\x50" * (width * (height - BLOCK)))
    x = (n * 8) % width
    for y in range(0, height - BLOCK, 2):
        body[y * width + x : y * width + min(width, x + 24)] = b"\xc0" * min(24, width - x)
    return top + bytes(body)


def decode_frame(frame: bytes, width: int = WIDTH) -> int | None:
    """The number a decoded frame carries (None when unreadable)."""
    code = 0
    y = BLOCK // 2
    for bit in range(BITS):
        x = bit * BLOCK + BLOCK // 2
        sample = frame[y * width + x - 3 : y * width + x + 3]
        code = code << 1 | (sum(sample) > 128 * len(sample))
    return read_code(code)


# ----------------------------------------------------------------------------- the rig


class Rig:
    """One bridge (namespace P-br) joining one namespace per host of HOSTS."""

    def __init__(self) -> None:
        self.p = "nfb" + secrets.token_hex(2)
        self.tmp = Path(tempfile.mkdtemp(prefix="nf-bench-streaming-"))
        self.procs: list[subprocess.Popen[Any]] = []

    def ns(self, host: str) -> str:
        return f"{self.p}-{host}"

    def up(self) -> None:
        br = self.ns("br")
        netns.ensure(br)
        netns.run_in(br, ["ip", "link", "add", "br0", "type", "bridge"])
        links.set_up(br, "br0")
        for host in HOSTS:
            ns, port = self.ns(host), f"{self.p}{host}"
            netns.ensure(ns)
            links.set_up(ns, "lo")
            links.veth_pair(port, br, "eth0", ns)
            netns.run_in(br, ["ip", "link", "set", port, "master", "br0"])
            links.add_address(ns, "eth0", f"{addr(host)}/24")
            links.set_up(ns, "eth0")
            links.set_up(br, port)

    def down(self) -> None:
        for p in self.procs:
            common.stop_process(p)
        for host in (*HOSTS, "br"):
            netns.remove(self.ns(host))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def popen(self, host: str, argv: list[str], name: str, **kw: Any) -> subprocess.Popen[Any]:
        if "stderr" not in kw:
            kw["stderr"] = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - child owns it
        p = netns.popen_in(self.ns(host), argv, **kw)
        self.procs.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any]) -> None:
        common.stop_process(p)
        with contextlib.suppress(ValueError):
            self.procs.remove(p)

    def function(
        self, host: str, fn: str, config: dict[str, Any], name: str
    ) -> subprocess.Popen[Any]:
        """A streaming function as the platform starts it; returns once it is ready."""
        control = str(self.tmp / f"{name}.sock")
        argv = [sys.executable, "-m", "netfate.vnf", FUNCTIONS[fn], "--instance", name,
                "--control", control, "--config", json.dumps(config)]  # fmt: skip
        p = self.popen(host, argv, name, stdout=subprocess.DEVNULL)
        common.wait_until(lambda: Path(control + ".ready").exists() or p.poll() is not None,
                          30, what=f"{name} ready")  # fmt: skip
        if p.poll() is not None:
            raise RuntimeError(f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-800:]}")
        return p


# --------------------------------------------------------------------- relay latency

NULL_TS = b"\x47\x1f\xff\x10" + b"\xff" * 184


def datagram(seq: int, sent_ns: int) -> bytes:
    """RTP (PT 33) + 7 null TS packets; the first carries (seq, send time)."""
    rtp = struct.pack("!BBHII", 0x80, 33, seq & 0xFFFF, seq * 3600 & 0xFFFFFFFF, 0xB0B0)
    first = b"\x47\x1f\xff\x10" + struct.pack("!QQ", seq, sent_ns) + b"\xff" * 168
    return rtp + first + NULL_TS * 6


class Receiver(threading.Thread):
    """Kernel receive times of the datagrams arriving on `host`:`port`."""

    def __init__(self, rig: Rig, host: str, port: int) -> None:
        super().__init__(daemon=True)
        self.sock = netns.socket_in(rig.ns(host), socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((addr(host), port))
        self.sock.settimeout(2.0)
        self.latency_us: dict[int, float] = {}
        self.start()

    def run(self) -> None:
        with self.sock:
            while True:
                try:
                    data, anc, _, _ = self.sock.recvmsg(2048, 64)
                except TimeoutError:
                    return
                rx_ns = None
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        rx_ns = sec * 1_000_000_000 + nsec
                if rx_ns is None or len(data) < 32:
                    continue
                seq, sent_ns = struct.unpack_from("!QQ", data, 16)
                self.latency_us[seq] = (rx_ns - sent_ns) / 1e3


def send_stream(rig: Rig, dst: str, port: int, seconds: float, fps: int, burst: int) -> int:
    sock = netns.socket_in(rig.ns("src"), socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    seq = 0
    start = time.monotonic()
    with sock:
        for frame in range(int(seconds * fps)):
            for _ in range(burst):
                sock.sendto(datagram(seq, time.time_ns()), (dst, port))
                seq += 1
            ahead = start + (frame + 1) / fps - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return seq


def chain(rig: Rig, impl: str, levels: int) -> list[subprocess.Popen[Any]]:
    """`levels` relays r1 -> ... -> dst:9000, each taking port 6000."""
    procs = []
    for i in range(1, levels + 1):
        host = f"r{i}"
        nxt = (addr(f"r{i + 1}"), 6000) if i < levels else (addr("dst"), 9000)
        if impl == "ours":
            cfg = {"routes": [{"id": "X", "port": 6000,
                               "next_hops": [{"host": nxt[0], "port": nxt[1]}]}]}  # fmt: skip
            procs.append(rig.function(host, "relay", cfg, f"relay-{host}"))
        else:
            argv = ["multicat", f"@{addr(host)}:6000", f"{nxt[0]}:{nxt[1]}"]
            procs.append(rig.popen(host, argv, f"multicat-{host}", stdout=subprocess.DEVNULL))
    if impl == "multicat":
        time.sleep(0.3)  # multicat binds at once; give it its first scheduling
    return procs


def one_sample(rig: Rig, impl: str, levels: int, a: argparse.Namespace) -> dict[str, Any]:
    procs = chain(rig, impl, levels) if levels else []
    try:
        rx = Receiver(rig, "dst", 9000)
        first = (addr("r1"), 6000) if levels else (addr("dst"), 9000)
        sent = send_stream(rig, first[0], first[1], a.seconds, a.fps, a.burst)
        rx.join()
    finally:
        for p in procs:
            rig.stop(p)
    # The first frames warm caches and the relay core's probation: left out.
    skip = a.burst * 5
    lat = [v for k, v in rx.latency_us.items() if k >= skip]
    return {"sent": sent, "received": len(rx.latency_us), "latency_us": lat}


def relay_latency(rig: Rig, a: argparse.Namespace) -> dict[str, Any]:
    samples: dict[str, dict[int, list[float]]] = {"direct": {0: []}, "ours": {}, "multicat": {}}
    losses: dict[str, int] = {}
    for _ in range(a.rounds):
        for impl, levels in [("direct", 0)] + [(i, n) for n in range(1, a.levels + 1)
                                                for i in ("ours", "multicat")]:  # fmt: skip
            s = one_sample(rig, impl, levels, a)
            samples[impl].setdefault(levels, []).extend(s["latency_us"])
            losses[f"{impl}{levels}"] = losses.get(f"{impl}{levels}", 0) + s["sent"] - s["received"]
    base = common.percentile(samples["direct"][0], 50)
    base99 = common.percentile(samples["direct"][0], 99)
    out: dict[str, Any] = {
        "direct_us": common.summary(samples["direct"][0], 1),
        "datagrams_per_s": a.fps * a.burst,
        "mbit_s": round(a.fps * a.burst * 1328 * 8 / 1e6, 2),
        "lost": losses,
    }
    for impl in ("ours", "multicat"):
        per: dict[str, Any] = {}
        for n, values in sorted(samples[impl].items()):
            per[f"levels_{n}"] = {
                "latency_us": common.summary(values, 1),
                "added_per_level_us_median": round((common.percentile(values, 50) - base) / n, 1),
                "added_per_level_us_p99": round((common.percentile(values, 99) - base99) / n, 1),
            }
        out[impl] = per
    n = a.levels
    ours = out["ours"][f"levels_{n}"]["added_per_level_us_median"]
    theirs = out["multicat"][f"levels_{n}"]["added_per_level_us_median"]
    out["ratio_ours_to_multicat_per_level"] = common.ratio(ours, theirs)
    out["goal_per_level_ms"] = 5
    out["goal_met_median"] = ours / 1e3 < 5
    out["goal_met_p99"] = out["ours"][f"levels_{n}"]["added_per_level_us_p99"] / 1e3 < 5
    return out


# ------------------------------------------------------------------ glass-to-glass


class FrameSource(threading.Thread):
    """Writes numbered frames into an ffmpeg encoder at FPS; `emitted[n]` = wall time."""

    def __init__(self, rig: Rig, out: list[str], name: str, seconds: float) -> None:
        super().__init__(daemon=True)
        argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
                "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "pipe:0",
                "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
                "-g", str(FPS), "-pix_fmt", "yuv420p", "-b:v", "1500k", *out]  # fmt: skip
        self.proc = rig.popen("src", argv, name, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        self.rig = rig
        self.frames = int(seconds * FPS)
        self.emitted: dict[int, float] = {}
        self.start()

    def run(self) -> None:
        stdin = self.proc.stdin
        if stdin is None:
            return
        start = time.monotonic()
        with contextlib.suppress(BrokenPipeError, OSError):
            for n in range(self.frames):
                frame = draw_frame(n)
                ahead = start + n / FPS - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                self.emitted[n & 0xFFFF] = time.time()
                stdin.write(frame)
                stdin.flush()
            stdin.close()


RTP_VIEWER = ["-protocol_whitelist", "file,rtp,udp", "-fflags", "nobuffer", "-flags", "low_delay"]
"""A low-latency RTP viewer: no demuxer buffering, low-delay decoding."""


class Viewer(threading.Thread):
    """An ffmpeg viewer decoding to raw gray frames; (number, wall time) of each."""

    def __init__(self, rig: Rig, name: str, input_args: list[str], stdin: bool = False) -> None:
        super().__init__(daemon=True)
        argv = ["ffmpeg", "-hide_banner", "-loglevel", "error", *input_args,
                "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"]  # fmt: skip
        self.proc = rig.popen("view", argv, name, stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)  # fmt: skip
        self.decoded: list[tuple[int, float]] = []
        self.unreadable = 0
        self.start()

    def run(self) -> None:
        out = self.proc.stdout
        if out is None:
            return
        size = WIDTH * HEIGHT
        with contextlib.suppress(OSError, ValueError):
            while True:
                frame = out.read(size)
                now = time.time()
                if len(frame) < size:
                    return
                n = decode_frame(frame)
                if n is None:
                    self.unreadable += 1
                else:
                    self.decoded.append((n, now))


def http_get(rig: Rig, host: str, port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """(status, body) of a GET made from the viewer's namespace (HTTP/1.1, one request)."""
    sock = netns.socket_in(rig.ns("view"), socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), body


class LowLatencyClient(threading.Thread):
    """An LL-HLS client: the initialisation section, then part after part, each asked
    for as soon as the previous one arrived (the server holds a request for the next
    part until it exists: EXT-X-PRELOAD-HINT), written to an ffmpeg decoder.
    ``hold`` parts behind the live edge at the start; ``paced``: the decoder plays
    at 1x (-re) from there, as a player does; else as fast as parts come."""

    def __init__(self, rig: Rig, name: str, base: str, hold: int, paced: bool) -> None:
        super().__init__(daemon=True)
        self.rig, self.base, self.hold = rig, base, hold
        host, _, rest = base.partition("//")[2].partition(":")
        port, _, self.prefix = rest.partition("/")
        self.host, self.port, self.prefix = host, int(port), "/" + self.prefix
        # Little probing: the initialisation section describes the streams, and probing a
        # live pipe would wait for data in real time before -re starts its clock.
        probe = ["-probesize", "32768", "-analyzeduration", "0"]
        args = [
            *(["-re"] if paced else []),
            *probe,
            "-fflags",
            "nobuffer",
            "-f",
            "mp4",
            "-i",
            "pipe:0",
        ]
        self.viewer = Viewer(rig, name, args, stdin=True)
        self.parts = 0
        self.stopped = threading.Event()
        self.start()

    def get(self, name: str) -> tuple[int, bytes]:
        return http_get(self.rig, self.host, self.port, f"{self.prefix}/{name}")

    def run(self) -> None:
        stdin = self.viewer.proc.stdin
        if stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            _, init = self.get("init.mp4")
            _, playlist = self.get("index.m3u8")
            listed = [int(u[1:-4]) for u in re.findall(rb'URI="(p\d+\.m4s)"', playlist)]
            # PART-HOLD-BACK: start `hold` parts before the end of the playlist.
            n = listed[-self.hold] if len(listed) >= self.hold else listed[0]
            stdin.write(init)
            while not self.stopped.is_set():
                status, part = self.get(f"p{n}.m4s")
                if status != 200:
                    time.sleep(0.01)
                    continue
                stdin.write(part)
                stdin.flush()
                self.parts += 1
                n += 1
            stdin.close()


@dataclass
class Measured:
    """One measured path: its viewers' latencies (ms) over the rounds."""

    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    frames: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)


def collect(into: Measured, label: str, viewer: Viewer, src: FrameSource, warmup_s: float) -> None:
    t0 = viewer.decoded[0][1] if viewer.decoded else 0.0
    lat = [(t - src.emitted[n]) * 1e3 for n, t in viewer.decoded
           if n in src.emitted and t - t0 >= warmup_s]  # fmt: skip
    into.latency_ms.setdefault(label, []).extend(lat)
    into.frames[label] = into.frames.get(label, 0) + len(viewer.decoded)
    into.unreadable[label] = into.unreadable.get(label, 0) + viewer.unreadable


def hls_viewers(rig: Rig, url: str, tag: str) -> dict[str, Viewer]:
    # The player starts where the playlist's EXT-X-START says, as hls.js does; without
    # one, 3 segments back (ffmpeg's live_start_index, hls.js's liveSyncDurationCount).
    return {
        f"{tag}_hls_player": Viewer(
            rig, f"{tag}-player", ["-re", "-prefer_x_start", "1", "-i", url]
        ),
        f"{tag}_hls_edge": Viewer(rig, f"{tag}-edge", ["-live_start_index", "-1", "-i", url]),
    }


def wait_playlist(rig: Rig, url: str, timeout: float = 40.0) -> None:
    def ready() -> bool:
        r = netns.run_in(rig.ns("view"), ["curl", "-s", "-m", "3", url], check=False)
        return r.stdout.count("#EXTINF") >= 3

    common.wait_until(ready, timeout, 0.2, what=f"{url} with 3 segments")


def ours_round(
    rig: Rig,
    seconds: float,
    into: Measured,
    hls: bool,
    ll: bool = False,
    settings: dict[str, Any] | None = None,
    tag: str = "ours",
) -> None:
    """The tree: acquirer (r1) -> forwarder (r2) -> edge streamer (edge). RTP and HLS
    viewers are measured in separate rounds, so each round decodes what the direct
    floor decodes (one viewer) or what nginx's round decodes (two HLS viewers).
    ``settings``: more of the edge streamer's ``hls`` settings; ``tag`` labels its HLS
    viewers."""
    procs = [
        rig.function("r1", "acquirer", {"flows": [{
            "id": "main", "event": "bench", "state": "started", "protocol": "rtp", "port": 5000,
            "next_hops": [{"host": addr("r2"), "port": 6000}]}]}, "acq"),
        rig.function("r2", "relay", {"routes": [{"id": "X", "port": 6000, "next_hops": [
            {"host": addr("edge"), "port": 7000}]}]}, "fwd"),
        rig.function("edge", "edge", {"contents": [{"id": "X", "port": 7000, "hls": hls}],
                                      "http_port": 8080, "hls": {"segment_s": 1,
                                      "low_latency": ll, **(settings or {})}}, "edge"),
    ]  # fmt: skip
    warm = 6.0 if hls else 4.0
    out = ["-f", "rtp_mpegts", f"rtp://{addr('r1')}:5000"]
    src = FrameSource(rig, out, "source", seconds + warm + 8)
    viewers: dict[str, Viewer] = {}
    try:
        base = f"http://{addr('edge')}:8080"
        clients: list[LowLatencyClient] = []
        if ll:
            wait_playlist(rig, f"{base}/hls/X/source/index.m3u8")
            for paced, label, hold in ((True, "player", 3), (False, "edge", 1)):
                c = LowLatencyClient(rig, f"ll-{label}", f"{base}/hls/X/source", hold, paced)
                clients.append(c)
                viewers[f"ours_llhls_{label}"] = c.viewer
        elif hls:
            wait_playlist(rig, f"{base}/hls/X/source/index.m3u8")
            viewers.update(hls_viewers(rig, f"{base}/hls/X/source/index.m3u8", tag))
        else:
            join = ["curl", "-s", "-m", "5", "-X", "POST", f"{base}/rtp/X/source/join?port=5004"]
            (rig.tmp / "view.sdp").write_text(netns.run_in(rig.ns("view"), join).stdout)
            sdp = str(rig.tmp / "view.sdp")
            viewers["ours_rtp"] = Viewer(rig, "rtp-viewer", [*RTP_VIEWER, "-i", sdp])
        time.sleep(seconds + warm)
        for c in clients:
            c.stopped.set()
    finally:
        for v in viewers.values():
            rig.stop(v.proc)
        rig.stop(src.proc)
        for p in procs:
            rig.stop(p)
    for label, v in viewers.items():
        collect(into, label, v, src, warm)


def direct_round(rig: Rig, seconds: float, into: Measured) -> None:
    """The floor: the provider's ffmpeg straight to the viewer's (encode, send, decode)."""
    (rig.tmp / "direct.sdp").write_text(
        f"v=0\r\no=- 0 1 IN IP4 {addr('src')}\r\ns=direct\r\nc=IN IP4 {addr('src')}\r\n"
        "t=0 0\r\nm=video 5006 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n"
    )
    warm = 4.0
    viewer = Viewer(rig, "direct-viewer", [*RTP_VIEWER, "-i", str(rig.tmp / "direct.sdp")])
    src = FrameSource(rig, ["-f", "rtp_mpegts", f"rtp://{addr('view')}:5006"], "direct-source",
                      seconds + warm + 2)  # fmt: skip
    try:
        time.sleep(seconds + warm)
    finally:
        rig.stop(viewer.proc)
        rig.stop(src.proc)
    collect(into, "direct_rtp", viewer, src, warm)


NGINX_CONF = """load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process on; worker_processes 1; user root;
pid {tmp}/nginx.pid; error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
rtmp {{ server {{ listen {addr}:1935; chunk_size 4096;
  application live {{ live on; record off; hls on; hls_path {tmp}/nginx-hls;
                      hls_fragment 1s; hls_playlist_length 6s; }} }} }}
http {{ access_log off; client_body_temp_path {tmp}/nx-cb; proxy_temp_path {tmp}/nx-px;
  fastcgi_temp_path {tmp}/nx-fc; uwsgi_temp_path {tmp}/nx-uw; scgi_temp_path {tmp}/nx-sc;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{ listen {addr}:8090; location /hls/ {{ alias {tmp}/nginx-hls/;
            add_header Cache-Control no-cache; }} }} }}
"""


def nginx_round(rig: Rig, seconds: float, into: Measured) -> None:
    conf = rig.tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=rig.tmp, addr=addr("edge")))
    nginx = rig.popen("edge", ["nginx", "-c", str(conf), "-p", str(rig.tmp)], "nginx",
                      stdout=subprocess.DEVNULL)  # fmt: skip
    warm = 6.0
    viewers: dict[str, Viewer] = {}
    src: FrameSource | None = None
    try:
        common.wait_until(lambda: netns.run_in(rig.ns("view"), [
            "curl", "-s", "-o", "/dev/null", "-m", "2", f"http://{addr('edge')}:8090/hls/"],
            check=False).returncode == 0, 20, 0.1, what="nginx up")  # fmt: skip
        src = FrameSource(rig, ["-f", "flv", f"rtmp://{addr('edge')}:1935/live/X"], "nginx-source",
                          seconds + warm + 8)  # fmt: skip
        url = f"http://{addr('edge')}:8090/hls/X.m3u8"
        wait_playlist(rig, url)
        viewers.update(hls_viewers(rig, url, "nginx"))
        time.sleep(seconds + warm)
    finally:
        for v in viewers.values():
            rig.stop(v.proc)
        if src is not None:
            rig.stop(src.proc)
        rig.stop(nginx)
    if src is not None:
        for label, v in viewers.items():
            collect(into, label, v, src, warm)


BEFORE_HLS = {"probe_s": 2.0, "start_segments": 0, "preroll_s": 0, "wait_first_s": 0}
"""The edge streamer's HLS as it was before EXT-X-START, the short probe, the
pre-roll and the held first playlist (path ``before``: viewers ``before_hls_*``)."""


def glass_to_glass(rig: Rig, a: argparse.Namespace) -> dict[str, Any]:
    paths = Measured()
    every = {"direct", "rtp", "before", "hls", "ll", "nginx"}
    only = set(a.only.split(",")) if a.only else every
    for _ in range(a.rounds):
        if "direct" in only:
            direct_round(rig, a.g2g_seconds, paths)
        if "rtp" in only:
            ours_round(rig, a.g2g_seconds, paths, hls=False)
        if "before" in only:
            ours_round(rig, a.g2g_seconds, paths, hls=True, settings=BEFORE_HLS, tag="before")
        if "hls" in only:
            ours_round(rig, a.g2g_seconds, paths, hls=True)
        if "ll" in only:
            ours_round(rig, a.g2g_seconds, paths, hls=True, ll=True)
        if "nginx" in only:
            nginx_round(rig, a.g2g_seconds, paths)
    out: dict[str, Any] = {}
    for label, values in sorted(paths.latency_ms.items()):
        out[label] = {
            "latency_ms": common.summary(values, 1),
            "frames": paths.frames[label],
            "unreadable_frames": paths.unreadable[label],
        }

    def med(label: str) -> float | None:
        v = paths.latency_ms.get(label)
        return common.percentile(v, 50) if v else None

    out["ratio_ours_rtp_to_direct"] = common.ratio(med("ours_rtp"), med("direct_rtp"))
    out["ratio_ours_to_nginx_hls_player"] = common.ratio(
        med("ours_hls_player"), med("nginx_hls_player")
    )
    out["ratio_ours_to_nginx_hls_edge"] = common.ratio(med("ours_hls_edge"), med("nginx_hls_edge"))
    out["ratio_ours_to_before_hls_player"] = common.ratio(
        med("ours_hls_player"), med("before_hls_player")
    )
    goals = {"ours_rtp": 200, "ours_hls_player": 3000, "ours_llhls_player": 1500}
    out["goals_ms"] = goals
    out["goals_met"] = {k: (med(k) or float("inf")) < g for k, g in goals.items()}
    out["setup"] = {
        "picture": f"{WIDTH}x{HEIGHT} at {FPS} fps, x264 ultrafast/zerolatency, GOP 1 s",
        "segments": "1 s (fMP4 ours, TS nginx-rtmp)",
        "player": "ffmpeg -re from the playlist's EXT-X-START (-prefer_x_start 1, as hls.js "
        "does), else 3 segments back (ours now: 2 segments back; before and nginx: 3)",
        "before": f"ours with the edge streamer's former HLS behaviour {BEFORE_HLS}",
        "edge": "ffmpeg -live_start_index -1, unpaced: a frame's age when fetchable",
        "ll_hls": "0.2 s parts; the bench's LL-HLS client (preload hints) into ffmpeg, "
        "3 parts (PART-HOLD-BACK) behind the edge, -re for the player",
    }
    return out


# --------------------------------------------------------------------------------- run


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    common.need_root("the streaming benchmark")
    for tool in ("ffmpeg", "multicat", "nginx", "curl"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            raise SystemExit(f"{tool} is not installed (make apt)")
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    with common.sigterm_interrupts():
        rig = Rig()
        try:
            rig.up()
            if not a.skip_relay:
                out["relay"] = relay_latency(rig, a)
            if not a.skip_g2g:
                out["glass_to_glass"] = glass_to_glass(rig, a)
        finally:
            rig.down()
    out["machine"]["load_after"] = os.getloadavg()
    return out
