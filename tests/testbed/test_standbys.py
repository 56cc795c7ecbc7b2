"""Warm standbys on a real testbed: orchestrator, agents, Open vSwitch, namespaces.

The operator gives cpe1 a pre-deploy budget; its agent starts a warm standby of
the function asked for there (a process idle in a namespace of its own, its port
on the bridge down). A create of that function at cpe1 is served by that very
process (same pid, same namespace), answers traffic from laptop1, and its record
says it came from a standby; the pool is refilled. Destroying the instance and
taking the budget away leave no namespace, port or process of either behind.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from netfate.host import netns

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(fn: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Bed:
    def __init__(self, tb: Any) -> None:
        self.tb = tb
        self.c = httpx.Client(
            base_url=f"{tb.api_url}/api/v1",
            headers={"authorization": f"Bearer {tb.api_token}"},
            timeout=30,
        )

    def api(self, method: str, path: str, **kw: Any) -> Any:
        r = self.c.request(method, path, **kw)
        assert r.status_code < 400, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def state(self, iid: str, states: tuple[str, ...]) -> dict[str, Any]:
        return wait_for(
            lambda: (d := self.api("GET", f"/instances/{iid}"))["state"] in states and d,
            f"{iid} in {states}",
        )

    def standby_namespaces(self) -> list[str]:
        mine = f"{self.tb.prefix}-cpe1-sb-"
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(mine))

    def instance_ports(self) -> list[str]:
        """cpe1's bridge ports that lead to an instance or a standby (their peers)."""
        from netfate.host.ovs import Vsctl

        assert self.tb.ovs_db is not None
        ports = Vsctl(self.tb.ovs_db).list_ports(self.tb.bridge_of("cpe1"))
        return [str(p.peer) for p in ports if str(p.peer).startswith("instance:")]


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    from netfate.testbed.builder import Testbed

    tb = Testbed.up(REPO / "examples" / "demo.yaml", prefix="nft" + secrets.token_hex(2)[:3],
                    control=True)  # fmt: skip
    b = Bed(tb)
    try:
        yield b
    finally:
        b.c.close()
        tb.down()
        left = [n for n in os.listdir("/run/netns") if n.startswith(f"{tb.prefix}-")]
        assert left == [], f"namespaces left behind: {left}"


def pids_in(ns: str) -> set[int]:
    """Processes whose network namespace is `ns`."""
    ino = os.stat(f"/run/netns/{ns}").st_ino
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}/ns/net").st_ino == ino:
                    out.add(int(d))
            except OSError:
                continue
    return out


def cgroup_names() -> set[str]:
    """Groups under netfate/ in every hierarchy mounted here (v1 or v2)."""
    root = Path("/sys/fs/cgroup")
    return {d.name for d in root.glob("**/netfate/*") if d.is_dir()}


def cgroups_here() -> bool:
    """Whether this machine has a cgroup hierarchy mounted (v2, or v1's cpu): a bare
    chroot's fresh /sys has none (CI's fresh root), and there the agent runs its
    instances without limits, as it says (host/cgroups.py: best effort)."""
    root = Path("/sys/fs/cgroup")
    return (root / "cgroup.controllers").exists() or (root / "cpu").is_dir()


def standby_cgroups(bed: Bed) -> set[str]:
    return {n for n in cgroup_names() if n.startswith(f"{bed.tb.prefix}-cpe1-sb-")}


def ask_counter(bed: Bed, ip: str) -> dict[str, Any]:
    """One datagram from laptop1 to the counter at `ip`, its answer."""
    s = netns.socket_in(bed.tb.netns_of("laptop1"), socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(0.5)
        for _ in range(40):  # the path is learnt in the first few hundred ms
            s.sendto(b"hello", (ip, 7777))
            try:
                answer: dict[str, Any] = json.loads(s.recv(2048))
                return answer
            except TimeoutError:
                continue
        raise AssertionError(f"no answer from {ip}:7777")
    finally:
        s.close()


def test_a_create_is_served_by_the_warm_standby_and_nothing_is_left(bed: Bed) -> None:
    # Demand: one counter at cpe1, created and destroyed cold.
    seed = bed.api("POST", "/instances", json={"descriptor": "counter", "node": "cpe1"})
    assert not any(
        "warm" in t["reason"] for t in bed.state(seed["id"], ("running",))["transitions"]
    )
    bed.api("DELETE", f"/instances/{seed['id']}")
    bed.state(seed["id"], ("gone",))
    assert bed.standby_namespaces() == []

    plan = bed.api("PUT", "/nodes/cpe1/predeploy", json={"storage_mb": 1.0, "standbys": 1})
    assert plan["standbys"] == {"counter": 1}, plan
    wait_for(
        lambda: bed.api("GET", "/predeploy")["cpe1"]["standbys_ready"] == {"counter": 1},
        "cpe1's agent reports its standby ready",
    )
    (sb_ns,) = bed.standby_namespaces()
    (sb_pid,) = pids_in(sb_ns)  # the idle process, in its own namespace
    (sb_port,) = bed.instance_ports()  # its port, wired in advance
    assert sb_port.startswith("instance:sb-")

    inst = bed.api("POST", "/instances", json={"descriptor": "counter", "node": "cpe1"})
    d = bed.state(inst["id"], ("running", "failed"))
    assert d["state"] == "running", d
    assert "from a warm standby" in d["transitions"][-1]["reason"]
    assert d["pid"] == sb_pid, "the standby's process serves the instance"
    ns = f"{bed.tb.prefix}-cpe1-{inst['id']}"
    assert pids_in(ns) == {sb_pid}, "in the standby's namespace, under the instance's name"
    assert sb_ns not in bed.standby_namespaces()
    assert f"instance:{inst['id']}" in bed.instance_ports(), "the port is the instance's now"
    own = Path(f"/proc/{sb_pid}/cgroup").read_text() + "\n"
    if cgroups_here():
        # Its limits' group is the standby's, renamed (the process was not moved).
        assert f"/netfate/{ns}\n" in own
    else:
        assert "/netfate/" not in own, "no hierarchy here: no group either"
    assert not standby_cgroups(bed), "no group under the standby's name"
    answer = ask_counter(bed, d["ip"].split("/")[0])
    assert answer["instance"] == inst["id"] and answer["count"] == 1

    # The pool is refilled: a new standby, in another namespace.
    wait_for(
        lambda: (
            bed.api("GET", "/predeploy")["cpe1"]["standbys_ready"] == {"counter": 1}
            and len(bed.standby_namespaces()) == 1
        ),
        "the refill",
    )
    refill = bed.standby_namespaces()
    assert refill != [sb_ns]

    bed.api("DELETE", f"/instances/{inst['id']}")
    bed.state(inst["id"], ("gone",))
    assert not os.path.exists(f"/proc/{sb_pid}/ns"), "the instance's process is gone"
    assert bed.standby_namespaces() == refill
    assert not netns.exists(ns), "the taken namespace went with the instance"

    (refill_pid,) = pids_in(refill[0])
    # The desired state with no instance: the agent keeps its standby, no instance port.
    assert bed.instance_ports() == [f"instance:{refill[0].split('-cpe1-')[1]}"]
    bed.api("PUT", "/nodes/cpe1/predeploy", json={"storage_mb": 0, "standbys": 0})
    wait_for(lambda: bed.standby_namespaces() == [], "the standbys stopped")
    wait_for(lambda: not os.path.exists(f"/proc/{refill_pid}/ns"), "the standby's process gone")
    wait_for(lambda: bed.instance_ports() == [], "no port of a standby or instance on the bridge")
    assert not standby_cgroups(bed) and not any(
        n.startswith(f"{bed.tb.prefix}-cpe1-") for n in cgroup_names()
    ), "no group of a standby or an instance left"
