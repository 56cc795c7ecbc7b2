"""Lifecycle benchmark (root): instance create-to-running latency and migration
downtime on a real testbed, against bare baselines measured in the same run.

1. A testbed with control (examples/demo.yaml: two CPEs with a laptop each, a PE,
   the orchestrator and one agent per node) comes up through `Testbed.up(...)`.
2. Create-to-running: N `counter` instances are created one after the other
   through the REST API, pinned to one node; each one's latency is taken from the
   orchestrator's own records (`transitions`: `at` of running minus `at` of
   requested), then it is destroyed (stopping -> gone, also reported) before the
   next. Alternating with each create, the baseline: a bare `ip netns add` plus
   `ip netns exec NS python -m netfate.vnf counter ...` until its control socket's
   `.ready` file exists (the same interpreter running the same function, without
   the platform), and a plain `python -c pass` spawn. Ratio: create / baseline.
2b. Warm standbys (`--warm N`): the node gets a pre-deploy budget of one standby
   (PUT /nodes/NODE/predeploy); N creates there, each taking the standby the agent
   refilled (waited for first), alternate with N cold creates at `--cold-node`
   (no budget). Ratio: warm / cold create-to-running, same run; each warm create
   must say it took a standby (its transition's reason).
3. Migration downtime: one counter serving a host (placement puts it on the
   host's CPE) is migrated back and forth K times between two nodes while a probe
   in the host's namespace sends a UDP datagram every 1 ms to the instance's
   IP:7777 and records every reply. Per migration: the downtime the platform
   records (`migrations[].downtime_ms`, freeze to activation) and the data-plane
   downtime: the longest span between the *send* times of two consecutive answered
   probes (probes lost in between = the outage; send times make it independent of
   a longer path to the new node). The longest gap between reply *arrivals* is
   also given (it includes path-delay changes). Before the first migration the
   probe runs undisturbed: its longest gap is the probe's own noise floor. The
   counter's count must never go backwards in probe order (state carried).

Everything started here is stopped by pid; namespaces go with `Testbed.down()`
(baseline namespaces carry the run's prefix, so a crashed run's `testbed clean`
removes them too), also on Ctrl-C or SIGTERM.

    netfate bench lifecycle --json [--quick] [--creates 20] [--migrations 10] [--warm 10]
        [--topology examples/demo.yaml] [--node cpe1] [--serves laptop1]
        [--pair cpe1,cpe2] [--interval-ms 1] [--settle 0.3] [--steady 1]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_common: Any = None
REPO = Path(__file__).resolve().parents[1]
COUNTER_PORT = 7777


def _c() -> Any:
    """bench/_common.py, loaded by path (bench/ is not a package)."""
    global _common
    if _common is None:
        import importlib.util

        key = "netfate_bench__common"
        if key in sys.modules:
            _common = sys.modules[key]
        else:
            path = Path(__file__).resolve().with_name("_common.py")
            spec = importlib.util.spec_from_file_location(key, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[key] = mod
            spec.loader.exec_module(mod)
            _common = mod
    return _common


# --------------------------------------------------------------------------- arguments


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="netfate bench lifecycle", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small run for the test suite")
    p.add_argument("--creates", type=int, default=None, help="instances created (20)")
    p.add_argument("--migrations", type=int, default=None, help="migrations (10)")
    p.add_argument("--topology", default=str(REPO / "examples" / "demo.yaml"))
    p.add_argument("--node", default="cpe1", help="node the creates are pinned to")
    p.add_argument("--serves", default="laptop1", help="host the migrated instance serves")
    p.add_argument("--pair", default="cpe1,cpe2", help="the two nodes migrated between")
    p.add_argument(
        "--warm",
        type=int,
        default=None,
        help="pairs of creates, warm standby at --node vs cold at --cold-node (10)",
    )
    p.add_argument("--cold-node", default="cpe2", help="node without standbys (--warm)")
    p.add_argument("--interval-ms", type=float, default=1.0, help="probe send interval")
    p.add_argument("--settle", type=float, default=0.3, help="seconds between migrations")
    p.add_argument("--steady", type=float, default=None, help="probe seconds before migrating")
    p.add_argument("--poll", type=float, default=0.02, help="API poll interval (s)")
    p.add_argument("--no-rt", action="store_true", help="probe without SCHED_FIFO")
    p.add_argument(
        "--variants",
        default="as-is,no-delay",
        help="migration runs: as-is (topology's link delays) and/or no-delay "
        "(same topology, delays removed: the data-plane gap then shows the platform alone)",
    )
    p.add_argument("--verbose", action="store_true", help="progress on stderr")
    a = p.parse_args(argv)
    a.creates = a.creates if a.creates is not None else (3 if a.quick else 20)
    a.warm = a.warm if a.warm is not None else (2 if a.quick else 10)
    if a.warm and a.cold_node == a.node:
        p.error("--cold-node must differ from --node: it keeps no standby")
    a.migrations = a.migrations if a.migrations is not None else (2 if a.quick else 10)
    a.steady = a.steady if a.steady is not None else (0.5 if a.quick else 1.0)
    pair = [x.strip() for x in a.pair.split(",") if x.strip()]
    if len(pair) != 2 or pair[0] == pair[1]:
        p.error("--pair needs two different nodes, e.g. cpe1,cpe2")
    a.pair = pair
    a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in a.variants:
        if v not in ("as-is", "no-delay"):
            p.error(f"unknown variant {v!r}: as-is or no-delay")
    if a.creates < 0 or a.migrations < 0 or a.interval_ms <= 0:
        p.error("--creates and --migrations must be >= 0, --interval-ms > 0")
    return a


# --------------------------------------------------------------------------- pure analysis


def transition_ms(transitions: list[dict[str, Any]], start: str, end: str) -> float | None:
    """Milliseconds from the first transition into `start` to the first into `end` after it."""
    t0 = next((t["at"] for t in transitions if t["state"] == start), None)
    if t0 is None:
        return None
    t1 = next((t["at"] for t in transitions if t["state"] == end and t["at"] >= t0), None)
    return None if t1 is None else (t1 - t0) * 1e3


def _window_index(t: float, starts: list[float]) -> int:
    """-1 before the first start, else the index of the last start <= t."""
    idx = -1
    for i, s in enumerate(starts):
        if t >= s:
            idx = i
        else:
            break
    return idx


def analyse_probe(
    sent: list[tuple[int, float]],
    replies: list[tuple[int, float, int]],
    starts: list[float],
) -> dict[str, Any]:
    """Gaps in a probe's replies, per migration window.

    `sent`: (seq, send time); `replies`: (seq, arrival time, count); `starts`: the
    times migrations were requested, ascending. Window i runs from starts[i] to
    starts[i+1] (the last to the end); window -1 (before the first) is the steady
    state. A gap belongs to the window in which it begins.

    - send gap: between consecutive *answered* probes (in sequence order), the
      difference of their send times: the outage, at the probe's resolution;
    - arrival gap: between consecutive reply arrivals;
    - state carried: in sequence order the count never decreases; `count_skips`
      counts replies whose count rose by more than one (a reply lost after the
      counter counted it), `duplicates` seqs answered twice.
    """
    sent_at = dict(sent)
    by_seq: dict[int, tuple[float, int]] = {}
    duplicates = 0
    for seq, t, count in replies:
        if seq in by_seq:
            duplicates += 1
            continue
        by_seq[seq] = (t, count)
    answered = sorted(s for s in by_seq if s in sent_at)
    n_win = len(starts)
    send_gap = [0.0] * (n_win + 1)  # index w+1 for window w
    lost = [0] * (n_win + 1)
    arrival_gap = [0.0] * (n_win + 1)
    backwards = 0
    skips = 0
    for a, b in itertools.pairwise(answered):
        w = _window_index(sent_at[a], starts) + 1
        send_gap[w] = max(send_gap[w], sent_at[b] - sent_at[a])
        lost[w] += b - a - 1
        ca, cb = by_seq[a][1], by_seq[b][1]
        if cb < ca:
            backwards += 1
        elif cb > ca + 1:
            skips += 1
    arrivals = sorted(t for t, _ in by_seq.values())
    for x, y in itertools.pairwise(arrivals):
        w = _window_index(x, starts) + 1
        arrival_gap[w] = max(arrival_gap[w], y - x)
    unanswered_tail = 0
    if sent and answered:
        unanswered_tail = max(s for s, _ in sent) - answered[-1]
    intervals = [y - x for (_, x), (_, y) in itertools.pairwise(sent)]
    c = _c()
    return {
        "steady": {
            "send_gap_ms": round(send_gap[0] * 1e3, 3),
            "arrival_gap_ms": round(arrival_gap[0] * 1e3, 3),
            "lost": lost[0],
        },
        "migrations": [
            {
                "send_gap_ms": round(send_gap[i + 1] * 1e3, 3),
                "arrival_gap_ms": round(arrival_gap[i + 1] * 1e3, 3),
                "lost": lost[i + 1],
            }
            for i in range(n_win)
        ],
        "sent": len(sent),
        "answered": len(answered),
        "duplicates": duplicates,
        "count_backwards": backwards,
        "count_skips": skips,
        "unanswered_at_end": unanswered_tail,
        "first_count": by_seq[answered[0]][1] if answered else None,
        "last_count": by_seq[answered[-1]][1] if answered else None,
        "send_interval_ms": c.summary([x * 1e3 for x in intervals], 3) if intervals else None,
    }


# --------------------------------------------------------------------------- probe (child)


def probe_main(
    ns: str, ip: str, port: int, interval_ms: float, out: str, realtime: bool = True
) -> None:
    """Runs as a child process (its own GIL): send a datagram every interval to
    ip:port from a socket opened in namespace `ns`, record sends and replies until
    stdin closes, then write them to `out` as JSON."""
    import selectors
    import socket

    from netfate.host import netns

    if realtime:
        # The instrument must not be what stalls on a busy machine: it sleeps in
        # select() between sends, so a real-time class costs others almost nothing.
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((ip, port))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "sock")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    interval = interval_ms / 1e3
    sent: list[tuple[int, float]] = []
    replies: list[tuple[int, float, int, str]] = []
    seq = 0
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    next_t = time.time()
    running = True
    while running:
        now = time.time()
        if now >= next_t:
            seq += 1
            with contextlib.suppress(OSError):  # refused/unreachable while moving
                sock.send(b"p%d" % seq)
            sent.append((seq, now))
            next_t += interval
            if next_t < now - 5 * interval:  # stalled (scheduler): no burst to catch up
                next_t = now + interval
        timeout = max(0.0, next_t - time.time())
        for key, _ in sel.select(timeout):
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    running = False
                continue
            while True:
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # ICMP error queued on the socket
                t = time.time()
                try:
                    msg = json.loads(data)
                    rseq = int(str(msg["echo"])[1:])
                    replies.append((rseq, t, int(msg["count"]), str(msg.get("instance", ""))))
                except (ValueError, KeyError, TypeError):
                    continue
    policy = os.sched_getscheduler(0)
    doc = {"sent": sent, "replies": replies, "realtime": policy == os.SCHED_FIFO}
    Path(out).write_text(json.dumps(doc))


class Probe:
    def __init__(
        self, ns: str, ip: str, interval_ms: float, workdir: Path, realtime: bool = True
    ) -> None:
        self.out = workdir / "probe.json"
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--probe",
                ns,
                ip,
                str(COUNTER_PORT),
                str(interval_ms),
                str(self.out),
                "rt" if realtime else "nort",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(workdir / "probe.log", "ab"),  # noqa: SIM115 (handed to the child)
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"probe did not start: {(workdir / 'probe.log').read_text()}")

    def finish(self) -> dict[str, Any]:
        p = self.proc
        if p is None or p.stdin is None:
            raise RuntimeError("probe not running")
        p.stdin.close()  # the child writes its records and exits
        p.wait(30)
        self.proc = None
        doc: dict[str, Any] = json.loads(self.out.read_text())
        return doc

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            _c().stop_process(self.proc)
            self.proc = None


# --------------------------------------------------------------------------- baseline


def baseline_spawn(ns: str, workdir: Path, tag: str) -> dict[str, float]:
    """`ip netns add` + the same VNF process in it until ready; then removed again."""
    sock = workdir / f"{tag}.sock"
    ready = Path(str(sock) + ".ready")
    with contextlib.suppress(FileNotFoundError):
        ready.unlink()
    t0 = time.perf_counter()
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    t1 = time.perf_counter()
    netns_exec = ["ip", "netns", "exec", ns]
    vnf_args = ["--instance", tag, "--control", str(sock), "--config", "{}"]
    p = subprocess.Popen(
        [*netns_exec, sys.executable, "-m", "netfate.vnf", "counter", *vnf_args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if p.poll() is not None:
                raise RuntimeError(f"baseline VNF exited with {p.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("baseline VNF not ready after 30 s")
            time.sleep(0.001)
        t2 = time.perf_counter()
    finally:
        _c().stop_process(p)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    return {"netns_add_ms": (t1 - t0) * 1e3, "spawn_ready_ms": (t2 - t1) * 1e3}


def baseline_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - t0) * 1e3


# --------------------------------------------------------------------------- API steps


class Api:
    def __init__(self, url: str, poll: float, token: str | None) -> None:
        import httpx

        headers = {"authorization": f"Bearer {token}"} if token else None
        self.c = httpx.Client(base_url=url.rstrip("/") + "/api/v1", timeout=30.0, headers=headers)
        self.poll = poll

    def close(self) -> None:
        self.c.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.c.request(method, path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def wait_state(self, iid: str, states: tuple[str, ...], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            d = self.call("GET", f"/instances/{iid}")
            if d["state"] in states:
                return d
            if time.monotonic() > deadline:
                raise RuntimeError(f"instance {iid} still {d['state']} after {timeout:.0f} s")
            time.sleep(self.poll)

    def wait_migration(self, iid: str, mid: int, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            d = self.call("GET", f"/instances/{iid}")
            m = next((m for m in d["migrations"] if m["id"] == mid), None)
            if m is not None and m["phase"] in ("done", "failed"):
                return d, m
            if time.monotonic() > deadline:
                raise RuntimeError(f"migration {mid} of {iid} not finished after {timeout:.0f} s")
            time.sleep(self.poll)


def bench_creates(api: Api, a: argparse.Namespace, prefix: str, workdir: Path) -> dict[str, Any]:
    c = _c()
    rec, client, pickup, start, destroy = [], [], [], [], []
    base_add, base_ready, base_total, py = [], [], [], []
    failures: list[str] = []
    for i in range(a.creates):
        t0 = time.time()
        inst = api.call("POST", "/instances", {"descriptor": "counter", "node": a.node})
        d = api.wait_state(inst["id"], ("running", "failed"))
        seen = time.time()
        if d["state"] == "failed":
            failures.append(f"{inst['id']}: {d.get('detail', '')[:200]}")
        else:
            tr = d["transitions"]
            rec.append(transition_ms(tr, "requested", "running"))
            pickup.append(transition_ms(tr, "requested", "starting"))
            start.append(transition_ms(tr, "starting", "running"))
            client.append((seen - t0) * 1e3)
        api.call("DELETE", f"/instances/{inst['id']}")
        g = api.wait_state(inst["id"], ("gone",))
        destroy.append(transition_ms(g["transitions"], "stopping", "gone"))
        b = baseline_spawn(f"{prefix}-bl{i}", workdir, f"bl{i}")
        base_add.append(b["netns_add_ms"])
        base_ready.append(b["spawn_ready_ms"])
        base_total.append(b["netns_add_ms"] + b["spawn_ready_ms"])
        py.append(baseline_python())
        if a.verbose:
            print(f"create {i}: {rec[-1] if rec else None} ms, baseline {base_total[-1]:.0f}")

    def clean(xs: list[float | None]) -> list[float]:
        return [x for x in xs if x is not None]

    ours = c.summary(clean(rec), 1)
    base = c.summary(base_total, 1)
    return {
        "create_to_running_ms": ours,
        "requested_to_starting_ms": c.summary(clean(pickup), 1),
        "starting_to_running_ms": c.summary(clean(start), 1),
        "client_observed_ms": c.summary(client, 1),
        "client_poll_interval_ms": a.poll * 1e3,
        "destroy_stopping_to_gone_ms": c.summary(clean(destroy), 1),
        "failed": failures,
        "baseline_netns_add_plus_vnf_ready_ms": base,
        "baseline_netns_add_ms": c.summary(base_add, 1),
        "baseline_vnf_ready_in_netns_ms": c.summary(base_ready, 1),
        "baseline_python_c_pass_ms": c.summary(py, 1),
        "ratio_median_vs_baseline": c.ratio(ours.get("median"), base.get("median")),
        "ratio_median_vs_python_c_pass": c.ratio(
            ours.get("median"), c.summary(py, 1).get("median")
        ),
        "goal_median_under_200_ms": (ours.get("median") or 1e9) < 200,
    }


def took_standby(transitions: list[dict[str, Any]]) -> bool:
    """Did the agent say this create took a warm standby (the transition's reason)?"""
    return any("from a warm standby" in str(t.get("reason", "")) for t in transitions)


def _wait_standby(api: Api, node: str, function: str, timeout: float = 60) -> float:
    """Seconds until the node's agent reports a standby of `function` ready."""
    t0 = time.monotonic()
    while True:
        view = api.call("GET", "/predeploy").get(node) or {}
        if (view.get("standbys_ready") or {}).get(function, 0) >= 1:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"no warm standby of {function} on {node}: {view}")
        time.sleep(0.05)


def bench_warm(api: Api, a: argparse.Namespace) -> dict[str, Any]:
    """Create-to-running from a warm standby (`--node`, with a pre-deploy budget of one
    standby) against a cold start (`--cold-node`, no budget), alternating, same run.
    Each warm create waits first until the refilled standby is reported ready."""
    c = _c()
    # Demand first: the policy keeps what was asked for (a counter at each node).
    for node in (a.node, a.cold_node):
        api.call("PUT", f"/nodes/{node}/predeploy", {"storage_mb": 0, "standbys": 0})
    seed = api.call("POST", "/instances", {"descriptor": "counter", "node": a.node})
    api.wait_state(seed["id"], ("running", "failed"))
    api.call("DELETE", f"/instances/{seed['id']}")
    api.wait_state(seed["id"], ("gone",))
    plan = api.call("PUT", f"/nodes/{a.node}/predeploy", {"storage_mb": 1.0, "standbys": 1})
    warm: list[float] = []
    cold: list[float] = []
    refill: list[float] = []
    taken = 0
    failures: list[str] = []
    stamps: dict[str, dict[str, float]] = {}
    try:
        for i in range(a.warm):
            for node, out in ((a.node, warm), (a.cold_node, cold)):
                # Before the cold one too: a refill under way would slow it (2 cores).
                waited = _wait_standby(api, a.node, "counter") * 1e3
                if node == a.node:
                    refill.append(waited)
                posted = time.time()
                inst = api.call("POST", "/instances", {"descriptor": "counter", "node": node})
                answered = time.time()
                d = api.wait_state(inst["id"], ("running", "failed"))
                seen = time.time()
                if node == a.node:
                    stamps[inst["id"]] = {
                        "posted": posted, "answered": answered, "seen": seen,
                        **{t["state"]: t["at"] for t in reversed(d["transitions"])},
                    }  # fmt: skip
                if d["state"] == "failed":
                    failures.append(f"{inst['id']}: {d.get('detail', '')[:200]}")
                else:
                    ms = transition_ms(d["transitions"], "requested", "running")
                    if ms is not None:
                        out.append(ms)
                    if node == a.node and took_standby(d["transitions"]):
                        taken += 1
                    if node != a.node and took_standby(d["transitions"]):
                        failures.append(f"{inst['id']}: a cold create took a standby")
                api.call("DELETE", f"/instances/{inst['id']}")
                api.wait_state(inst["id"], ("gone",))
            if a.verbose:
                print(f"pair {i}: warm {warm[-1:]} ms, cold {cold[-1:]} ms", file=sys.stderr)
    finally:
        api.call("PUT", f"/nodes/{a.node}/predeploy", {"storage_mb": 0, "standbys": 0})
    w, k = c.summary(warm, 1), c.summary(cold, 1)
    return {
        "warm_create_to_running_ms": w,
        "cold_create_to_running_ms": k,
        "warm_node": a.node,
        "cold_node": a.cold_node,
        "warm_creates_that_took_a_standby": taken,
        "warm_creates": len(warm),
        "refill_wait_ms": c.summary(refill, 1),
        "plan": {x: plan.get(x) for x in ("images", "standbys", "standbys_why")},
        "failed": failures,
        "ratio_warm_vs_cold_median": c.ratio(w.get("median"), k.get("median")),
        "goal_warm_median_under_20_ms": (w.get("median") or 1e9) < 20,
        "stamps": stamps,
    }


WARM_STAMPS_RE = re.compile(
    r"instance (i-[0-9a-f]+) \w+ in \d+ ms from warm standby .*heard at ([\d.]+), "
    r"serving at ([\d.]+), done at ([\d.]+)\)"
)

HOPS = (
    ("client_to_api", "posted", "requested"),
    ("api_answer", "requested", "answered"),
    ("requested_to_agent_heard", "requested", "heard"),
    ("agent_take_to_serving", "heard", "serving"),
    ("agent_limits_and_task_end", "serving", "done"),
    ("agent_report_to_running", "done", "running"),
    ("requested_to_running", "requested", "running"),
    ("running_to_client_seen", "running", "seen"),
)
"""A warm create's hops, each from one stamp to the next (one machine, one clock):
the client's (posted, answered, seen), the orchestrator's transitions (requested,
starting, running) and the agent's log (heard: the desired state arrived; serving:
wired and ready; done: limits applied, the task over, the report next)."""


def warm_breakdown(stamps: dict[str, dict[str, float]], log_text: str) -> dict[str, Any]:
    """Per hop, milliseconds over the warm creates whose agent line has stamps."""
    c = _c()
    for m in WARM_STAMPS_RE.finditer(log_text):
        st = stamps.get(m.group(1))
        if st is not None:
            st.update(heard=float(m.group(2)), serving=float(m.group(3)), done=float(m.group(4)))
    out: dict[str, Any] = {}
    for name, a, b in HOPS:
        xs = [(st[b] - st[a]) * 1e3 for st in stamps.values() if a in st and b in st]
        out[name] = c.summary(xs, 1)
    return out


def bench_migrations(api: Api, tb: Any, a: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    c = _c()
    inst = api.call("POST", "/instances", {"descriptor": "counter", "serves": a.serves})
    iid = inst["id"]
    probe: Probe | None = None
    try:
        d = api.wait_state(iid, ("running", "failed"))
        if d["state"] != "running":
            raise RuntimeError(f"instance for {a.serves} failed: {d.get('detail')}")
        ip = str(d["ip"]).split("/")[0]
        probe = Probe(tb.netns_of(a.serves), ip, a.interval_ms, workdir, not a.no_rt)
        time.sleep(a.steady)
        starts: list[float] = []
        records: list[dict[str, Any]] = []
        for k in range(a.migrations):
            node = api.call("GET", f"/instances/{iid}")["node"]  # where it runs now
            target = a.pair[1] if node == a.pair[0] else a.pair[0]
            starts.append(time.time())
            m = api.call("POST", f"/instances/{iid}/migrate", {"node": target})
            d, m = api.wait_migration(iid, m["id"])
            records.append(m)
            if m["phase"] != "done":
                raise RuntimeError(f"migration {k} to {target} failed: {m.get('reason')}")
            if a.verbose:
                print(f"migration {k} -> {target}: platform {m['downtime_ms']} ms")
            time.sleep(a.settle)
        data = probe.finish()
        probe = None
    finally:
        if probe is not None:
            probe.stop()
        with contextlib.suppress(Exception):
            api.call("DELETE", f"/instances/{iid}")
            api.wait_state(iid, ("gone",), timeout=20)
    sent = [(int(s), float(t)) for s, t in data["sent"]]
    replies = [(int(s), float(t), int(n)) for s, t, n, _ in data["replies"]]
    an = analyse_probe(sent, replies, starts)
    platform = [float(m["downtime_ms"]) for m in records if m.get("downtime_ms") is not None]
    dataplane = [w["send_gap_ms"] for w in an["migrations"]]
    arrival = [w["arrival_gap_ms"] for w in an["migrations"]]
    durations = [(m["finished_at"] - m["started_at"]) * 1e3 for m in records if m["finished_at"]]
    excess = [
        w["send_gap_ms"] - float(m["downtime_ms"])
        for m, w in zip(records, an["migrations"], strict=False)
        if m.get("downtime_ms") is not None
    ]
    plat_s = c.summary(platform, 3)
    dp_s = c.summary(dataplane, 3)
    return {
        "instance": iid,
        "between": a.pair,
        "serves": a.serves,
        "platform_downtime_ms": plat_s,
        "dataplane_downtime_ms": dp_s,
        "dataplane_arrival_gap_ms": c.summary(arrival, 3),
        # How much longer traffic stops than the platform says (switch convergence).
        "dataplane_minus_platform_ms": c.summary(excess, 3),
        "probe_interval_ms": a.interval_ms,
        "probe_noise_floor": an["steady"],
        "migration_request_to_done_ms": c.summary(durations, 1),
        "state_bytes": [m.get("state_bytes") for m in records],
        "per_migration": [
            {
                "to": m["target"],
                "platform_ms": m.get("downtime_ms"),
                "dataplane_ms": w["send_gap_ms"],
                "arrival_gap_ms": w["arrival_gap_ms"],
                "lost": w["lost"],
            }
            for m, w in zip(records, an["migrations"], strict=False)
        ],
        "state_carried": an["count_backwards"] == 0 and an["duplicates"] == 0,
        "probe": {k: an[k] for k in an if k not in ("steady", "migrations")},
        "probe_realtime": bool(data.get("realtime")),
        "ratio_dataplane_vs_platform_median": c.ratio(dp_s.get("median"), plat_s.get("median")),
        "goal_platform_median_under_10_ms": (plat_s.get("median") or 1e9) < 10,
        "goal_dataplane_median_under_10_ms": (dp_s.get("median") or 1e9) < 10,
    }


def load_variant(path: str, variant: str) -> Any:
    """The topology as written (`as-is`) or with every link delay and loss removed
    (`no-delay`; rates kept), which also takes the link emulator off the path."""
    from netfate.model.topology import Topology

    topo = Topology.load(path)
    if variant == "as-is":
        return topo
    doc = topo.to_dict()
    for lk in doc.get("links", []):
        lk.pop("delay", None)
        lk.pop("loss", None)
    return Topology.from_dict(doc)


def path_delay_ms(topo: Any, a: str, b: str) -> float:
    """One-way delay of the shortest (by delay) path between two nodes."""
    import networkx as nx

    g = topo.graph()
    return round(float(nx.shortest_path_length(g, a, b, weight="delay_s")) * 1e3, 3)


AGENT_START_RE = re.compile(
    r"instance (i-[0-9a-f]+) active in (\d+) ms \(namespace\+spawn (\d+), "
    r"wiring and start-up (\d+)"
)


WARM_TAKE_RE = re.compile(r"instance (i-[0-9a-f]+) \w+ in (\d+) ms from warm standby")


def warm_takes(log_text: str) -> list[float]:
    """The agent's own figure for each create that took a warm standby (ms)."""
    return [float(m.group(2)) for m in WARM_TAKE_RE.finditer(log_text)]


def agent_start_breakdown(log_text: str) -> dict[str, list[float]]:
    """The agent's own start-up log lines: total, namespace+spawn, wiring+start-up (ms)."""
    out: dict[str, list[float]] = {"total": [], "namespace_spawn": [], "wiring_startup": []}
    for m in AGENT_START_RE.finditer(log_text):
        out["total"].append(float(m.group(2)))
        out["namespace_spawn"].append(float(m.group(3)))
        out["wiring_startup"].append(float(m.group(4)))
    return out


def _testbed(topo: Any, progress: Any) -> Any:
    from netfate.testbed.builder import Testbed

    return Testbed.up(topo, control=True, progress=progress)


def _down(tb: Any, a: argparse.Namespace, progress: Any, out: dict[str, Any]) -> None:
    for i in range(a.creates):  # baseline namespaces an interruption may have left
        ns = f"{tb.prefix}-bl{i}"
        if Path("/run/netns", ns).exists():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    t1 = time.perf_counter()
    out["teardown_problems"] = out.get("teardown_problems", []) + tb.down(progress=progress)
    out.setdefault("testbed_down_s", []).append(round(time.perf_counter() - t1, 2))


def run(argv: list[str]) -> dict[str, Any]:
    a = parse_args(argv)
    c = _c()
    c.need_root("the lifecycle benchmark (testbed)")

    result: dict[str, Any] = {"benchmark": "lifecycle", "topology": a.topology}

    def progress(msg: str) -> None:
        if a.verbose:
            print(f"testbed: {msg}", file=sys.stderr, flush=True)

    with c.sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="nft-bench-lc-") as tmp:
        workdir = Path(tmp)
        # First testbed: the topology as written; creates, then migrations over it.
        first = a.variants[0] if a.variants else "as-is"
        for n, variant in enumerate(a.variants or [first]):
            topo = load_variant(a.topology, variant)
            t0 = time.perf_counter()
            tb = _testbed(topo, progress)
            result.setdefault("testbed_up_s", []).append(round(time.perf_counter() - t0, 2))
            api: Api | None = None
            try:
                assert tb.api_url is not None
                api = Api(tb.api_url, a.poll, tb.api_token)
                if n == 0 and a.creates:
                    result["create"] = bench_creates(api, a, tb.prefix, workdir)
                    log = tb.state.dir / "logs" / f"agent-{a.node}.log"
                    with contextlib.suppress(OSError):
                        br = agent_start_breakdown(log.read_text(errors="replace"))
                        result["create"]["agent_log_ms"] = {
                            k: c.summary(v, 1) for k, v in br.items()
                        }
                if n == 0 and a.warm:
                    result["create_warm"] = bench_warm(api, a)
                    logs = tb.state.dir / "logs"
                    with contextlib.suppress(OSError):
                        wl = (logs / f"agent-{a.node}.log").read_text(errors="replace")
                        cl = (logs / f"agent-{a.cold_node}.log").read_text(errors="replace")
                        result["create_warm"]["agent_log_ms"] = {
                            "warm_take": c.summary(warm_takes(wl), 1),
                            "cold_start": c.summary(agent_start_breakdown(cl)["total"], 1),
                        }
                        result["create_warm"]["breakdown_ms"] = warm_breakdown(
                            result["create_warm"].pop("stamps"), wl
                        )
                        result["create_warm"]["agent_log_warm_lines"] = [
                            ln.split("instance ", 1)[-1] for ln in wl.splitlines()
                            if "from warm standby" in ln
                        ]  # fmt: skip
                if a.migrations:
                    mig = bench_migrations(api, tb, a, workdir)
                    mig["link_emulator"] = tb.emulator
                    mig["path_one_way_delay_ms"] = path_delay_ms(topo, *a.pair)
                    result[f"migration_{variant}"] = mig
            finally:
                if api is not None:
                    api.close()
                _down(tb, a, progress, result)
    return result


if __name__ == "__main__":
    if len(sys.argv) == 8 and sys.argv[1] == "--probe":
        ns, ip, port, interval, out, rt = sys.argv[2:]
        probe_main(ns, ip, int(port), float(interval), out, realtime=rt == "rt")
    else:
        print(json.dumps(run(sys.argv[1:]), indent=2, sort_keys=True))
