"""What an agent tells the orchestrator: its instances, migrations, ports, figures.

The report (`POST /agents/NODE/report`, also the heartbeat) is built from cached
figures, so building it costs nothing: reading the bridge's ports spawns ovs-vsctl
and resource figures open netlink sockets, which must not delay the report that
tells the orchestrator an instance runs. They are gathered off the report path:

    gather, every heartbeat   ports (read again when instances changed here, or
                              every 10 s), resources, each function's `status`
    watch                     `ovsdb-client monitor` of the bridge's ports: a port
                              plugged in (a host moved to another CPE) is read and
                              reported at once, not at the next periodic read
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from netfate.agent.migration import Record
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.supervisor import Supervisor
from netfate.host import links
from netfate.model.lifecycle import CopyStatus, InstanceRole

log = logging.getLogger("netfate.agent")


FIGURES_THREADS = 2
_FIGURES = ThreadPoolExecutor(max_workers=FIGURES_THREADS, thread_name_prefix="figures")
"""The threads that gather figures (each a spawn of ovs-vsctl), shared by the nodes of
a process: on asyncio's default pool (6 threads on 2 cores), a 50-node group's
heartbeat reads kept every thread busy under load and its nodes' instance starts
(each step a thread) queued behind them (issue 15: the 300-node testbed's pinned
creates stayed starting for 120 s)."""


class Figures:
    """The node's ports and resource figures, and each function's own, as last read."""

    PORTS_EVERY_S = 10.0

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.ctx = sup.ctx
        self.changed = sup.changed
        self.ports_pending = False  # the last read saw a port without an OpenFlow number
        self._ports_cache: tuple[tuple[str, ...], float, list[dict[str, Any]]] | None = None
        self._unnumbered: list[tuple[str, str | None]] = []  # those ports: (name, peer)
        self._last_cpu: dict[str, tuple[float, float]] = {}
        self._last_link: dict[str, tuple[float, int, int]] = {}  # peer: (t, rx, tx)
        self.stats: tuple[list[dict[str, Any]], dict[str, Any]] = ([], {})
        """(ports, resources), as last gathered."""
        self.fn_stats: dict[str, dict[str, Any]] = {}
        self._ports_dirty = False
        self._ports_task: asyncio.Task[None] | None = None
        # Made where the agent runs: in a group (group.py) it names the node in logs.
        self._context = contextvars.copy_context()

    async def loop(self, every_s: float) -> None:
        """Gather the figures every `every_s` seconds, forever."""
        while True:
            with contextlib.suppress(Exception):
                self.stats = await self._gather()
            with contextlib.suppress(Exception):
                await self.drop_stale_ports()
            with contextlib.suppress(Exception):
                self.fn_stats = await self.function_stats()
            await asyncio.sleep(every_s)

    def gather(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        ports = self.ports()
        return ports, self.resources(ports)

    async def _gather(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """`gather` on the figures' own threads (_FIGURES), in this task's context."""
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(_FIGURES, ctx.run, self.gather)

    async def drop_stale_ports(self) -> None:
        """An instance port on the bridge that no instance here owns and whose
        interface is gone: the record of a removal that Open vSwitch missed (it was
        down longer than a removal waits). Without this it stays forever, unnumbered."""
        sup = self.sup
        for name, peer in self._unnumbered:
            kind, _, iid = (peer or "").partition(":")
            if kind != "instance" or iid in sup.instances or iid in sup.tasks:
                continue
            if await asyncio.to_thread(links.link_exists, self.ctx.ovs_netns, name):
                continue
            if iid in sup.instances or iid in sup.tasks:  # started meanwhile
                continue
            await asyncio.to_thread(self.ctx.vsctl.del_port, name, self.ctx.bridge)
            log.info("removed port %s of instance %s, gone from this node", name, iid)
            self._ports_cache = None

    async def watch_ports(self) -> None:
        """Report the bridge's ports as soon as they change (a host plugged into
        another CPE, say): the controller compiles against what agents report, and
        the periodic read alone would leave a moved host unreachable for seconds."""
        bridge = self.ctx.bridge
        await watch_bridges(self.ctx.vsctl.db, lambda b: self.port_event() if b == bridge else None)

    def port_event(self) -> None:
        """The bridge's ports changed: read them until vswitchd numbered the new ones,
        and report. One reader at a time; an event during a read makes it read again."""
        self._ports_dirty = True
        if self._ports_task is None or self._ports_task.done():
            self._ports_task = asyncio.get_running_loop().create_task(
                self._read_changed_ports(), context=self._context
            )

    async def _read_changed_ports(self) -> None:
        while self._ports_dirty:
            self._ports_dirty = False
            for _ in range(40):  # bounded: vswitchd numbers a new port in ms
                self._ports_cache = None
                with contextlib.suppress(Exception):
                    self.stats = await self._gather()
                self.changed.set()
                if not self.ports_pending:
                    break
                await asyncio.sleep(0.05)

    async def refresh_ports(self, relabelled: tuple[str, str] | None = None) -> None:
        """Read the ports again now and report (a warm standby's port relabelled for
        the instance that took it: the bridge's port list did not change, so the
        watch above does not see it, and the controller must not wait a heartbeat
        to learn where the instance is). `relabelled`: (port, label) the agent has
        just written: patched into the ports last read, reported at once without
        reading them again (two `ovs-vsctl` spawns); the next read confirms it."""
        cache = self._ports_cache
        if relabelled is not None and cache is not None:
            name, peer = relabelled
            ports = [{**p, "peer": peer} if p["name"] == name else p for p in cache[2]]
            if any(p["name"] == name for p in ports):
                # read again at the next look (its key changed with the instances)
                self._ports_cache = ((), cache[1], ports)
                self.stats = await asyncio.to_thread(lambda: (ports, self.resources(ports)))
                self.changed.set()
                return
        self._ports_cache = None
        with contextlib.suppress(Exception):
            self.stats = await self._gather()
        self.changed.set()

    async def function_stats(self) -> dict[str, dict[str, Any]]:
        """Each running function's own figures (its `status`), for the orchestrator."""
        out: dict[str, dict[str, Any]] = {}
        for iid, inst in list(self.sup.instances.items()):
            if inst.role != InstanceRole.ACTIVE or not inst.alive():
                continue
            with contextlib.suppress(Exception):
                resp = await inst.call({"op": "status"}, timeout=0.5)
                if isinstance(resp.get("stats"), dict):
                    out[iid] = resp["stats"]
        return out

    def ports(self) -> list[dict[str, Any]]:
        """The bridge's ports, read again when instances changed here or every 10 s:
        each read spawns ovs-vsctl, and a 100-node testbed has 100 agents."""
        key = tuple(sorted(self.sup.instances))
        now = time.monotonic()
        if (
            self._ports_cache is not None
            and self._ports_cache[0] == key
            and (now - self._ports_cache[1] < self.PORTS_EVERY_S)
        ):
            return self._ports_cache[2]
        try:
            infos = self.ctx.vsctl.list_ports(self.ctx.bridge)
        except Exception as e:
            log.warning("cannot list ports of %s: %s", self.ctx.bridge, e)
            return self._ports_cache[2] if self._ports_cache else []
        # A port just added has no OpenFlow number until vswitchd takes it: leave
        # it out, and read again at the next look instead of in 10 s.
        self._unnumbered = [(p.name, p.peer) for p in infos if p.ofport is None]
        self.ports_pending = bool(self._unnumbered)
        ports = [
            {"name": p.name, "ofport": p.ofport, "peer": p.peer}
            for p in infos
            if p.ofport is not None
        ]
        self._ports_cache = (key, now - self.PORTS_EVERY_S if self.ports_pending else now, ports)
        return ports

    def resources(self, ports: list[dict[str, Any]]) -> dict[str, Any]:
        now = time.monotonic()
        cpu_pct = 0.0
        rss = 0.0
        for iid, inst in self.sup.instances.items():
            u = inst.usage()
            if not u:
                continue
            rss += u["rss_mb"]
            prev = self._last_cpu.get(iid)
            if prev is not None and now > prev[0]:
                cpu_pct += 100 * (u["cpu_s"] - prev[1]) / (now - prev[0])
            self._last_cpu[iid] = (now, u["cpu_s"])
        for gone in self._last_cpu.keys() - self.sup.instances.keys():
            del self._last_cpu[gone]
        link_use: dict[str, dict[str, float]] = {}
        for p in ports:
            if str(p["peer"]).startswith("node:"):
                with contextlib.suppress(Exception):
                    st = links.link_stats(self.ctx.ovs_netns, str(p["name"]))
                    peer = str(p["peer"])[5:]
                    rx, tx = int(st.get("rx_bytes", 0)), int(st.get("tx_bytes", 0))
                    link_use[peer] = {"rx_bytes": rx, "tx_bytes": tx}
                    link_use[peer] |= self._link_rates(peer, now, rx, tx)
        for gone in self._last_link.keys() - link_use.keys():
            del self._last_link[gone]
        load1 = os.getloadavg()[0]
        return {
            "instances": len(self.sup.instances),
            "instance_cpu_pct": round(cpu_pct, 2),
            "instance_rss_mb": round(rss, 1),
            "loadavg_1m": load1,
            "standbys": self.sup.pool.counts(),
            "links": link_use,
            "at": time.time(),
        }

    def _link_rates(self, peer: str, now: float, rx: int, tx: int) -> dict[str, float]:
        """Mbit/s each way since the last read of this link (none on the first read,
        or when the counters went back: the port was made again)."""
        prev = self._last_link.get(peer)
        self._last_link[peer] = (now, rx, tx)
        if prev is None or now <= prev[0] or rx < prev[1] or tx < prev[2]:
            return {}
        dt = now - prev[0]
        return {
            "rx_mbps": round((rx - prev[1]) * 8 / dt / 1e6, 6),
            "tx_mbps": round((tx - prev[2]) * 8 / dt / 1e6, 6),
        }


def report_body(
    sup: Supervisor,
    figures: Figures,
    desired: Mapping[str, Mapping[str, Any]],
    records: Iterable[Record],
) -> dict[str, Any]:
    """The report: each copy's status (CopyStatus), the migrations' phases and the
    figures as last gathered (cheap: nothing is read here but the processes' state)."""
    insts: list[dict[str, Any]] = []
    for iid, inst in sup.instances.items():
        role = inst.role
        if inst.alive():
            status = CopyStatus.STANDBY if role == InstanceRole.STANDBY else CopyStatus.RUNNING
            detail = inst.limits
        else:
            # Died: the next converge starts it again (a supervisor, not a
            # verdict); only a start that fails is reported as failed.
            status, detail = CopyStatus.STARTING, "restarting: " + inst.tail_log()
        entry: dict[str, Any] = {
            "id": iid,
            "status": status,
            "role": role,
            "pid": inst.pid,
            "detail": detail,
        }
        if iid in figures.fn_stats:
            entry["stats"] = figures.fn_stats[iid]
        if inst.from_standby:
            entry["from_standby"] = True
        insts.append(entry)
    for iid in sup.tasks:
        if iid in sup.instances:
            continue
        if iid in desired:
            role = desired[iid]["role"]
            insts.append({"id": iid, "status": CopyStatus.STARTING, "role": role})
        else:  # being torn down: it is gone only when nothing of it remains
            insts.append({"id": iid, "status": CopyStatus.STOPPING})
    for iid, detail in sup.failed.items():
        insts.append({"id": iid, "status": CopyStatus.FAILED, "detail": detail})
    migs = [r.report() for r in records if r.phase != Sp.SERVING]
    ports, resources = figures.stats
    return {
        "resources": resources,
        "instances": insts,
        "migrations": migs,
        "ports": ports,
    }


async def watch_bridges(db: str, changed: Callable[[str], None]) -> None:
    """`ovsdb-client monitor` of the bridges' ports: `changed(bridge)` for each change
    of a bridge's port list, forever (one process, however many bridges: a group of
    agents watches all its nodes' bridges with one, group.py)."""
    if shutil.which("ovsdb-client") is None:
        return
    argv = ["ovsdb-client", "monitor", db, "Open_vSwitch", "Bridge", "name,ports",
            "--format=csv"]  # fmt: skip
    while True:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
            )
        except OSError as e:
            log.warning("cannot watch the bridges' ports (%s); reading them periodically", e)
            return
        try:
            if proc.stdout is None:  # never: stdout=PIPE above
                return
            # Row uuid -> bridge name; lines are "uuid,action,name,ports".
            bridges: dict[str, str] = {}
            while line := await proc.stdout.readline():
                row, _, rest = line.decode(errors="replace").partition(",")
                action, _, rest = rest.partition(",")
                if action == "initial":
                    bridges[row] = rest.partition(",")[0].strip('"')
                    continue
                if (bridge := bridges.get(row)) is not None:
                    changed(bridge)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await asyncio.sleep(1.0)  # the database restarted: watch again
