"""Helpers of the testbed fault tests: kill -9 and restart the run's processes, wait
for states, and count an instance's copies on every node from the system itself
(namespaces, processes, OVS ports, the function's own word), not from the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from netfate.agent.instances import control_call
from netfate.demo import platform
from netfate.host import links, netns
from netfate.host import proc as procs
from netfate.host.ovs import Vsctl
from netfate.testbed.builder import Testbed
from netfate.vnf.zygote import process_name

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@contextlib.contextmanager
def up_testbed(example: str, **up: Any) -> Iterator[Testbed]:
    """A testbed of examples/<example>.yaml for a test module; on exit it is taken
    down and nothing of it may remain."""
    bed = Testbed.up(EXAMPLES / f"{example}.yaml", **up)
    try:
        yield bed
    finally:
        problems = bed.down()
        assert not problems, problems
        assert netns.list_with_prefix(bed.prefix + "-") == []


def until(what: str, cond: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Wait for a state (not a timing assertion): fail with `what` if it never comes."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def role_ref(tb: Testbed, role: str) -> procs.ProcRef:
    live = [r for r in tb.state.process_refs() if r.role == role and procs.alive(r)]
    assert len(live) == 1, (role, live)
    return live[0]


def kill9(tb: Testbed, role: str) -> list[str]:
    """kill -9 one of the testbed's processes; returns its argv to start it again."""
    ref = role_ref(tb, role)
    argv = procs.cmdline(ref)
    os.kill(ref.pid, signal.SIGKILL)
    until(f"{role} to die", lambda: not procs.alive(ref))
    return argv


def restart(tb: Testbed, role: str, argv: list[str]) -> None:
    log = tb.state.dir / "logs" / f"{role.replace(':', '-')}.restart.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tb.state.add_process(procs.ref(p.pid, role=role))  # so tb.down() stops it


def node_status(api: platform.Api, node: str) -> str:
    return str(api("GET", f"/nodes/{node}")["status"])


def instance_namespaces(tb: Testbed, iid: str) -> list[str]:
    return [n for n in netns.list_with_prefix(tb.prefix + "-") if n.endswith(iid)]


def health(api: platform.Api) -> bool:
    try:
        api("GET", "/health")
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- copies of an instance


@dataclass(frozen=True)
class Copy:
    """What of one instance exists on one node."""

    namespace: bool
    pids: tuple[int, ...]
    """Processes of the instance whose network namespace is this node's copy's."""
    active: bool | None
    """The function's own answer to `status` (None: no answer)."""
    port_up: bool | None
    """The switch-side port of the copy (None: no such port on the node's bridge)."""

    @property
    def serving(self) -> bool:
        return self.namespace and bool(self.pids) and self.active is True and bool(self.port_up)

    @property
    def absent(self) -> bool:
        return not self.namespace and not self.pids and self.port_up is None


def _instance_pids(iid: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        spawned = b"--instance" in cmdline and iid.encode() in cmdline
        if comm == process_name(iid) or spawned:
            out.append(int(entry))
    return out


def _netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def _port_up(ns: str, ifname: str) -> bool:
    with links.rtnl(ns) as ipr:
        try:
            idx = ipr.link_lookup(ifname=ifname)
            return bool(idx) and bool(ipr.get_links(idx[0])[0]["flags"] & 1)  # IFF_UP
        except NetlinkError:  # removed while we looked
            return False


def copies(tb: Testbed, iid: str) -> dict[str, Copy]:
    """Every node's copy of `iid`, read from the kernel, OVS and the process. A
    process of the instance in no node's namespace is reported under "orphan"."""
    assert tb.ovs_db
    vs = Vsctl(tb.ovs_db)
    pids = _instance_pids(iid)
    placed: set[int] = set()
    out: dict[str, Copy] = {}
    for node in tb.state.nodes:
        ns = f"{tb.prefix}-{node}-{iid}"
        has_ns = netns.exists(ns)
        mine: tuple[int, ...] = ()
        if has_ns:
            ino = os.stat(netns.NETNS_DIR / ns).st_ino
            mine = tuple(p for p in pids if _netns_inode(p) == ino)
            placed.update(mine)
        ports = [p for p in vs.list_ports(tb.bridge_of(node)) if p.peer == f"instance:{iid}"]
        port_up = _port_up(tb.netns_of("sw"), ports[0].name) if ports else None
        active = None
        sock = tb.state.dir / "agents" / node / f"{iid}.sock"
        if mine and sock.exists():
            try:
                resp = asyncio.run(control_call(str(sock), {"op": "status"}, timeout=2.0))
                active = bool(resp["active"])
            except Exception:
                active = None
        out[node] = Copy(has_ns, mine, active, port_up)
    orphans = tuple(p for p in pids if p not in placed)
    if orphans:
        out["orphan"] = Copy(False, orphans, None, None)
    return out


def serving_at(tb: Testbed, iid: str) -> str | None:
    """The one node with a serving copy while every other node has none at all;
    None otherwise (no copy, two copies, or leftovers)."""
    found = copies(tb, iid)
    serving = [n for n, c in found.items() if c.serving]
    if len(serving) != 1:
        return None
    if not all(c.absent for n, c in found.items() if n != serving[0]):
        return None
    return serving[0]


def fault_dir(tb: Testbed, node: str) -> Path:
    """Where the agent of `node` looks for armed fault points (netfate.faults)."""
    return tb.state.dir / "agents" / node / "faults"
