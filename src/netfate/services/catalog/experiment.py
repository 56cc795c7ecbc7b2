"""``netfate experiment migration``: the INPUT paper's Figure 4 on the testbed (issue
15, section 6). It writes ``migration.json``, ``migration.md`` and PNG plots to its
output folder (``--out``).

One testbed, a line; migration traffic and the user's requests cross the emulated
link between the two points of presence, with paced UDP cross traffic both ways:

    home ── pop1 ──[100 Mbit/s, 2.5 ms each way: base RTT 5 ms, background load]── pop2

- ``home`` runs the Home Radio Head's USB/IP server with ten CDC-ACM temperature
  sensors (the real source of the objects' readings) and the user's request
  stream (10 kHz, round-robin over the ten objects).
- ``pop1`` runs the VO host with the user's ten Virtual Objects (8-78 KB each, fed
  by the sensors over USB/IP); they move to ``pop2``, and after the move the user's
  requests and the sensors' readings cross the emulated link to reach them.

The user sits next to ``pop1`` (not behind the shaped link) because on this shared
2-core machine the emulated path (OVS userspace datapath and the userspace delay
emulator) does not carry a 10 kHz request stream without queueing for seconds and
dropping; before the move the stream reaches ``pop1`` over one unshaped hop, and
only the last ``tail_s`` of each trial crosses the shaped link.

Two kinds of migration, each with and without the image at the target:

    kind      what moves                                   "pre-deployed" means
    vo        the ten objects only: synced in rounds into   the VO application (a zip of
              the VO host already running at pop2 (PaaS),   the objects' code and sensor
              then the target takes over (vnf/vo)           driver) is at pop2; else it is
                                                            sent first over the sync link
    instance  the whole function instance: a new copy at    the function's image (every
              pop2, one copy of the process's private       file the running process
              memory while it serves (the pages a VM's      maps or has loaded: the
              pre-copy moves), then freeze, its whole state interpreter, its libraries
              and the copy takes over (the platform's       and modules) is at pop2; else
              standby/freeze/import/activate steps)         it is sent first, as a tar

    platform  the same VO host as a platform instance      the pre-deploy policy's own:
              (descriptor ``vo-host``), moved by the        pop2 has a budget (``PUT
              orchestrator and the agents: standby at pop2, /nodes/pop2/predeploy``), the
              snapshot, freeze, final delta, activate       policy keeps the VO host's
              (agent/migration.py), over the agents'        image there (imported into
              channel, which lives in the nodes'            its agent's fork server) and a
              namespaces (agent/channel.py): its bytes      warm standby, which the move's
              cross the shaped, delayed and loaded link     copy takes (its record says
                                                            so); else pop2 has no budget
                                                            and the copy starts cold. The
                                                            package is on the one machine
                                                            either way: nothing is sent

The memory copy is real bytes read from /proc/PID/mem and sent across the link,
but the copy at pop2 is not restored from them (CRIU fails on this kernel): it
starts from the installed package and imports the function's state. Without
dirty-page tracking (no soft-dirty bits here) there is one pre-copy round; the
stop-and-copy round carries the function's state, not dirty pages.

The ``platform`` kind's figures are the platform's own: migration time from the
orchestrator's record (requested to done, so it includes the agents' long-poll
pick-up and report), downtime as the agents stamp it (the source's freeze to the
target's activation, wall clock of this one machine), and the bytes the source
agent's channel sent out of pop1's namespace (an nftables counter there, TCP and IP
headers included). Its objects carry their preloaded history only (no USB/IP feed:
the HRH's sensors are the other kinds'), and no request stream is pointed at it.
The run's testbed has its control plane (orchestrator and agents) for this kind.

Downtime, where users see it, on one clock (CLOCK_MONOTONIC, one machine): the
source stamps when it stops serving, every answer carries when it was served, and
the stream records each request. ``downtime`` (vo, instance) = the worst wait of a
request sent in the migration's window beyond the usual service time of the place
that answered it (its median latency outside the window; stream.excess_wait), next
to the same figure over an equally long window before it, with no migration (the
machine's own noise). ``freeze`` = from when the objects stop being served anywhere
to when they are served somewhere (the hosts' stamps: 0 when the target served
before the source stopped). ``stop to first new`` = the source's stop stamp to the
first answer the new place served (the former downtime figure: over a link it holds
the forward hop, not a freeze). ``max gap`` = the longest time with no request
served, in the window, next to the same figure in the window before it.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import statistics
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from netfate.demo.function import FunctionProcess as Fn
from netfate.host import netns, nft
from netfate.testbed.cross import cross_traffic
from netfate.vnf.vo.stream import Stream, analyse

Progress = Callable[[str], None]
HOST_FN = "netfate.vnf.vo.function:VoHost"
HRH_FN = "netfate.vnf.usbip_host.function:UsbipHost"
VO_PORT, SYNC_PORT, BULK_PORT = 7780, 7781, 7799
OBJECTS = 10
SIZES_KB = [round(8 + k * 70 / (OBJECTS - 1)) for k in range(OBJECTS)]
"""8 .. 78 KB, as the paper's ten objects."""

PAPER = {
    "source": "INPUT/pyroclast paper, section V and Figure 4 (text only, no table of values)",
    "vo_vs_vm": "VO migration up to 3 orders of magnitude lighter than moving the VM",
    "predeploy_speedup": {"vo": 10.0, "vm": 2.0},
    "downtime_ms": {"vm": [500.0, 1000.0], "paas_below": 1.0},
    "setting": "background load 5-40% of link capacity, base RTT 5 ms, 10 VOs of 8-78 KB",
}
EMULATORS = {
    "userspace": "userspace delay emulator (testbed/linkemu_driver.py: the kernel has no netem)",
    "netem": "kernel netem",
    "none": "no delay emulation",
}


@dataclass(frozen=True)
class Plan:
    loads: tuple[float, ...] = (0.05, 0.10, 0.20, 0.30, 0.40)
    """Background load, share of the link's capacity (both ways)."""
    repeat: int = 2
    kinds: tuple[str, ...] = ("vo", "instance", "platform")
    predeployed: tuple[bool, ...] = (True, False)
    rate_mbit: float = 100.0
    delay_ms: float = 2.5
    """One way: the base RTT is twice this."""
    stream_hz: float = 10_000.0
    warm_s: float = 1.0
    tail_s: float = 0.5
    sensor_period_s: float = 0.1
    linger_ms: float | None = None
    """vo.push's bound on the hand-over (None: its default); 0 stops the source at the
    take-over (it forwards from then on: the behaviour before the hand-over)."""


QUICK = Plan(loads=(0.05, 0.20, 0.40), repeat=1)
PHASES = (
    "started", "readings_held", "final_sent", "active", "heard_active", "stopped",
    "released", "done",
)  # fmt: skip
"""A push's stamps (vnf/vo/function.py), in the order they happen."""


def topology_yaml(plan: Plan) -> str:
    delay_us = round(plan.delay_ms * 1000)
    return "\n".join(
        [
            "# generated by `netfate experiment migration`",
            "name: vo-migration",
            "transit: 10.254.0.0/24",
            "nodes:",
            "  pop1: {kind: pop, lan: 10.62.1.0/24}",
            "  pop2: {kind: pop, lan: 10.62.2.0/24}",
            "  home: {kind: hrh, lan: 192.168.62.0/24}",
            "links:",
            "  - {a: home, b: pop1}",
            f"  - {{a: pop1, b: pop2, rate: {plan.rate_mbit:g}Mbit, delay: {delay_us}us}}",
            "",
        ]
    )


# --------------------------------------------------------------------------- #
# processes
# --------------------------------------------------------------------------- #


def private_memory(pid: int) -> Iterator[bytes]:
    """The process's private writable pages (heap, stacks, anonymous and data
    mappings), read while it runs: what a pre-copy round of a VM moves."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) rw.p", line)
            if not m or line.rstrip().endswith(("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            for at in range(lo, hi, 1 << 20):
                try:
                    mem.seek(at)
                    chunk = mem.read(min(1 << 20, hi - at))
                except OSError:
                    break  # unmapped meanwhile
                if chunk:
                    yield chunk


def image(files: Sequence[str]) -> Iterator[bytes]:
    """The files as a tar stream (the instance's image)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|") as tar:
        for f in files:
            with contextlib.suppress(OSError):
                tar.add(f, recursive=False)
            if buf.tell() >= 1 << 20:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
    yield buf.getvalue()


class Bulk:
    """A TCP transfer from one namespace to another, across the emulated link."""

    def __init__(self, src_ns: str, dst_ns: str, dst_ip: str) -> None:
        self.src_ns, self.dst_ip = src_ns, dst_ip
        self.listener = netns.socket_in(dst_ns, socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((dst_ip, BULK_PORT))
        self.listener.listen(4)

    def send(self, chunks: Iterator[bytes]) -> tuple[int, float]:
        """(bytes received at the far end, seconds from connect to the last byte)."""
        got = [0]

        def drain() -> None:
            conn, _ = self.listener.accept()
            with conn:
                while data := conn.recv(1 << 16):
                    got[0] += len(data)

        rx = threading.Thread(target=drain, daemon=True)
        rx.start()
        t0 = time.monotonic()
        with netns.socket_in(self.src_ns, socket.AF_INET, socket.SOCK_STREAM) as s:
            s.connect((self.dst_ip, BULK_PORT))
            for chunk in chunks:
                s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
            rx.join(300)
        return got[0], time.monotonic() - t0

    def close(self) -> None:
        self.listener.close()


# --------------------------------------------------------------------------- #
# one trial
# --------------------------------------------------------------------------- #


@dataclass
class Trial:
    kind: str
    predeployed: bool
    load: float
    migration_s: float = 0.0
    bytes_moved: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    """Bytes by part: objects, application or image, memory, state."""
    downtime_ms: float = 0.0
    """What users see (vo, instance): the worst wait beyond the usual service time
    in the window (stream.excess_wait); platform: the agents' freeze-to-activate."""
    freeze_ms: float | None = None
    """No place serving: the source's stop to the target's first serving (0: overlap)."""
    stop_to_first_new_ms: float | None = None
    """The source's stop stamp to the new place's first answer (holds the forward hop)."""
    user: dict[str, Any] = field(default_factory=dict)
    """What the request stream saw (stream.analyse)."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rig:
    tb: Any
    work: Path
    plan: Plan
    ns: dict[str, str]
    ip: dict[str, str]
    api: Any = None
    """The run's orchestrator (demo.platform.Api), for the ``platform`` kind."""

    def objects(self) -> list[dict[str, Any]]:
        return [
            {"vo": k, "user": "ann", "sensor": f"1-{k + 1}", "preload": kb * 1024}
            for k, kb in enumerate(SIZES_KB)
        ]

    def host(self, node: str, hid: int, objects: list[dict[str, Any]], **kw: Any) -> Fn:
        cfg = {"host": hid, "objects": objects, "feed": self.feed()}
        return Fn(self.ns[node], HOST_FN, f"vo-{node}-{hid}", self.work, cfg, **kw)

    def feed(self) -> dict[str, Any]:
        return {"kind": "usbip", "server": self.ip["home"], "port": 3240}


def _wait(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    return cond()


def trial(rig: Rig, kind: str, predeployed: bool, load: float) -> Trial:
    if kind == "platform":
        return _platform(rig, load, predeployed)
    plan, ns, ip = rig.plan, rig.ns, rig.ip
    t = Trial(kind, predeployed, load)
    src = rig.host("pop1", 1, rig.objects())
    dst: Fn | None = rig.host("pop2", 2, []) if kind == "vo" else None
    sock = netns.socket_in(ns["home"], socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip["home"], 0))
    bulk = Bulk(ns["pop1"], ns["pop2"], ip["pop2"]) if kind == "instance" else None
    stream = Stream(sock, dict.fromkeys(range(OBJECTS), (ip["pop1"], VO_PORT)), plan.stream_hz)
    budget = 600.0
    try:
        # The objects' first readings have come in over USB/IP: the feed is live.
        start_bytes = sum(SIZES_KB) * 1024 // 10 * 10
        if not _wait(lambda: src.stats()["object_bytes"] > start_bytes, 30):
            raise RuntimeError("the sensors never fed the objects")
        mbit = plan.rate_mbit * load
        with cross_traffic((ns["pop1"], ip["pop1"]), (ns["pop2"], ip["pop2"]), mbit, budget):
            stream.start()
            time.sleep(plan.warm_s)
            t0 = time.monotonic()
            if kind == "vo":
                req: dict[str, Any] = {"op": "vo.push", "to": ip["pop2"], "app": not predeployed}
                if plan.linger_ms is not None:
                    req["linger_ms"] = plan.linger_ms
                rep = src.call({**req, "threshold": 2048}, timeout=budget)["report"]
                t.parts = {"objects": rep["object_bytes"], "application": rep.get("app_bytes", 0)}
                t.bytes_moved = rep["sent_bytes"]
                t.migration_s = rep["done"] - t0
                stopped, done = rep["stopped"], rep["done"]
                t.freeze_ms = round(max(0.0, rep["active"] - stopped) * 1e3, 3)
                # Every phase on the one clock (CLOCK_MONOTONIC), for the write-up.
                t.detail = {k: rep.get(k) for k in PHASES} | {
                    k: rep.get(k) for k in ("rounds", "handed_for", "hand_over_end", "users")
                }
            else:
                assert bulk is not None
                dst, stopped = _instance(rig, src, bulk, predeployed, t)
                done = time.monotonic()
                t.migration_s = done - t0
            time.sleep(plan.tail_s)
            seen = stream.stop()
        hi = max([done, *(m[0] for m in seen.moves)]) + 0.1
        t.user = analyse(seen, 1, 2, t0, hi)
        first_new = t.user["new_first_served"]
        t.stop_to_first_new_ms = (
            round(max(0.0, first_new - stopped) * 1e3, 3) if first_new else None
        )
        if t.freeze_ms is None:  # the instance: its copy serves only after the stop
            t.freeze_ms = t.stop_to_first_new_ms
        wait = t.user["excess_wait_ms"]["max_ms"]
        t.downtime_ms = -1.0 if wait is None else wait
        t.detail["first_new_served"] = first_new
        assert dst is not None
        t.detail["target_serving"] = len(dst.stats()["serving"])
    finally:
        with contextlib.suppress(Exception):
            stream.stop(0)
        sock.close()
        if bulk is not None:
            bulk.close()
        for f in (src, dst):
            if f is not None:
                f.stop()
    return t


def _instance(rig: Rig, src: Fn, bulk: Bulk, predeployed: bool, t: Trial) -> tuple[Fn, float]:
    """The whole instance to pop2; returns the new copy and the source's stop stamp."""
    parts: dict[str, int] = {}
    secs: dict[str, float] = {}
    if not predeployed:
        files = src.call({"op": "vo.image"})["files"]
        parts["image"], secs["image"] = bulk.send(image(files))
        t.detail["image_files"] = len(files)
    c0 = time.monotonic()
    dst = rig.host("pop2", 2, [], standby=True)
    secs["standby_start"] = time.monotonic() - c0
    pid = int(src.call({"op": "status"})["pid"])
    parts["memory"], secs["memory"] = bulk.send(private_memory(pid))
    frozen = src.call({"op": "freeze"})
    stopped = float(src.stats()["stamps"]["stopped"])
    state = json.dumps(frozen["state"]).encode()
    parts["state"], secs["state"] = bulk.send(iter([state]))
    dst.call({"op": "import", "state": frozen["state"]})
    dst.call({"op": "activate"})
    src.call({"op": "vo.moved", "to": rig.ip["pop2"], "port": VO_PORT})
    t.parts, t.bytes_moved = parts, sum(parts.values())
    t.detail["seconds"] = {k: round(v, 4) for k, v in secs.items()}
    t.detail["stopped"] = stopped
    return dst, stopped


COUNTER_TABLE = "nfexpmig"


def _count_sent(ns: str, port: int) -> None:
    """An nftables counter in `ns` of the TCP bytes sent from `port` (the source agent's
    migration listener: its socket lives in that namespace), from zero."""
    table, chain = {"family": "ip", "name": COUNTER_TABLE}, "out"
    sport = {"payload": {"protocol": "tcp", "field": "sport"}}
    nft.apply(nft.document([
        *nft.fresh_table("ip", COUNTER_TABLE),
        {"add": {"chain": {**table, "table": COUNTER_TABLE, "name": chain, "type": "filter",
                           "hook": "output", "prio": 0, "policy": "accept"}}},
        {"add": {"rule": {"family": "ip", "table": COUNTER_TABLE, "chain": chain, "expr": [
            {"match": {"op": "==", "left": sport, "right": port}},
            {"counter": {"packets": 0, "bytes": 0}},
        ]}}},
    ]), ns)  # fmt: skip


def _counted(ns: str) -> int:
    out = netns.run_in(ns, ["nft", "-j", "list", "table", "ip", COUNTER_TABLE]).stdout
    for item in json.loads(out)["nftables"]:
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                return int(expr["counter"]["bytes"])
    raise RuntimeError(f"no counter in table {COUNTER_TABLE} of {ns}")


PLATFORM_BUDGET = {"storage_mb": 50.0, "standbys": 1}
"""pop2's pre-deploy budget in the platform kind's pre-deployed trials."""


def _pool(api: Any, predeployed: bool) -> dict[str, Any]:
    """pop2's budget for the trial (the pre-deploy policy's, or none) once its agent
    reports the pool it plans: a warm standby of the VO host ready, or none. The
    policy picks the VO host from the demand (the trial's instance, created at
    pop1 before this). What pop2 planned and reported."""
    body = PLATFORM_BUDGET if predeployed else {"storage_mb": 0.0, "standbys": 0}
    api("PUT", "/nodes/pop2/predeploy", body)

    def settled() -> dict[str, Any] | None:
        plan: dict[str, Any] = api("GET", "/predeploy").get("pop2", {})
        ready = sum((plan.get("standbys_ready") or {}).values())
        if predeployed:
            want = sum((plan.get("standbys_fit") or plan.get("standbys") or {}).values())
            return plan if want and ready >= want else None
        if plan:
            return None
        # No budget: wait until its agent reports its standbys stopped (a take
        # before that would be warm).
        res = api("GET", "/nodes/pop2").get("resources") or {}
        ready = sum((res.get("standbys") or {}).values())
        return {"standbys": {}, "standbys_ready": {}} if not ready else None

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        got = settled()
        if got is not None:
            return got
        time.sleep(0.2)
    raise RuntimeError(f"pop2's pool did not settle ({'with' if predeployed else 'no'} budget)")


def _platform(rig: Rig, load: float, predeployed: bool = True) -> Trial:
    """The VO host moved by the orchestrator and the agents, under background load,
    into pop2 with the pre-deploy policy's warm standby there or with none."""
    plan, ns, ip, api = rig.plan, rig.ns, rig.ip, rig.api
    t = Trial("platform", predeployed, load)
    objects = [{k: v for k, v in o.items() if k != "sensor"} for o in rig.objects()]
    body = {"descriptor": "vo-host", "node": "pop1", "config": {"host": 1, "objects": objects}}
    iid = str(api("POST", "/instances", body)["id"])
    budget = 600.0
    try:
        api.wait_state(iid, "running", timeout=120.0)
        pool = _pool(api, predeployed)
        nodes = {n["name"]: n for n in api("GET", "/nodes")}
        endpoint = str(nodes["pop1"]["endpoint"])
        _count_sent(ns["pop1"], int(endpoint.rpartition(":")[2]))
        mbit = plan.rate_mbit * load
        with cross_traffic((ns["pop1"], ip["pop1"]), (ns["pop2"], ip["pop2"]), mbit, budget):
            time.sleep(plan.warm_s)
            mid = int(api("POST", f"/instances/{iid}/migrate", {"node": "pop2"})["id"])
            m = api.wait_migration(iid, mid, timeout=budget)
        t.migration_s = float(m["finished_at"]) - float(m["started_at"])
        t.downtime_ms = float(m["downtime_ms"])
        t.bytes_moved = _counted(ns["pop1"])
        t.parts = {"channel": t.bytes_moved}
        took = "warm standby" in str(m.get("reason") or "")
        if took != predeployed:  # what was compared is not what was meant to be
            raise RuntimeError(
                f"platform trial ({'pre-deployed' if predeployed else 'cold'}): the copy "
                f"{'took' if took else 'took no'} warm standby: {m.get('reason')!r}"
            )
        t.detail = {"endpoint": endpoint, "final_state_bytes": m["state_bytes"],
                    "node_after": api("GET", f"/instances/{iid}")["node"],
                    "took_standby": took, "reason": m.get("reason") or "",
                    "pop2_pool": {k: pool.get(k) for k in ("standbys", "standbys_ready")},
                    }  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            nft.apply(nft.document(nft.remove_table("ip", COUNTER_TABLE)), ns["pop1"])
        with contextlib.suppress(Exception):
            api("DELETE", f"/instances/{iid}")
            api.wait_state(iid, "gone", timeout=60.0)
    return t


# --------------------------------------------------------------------------- #
# the run
# --------------------------------------------------------------------------- #


def _median(xs: Sequence[float]) -> float | None:
    return round(statistics.median(xs), 6) if xs else None


def _baseline_wait(t: Trial) -> float | None:
    w: float | None = t.user.get("excess_wait_ms", {}).get("baseline_max_ms")
    return w


def _unanswered(t: Trial) -> int:
    n: int = t.user.get("excess_wait_ms", {}).get("unanswered", {}).get("window", 0)
    return n


def summary(trials: Sequence[Trial]) -> dict[str, Any]:
    """Medians per (kind, pre-deployed), and the paper's relations computed on them."""
    groups: dict[str, dict[str, Any]] = {}
    for kind in ("vo", "instance", "platform"):
        for pre in (True, False):
            ts = [x for x in trials if x.kind == kind and x.predeployed == pre]
            if not ts:
                continue
            groups[f"{kind}-{'pre' if pre else 'transfer'}"] = {
                "trials": len(ts),
                "migration_s": _median([x.migration_s for x in ts]),
                "bytes": _median([float(x.bytes_moved) for x in ts]),
                "downtime_ms": _median([x.downtime_ms for x in ts]),
                "downtime_ms_max": max(x.downtime_ms for x in ts),
                # The platform kind has no request stream (its downtime is the agents').
                "user_max_gap_ms": _median([x.user["max_gap_ms"] for x in ts if x.user]),
                "baseline_wait_ms": _median(
                    [w for x in ts if x.user and (w := _baseline_wait(x)) is not None]
                ),
                "freeze_ms": _median([x.freeze_ms for x in ts if x.freeze_ms is not None]),
                "stop_to_first_new_ms": _median(
                    [x.stop_to_first_new_ms for x in ts if x.stop_to_first_new_ms is not None]
                ),
                "baseline_max_gap_ms": _median(
                    [x.user["baseline_max_gap_ms"] for x in ts if x.user]
                ),
                "failed_requests": (
                    sum(x.user["failed"] for x in ts if x.user) if any(x.user for x in ts) else None
                ),
                # Of them, sent during the migration's window (the rest: the path's).
                "failed_in_window": (
                    sum(_unanswered(x) for x in ts if x.user) if any(x.user for x in ts) else None
                ),
            }

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = groups.get(a, {}).get(key), groups.get(b, {}).get(key)
        return round(x / y, 2) if x and y else None

    return {
        "groups": groups,
        "relations": {
            "instance_over_vo_time_pre": ratio("instance-pre", "vo-pre", "migration_s"),
            "instance_over_vo_time_transfer": ratio(
                "instance-transfer", "vo-transfer", "migration_s"
            ),
            "instance_over_vo_bytes_pre": ratio("instance-pre", "vo-pre", "bytes"),
            "predeploy_speedup_vo": ratio("vo-transfer", "vo-pre", "migration_s"),
            "predeploy_speedup_instance": ratio("instance-transfer", "instance-pre", "migration_s"),
            "platform_over_vo_time_pre": ratio("platform-pre", "vo-pre", "migration_s"),
            # The platform's: a cold copy at pop2 over the pre-deploy policy's standby.
            "predeploy_speedup_platform": ratio(
                "platform-transfer", "platform-pre", "migration_s"
            ),
            "predeploy_downtime_platform": ratio(
                "platform-transfer", "platform-pre", "downtime_ms"
            ),
        },
    }  # fmt: skip


def run(
    out: Path, *, plan: Plan = QUICK, progress: Progress | None = None, plots: bool = True
) -> dict[str, Any]:
    """Bring up the testbed, run every trial, write migration.json/.md (+ PNGs)."""
    from netfate.testbed.builder import Testbed

    say = progress or (lambda _m: None)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    work.mkdir(exist_ok=True)
    topo = work / "topology.yaml"
    topo.write_text(topology_yaml(plan))
    say("bringing up the testbed (home -- pop1 -- pop2, the shaped link between the PoPs)")
    # The control plane only for the platform kind (its agents' channel crosses the link).
    tb = Testbed.up(topo, control="platform" in plan.kinds, prometheus=False)
    trials: list[Trial] = []
    hrh: Fn | None = None
    try:
        ns = {n: tb.netns_of(n) for n in ("pop1", "pop2", "home")}
        ip = {n: str(tb.state.nodes[n]["transit_ip"]) for n in ns}
        sensors = [
            {"kind": "serial", "busid": f"1-{k + 1}", "period": plan.sensor_period_s}
            for k in range(OBJECTS)
        ]
        hrh_cfg = {"devices": sensors, "allow": {"*": ["10.254.0.0/24"]}}
        hrh = Fn(ns["home"], HRH_FN, "hrh", work, hrh_cfg)
        api = None
        if tb.api_url:
            from netfate.demo.platform import Api

            api = Api(tb.api_url, tb.api_token)
        rig = Rig(tb, work, plan, ns, ip, api)
        for rep in range(plan.repeat):
            for load in plan.loads:
                for kind in plan.kinds:
                    for pre in plan.predeployed:
                        x = trial(rig, kind, pre, load)
                        trials.append(x)
                        say(
                            f"[{rep + 1}/{plan.repeat}] {kind:8} {'pre' if pre else 'transfer':8} "
                            f"load {load:4.0%}: {x.migration_s * 1e3:9.1f} ms, "
                            f"{x.bytes_moved / 1e6:8.3f} MB, downtime {x.downtime_ms:8.3f} ms, "
                            f"failed {x.user.get('failed', '-')}"
                        )
    finally:
        if hrh is not None:
            hrh.stop()
        problems = tb.down()
        if problems:
            say("teardown: " + "; ".join(problems))
    doc = {
        "experiment": "migration",
        "testbed_prefix": tb.prefix,
        "emulator": f"{EMULATORS.get(tb.emulator, tb.emulator)} + TBF rate",
        "migration_channel": "platform kind moves over the agents' channel between pop1's "
        "and pop2's namespaces, across the emulated link (agent/channel.py)",
        "plan": asdict(plan),
        "objects_kb": SIZES_KB,
        "source": "HRH CDC-ACM temperature sensors over USB/IP (netfate.vnf.usbip_host)",
        "clock": "CLOCK_MONOTONIC (one machine: hosts, stream and driver share it)",
        "paper": PAPER,
        "trials": [asdict(x) for x in trials],
        "summary": summary(trials),
    }
    (out / "migration.json").write_text(json.dumps(doc, indent=1))
    (out / "migration.md").write_text(markdown(doc))
    if plots:
        from netfate.services.catalog.plots import plot_all

        for p in plot_all(doc, out):
            say(f"wrote {p}")
    return doc


def markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    loads = ", ".join(f"{x:.0%}" for x in doc["plan"]["loads"])
    lines = [
        "# Migration of 10 Virtual Objects vs the whole instance (cf. the paper's Figure 4)",
        "",
        f"Link: {doc['plan']['rate_mbit']:g} Mbit/s, base RTT {2 * doc['plan']['delay_ms']:g} ms "
        f"({doc['emulator']}); background load {loads}; "
        f"request stream {doc['plan']['stream_hz']:g} Hz. Medians over loads and repetitions.",
        "",
        "| kind | image | trials | migration ms | MB moved | downtime ms (max) | "
        "no-migration wait ms | freeze ms | stop to first new ms | "
        "user max gap ms (baseline) | failed requests (in the window) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    for name, g in s["groups"].items():
        kind, pre = name.split("-")
        image = "pre-deployed" if pre == "pre" else "transferred"
        if kind == "platform":  # nothing is sent: the policy's standby, or none
            image = "policy's warm standby" if pre == "pre" else "cold start (no budget)"
        lines.append(
            f"| {kind} | {image} | {g['trials']} | "
            f"{g['migration_s'] * 1e3:.1f} | {g['bytes'] / 1e6:.3f} | "
            f"{g['downtime_ms']:.3f} ({g['downtime_ms_max']:.3f}) | "
            f"{ms(g.get('baseline_wait_ms'))} | {ms(g.get('freeze_ms'))} | "
            f"{ms(g.get('stop_to_first_new_ms'))} | "
            + (
                f"{g['user_max_gap_ms']:.2f} ({g['baseline_max_gap_ms']:.2f}) | "
                if g["user_max_gap_ms"] is not None
                else "- (agents' stamps) | "
            )
            + f"{'-' if g['failed_requests'] is None else g['failed_requests']} "
            f"({'-' if g.get('failed_in_window') is None else g['failed_in_window']}) |"
        )
    r, p = s["relations"], doc["paper"]
    lines += [
        "",
        "| relation | ours | the paper (text) |",
        "|---|---|---|",
        f"| instance / VO migration time (pre-deployed) | {r['instance_over_vo_time_pre']} | "
        f"{p['vo_vs_vm']} |",
        f"| instance / VO migration time (image transferred) | "
        f"{r['instance_over_vo_time_transfer']} | (same) |",
        f"| instance / VO bytes (pre-deployed) | {r['instance_over_vo_bytes_pre']} | - |",
        f"| pre-deployment speed-up, VO | {r['predeploy_speedup_vo']} | "
        f"{p['predeploy_speedup']['vo']:g}x |",
        f"| pre-deployment speed-up, instance | {r['predeploy_speedup_instance']} | "
        f"{p['predeploy_speedup']['vm']:g}x (VM) |",
        "| downtime, instance | see table | VM 500-1000 ms |",
        "| downtime, VO | see table | PaaS below 1 ms |",
        f"| platform (agents' state-only move) / VO migration time, pre-deployed | "
        f"{r.get('platform_over_vo_time_pre')} | - |",
        f"| pre-deployment speed-up, platform (cold copy / the policy's warm standby), "
        f"migration time | {r.get('predeploy_speedup_platform')} | "
        f"{p['predeploy_speedup']['vm']:g}x (VM), {p['predeploy_speedup']['vo']:g}x (VO) |",
        f"| the same, the agents' downtime | {r.get('predeploy_downtime_platform')} | - |",
        "",
        f"The {doc.get('migration_channel', '')}.",
        "",
        "Downtime (vo, instance): the worst wait of a request sent during the migration "
        "beyond the usual service time of the place that answered it; next to it the same "
        "figure over an equally long window before, without a migration (the machine's "
        "noise). Freeze: no place serving the objects (hosts' stamps). Stop to first new: "
        "the source's stop to the new place's first answer (includes the forward hop). "
        "Platform: the agents' freeze-to-activate stamps.",
        "",
    ]
    return "\n".join(lines)


def command(
    out: Annotated[Path, typer.Option(help="Directory for migration.md/.json and the PNGs")] = Path(
        "experiment-migration"
    ),
    full: Annotated[
        bool, typer.Option("--full", help="Loads 5,10,20,30,40% and 2 repetitions")
    ] = False,
    loads: Annotated[
        str | None, typer.Option(help="Comma-separated background loads, e.g. 0.05,0.4")
    ] = None,
    repeat: Annotated[int | None, typer.Option(help="Repetitions per setting")] = None,
    plots: Annotated[bool, typer.Option(help="Write PNG plots")] = True,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated kinds among vo,instance,platform")
    ] = None,
    linger_ms: Annotated[
        float | None,
        typer.Option(help="vo: bound on the hand-over; 0 stops the source at the take-over"),
    ] = None,
) -> None:
    """The INPUT paper's Figure 4: VO (state-only) vs whole-instance migration, with and
    without pre-deployed images, under background load, base RTT 5 ms."""
    plan = Plan() if full else QUICK
    if loads:
        plan = replace(plan, loads=tuple(float(x) for x in loads.split(",")))
    if repeat is not None:
        plan = replace(plan, repeat=repeat)
    if kinds:
        chosen = tuple(k.strip() for k in kinds.split(","))
        bad = [k for k in chosen if k not in Plan().kinds]
        if bad or not chosen:
            raise typer.BadParameter(f"unknown kind(s) {bad}; choose among {Plan().kinds}")
        plan = replace(plan, kinds=chosen)
    if linger_ms is not None:
        plan = replace(plan, linger_ms=linger_ms)

    def say(msg: str) -> None:
        typer.echo(f"[{time.strftime('%H:%M:%S')}] {msg}")

    run(out, plan=plan, progress=say, plots=plots)
    typer.echo((out / "migration.md").read_text())
