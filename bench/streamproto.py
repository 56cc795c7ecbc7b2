"""Datagrams per second through the streaming tree's sans-I/O cores, on one core.

The input is real: ffmpeg encodes ``--seconds`` of 720p test pattern (x264
ultrafast/zerolatency, CBR at ``--video-kbps``, plus AAC; the TS padded to a
constant rate 500 kbit/s above) to an MPEG-TS file, which is
cut into RTP/MPEG-TS datagrams of 7 TS packets (RFC 2250, as ffmpeg's
``rtp_mpegts`` sends them). Then, in this one process, each of these loops runs
over every datagram, ``--rounds`` times, interleaved, and the figure is the median:

- ``relay``: ``RelayCore.receive`` + ``events()`` (what a forwarder does per datagram);
- ``analyzer``: ``StreamAnalyzer.receive_datagram`` on the RTP payload;
- ``acquirer``: both, as the acquirer chains them (relay verdict, payload bounds,
  analyzer);
- ``analyzer_bytes``: ``StreamAnalyzer.receive_bytes`` (the SRT/TCP path);

and the same-run baselines, the least any Python code can do per datagram:

- ``unpack``: one ``struct.unpack_from`` of the 12-byte RTP header;
- ``copy``: ``bytes(bytearray(datagram))``, copying it in and out once;
- ``ts_headers``: reading the 4-byte header fields of its 7 TS packets.

Time is this process's CPU time (``time.process_time``), not wall time: on a
shared machine other processes' work would otherwise count as ours. Figures:
datagrams/s of CPU per loop, the ratio to ``unpack`` (and the analyzer's to
``ts_headers``), and what that is in Mbit/s of stream and in streams at the
encoded bitrate per core. No socket is involved: this is the cores' cost alone.

    netfate bench streamproto --json [--seconds 20] [--rounds 5] [--video-kbps 4000]
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netfate.proto.mpegts import StreamAnalyzer
from netfate.proto.rtp import (
    PT_MP2T,
    RelayCore,
    RtpPacket,
    SourceValidated,
    Verdict,
    payload_bounds,
)

TS_PER_DATAGRAM = 7
RTP_HEADER = struct.Struct("!BBHII")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench streamproto")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of video to encode")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--video-kbps", type=int, default=4000)
    return p.parse_args(argv)


def encode(seconds: float, video_kbps: int, out: Path) -> None:
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed (Debian ffmpeg)")
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", "testsrc=size=1280x720:rate=25"]
    cmd += ["-f", "lavfi", "-i", "sine", "-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"]
    # CBR as a contribution encoder sends it: x264 fills to the rate (nal-hrd=cbr), and
    # the multiplexer pads with null packets to a constant transport rate (muxrate).
    cmd += ["-pix_fmt", "yuv420p", "-b:v", f"{video_kbps}k", "-maxrate", f"{video_kbps}k"]
    cmd += ["-minrate", f"{video_kbps}k", "-bufsize", f"{video_kbps // 2}k"]
    cmd += ["-x264-params", "nal-hrd=cbr", "-c:a", "aac", "-f", "mpegts"]
    cmd += ["-muxrate", f"{video_kbps + 500}k", str(out)]
    subprocess.run(cmd, check=True, timeout=600)


def datagrams_of(ts: bytes, ssrc: int = 0x5EED) -> list[bytes]:
    """RTP/MPEG-TS datagrams, 7 TS packets each, 90 kHz timestamps at 40 ms steps."""
    size = 188 * TS_PER_DATAGRAM
    return [
        RtpPacket(PT_MP2T, k & 0xFFFF, (k * 3600) & 0xFFFFFFFF, ssrc, ts[i : i + size]).build()
        for k, i in enumerate(range(0, len(ts) - len(ts) % 188, size))
    ]


def arrival_times(n: int, duration: float) -> list[float]:
    return [duration * k / n for k in range(n)]


# ----------------------------------------------------------------- the measured loops
# Each takes the datagrams and their `now`s and returns a number that depends on the
# work done, so that nothing can be skipped.


def loop_unpack(dgrams: list[bytes], nows: list[float]) -> int:
    unpack = RTP_HEADER.unpack_from
    total = 0
    for d in dgrams:
        total += unpack(d)[2]
    return total


def loop_copy(dgrams: list[bytes], nows: list[float]) -> int:
    total = 0
    for d in dgrams:
        total += len(bytes(bytearray(d)))
    return total


def loop_ts_headers(dgrams: list[bytes], nows: list[float]) -> int:
    total = 0
    for d in dgrams:
        for off in range(12, len(d), 188):
            total += ((d[off + 1] & 0x1F) << 8 | d[off + 2]) + (d[off + 3] & 0xF)
    return total


def loop_relay(dgrams: list[bytes], nows: list[float]) -> int:
    relay = RelayCore(payload_types={PT_MP2T})
    forwarded = 0
    for d, now in zip(dgrams, nows, strict=True):
        if relay.receive(d, now) is Verdict.FORWARD:
            forwarded += 1
        relay.events()
    return forwarded


def loop_analyzer(dgrams: list[bytes], nows: list[float], as_bytes: bool = False) -> int:
    analyzer = StreamAnalyzer()
    feed = analyzer.receive_bytes if as_bytes else analyzer.receive_datagram
    events = 0
    for d, now in zip(dgrams, nows, strict=True):
        events += len(feed(d[12:], now))
    return events


def loop_analyzer_bytes(dgrams: list[bytes], nows: list[float]) -> int:
    return loop_analyzer(dgrams, nows, as_bytes=True)


def loop_acquirer(dgrams: list[bytes], nows: list[float]) -> int:
    relay = RelayCore(payload_types={PT_MP2T})
    analyzer = StreamAnalyzer()
    events = 0
    for d, now in zip(dgrams, nows, strict=True):
        verdict = relay.receive(d, now)
        for ev in relay.events():
            if isinstance(ev, SourceValidated):  # the first datagram, held in probation
                for held in ev.held:
                    start, end = payload_bounds(held)
                    events += len(analyzer.receive_datagram(held[start:end], now))
        if verdict is Verdict.FORWARD:
            start, end = payload_bounds(d)
            events += len(analyzer.receive_datagram(d[start:end], now))
    return events


LOOPS: dict[str, Callable[[list[bytes], list[float]], int]] = {
    "unpack": loop_unpack,
    "copy": loop_copy,
    "ts_headers": loop_ts_headers,
    "relay": loop_relay,
    "analyzer": loop_analyzer,
    "analyzer_bytes": loop_analyzer_bytes,
    "acquirer": loop_acquirer,
}


def measure(dgrams: list[bytes], nows: list[float], rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in LOOPS}
    for _ in range(rounds):
        for name, fn in LOOPS.items():  # interleaved, so drift hits every loop alike
            gc.collect()  # no loop pays for another's garbage
            t0 = time.process_time()
            fn(dgrams, nows)
            rates[name].append(len(dgrams) / (time.process_time() - t0))
    return rates


def summarise(
    rates: dict[str, list[float]], stream_bps: float, payload_bytes: int
) -> dict[str, Any]:
    med = {name: statistics.median(v) for name, v in rates.items()}
    out: dict[str, Any] = {
        "datagrams_per_s": {k: round(v) for k, v in med.items()},
        "ratio_to_unpack": {k: round(v / med["unpack"], 4) for k, v in med.items()},
        "analyzer_ratio_to_ts_headers": round(med["analyzer"] / med["ts_headers"], 3),
        "stream_mbit_per_s_per_core": {
            k: round(med[k] * payload_bytes * 8 / 1e6, 1)
            for k in ("relay", "analyzer", "analyzer_bytes", "acquirer")
        },
        "streams_per_core_at_encoded_rate": {
            k: round(med[k] * payload_bytes * 8 / stream_bps, 1)
            for k in ("relay", "analyzer", "acquirer")
        },
        "spread_max_over_min": {k: round(max(v) / min(v), 3) for k, v in rates.items()},
    }
    return out


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="netfate-bench-streamproto-") as tmp:
        path = Path(tmp) / "stream.ts"
        encode(a.seconds, a.video_kbps, path)
        ts = path.read_bytes()
    dgrams = datagrams_of(ts)
    stream_bps = len(ts) * 8 / a.seconds
    nows = arrival_times(len(dgrams), a.seconds)
    # Sanity first: the cores see what ffmpeg made, or the figures mean nothing.
    if loop_relay(dgrams, nows) != len(dgrams) - 1:
        raise SystemExit("the relay core did not forward the stream")
    checked = StreamAnalyzer()
    for d, now in zip(dgrams, nows, strict=True):
        checked.receive_datagram(d[12:], now)
    counters = checked.counters()
    if counters.get("continuity_errors") or not checked.programs:
        raise SystemExit(f"analyzer did not recognise the stream: {counters}")
    rates = measure(dgrams, nows, a.rounds)
    result = summarise(rates, stream_bps, 188 * TS_PER_DATAGRAM)
    result["input"] = {
        "datagrams": len(dgrams),
        "ts_bytes": len(ts),
        "encoded_mbit_per_s": round(stream_bps / 1e6, 3),
        "video": f"1280x720 25 fps H.264 ultrafast/zerolatency CBR {a.video_kbps} kbit/s + AAC",
        "seconds": a.seconds,
    }
    result["settings"] = {"rounds": a.rounds, "python": sys.version.split()[0], "cores_used": 1}
    return result


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
