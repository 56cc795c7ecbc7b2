"""Cross traffic for the "shared access" setting: paced UDP bursts that stop by themselves.

``python -m netfate.testbed.cross HOST PORT RATE_BPS SECONDS`` (run inside a
testbed namespace, towards a testbed address).  Datagrams leave in bursts of
``BURST`` every ``BURST * SIZE * 8 / RATE`` seconds: other users of a shared
access arrive in bursts, which is what makes the queue, and so the RTT, vary.
It stops after ``SECONDS`` whatever happens (bounded load, DESIGN.md).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

SIZE = 1200
BURST = 16
CROSS_PORT = 5999


def send(host: str, port: int, rate_bps: float, seconds: float) -> int:
    """Send for ``seconds`` at ``rate_bps``; returns the datagrams sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"\0" * SIZE
    period = BURST * SIZE * 8 / rate_bps
    sent = 0
    start = time.monotonic()
    due = start
    while (now := time.monotonic()) - start < seconds:
        if now < due:
            time.sleep(due - now)
        for _ in range(BURST):
            try:
                s.sendto(payload, (host, port))
                sent += 1
            except OSError:
                pass  # e.g. a full queue: other users' loss is not ours to report
        due += period
    s.close()
    return sent


@contextlib.contextmanager
def cross_traffic(
    a: tuple[str, str], b: tuple[str, str], mbit: float, seconds: float, port: int = CROSS_PORT
) -> Iterator[None]:
    """Paced UDP bursts a->b and b->a (namespace, address) into sinks nobody reads,
    for at most `seconds`."""
    from netfate.host import netns

    if mbit <= 0:
        yield
        return
    sinks: list[socket.socket] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for ns, ip in (a, b):
            s = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            sinks.append(s)
        for (src_ns, _src), (_dst_ns, dst_ip) in ((a, b), (b, a)):
            argv = [sys.executable, "-m", "netfate.testbed.cross", dst_ip, str(port)]
            argv += [str(mbit * 1e6), str(seconds)]
            procs.append(netns.popen_in(src_ns, argv))
        yield
    finally:
        for p in procs:  # ours, by pid
            if p.poll() is None:
                p.terminate()
            p.wait(10)
        for s in sinks:
            s.close()


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit("usage: python -m netfate.testbed.cross HOST PORT RATE_BPS SECONDS")
    send(argv[0], int(argv[1]), float(argv[2]), min(float(argv[3]), 3600.0))


if __name__ == "__main__":
    main(sys.argv[1:])
