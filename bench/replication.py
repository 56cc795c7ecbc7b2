"""Copies per second in the switch (a replication intent's groups ALL) against
aggregartp's (the multicat suite's one-to-many relay, the paper's), same run,
same Open vSwitch bridges (userspace datapath, secure mode, the os-ken controller).

Needs root and Open vSwitch; aggregartp (Debian multicat). Rig (prefix `nfr` + 4
hex), a two-level tree as the streaming tree has (PE -> core -> PEs):

    s0 (src, relay) -- s1 (r1) -- s2 (r2)
                        |
                        s3 -- s4 (r4)
                        |
                        s5 (r5)

- switch:  src sends each datagram once to a group address; the replication
           intent copies it at s1 and s3 (one copy per link) to r1, r2, r4, r5.
- relay:   src sends each datagram once to `relay` (a namespace on s0); aggregartp
           sends a copy to each of r1, r2, r4, r5 (weight 0: every packet to
           every output), over connectivity intents: four copies cross s0-s1.

The sender sends RTP/MPEG-TS datagrams (12 + 7 x 188 bytes) as fast as it can for
`--seconds`; each receiver counts what it got. Copies per second = datagrams
received by all receivers / seconds. Rounds alternate the two paths.

    netfate bench replication --json [--rounds 3] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common  # bench/ is on the path: as a script, or netfate.benchcli.load

from netfate.orchestrator.sdn.intents import Intent, cookie_for, parse_intent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test rigs
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

PORT = 6653
GROUP, UDP_PORT = "239.255.23.112", 6000
RECEIVERS = ("r1", "r2", "r4", "r5")
HOSTS = {"src": "s0", "relay": "s0", "r1": "s1", "r2": "s2", "r4": "s4", "r5": "s5"}
LINKS = [("s0", "s1"), ("s1", "s2"), ("s1", "s3"), ("s3", "s4"), ("s3", "s5")]

RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
n = 0
s.settimeout(30)
s.recv(2048)
n = 1
s.settimeout(1.0)
try:
    while True:
        s.recv(2048)
        n += 1
except TimeoutError:
    pass
print(n, flush=True)
"""
"""Counts datagrams until none came for a second (after the first)."""

SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
dst = (sys.argv[2], int(sys.argv[3]))
data = bytes([0x80, 33]) + bytes(10) + (b"\\x47\\x1f\\xff\\x10" + b"\\xff" * 184) * 7
end = time.monotonic() + float(sys.argv[4])
n = 0
while time.monotonic() < end:
    for _ in range(64):
        try:
            s.sendto(data, dst)
            n += 1
        except BlockingIOError:
            pass
print(n, flush=True)
"""
"""Sends as fast as it can for the given seconds; prints how many it sent."""


def intents(rig: Rig, path: str) -> list[Intent]:
    if path == "switch":
        spec: dict[str, Any] = {
            "kind": "replication", "id": "copies", "source": "host:src", "port": UDP_PORT,
            "dst_ip": GROUP, "targets": [f"host:{r}" for r in RECEIVERS],
        }  # fmt: skip
        return [parse_intent(spec)]
    ends = [("src", "relay"), *(("relay", r) for r in RECEIVERS)]
    return [
        parse_intent({"kind": "connectivity", "id": f"{a}-{b}", "a": f"host:{a}", "b": f"host:{b}"})
        for a, b in ends
    ]


def one_run(rig: Rig, path: str, seconds: float, tmp: Path) -> dict[str, Any]:
    relay = None
    rx: dict[str, subprocess.Popen[str]] = {}
    try:
        for r in RECEIVERS:
            p = rig.popen(r, sys.executable, "-c", RECEIVER, str(UDP_PORT), stdout=subprocess.PIPE)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            rx[r] = p
        if path == "relay":
            outs = [f"{rig.endpoints[r].ip}:{UDP_PORT},0" for r in RECEIVERS]
            relay = rig.popen(
                "relay",
                "aggregartp",
                f"@{rig.endpoints['relay'].ip}:{UDP_PORT}",
                *outs,
                stdout=subprocess.DEVNULL,
                stderr=open(tmp / "aggregartp.log", "ab"),  # noqa: SIM115 - the child's
            )
            time.sleep(0.3)  # aggregartp binds at once; give it its first scheduling
            dst = rig.endpoints["relay"].ip
        else:
            dst = GROUP
        src = rig.endpoints["src"].ip
        sent = int(
            rig.exec("src", sys.executable, "-c", SENDER, src, dst, str(UDP_PORT), str(seconds))
        )
        got = {r: int(p.communicate(timeout=60)[0].split()[0]) for r, p in rx.items()}
    finally:
        for p in [*rx.values(), relay]:
            common.stop_process(p)
    return {
        "sent": sent,
        "received": got,
        "copies_per_s": round(sum(got.values()) / seconds),
        "sent_per_s": round(sent / seconds),
    }


def run(argv: list[str]) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="bench/replication.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="nfbench-repl-"))
    rig = Rig("nfr" + secrets.token_hex(2), controller_port=PORT)
    orch = FakeOrchestrator()
    ctl: ControllerProcess | None = None
    groups: dict[str, int] = {}
    try:
        rig.start()
        for n in ("s0", "s1", "s2", "s3", "s4", "s5"):
            rig.add_node(n)
        for a, b in LINKS:
            rig.link(a, b)
        for i, (h, n) in enumerate(HOSTS.items()):
            rig.add_endpoint(h, n, f"10.1.0.{i + 1}")
        orch.set(view=rig.view())
        ctl = ControllerProcess(orch.url, PORT, rig.sw, tmp / "ctl.log")
        rig.wait_connected()

        def installed(path: str) -> bool:
            want = [cookie_for(it.id) for it in intents(rig, path)]
            flows = [f for n in rig.nodes for f in rig.flows(n)]
            return all(any(f"cookie={c:#x}," in f for f in flows) for c in want)

        runs: dict[str, list[dict[str, Any]]] = {"switch": [], "relay": []}
        for i in range(args.rounds):
            for path in ("switch", "relay") if i % 2 == 0 else ("relay", "switch"):
                orch.set(intents=intents(rig, path))
                wait_until(lambda p=path: installed(p), what=f"{path} flows")  # type: ignore[misc]
                runs[path].append(one_run(rig, path, args.seconds, tmp))
                if path == "switch":
                    groups = {
                        n: rig.ofctl(rig.bridge(n), "dump-groups").count("type=all")
                        for n in rig.nodes
                    }
    finally:
        if ctl is not None:
            ctl.stop()
        rig.close()
        orch.close()
    sw = statistics.median(r["copies_per_s"] for r in runs["switch"])
    rl = statistics.median(r["copies_per_s"] for r in runs["relay"])
    return {
        "figure": "copies per second: switch groups ALL (replication intent) vs aggregartp",
        "fan_out": len(RECEIVERS),
        "seconds": args.seconds,
        "switch_copies_per_s_median": sw,
        "aggregartp_copies_per_s_median": rl,
        "ratio_switch_vs_aggregartp": round(sw / rl, 3) if rl else None,
        "runs": runs,
        "groups_all_per_switch": groups,
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
