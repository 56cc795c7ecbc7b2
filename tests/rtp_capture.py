"""A reference peer for the RTP and MPEG-TS cores: ffmpeg sending RTP/MPEG-TS to
127.0.0.1, captured with arrival times; and the rtpdump file format to keep a
capture as a test vector.

    python tests/rtp_capture.py tests/vectors/rtp_mpegts_h264_aac.rtpdump 2

rtpdump is rtptools' capture format (Wireshark reads it): a text line
``#!rtpplay1.0 address/port``, a 16-byte header (struct ``"!IIIHH"``: start
seconds, microseconds, source address, port, padding), then per datagram an
8-byte header (``"!HHI"``: record length including this header, RTP length or 0
for RTCP, milliseconds since start) and the datagram.
"""

from __future__ import annotations

import select
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

FILE_HEADER = struct.Struct("!IIIHH")
RECORD = struct.Struct("!HHI")


@dataclass(frozen=True)
class Datagram:
    rtcp: bool
    """Arrived on the RTCP port (RTP port + 1)."""
    at: float
    """Seconds since the capture started."""
    data: bytes


def ffmpeg_command(port: int, seconds: float, pix_fmt: str | None = None) -> list[str]:
    """The brief's stream: test pattern + sine, H.264 ultrafast/zerolatency + AAC."""
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re"]
    cmd += ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]
    cmd += ["-f", "lavfi", "-i", "sine", "-t", str(seconds)]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"]
    if pix_fmt:
        cmd += ["-pix_fmt", pix_fmt]
    cmd += ["-c:a", "aac", "-f", "rtp_mpegts", f"rtp://127.0.0.1:{port}"]
    return cmd


def _port_pair() -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on 127.0.0.1 ports P and P+1 (ffmpeg sends RTCP to P+1)."""
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        for s in (rtp, rtcp):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        return rtp, rtcp
    raise RuntimeError("no free UDP port pair on 127.0.0.1")


def capture(seconds: float, pix_fmt: str | None = None) -> list[Datagram]:
    """Run ffmpeg for `seconds` of stream and return every datagram it sent."""
    rtp, rtcp = _port_pair()
    port = rtp.getsockname()[1]
    out: list[Datagram] = []
    proc = subprocess.Popen(ffmpeg_command(port, seconds, pix_fmt), stderr=subprocess.PIPE)
    t0 = time.monotonic()
    deadline = t0 + seconds + 30
    try:
        while time.monotonic() < deadline:
            # poll(), not select(): the suite's process may hold descriptors past 1024
            p = select.poll()
            byfd = {s.fileno(): s for s in (rtp, rtcp)}
            for fd in byfd:
                p.register(fd, select.POLLIN)
            ready = [byfd[fd] for fd, _ in p.poll(500)]
            for s in ready:
                out.append(Datagram(s is rtcp, time.monotonic() - t0, s.recv(65536)))
            if not ready and proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate(timeout=10)
        rtp.close()
        rtcp.close()
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {err.decode()[-2000:]}")
    return out


def write_rtpdump(path: Path, datagrams: list[Datagram], port: int = 5004) -> None:
    with open(path, "wb") as f:
        f.write(f"#!rtpplay1.0 127.0.0.1/{port}\n".encode())
        f.write(FILE_HEADER.pack(0, 0, 0x7F000001, port, 0))
        for d in datagrams:
            plen = 0 if d.rtcp else len(d.data)
            f.write(RECORD.pack(RECORD.size + len(d.data), plen, round(d.at * 1000)))
            f.write(d.data)


def read_rtpdump(path: Path) -> list[Datagram]:
    raw = path.read_bytes()
    nl = raw.index(b"\n")
    if not raw.startswith(b"#!rtpplay1.0 "):
        raise ValueError(f"{path} is not an rtpdump file")
    at = nl + 1 + FILE_HEADER.size
    out = []
    while at < len(raw):
        length, plen, ms = RECORD.unpack_from(raw, at)
        data = raw[at + RECORD.size : at + length]
        out.append(Datagram(plen == 0, ms / 1000, data))
        at += length
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1])
    write_rtpdump(target, capture(float(sys.argv[2]) if len(sys.argv) > 2 else 2.0))
    print(f"wrote {target} ({target.stat().st_size} bytes)")
