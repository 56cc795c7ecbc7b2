"""I/O driver of the userspace link emulator: one process for all emulated links.

Run inside the switch namespace: `python -m netfate.testbed.linkemu_driver CONFIG`.
For each link it opens one raw packet socket per end veth and moves frames
through a `LinkEmulator` core: a frame read on end A is written to end B
when due, and the other way round.

The stats file holds per link and direction the core's counters, plus
"lateness": how long after their due time frames actually left.

CONFIG is JSON:
    {"seed": 1,
     "ready_file": "/run/netfate/<prefix>/linkemu.ready",   # written once all sockets are bound
     "stats_file": "/run/netfate/<prefix>/linkemu.json",    # counters, rewritten every second
     "links": [{"id": 3, "a": "<prefix>l3x", "b": "<prefix>l3y",
                "delay_us": 5000, "loss": 0.001, "limit": 10000}]}

Frames on an AF_PACKET/SOCK_RAW socket are whole Ethernet frames (no FCS).
`recvfrom` returns (ifname, ethertype, pkttype, hatype, hwaddr); frames with
pkttype PACKET_OUTGOING are our own transmissions echoed back and are skipped
(PACKET_IGNORE_OUTGOING already filters them on kernels that have it).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from netfate.testbed.linkemu import LinkEmulator, LinkParams, Side

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
MAX_FRAME = 65536
BATCH = 64  # frames read per socket per wakeup, so one busy link cannot starve others
LATE_BUCKET_US = 100  # lateness histogram: 100 us buckets, the last one open-ended
LATE_BUCKETS = 1000


class Lateness:
    """How late frames leave compared with their due time (send time - due time).

    epoll sleeps in whole milliseconds (Python rounds the timeout up), so up
    to about 1 ms is the design; more means the process did not keep up.
    """

    def __init__(self) -> None:
        self.buckets = [0] * LATE_BUCKETS
        self.count = 0
        self.max_us = 0.0

    def add(self, late_s: float) -> None:
        us = max(late_s, 0.0) * 1e6
        self.buckets[min(int(us // LATE_BUCKET_US), LATE_BUCKETS - 1)] += 1
        self.count += 1
        self.max_us = max(self.max_us, us)

    def percentile_us(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q / 100.0 * self.count
        seen = 0
        for i, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                return float((i + 1) * LATE_BUCKET_US)  # upper edge of the bucket
        return self.max_us

    def summary(self) -> dict[str, float | int | None]:
        return {
            "frames": self.count,
            "p50_us_at_most": self.percentile_us(50),
            "p99_us_at_most": self.percentile_us(99),
            "max_us": round(self.max_us, 1),
        }


class Driver:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.core = LinkEmulator(seed=int(config.get("seed", 0)))
        self.ready_file = Path(config["ready_file"]) if config.get("ready_file") else None
        self.stats_file = Path(config["stats_file"]) if config.get("stats_file") else None
        self.by_fd: dict[int, tuple[socket.socket, int, Side]] = {}
        self.out: dict[tuple[int, Side], socket.socket] = {}
        self.send_errors: dict[int, int] = {}
        self.lateness = Lateness()
        self.running = True
        self.ep = select.epoll()

    def _open(self, ifname: str) -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        # Older kernels lack the option: the pkttype check in `run` does the same.
        with contextlib.suppress(OSError):
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        s.bind((ifname, ETH_P_ALL))
        s.setblocking(False)
        return s

    def setup(self) -> None:
        for spec in self.config["links"]:
            link_id = int(spec["id"])
            self.core.add_link(
                link_id,
                LinkParams(
                    delay_us=int(spec["delay_us"]),
                    loss=float(spec.get("loss", 0.0)),
                    limit=int(spec.get("limit", 10000)),
                ),
            )
            self.send_errors[link_id] = 0
            for side, key in ((Side.A, "a"), (Side.B, "b")):
                s = self._open(str(spec[key]))
                self.by_fd[s.fileno()] = (s, link_id, side)
                self.out[(link_id, side)] = s
                self.ep.register(s.fileno(), select.EPOLLIN)
        if self.ready_file is not None:
            self.ready_file.write_text(f"{os.getpid()}\n")

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        doc: dict[str, Any] = {
            str(link): {
                **{k: asdict(v) for k, v in self.core.stats(link).items()},
                "send_errors": self.send_errors[link],
            }
            for link in self.core.link_ids
        }
        doc["lateness"] = self.lateness.summary()
        tmp = self.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.stats_file)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.running = False

    def run(self) -> None:
        core = self.core
        next_stats = time.monotonic() + 1.0
        while self.running:
            now = time.monotonic()
            due = core.next_due()
            timeout = min(next_stats, due if due is not None else next_stats) - now
            try:
                events = self.ep.poll(max(timeout, 0.0))
            except InterruptedError:
                continue
            now = time.monotonic()
            for fd, _ in events:
                s, link_id, side = self.by_fd[fd]
                for _ in range(BATCH):
                    try:
                        frame, addr = s.recvfrom(MAX_FRAME)
                    except (BlockingIOError, InterruptedError):
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    core.receive(link_id, side, frame, now)
            sent_at = time.monotonic()  # one clock read per batch: lateness is when it began
            for due, link_id, out_side, frame in core.due_timed(sent_at):
                try:
                    self.out[(link_id, out_side)].send(frame)
                except OSError:
                    # ENOBUFS (a full TBF queue) or a link going down: the frame is lost.
                    self.send_errors[link_id] += 1
                    continue
                self.lateness.add(sent_at - due)
            if now >= next_stats:
                self.write_stats()
                next_stats = now + 1.0
        self.write_stats()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m netfate.testbed.linkemu_driver CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    driver = Driver(config)
    signal.signal(signal.SIGTERM, driver.stop)
    signal.signal(signal.SIGINT, driver.stop)
    driver.setup()
    driver.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
