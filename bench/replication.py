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

**Latency** (issue 14's "added latency per relay level", < 1 ms per level through
the switches): the replication intent, aggregartp's connectivity and a unicast
connectivity intent src <-> each receiver are installed together, and a paced
sender (`--latency-rate` datagrams/s, default 1,000) takes turns, one datagram
at a time, between the group address (the switches' copies), `relay` (aggregartp)
and each receiver by unicast (the same switch path, no copies: the same-run
baseline). Each datagram carries its path, a sequence number and its send time
from CLOCK_MONOTONIC (one clock for every namespace of the machine) and
CLOCK_REALTIME. Each receiver notes, per datagram, CLOCK_MONOTONIC when its
process got it (what an application sees) and the kernel's receive stamp
(SO_TIMESTAMPNS, CLOCK_REALTIME: without the receiver's own scheduling).
Per receiver and clock:

- switch copies, per branch level: (copy latency - unicast latency) / the branch
  levels the receiver's copies cross (switches whose group ALL has two buckets or
  more on its path, read from the groups installed: 1 for r1 and r2, 2 for r4, r5);
- aggregartp, per relay level: (relay latency - unicast latency) / 1;

medians and p99s taken separately (p99 of copies - p99 of unicast), and their
ratio switch / aggregartp. Paired as well: each copy (each relayed datagram)
against the unicast datagram to the same receiver in the same turn of the
sender's slots, sent at most 5 ms apart, so that a stall of this shared machine
meets both: the median and p99 of those differences per level. Under load the
paired p99 comes out as the send gap within the pair (2-5 ms for r1..r5): a stall
of the userspace datapath releases both together, and the one sent first waited
longer; the unpaired figures do not have that bias (each path sampled in turn).
The first second of datagrams (ARP, first flows) is left out. The rig's bridges are joined by
patch ports, so in the userspace datapath all six are one pass: what a branch
level costs here is the group's copying, not a link.

    netfate bench replication --json [--rounds 3] [--seconds 3]
        [--latency-seconds 15] [--latency-rounds 3] [--latency-rate 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
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


PATHS = ("switch", "relay", "unicast")
"""The latency part's paths, by their code in the datagram (the index)."""
SLOTS_BEFORE_UNICAST = 2
N_SLOTS = SLOTS_BEFORE_UNICAST + len(RECEIVERS)
"""The sender's turns: the group address, aggregartp, then each receiver by unicast."""
ROUND_SEQ = N_SLOTS << 32
"""Rounds' sequence numbers kept apart, turns still aligned (a multiple of N_SLOTS)."""
Row = tuple[int, float, float]
"""A datagram received: (sequence number, delay by CLOCK_MONOTONIC, by the kernel's stamp)."""
TREE = {
    "r1": ("s0", "s1"),
    "r2": ("s0", "s1", "s2"),
    "r4": ("s0", "s1", "s3", "s4"),
    "r5": ("s0", "s1", "s3", "s5"),
}
"""The switches from the source's to each receiver's."""

LAT_RECEIVER = """
import json, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
out = {}
s.settimeout(30)
try:
    while True:
        data, anc, _, _ = s.recvmsg(2048, 64)
        now = time.monotonic_ns()
        s.settimeout(1.5)
        if len(data) < 41:
            continue
        path, seq, mono, real = struct.unpack_from("!BQQQ", data, 16)
        krx = None
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET:
                sec, nsec = struct.unpack("qq", value[:16])
                krx = sec * 1_000_000_000 + nsec
        if krx is not None:
            out.setdefault(path, []).append((seq, (now - mono) / 1e3, (krx - real) / 1e3))
except TimeoutError:
    pass
print(json.dumps(out), flush=True)
"""
"""Per path code: (seq, one-way delay in us by CLOCK_MONOTONIC at the process, by the
kernel's receive stamp); ends 1.5 s after the last datagram."""

LAT_SENDER = """
import json, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
port, rate, seconds = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
slots = [(int(c), d) for c, d in (x.split("@") for x in sys.argv[5:])]
ts = b"\\x47\\x1f\\xff\\x10" + b"\\xff" * 184
sent = [0] * len(slots)
gap = 1 / rate
n = int(rate * seconds)
due = time.monotonic()
for seq in range(n):
    i = seq % len(slots)
    code, dst = slots[i]
    ahead = due - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
    due = max(due + gap, time.monotonic() - gap)  # late: no burst to catch up
    head = bytes([0x80, 33]) + struct.pack("!HII", seq & 0xFFFF, seq * 90, 0xB1B1)
    stamp = struct.pack("!BQQQ", code, seq, time.monotonic_ns(), time.time_ns())
    s.sendto(head + b"\\x47\\x1f\\xff\\x10" + stamp + b"\\xff" * (184 - len(stamp)) + ts * 6,
             (dst, port))
    sent[i] += 1
print(json.dumps(sent), flush=True)
"""
"""Paced datagrams (RTP + 7 TS packets, the first carrying path code, seq, CLOCK_MONOTONIC
and CLOCK_REALTIME send times in ns), taking turns over the slots CODE@ADDRESS."""


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


def start_aggregartp(rig: Rig, tmp: Path) -> subprocess.Popen[str]:
    """aggregartp in `relay`: every datagram to every receiver (weight 0)."""
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
    return relay


def latency_intents(rig: Rig) -> list[Intent]:
    """All three paths at once: copies, aggregartp's, and unicast to each receiver."""
    uni = [
        parse_intent({"kind": "connectivity", "id": f"uni-{r}", "a": "host:src", "b": f"host:{r}"})
        for r in RECEIVERS
    ]
    return [*intents(rig, "switch"), *intents(rig, "relay"), *uni]


def branch_levels(groups: dict[str, str]) -> dict[str, int]:
    """Per receiver: switches on its path holding a group ALL of two buckets or more
    (`groups`: each switch's `ovs-ofctl dump-groups`)."""
    branching = {
        n
        for n, dump in groups.items()
        if any("type=all" in ln and ln.count("bucket=") >= 2 for ln in dump.splitlines())
    }
    return {r: sum(n in branching for n in TREE[r]) for r in RECEIVERS}


def one_latency_run(rig: Rig, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    """One paced run over the three paths; each receiver's delays by path name."""
    relay = None
    rx: dict[str, subprocess.Popen[str]] = {}
    try:
        for r in RECEIVERS:
            p = rig.popen(
                r, sys.executable, "-c", LAT_RECEIVER, str(UDP_PORT), stdout=subprocess.PIPE
            )
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            rx[r] = p
        relay = start_aggregartp(rig, tmp)
        ep = rig.endpoints
        slots = [(0, GROUP), (1, ep["relay"].ip), *((2, ep[r].ip) for r in RECEIVERS)]
        assert len(slots) == N_SLOTS  # paired_added finds a turn's unicast datagram by it
        names = ["switch", "relay", *(f"unicast {r}" for r in RECEIVERS)]
        sent = json.loads(
            rig.exec(
                "src",
                sys.executable,
                "-c",
                LAT_SENDER,
                ep["src"].ip,
                str(UDP_PORT),
                str(rate),
                str(seconds),
                *(f"{c}@{d}" for c, d in slots),
                timeout=seconds + 60,
            )
        )
        got = {r: json.loads(p.communicate(timeout=60)[0]) for r, p in rx.items()}
    finally:
        for p in [*rx.values(), relay]:
            common.stop_process(p)
    warm = int(rate)  # the first second: ARP, first flows, aggregartp's start
    out: dict[str, Any] = {"sent": dict(zip(names, sent, strict=True))}
    for r, by_code in got.items():
        out[r] = {
            PATHS[int(code)]: [(seq, u, k) for seq, u, k in rows if seq >= warm]
            for code, rows in by_code.items()
        }
    return out


def added(
    path: list[float], base: list[float], levels: int, digits: int = 1
) -> dict[str, float | None]:
    """(path - base) / levels, medians and p99s taken separately (us)."""
    if not path or not base or levels < 1:
        return {"median": None, "p99": None}
    return {
        "median": round(
            (common.percentile(path, 50) - common.percentile(base, 50)) / levels, digits
        ),
        "p99": round((common.percentile(path, 99) - common.percentile(base, 99)) / levels, digits),
    }


def paired_added(
    by_path: dict[str, list[Row]], path: str, receiver: str, k: int, levels: int
) -> dict[str, float | None]:
    """Per datagram of `path`: its delay minus that of the unicast datagram to the same
    receiver in the same turn of the slots (sent within a few ms, so a stall of the
    machine meets both), / levels; median and p99 of that difference (us)."""
    uni = {row[0]: row[k + 1] for row in by_path.get("unicast", [])}
    mine = SLOTS_BEFORE_UNICAST + RECEIVERS.index(receiver)
    diffs = [
        row[k + 1] - uni[u]
        for row in by_path.get(path, [])
        if (u := row[0] - row[0] % N_SLOTS + mine) in uni
    ]
    if not diffs or levels < 1:
        return {"median": None, "p99": None, "n": len(diffs)}
    return {
        "median": round(common.percentile(diffs, 50) / levels, 1),
        "p99": round(common.percentile(diffs, 99) / levels, 1),
        "n": len(diffs),
    }


def latency_figures(
    samples: dict[str, dict[str, list[Row]]], levels: dict[str, int]
) -> dict[str, Any]:
    """Per clock and receiver: each path's delays and the added latency per level;
    `samples[receiver][path]` = [(seq, monotonic us, kernel us)]."""
    out: dict[str, Any] = {}
    for k, clock in enumerate(("monotonic_at_process", "kernel_rx_stamp")):
        per: dict[str, Any] = {}
        for r in RECEIVERS:
            d = {p: [row[k + 1] for row in samples.get(r, {}).get(p, [])] for p in PATHS}
            sw = added(d["switch"], d["unicast"], levels[r])
            rl = added(d["relay"], d["unicast"], 1)
            paired = {
                p: paired_added(samples.get(r, {}), p, r, k, n)
                for p, n in (("switch", levels[r]), ("relay", 1))
            }
            per[r] = {
                "branch_levels": levels[r],
                **{f"{p}_us": common.summary(d[p], 1) for p in PATHS},
                "switch_added_per_branch_level_us": sw,
                "aggregartp_added_per_relay_level_us": rl,
                "ratio_switch_to_aggregartp": {
                    q: common.ratio(sw[q], rl[q]) for q in ("median", "p99")
                },
                "paired_switch_added_per_branch_level_us": paired["switch"],
                "paired_aggregartp_added_per_relay_level_us": paired["relay"],
            }
        by_levels: dict[str, Any] = {}
        for n in sorted(set(levels.values())):
            these = [r for r in RECEIVERS if levels[r] == n]
            d = {
                p: [row[k + 1] for r in these for row in samples.get(r, {}).get(p, [])]
                for p in PATHS
            }
            by_levels[str(n)] = {
                "receivers": these,
                "switch_added_per_branch_level_us": added(d["switch"], d["unicast"], n),
                "aggregartp_added_per_relay_level_us": added(d["relay"], d["unicast"], 1),
            }
        worst = {
            q: max(
                (
                    v["switch_added_per_branch_level_us"][q]
                    for v in per.values()
                    if v["switch_added_per_branch_level_us"][q] is not None
                ),
                default=None,
            )
            for q in ("median", "p99")
        }
        out[clock] = {
            "per_receiver": per,
            "by_branch_levels": by_levels,
            "switch_worst_receiver_per_level_us": worst,
            "goal_met_median": worst["median"] is not None and worst["median"] < 1000,
            "goal_met_p99": worst["p99"] is not None and worst["p99"] < 1000,
        }
    out["goal_per_level_us"] = 1000
    return out


def one_run(rig: Rig, path: str, seconds: float, tmp: Path) -> dict[str, Any]:
    relay = None
    rx: dict[str, subprocess.Popen[str]] = {}
    try:
        for r in RECEIVERS:
            p = rig.popen(r, sys.executable, "-c", RECEIVER, str(UDP_PORT), stdout=subprocess.PIPE)
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            rx[r] = p
        if path == "relay":
            relay = start_aggregartp(rig, tmp)
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
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    ap.add_argument("--latency-rounds", type=int, default=3)
    ap.add_argument("--latency-rate", type=float, default=1000.0, help="datagrams/s, all paths")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="nfbench-repl-"))
    rig = Rig("nfr" + secrets.token_hex(2), controller_port=PORT)
    orch = FakeOrchestrator()
    ctl: ControllerProcess | None = None
    groups: dict[str, str] = {}
    ok = False
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

        def installed(these: list[Intent]) -> bool:
            flows = [f for n in rig.nodes for f in rig.flows(n)]
            return all(any(f"cookie={cookie_for(it.id):#x}," in f for f in flows) for it in these)

        runs: dict[str, list[dict[str, Any]]] = {"switch": [], "relay": []}
        for i in range(args.rounds):
            for path in ("switch", "relay") if i % 2 == 0 else ("relay", "switch"):
                orch.set(intents=intents(rig, path))
                wait_until(lambda p=path: installed(intents(rig, p)), what=f"{path} flows")  # type: ignore[misc]
                runs[path].append(one_run(rig, path, args.seconds, tmp))
                if path == "switch":
                    groups = {n: rig.ofctl(rig.bridge(n), "dump-groups") for n in rig.nodes}
        orch.set(intents=latency_intents(rig))
        wait_until(lambda: installed(latency_intents(rig)), what="latency flows")
        levels = branch_levels({n: rig.ofctl(rig.bridge(n), "dump-groups") for n in rig.nodes})
        samples: dict[str, dict[str, list[Row]]] = {}
        lat_sent: list[dict[str, int]] = []
        for i in range(args.latency_rounds):
            got = one_latency_run(rig, args.latency_rate, args.latency_seconds, tmp)
            lat_sent.append(got.pop("sent"))
            for r, by_path in got.items():
                for path, rows in by_path.items():
                    # Sequence numbers restart each round: kept apart for pairing.
                    rows = [(i * ROUND_SEQ + q, u, k) for q, u, k in rows]
                    samples.setdefault(r, {}).setdefault(path, []).extend(rows)
        ok = True
    finally:
        if ctl is not None:
            ctl.stop()
        rig.close()
        orch.close()
        # The controller's log and the captures are only worth keeping when a run failed.
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench/replication.py: logs kept in {tmp}", file=sys.stderr)
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
        "groups_all_per_switch": {n: d.count("type=all") for n, d in groups.items()},
        "latency": {
            "figure": "added latency per level: switch copies per branch level and aggregartp "
            "per relay level, each against unicast to the same receiver along the same "
            "switch path, same run, interleaved",
            "datagrams_per_s": args.latency_rate,
            "seconds_per_round": args.latency_seconds,
            "rounds": args.latency_rounds,
            "sent": lat_sent,
            "received": {r: {p: len(v) for p, v in by.items()} for r, by in samples.items()},
            **latency_figures(samples, levels),
        },
        "machine": {"cpus": os.cpu_count(), "load": load_before, "load_after": os.getloadavg()},
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:]), indent=2))
