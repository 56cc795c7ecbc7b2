"""Cross traffic for the "shared access" setting: paced UDP bursts that stop by themselves.

``python -m netfate.testbed.cross HOST PORT RATE_BPS SECONDS`` (run inside a
testbed namespace, towards a testbed address).  Datagrams leave in bursts of
``BURST`` every ``BURST * SIZE * 8 / RATE`` seconds: other users of a shared
access arrive in bursts, which is what makes the queue, and so the RTT, vary.
It stops after ``SECONDS`` whatever happens (bounded load, DESIGN.md).
"""

from __future__ import annotations

import socket
import sys
import time

SIZE = 1200
BURST = 16


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


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit("usage: python -m netfate.testbed.cross HOST PORT RATE_BPS SECONDS")
    send(argv[0], int(argv[1]), float(argv[2]), min(float(argv[3]), 3600.0))


if __name__ == "__main__":
    main(sys.argv[1:])
