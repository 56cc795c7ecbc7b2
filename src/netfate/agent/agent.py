"""The agent loop: poll desired state, converge, report. Forever, and idempotently.

    register ──▶ ┌─ GET desired (long-poll on the node's revision, ≤ heartbeat) ─┐
                 │  converge: start missing, stop extra, drive migrations in     │
                 └─ POST report (also the heartbeat) ◀───────────────────────────┘

Starting and stopping run as tasks so a slow instance never delays the heartbeat.
When the orchestrator is away the instances keep running and the agent retries
with backoff; when the agent itself restarts it adopts what still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from netfate.agent import migration
from netfate.agent.instances import Instance, NodeContext, Zygote, adopt_all
from netfate.host import links

log = logging.getLogger("netfate.agent")


@dataclass(frozen=True)
class AgentConfig:
    ctx: NodeContext
    orchestrator: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    advertise_host: str | None = None
    heartbeat_s: float = 1.0


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.ctx = cfg.ctx
        self.api = cfg.orchestrator.rstrip("/") + "/api/v1"
        self.instances: dict[str, Instance] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: dict[str, str] = {}
        self.results: dict[int, dict[str, Any]] = {}  # migration id -> report
        self.handed_off = self._load_handed_off()
        self.desired: dict[str, dict[str, Any]] = {}
        self.revision = -1
        self.endpoint = ""
        self._last_cpu: dict[str, tuple[float, float]] = {}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        self.changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._ports_cache: tuple[tuple[str, ...], float, list[dict[str, Any]]] | None = None
        self.ports_pending = False  # the last read saw a port without an OpenFlow number
        self._stats: tuple[list[dict[str, Any]], dict[str, Any]] = ([], {})
        self._fn_stats: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------- main

    async def run(self) -> None:
        self.ctx.state_dir.mkdir(parents=True, exist_ok=True)
        self.instances = await asyncio.to_thread(adopt_all, self.ctx)
        server = await migration.serve(self.on_peer, self.cfg.listen_host, self.cfg.listen_port)
        port = server.sockets[0].getsockname()[1]
        self.endpoint = f"{self.cfg.advertise_host or self.cfg.listen_host}:{port}"
        try:
            await self._register()
            if self.ctx.zygote is not None:
                # Started after registration, so it never delays a node coming up; until
                # it is ready, instances start as new interpreters.
                self._keep(asyncio.create_task(self._start_zygote(self.ctx.zygote)))
            reporter = asyncio.create_task(self._report_loop())
            stats = asyncio.create_task(self._stats_loop())
            watch = asyncio.create_task(self._watch_ports())
            try:
                await self._poll_loop()
            finally:
                reporter.cancel()
                stats.cancel()
                watch.cancel()
        finally:
            server.close()
            await self.client.aclose()
            if self.ctx.zygote is not None:
                self.ctx.zygote.stop()

    async def _start_zygote(self, z: Zygote) -> None:
        if not await z.start_async():
            log.warning("fork server did not start; instances start as new interpreters")

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _poll_loop(self) -> None:
        backoff = 0.2
        while True:
            try:
                self._converge(await self._poll())
                self.changed.set()
                backoff = 0.2
            except (httpx.HTTPError, OSError, ValueError) as e:
                log.warning("orchestrator unreachable (%s); retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                if isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 404:
                    await self._register()

    async def _stats_loop(self) -> None:
        """Ports and resource figures, gathered off the report path: reading them
        spawns ovs-vsctl and opens netlink sockets, which must not delay the report
        that tells the orchestrator an instance runs."""
        while True:
            with contextlib.suppress(Exception):
                self._stats = await asyncio.to_thread(self._gather_stats)
            with contextlib.suppress(Exception):
                self._fn_stats = await self._function_stats()
            await asyncio.sleep(self.cfg.heartbeat_s)

    async def _watch_ports(self) -> None:
        """Report the bridge's ports as soon as they change (a host plugged into
        another CPE, say): the controller compiles against what agents report, and
        the periodic read alone would leave a moved host unreachable for seconds."""
        if shutil.which("ovsdb-client") is None:
            return
        argv = ["ovsdb-client", "monitor", self.ctx.vsctl.db, "Open_vSwitch", "Bridge",
                "name,ports", "--format=csv"]  # fmt: skip
        while True:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
                )
            except OSError as e:
                log.warning("cannot watch the bridge's ports (%s); reading them periodically", e)
                return
            try:
                if proc.stdout is None:  # never: stdout=PIPE above
                    return
                mine = None  # our bridge's row: lines are "uuid,action,name,ports"
                while line := await proc.stdout.readline():
                    row, _, rest = line.decode(errors="replace").partition(",")
                    action, _, rest = rest.partition(",")
                    if action == "initial":
                        if rest.partition(",")[0].strip('"') == self.ctx.bridge:
                            mine = row
                        continue
                    if row != mine:
                        continue
                    for _ in range(40):  # bounded: vswitchd numbers a new port in ms
                        self._ports_cache = None
                        with contextlib.suppress(Exception):
                            self._stats = await asyncio.to_thread(self._gather_stats)
                        self.changed.set()
                        if not self.ports_pending:
                            break
                        await asyncio.sleep(0.05)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            await asyncio.sleep(1.0)  # the database restarted: watch again

    async def _function_stats(self) -> dict[str, dict[str, Any]]:
        """Each running function's own figures (its `status`), for the orchestrator."""
        out: dict[str, dict[str, Any]] = {}
        for iid, inst in list(self.instances.items()):
            if inst.role != "active" or not inst.alive():
                continue
            with contextlib.suppress(Exception):
                resp = await inst.call({"op": "status"}, timeout=0.5)
                if isinstance(resp.get("stats"), dict):
                    out[iid] = resp["stats"]
        return out

    def _gather_stats(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        ports = self._ports()
        return ports, self._resources(ports)

    async def _report_loop(self) -> None:
        """Report at once when something changed here, and every heartbeat anyway."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), self.cfg.heartbeat_s)
            self.changed.clear()
            try:
                await self._report()
            except (httpx.HTTPError, OSError, ValueError) as e:
                log.warning("report failed (%s)", e)
                await asyncio.sleep(min(self.cfg.heartbeat_s, 0.5))

    async def _register(self) -> None:
        delay = 0.1
        while True:
            try:
                r = await self.client.post(
                    f"{self.api}/agents/{self.ctx.node}/register",
                    json={"endpoint": self.endpoint},
                )
                if r.status_code == 200:
                    log.info("registered node %s, migrations on %s", self.ctx.node, self.endpoint)
                    self._converge(r.json())
                    await self._report()
                    return
                log.error("registration refused: %s %s", r.status_code, r.text[:300])
            except (httpx.HTTPError, OSError) as e:
                log.warning("orchestrator not reachable yet: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _poll(self) -> dict[str, Any]:
        r = await self.client.get(
            f"{self.api}/agents/{self.ctx.node}/desired",
            params={"revision": self.revision, "wait": self.cfg.heartbeat_s},
        )
        r.raise_for_status()
        state: dict[str, Any] = r.json()
        return state

    # ---------------------------------------------------------------- converge

    def _converge(self, state: dict[str, Any]) -> None:
        self.revision = int(state.get("revision", -1))
        desired = {str(s["id"]): s for s in state.get("instances", [])}
        self.desired = desired
        for iid, spec in desired.items():
            if iid in self.tasks:
                continue
            mig = spec.get("migration") or {}
            local = self.instances.get(iid)
            if spec["role"] == "standby":
                if mig.get("role") == "target" and int(mig["id"]) not in self.results:
                    self._spawn(iid, self._migrate_in(spec))
                continue
            if iid in self.handed_off:
                continue  # released to a target; the orchestrator will move it
            if local is None:
                if iid not in self.failed:
                    self._spawn(iid, self._start(spec))
            elif local.role == "standby" and local.alive():
                local.role = "active"  # a finished migration: the copy here is the one
                local.spec = spec
                local.save()
            elif local.alive() and (local.spec.get("config") or {}) != (spec.get("config") or {}):
                self._spawn(iid, self._reconfigure(local, spec))
            elif not local.alive():
                log.warning("instance %s died; starting it again", iid)
                self.instances.pop(iid)
                self._spawn(iid, self._restart(local, spec))
        for iid, inst in list(self.instances.items()):
            if iid not in desired and iid not in self.tasks:
                self.instances.pop(iid)
                self._spawn(iid, inst.stop())
        for iid in list(self.failed):
            if iid not in desired:
                del self.failed[iid]
        for iid in list(self.handed_off):
            if iid not in desired:
                self.handed_off.discard(iid)
                self._save_handed_off()
        live_migrations = {
            int(s["migration"]["id"]) for s in desired.values() if s.get("migration")
        }
        for mid in list(self.results):
            if mid not in live_migrations and self.results[mid].get("_sent"):
                del self.results[mid]

    def _announce_later(self, inst: Instance) -> None:
        """Announce the address again (RFC 5227 announces more than once): the first
        gratuitous ARP can arrive before the switch polls a port it just added, and
        after a migration, replies of the old copy still in flight on a delayed link
        can teach learning switches the old place again. Dense at first, then sparse.
        """

        async def repeat() -> None:
            previous = 0.0
            for at in (0.01, 0.025, 0.05, 0.1, 0.25, 1.0):
                await asyncio.sleep(at - previous)
                previous = at
                if inst.id not in self.instances or inst.role != "active":
                    return
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(inst.announce)

        self._keep(asyncio.create_task(repeat()))

    def _spawn(self, iid: str, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks[iid] = task

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.pop(iid, None)
            self.changed.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("task for %s failed: %s", iid, t.exception())

        task.add_done_callback(done)

    async def _start(self, spec: dict[str, Any], role: str = "active") -> None:
        inst = Instance(spec=spec, ctx=self.ctx, role=role)
        t0 = time.perf_counter()
        try:
            if await asyncio.to_thread(inst.leftovers):  # of a crashed earlier try
                await asyncio.to_thread(inst.teardown)
            await asyncio.to_thread(inst.prepare_netns)
            await asyncio.to_thread(inst.spawn)
            t1 = time.perf_counter()
            # Interfaces are wired while the interpreter starts: both take ~50 ms.
            await asyncio.gather(asyncio.to_thread(inst.build), inst.wait_ready())
            t2 = time.perf_counter()
            await asyncio.to_thread(inst.limit)
        except Exception as e:
            detail = str(e) or type(e).__name__
            log.error("instance %s failed to start: %s", inst.id, detail)
            self.failed[inst.id] = detail[:2000]
            await inst.stop()
            return
        self.instances[inst.id] = inst
        if role == "active":
            self._announce_later(inst)
        log.info(
            "instance %s %s in %.0f ms (namespace+spawn %.0f, wiring and start-up %.0f; "
            "pid %s, %s)",
            inst.id,
            role,
            (t2 - t0) * 1e3,
            (t1 - t0) * 1e3,
            (t2 - t1) * 1e3,
            inst.pid,
            inst.limits,
        )

    async def _reconfigure(self, inst: Instance, spec: dict[str, Any]) -> None:
        """A new configuration: in place if the function can take it, else a restart
        that carries the function's state across (export, stop, start, import)."""
        config = spec.get("config") or {}
        try:
            resp = await inst.call({"op": "configure", "config": config})
            if resp.get("applied"):
                inst.spec = spec
                inst.save()
                log.info("instance %s reconfigured in place", inst.id)
                return
            state = (await inst.call({"op": "export"}))["state"]
        except Exception as e:
            log.error("instance %s: reconfiguration failed: %s", inst.id, e)
            return
        self.instances.pop(inst.id, None)
        await inst.stop(hand_over=True)
        await self._start(spec)
        new = self.instances.get(inst.id)
        if new is not None:
            with contextlib.suppress(Exception):
                await new.call({"op": "import", "state": state})
            log.info("instance %s restarted with its new configuration and its state", inst.id)

    async def _restart(self, old: Instance, spec: dict[str, Any]) -> None:
        await old.stop()
        await self._start(spec)

    # ---------------------------------------------------------------- migration, target side

    async def _migrate_in(self, spec: dict[str, Any]) -> None:
        mig = spec["migration"]
        mid, iid = int(mig["id"]), str(spec["id"])
        endpoint = mig.get("peer_endpoint")
        report: dict[str, Any] = {"id": mid, "instance": iid}
        inst: Instance | None = None
        frozen = False
        try:
            if not endpoint:
                raise migration.MigrationError(f"source node {mig.get('peer')} has no agent")
            await self._start(spec, role="standby")
            inst = self.instances.get(iid)
            if inst is None:
                raise migration.MigrationError(
                    f"standby copy did not start: {self.failed.pop(iid, 'unknown')}"
                )
            async with migration.Peer(str(endpoint)) as peer:
                ids = {"instance": iid, "migration": mid}
                snap = await peer.call({"op": "snapshot", **ids})
                await inst.call({"op": "import", "state": snap["state"]})
                c0 = time.perf_counter()
                final = await peer.call({"op": "freeze", **ids})
                frozen = True
                c1 = time.perf_counter()
                await inst.call({"op": "import", "state": final["state"]})
                c2 = time.perf_counter()
                await inst.call({"op": "activate"})
                c3 = time.perf_counter()
                await asyncio.to_thread(inst.bring_up)
                active_at = migration.now()
                c4 = time.perf_counter()
                log.info(
                    "cutover of %s: freeze round trip %.2f ms, import %.2f, activate %.2f, "
                    "port up + announce %.2f",
                    iid,
                    (c1 - c0) * 1e3,
                    (c2 - c1) * 1e3,
                    (c3 - c2) * 1e3,
                    (c4 - c3) * 1e3,
                )
                frozen = False
                inst.role = "active"
                inst.save()
                # Announce again from now on, not after the release round trip: the
                # first announcement can be lost while the switch still sees the new
                # port as down, and until one arrives traffic goes to the old place.
                self._announce_later(inst)
                await peer.call({"op": "release", **ids})
            await asyncio.to_thread(inst.limit)
            report |= {
                "status": "done",
                "downtime_ms": round((active_at - final["frozen_at"]) * 1000, 3),
                "state_bytes": len(json.dumps(final["state"])),
            }
            log.info("migrated %s in: downtime %.2f ms", iid, report["downtime_ms"])
        except Exception as e:
            reason = str(e) or type(e).__name__
            log.error("migration %s of %s failed: %s", mid, iid, reason)
            if frozen and endpoint:
                with contextlib.suppress(Exception):
                    async with migration.Peer(str(endpoint)) as peer:
                        await peer.call({"op": "thaw", "instance": iid, "migration": mid})
            if inst is not None:
                self.instances.pop(iid, None)
                await inst.stop()
            report |= {"status": "failed", "reason": reason[:2000]}
        self.results[mid] = report

    # ---------------------------------------------------------------- migration, source side

    async def on_peer(self, req: dict[str, Any]) -> dict[str, Any]:
        iid, mid, op = str(req["instance"]), int(req["migration"]), str(req["op"])
        spec = self.desired.get(iid)
        mig = (spec or {}).get("migration") or {}
        if mig.get("role") != "source" or int(mig.get("id", -1)) != mid:
            # The orchestrator's word may not have reached us yet: ask once more.
            with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                self._converge(await self._fetch_now())
            spec = self.desired.get(iid)
            mig = (spec or {}).get("migration") or {}
            if mig.get("role") != "source" or int(mig.get("id", -1)) != mid:
                raise migration.MigrationError(f"no migration {mid} of {iid} away from here")
        inst = self.instances.get(iid)
        if inst is None:
            raise migration.MigrationError(f"instance {iid} does not run here")
        if op == "snapshot":
            return {"ok": True, "state": (await inst.call({"op": "export"}))["state"]}
        if op == "freeze":
            resp = await inst.call({"op": "freeze"})
            await asyncio.to_thread(inst.bring_down)
            return {"ok": True, "state": resp["state"], "frozen_at": resp["frozen_at"]}
        if op == "thaw":
            await asyncio.to_thread(inst.bring_up)
            await inst.call({"op": "activate"})
            return {"ok": True}
        if op == "release":
            self.handed_off.add(iid)
            self._save_handed_off()
            self.instances.pop(iid, None)
            self._spawn(iid, inst.stop())
            return {"ok": True}
        raise migration.MigrationError(f"unknown op {op!r}")

    async def _fetch_now(self) -> dict[str, Any]:
        r = await self.client.get(f"{self.api}/agents/{self.ctx.node}/desired")
        r.raise_for_status()
        state: dict[str, Any] = r.json()
        return state

    def _handed_off_path(self) -> Path:
        return self.ctx.state_dir / "handed-off.json"

    def _load_handed_off(self) -> set[str]:
        # Persisted: an agent restarted between release and the orchestrator's update
        # must not start the released instance again (that would be a duplicate).
        try:
            return set(json.loads(self._handed_off_path().read_text()))
        except (OSError, ValueError):
            return set()

    def _save_handed_off(self) -> None:
        self.ctx.state_dir.mkdir(parents=True, exist_ok=True)
        self._handed_off_path().write_text(json.dumps(sorted(self.handed_off)))

    # ---------------------------------------------------------------- report

    async def _report(self) -> None:
        body = self._build_report()  # cheap: statuses and cached figures
        r = await self.client.post(f"{self.api}/agents/{self.ctx.node}/report", json=body)
        if r.status_code == 404:
            raise httpx.HTTPStatusError("node unknown", request=r.request, response=r)
        r.raise_for_status()
        for res in self.results.values():
            res["_sent"] = True

    def _build_report(self) -> dict[str, Any]:
        insts: list[dict[str, Any]] = []
        for iid, inst in self.instances.items():
            role = "standby" if inst.role == "standby" else "active"
            if inst.alive():
                status = "standby" if role == "standby" else "running"
                detail = inst.limits
            else:
                # Died: the next converge starts it again (a supervisor, not a
                # verdict); only a start that fails is reported as failed.
                status, detail = "starting", "restarting: " + inst.tail_log()
            entry: dict[str, Any] = {
                "id": iid,
                "status": status,
                "role": role,
                "pid": inst.pid,
                "detail": detail,
            }
            if iid in self._fn_stats:
                entry["stats"] = self._fn_stats[iid]
            insts.append(entry)
        for iid in self.tasks:
            if iid in self.instances:
                continue
            if iid in self.desired:
                role = self.desired[iid]["role"]
                insts.append({"id": iid, "status": "starting", "role": role})
            else:  # being torn down: it is gone only when nothing of it remains
                insts.append({"id": iid, "status": "stopping"})
        for iid, detail in self.failed.items():
            insts.append({"id": iid, "status": "failed", "detail": detail})
        migs = [
            {k: v for k, v in r.items() if not k.startswith("_")} for r in self.results.values()
        ]
        ports, resources = self._stats
        return {
            "resources": resources,
            "instances": insts,
            "migrations": migs,
            "ports": ports,
        }

    PORTS_EVERY_S = 10.0

    def _ports(self) -> list[dict[str, Any]]:
        """The bridge's ports, read again when instances changed here or every 10 s:
        each read spawns ovs-vsctl, and a 100-node testbed has 100 agents."""
        key = tuple(sorted(self.instances))
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
        self.ports_pending = any(p.ofport is None for p in infos)
        ports = [
            {"name": p.name, "ofport": p.ofport, "peer": p.peer}
            for p in infos
            if p.ofport is not None
        ]
        self._ports_cache = (key, now - self.PORTS_EVERY_S if self.ports_pending else now, ports)
        return ports

    def _resources(self, ports: list[dict[str, Any]]) -> dict[str, Any]:
        now = time.monotonic()
        cpu_pct = 0.0
        rss = 0.0
        for iid, inst in self.instances.items():
            u = inst.usage()
            if not u:
                continue
            rss += u["rss_mb"]
            prev = self._last_cpu.get(iid)
            if prev is not None and now > prev[0]:
                cpu_pct += 100 * (u["cpu_s"] - prev[1]) / (now - prev[0])
            self._last_cpu[iid] = (now, u["cpu_s"])
        link_use: dict[str, dict[str, int]] = {}
        for p in ports:
            if str(p["peer"]).startswith("node:"):
                with contextlib.suppress(Exception):
                    st = links.link_stats(self.ctx.ovs_netns, str(p["name"]))
                    link_use[str(p["peer"])[5:]] = {
                        "rx_bytes": int(st.get("rx_bytes", 0)),
                        "tx_bytes": int(st.get("tx_bytes", 0)),
                    }
        load1 = os.getloadavg()[0]
        return {
            "instances": len(self.instances),
            "instance_cpu_pct": round(cpu_pct, 2),
            "instance_rss_mb": round(rss, 1),
            "loadavg_1m": load1,
            "links": link_use,
            "at": time.time(),
        }
