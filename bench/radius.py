"""RADIUS authentications per second, with Message-Authenticator: ours vs FreeRADIUS.

Both servers run as their own processes on 127.0.0.1 in the same run:
- ours: the orchestrator's RadiusService (asyncio UDP driver, sans-I/O core, user
  looked up in SQLite, PBKDF2 password check) in a child process;
- FreeRADIUS 3.2.1 (Debian), the same user with a cleartext password (its `files`
  module compares in memory: less work per request than our hashed check).

One load generator (our client core, asyncio, `--window` requests in flight) drives
each server for `--seconds`, alternating ours / FreeRADIUS `--rounds` times; every
request carries a Message-Authenticator and every answer must verify (ours require
one back; FreeRADIUS is configured to send one). Figures: medians of the rounds,
and ours/FreeRADIUS.

    netfate bench radius --json [--seconds 3] [--rounds 3] [--window 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from netfate.proto.radius import Attr, ClientCore, Code

USER, PASSWORD, SECRET = "bench", "bench-password", "bench-secret"

# FreeRADIUS, the baseline, is started by the tests' launcher (tests/freeradius.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

OUR_SERVER = textwrap.dedent(
    """
    import asyncio, os, sys
    os.environ["NETFATE_RADIUS_LISTEN"] = ""
    from netfate.store.db import Database
    from netfate.services.firewall import SERVICE
    from netfate.services.firewall.radius import RadiusService
    from netfate.services.firewall.tables import FirewallRadiusClientRow, FirewallUserRow
    from netfate.services.firewall.passwords import hash_password
    db = Database("sqlite:///" + sys.argv[1])
    db.migrate([SERVICE.migrations])
    with db.session() as s:
        s.add(FirewallRadiusClientRow(address="127.0.0.1", secret=sys.argv[3], name="bench"))
        s.add(FirewallUserRow(name=sys.argv[4], password_hash=hash_password(sys.argv[5]),
                        functions=[], status="offline", session_timeout=600, idle_timeout=60,
                        rules={}, rules_version=1, counters={}))
    async def main():
        svc = RadiusService(db)
        await svc.start()
        await svc.listen("127.0.0.1", int(sys.argv[2]), None)
        print("ready", flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
    """
)


async def load(port: int, seconds: float, window: int) -> dict[str, Any]:
    core = ClientCore(SECRET.encode(), timeout=2.0, retries=0)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    accepts = other = 0
    done = asyncio.Event()
    deadline = time.monotonic() + seconds
    rtts: list[float] = []

    def send_one() -> None:
        _, wire = core.access_request(
            USER, PASSWORD.encode(), [(Attr.NAS_PORT, 0)], time.monotonic()
        )
        sock.send(wire)

    def readable() -> None:
        nonlocal accepts, other
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            for ev in core.receive(data, time.monotonic()):
                if ev.response.code == Code.ACCESS_ACCEPT:
                    accepts += 1
                    rtts.append(ev.rtt)
                else:
                    other += 1
                if time.monotonic() < deadline:
                    send_one()
        if core.in_flight() == 0:
            done.set()

    loop.add_reader(sock.fileno(), readable)
    t0 = time.monotonic()
    for _ in range(window):
        send_one()
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), 0.5)
        except TimeoutError:
            _, dead = core.poll(time.monotonic())
            if time.monotonic() > deadline and core.in_flight() == 0:
                break
            for _d in dead:
                if time.monotonic() < deadline:
                    send_one()
    elapsed = time.monotonic() - t0
    loop.remove_reader(sock.fileno())
    sock.close()
    rtts.sort()
    return {
        "auths_per_s": round(accepts / elapsed, 1),
        "accepts": accepts,
        "not_accepted": other,
        "unverified_or_unmatched": core.ignored,
        "rtt_p50_ms": round(rtts[len(rtts) // 2] * 1e3, 3) if rtts else None,
        "rtt_p99_ms": round(rtts[int(len(rtts) * 0.99)] * 1e3, 3) if rtts else None,
    }


def _port() -> int:
    from freeradius import free_udp_ports

    return free_udp_ports(2)


def run(argv: list[str]) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="netfate bench radius")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--window", type=int, default=64)
    a = p.parse_args(argv)
    from freeradius import FreeRadius, available

    if not available():
        raise SystemExit("FreeRADIUS is not installed (Debian freeradius)")
    tmp = Path(tempfile.mkdtemp(prefix="netfate-bench-radius-"))
    our_port = _port()
    ours = subprocess.Popen(
        [
            sys.executable,
            "-c",
            OUR_SERVER,
            str(tmp / "r.db"),
            str(our_port),
            SECRET,
            USER,
            PASSWORD,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    fr = FreeRadius(tmp, _port(), SECRET, {USER: (PASSWORD, {"Session-Timeout": "600"})})
    try:
        line = ours.stdout.readline() if ours.stdout else ""
        if "ready" not in line:
            raise SystemExit("our RADIUS server did not start")
        fr.start()
        rounds: dict[str, list[dict[str, Any]]] = {"ours": [], "freeradius": []}
        for _ in range(a.rounds):
            rounds["ours"].append(asyncio.run(load(our_port, a.seconds, a.window)))
            rounds["freeradius"].append(asyncio.run(load(fr.auth_port, a.seconds, a.window)))
    finally:
        fr.stop()
        ours.terminate()
        try:
            ours.wait(5)
        except subprocess.TimeoutExpired:
            ours.kill()
            ours.wait()

    def median(side: str, key: str) -> float | None:
        vals = sorted(r[key] for r in rounds[side] if r[key] is not None)
        return vals[len(vals) // 2] if vals else None

    o, f = median("ours", "auths_per_s"), median("freeradius", "auths_per_s")
    return {
        "ours_auths_per_s": o,
        "freeradius_auths_per_s": f,
        "ratio_ours_to_freeradius": round(o / f, 3) if o and f else None,
        "goal_500_per_s_met": bool(o and o >= 500),
        "ours_rtt_p50_ms": median("ours", "rtt_p50_ms"),
        "freeradius_rtt_p50_ms": median("freeradius", "rtt_p50_ms"),
        "settings": {
            "seconds": a.seconds,
            "rounds": a.rounds,
            "window": a.window,
            "message_authenticator": "sent on every request, verified on every answer",
            "password_hash_ours": "PBKDF2-HMAC-SHA256, 2000 iterations",
            "password_freeradius": "Cleartext-Password (files module)",
        },
        "rounds": rounds,
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
