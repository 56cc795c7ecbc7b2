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
from typing import Any

import httpx

from netfate import faults
from netfate.agent import migration
from netfate.agent.instances import Instance, NodeContext, Zygote, adopt_all
from netfate.agent.migration import Record, Settle
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.migration import TargetPhase as Tp
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
        # Each instance's migration phase here, on disk (see migration.py's tables).
        self.records = migration.Records(cfg.ctx.state_dir / "migrations")
        self.aborts: dict[int, asyncio.Event] = {}  # migration id -> the deadline passed
        self._locks: dict[str, asyncio.Lock] = {}  # source side: freeze, thaw, release
        self.desired: dict[str, dict[str, Any]] = {}
        self.revision = -1
        self.endpoint = ""
        self._last_cpu: dict[str, tuple[float, float]] = {}
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0))
        self.changed = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._ports_cache: tuple[tuple[str, ...], float, list[dict[str, Any]]] | None = None
        self.ports_pending = False  # the last read saw a port without an OpenFlow number
        self._unnumbered: list[tuple[str, str | None]] = []  # those ports: (name, peer)
        self._stats: tuple[list[dict[str, Any]], dict[str, Any]] = ([], {})
        self._fn_stats: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------- main

    async def run(self) -> None:
        self.ctx.state_dir.mkdir(parents=True, exist_ok=True)
        faults.enable(self.ctx.state_dir / "faults")  # only under NETFATE_FAULTS=1 (tests)
        self.instances = await asyncio.to_thread(adopt_all, self.ctx)
        self.records.load()
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
                await self._drop_stale_ports()
            with contextlib.suppress(Exception):
                self._fn_stats = await self._function_stats()
            await asyncio.sleep(self.cfg.heartbeat_s)

    async def _drop_stale_ports(self) -> None:
        """An instance port on the bridge that no instance here owns and whose
        interface is gone: the record of a removal that Open vSwitch missed (it was
        down longer than a removal waits). Without this it stays forever, unnumbered."""
        for name, peer in self._unnumbered:
            kind, _, iid = (peer or "").partition(":")
            if kind != "instance" or iid in self.instances or iid in self.tasks:
                continue
            if await asyncio.to_thread(links.link_exists, self.ctx.ovs_netns, name):
                continue
            if iid in self.instances or iid in self.tasks:  # started meanwhile
                continue
            await asyncio.to_thread(self.ctx.vsctl.del_port, name, self.ctx.bridge)
            log.info("removed port %s of instance %s, gone from this node", name, iid)
            self._ports_cache = None

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
        self._settle(desired)
        for iid, spec in desired.items():
            mig = spec.get("migration") or {}
            if mig.get("role") == "target" and mig.get("abort"):
                self._abort(int(mig["id"])).set()  # the move in hand gives up, unless final
            if iid in self.tasks:
                continue
            rec = self.records.get(iid)
            local = self.instances.get(iid)
            if spec["role"] == "standby":
                if mig.get("role") == "target" and (rec is None or rec.migration != mig["id"]):
                    self._spawn(iid, self._migrate_in(spec))
                continue
            if rec is not None and rec.phase in (Sp.FROZEN, Sp.RELEASED):
                continue  # frozen for a move, or handed over: _settle decides, never a restart
            if local is None:
                if iid not in self.failed:
                    self._spawn(iid, self._start(spec))
            elif local.role == "standby" and local.alive():
                # The orchestrator says the copy here is the one (a move it recorded
                # without this agent's word): serve with it.
                self._spawn(iid, self._activate(local, spec))
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
        live = {int(s["migration"]["id"]) for s in desired.values() if s.get("migration")}
        for mid in [m for m in self.aborts if m not in live]:
            # Ended without this agent's word (the instance was destroyed, say): a move
            # in hand gives up too, unless it holds the final state.
            self.aborts.pop(mid).set()
        for iid in [i for i, lk in self._locks.items() if i not in desired and not lk.locked()]:
            del self._locks[iid]

    def _settle(self, desired: dict[str, dict[str, Any]]) -> None:
        """Act on each migration record as migration.py's SETTLE tables say, given what
        the desired state says of its migration now."""
        for rec in self.records:
            iid = rec.instance
            if iid in self.tasks:
                continue  # a move, thaw or stop of it is under way
            spec = desired.get(iid)
            mig = (spec or {}).get("migration") or {}
            if spec is None:
                situation = "gone"
            elif mig.get("id") == rec.migration and mig.get("role") == rec.side:
                situation = "open"
            else:
                situation = "over"
            action = rec.settle(situation)
            if action is Settle.WAIT:
                continue
            if action is Settle.FORGET or action is Settle.RESTART:
                self.records.forget(iid)  # RESTART: the loop in _converge starts it afresh
            elif action is Settle.THAW:
                self._spawn(iid, self._thaw_here(rec, "the migration ended without a move"))
            elif action in (Settle.ABORT, Settle.COMPLETE):
                self._spawn(iid, self._resume_in(rec))
        for iid, spec in desired.items():
            mig = spec.get("migration") or {}
            if mig.get("role") == "source" and mig.get("abort") and not self.records.get(iid):
                # Past the deadline and not frozen: never now (the orchestrator fails it).
                self.records.save(
                    Record(
                        instance=iid,
                        migration=int(mig["id"]),
                        side="source",
                        phase=Sp.REFUSED,
                        reason="the deadline passed before the target asked for the freeze",
                    )
                )
                self.changed.set()

    def _abort(self, mid: int) -> asyncio.Event:
        return self.aborts.setdefault(mid, asyncio.Event())

    def _lock(self, iid: str) -> asyncio.Lock:
        return self._locks.setdefault(iid, asyncio.Lock())

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

    async def _activate(self, inst: Instance, spec: dict[str, Any]) -> None:
        await inst.call({"op": "activate"})
        await asyncio.to_thread(inst.bring_up)
        inst.role = "active"
        inst.spec = spec
        inst.save()
        self._announce_later(inst)

    # ---------------------------------------------------------------- migration, target side

    async def _migrate_in(self, spec: dict[str, Any]) -> None:
        """Drive a move here, up to the point where this copy holds the final state;
        `_complete_in` takes it from there (see migration.py)."""
        mig = spec["migration"]
        mid, iid = int(mig["id"]), str(spec["id"])
        endpoint = str(mig.get("peer_endpoint") or "")
        abort = self._abort(mid)
        old = self.instances.pop(iid, None)
        if old is not None:  # a standby of an earlier try (this agent was restarted)
            await old.stop()
        rec = Record(instance=iid, migration=mid, side="target", phase=Tp.PREPARING, peer=endpoint)
        self.records.save(rec)
        inst: Instance | None = None
        try:
            if abort.is_set():
                raise migration.Aborted("the orchestrator called the migration off")
            if not endpoint:
                raise migration.MigrationError(f"source node {mig.get('peer')} has no agent")
            await self._start(spec, role="standby")  # bounded; never left half-built
            inst = self.instances.get(iid)
            if inst is None:
                raise migration.MigrationError(
                    f"standby copy did not start: {self.failed.pop(iid, 'unknown')}"
                )
            async with migration.Peer(endpoint) as peer:
                ids = {"instance": iid, "migration": mid}
                snap = await migration.unless(abort, peer.call({"op": "snapshot", **ids}))
                await inst.call({"op": "import", "state": snap["state"]})
                await migration.fault("migrate.target.snapshot")
                self.records.step(rec, Tp.FREEZING)
                c0 = time.perf_counter()
                final = await migration.unless(abort, peer.call({"op": "freeze", **ids}))
                c1 = time.perf_counter()
                await migration.fault("migrate.target.freezing")
                await inst.call({"op": "import", "state": final["state"]})
                c2 = time.perf_counter()
                self.records.step(rec, Tp.FINAL, frozen_at=float(final["frozen_at"]))
                c3 = time.perf_counter()
                await migration.fault("migrate.target.final")
                await self._complete_in(rec, inst, peer, final["state"])
                log.info(
                    "final state of %s in: freeze round trip %.2f ms, import %.2f ms, "
                    "written %.2f ms",
                    iid,
                    (c1 - c0) * 1e3,
                    (c2 - c1) * 1e3,
                    (c3 - c2) * 1e3,
                )
        except Exception as e:
            if rec.phase in (Tp.PREPARING, Tp.FREEZING):
                reason = str(e) or type(e).__name__
                # A refusal is an answer: the source did not freeze.
                await self._abort_in(rec, inst, reason, froze=not isinstance(e, migration.Refused))
            else:  # holds the final state: _complete_in reported what it could not do
                log.error("migration %s of %s: %s", mid, iid, e)

    async def _resume_in(self, rec: Record) -> None:
        """A move this agent was driving when it was restarted (its record survived)."""
        inst = self.instances.get(rec.instance)
        if rec.phase == Tp.FREEZING:
            await self._abort_in(
                rec, inst, "the target agent restarted while the final state was in flight"
            )
        elif rec.phase == Tp.FINAL and (inst is None or not inst.alive()):
            # Never activated: the source's frozen copy holds the state and serves again.
            await self._abort_in(rec, inst, "the standby copy holding the final state died")
        else:
            await self._complete_in(rec, inst, None)

    async def _complete_in(
        self,
        rec: Record,
        inst: Instance | None,
        peer: migration.Peer | None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """From `final` to `done`: nothing here is undone, whatever the source or the
        link do now (the source's copy is frozen and goes when the move is recorded).
        `inst` is None only in `active` when the copy died since: converge restarts it."""
        if rec.phase == Tp.FINAL and inst is not None:
            c0 = time.perf_counter()
            await inst.call({"op": "activate"})
            await asyncio.to_thread(inst.bring_up)
            active_at = migration.now()
            inst.role = "active"
            inst.save()
            self.records.step(rec, Tp.ACTIVE, active_at=active_at)
            log.info(
                "cutover of %s: activate, port up and announce %.2f ms",
                rec.instance,
                (time.perf_counter() - c0) * 1e3,
            )
            # Announce again from now on, not after the release round trip: the
            # first announcement can be lost while the switch still sees the new
            # port as down, and until one arrives traffic goes to the old place.
            self._announce_later(inst)
        if state is not None:  # measured once serving: a large state takes a while
            rec.state_bytes = len(json.dumps(state))
        note = ""
        ids = {"instance": rec.instance, "migration": rec.migration, "op": "release"}
        try:
            if peer is not None:
                await peer.call(ids, timeout=3.0)
            else:
                async with migration.Peer(rec.peer) as again:
                    await again.call(ids, timeout=3.0)
        except Exception as e:  # the source died or the link is cut: the move stands
            note = f"the source did not confirm the release ({e}); it stops its frozen copy "
            note += "when the orchestrator records the move"
            log.warning("migration %s of %s: %s", rec.migration, rec.instance, note)
        await migration.fault("migrate.target.released")
        if inst is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(inst.limit)
        self.records.step(rec, Tp.DONE, reason=note)
        log.info("migrated %s in: %s", rec.instance, rec.report())

    async def _abort_in(
        self, rec: Record, inst: Instance | None, reason: str, *, froze: bool = True
    ) -> None:
        """Give up before holding the final state: the standby goes, and the source is
        asked to thaw (if it cannot hear it, it thaws when the orchestrator records
        the failure). `froze`: the source may have frozen its copy (from `freezing`
        on, unless it refused)."""
        log.error("migration %s of %s failed: %s", rec.migration, rec.instance, reason)
        froze = froze and rec.phase in (Tp.FREEZING, Tp.FINAL)
        if froze:
            reason += "; the source may have frozen its copy: it serves again when it thaws it"
        if inst is not None:
            self.instances.pop(rec.instance, None)
            await inst.stop()
        if froze and rec.peer:
            try:
                async with migration.Peer(rec.peer) as peer:
                    await peer.call(
                        {"op": "thaw", "instance": rec.instance, "migration": rec.migration},
                        timeout=2.0,
                    )
            except Exception as e:
                log.warning("could not ask the source to thaw %s: %s", rec.instance, e)
        self.records.step(rec, Tp.ABORTED, reason=reason[:2000])

    # ---------------------------------------------------------------- migration, source side

    async def on_peer(self, req: dict[str, Any]) -> dict[str, Any]:
        iid, mid, op = str(req["instance"]), int(req["migration"]), str(req["op"])
        rec = self.records.get(iid)
        if rec is not None and (rec.side != "source" or rec.migration != mid):
            rec = None
        mig = await self._source_of(iid, mid)
        if mig is None and (rec is None or op not in ("thaw", "release")):
            # thaw and release also answer on the record alone: the orchestrator may
            # have recorded the outcome before this request arrived.
            raise migration.MigrationError(f"no migration {mid} of {iid} away from here")
        async with self._lock(iid):
            rec = self.records.get(iid)
            if rec is not None and (rec.side != "source" or rec.migration != mid):
                rec = None
            inst = self.instances.get(iid)
            if op == "snapshot":
                if rec is not None and rec.phase == Sp.REFUSED:
                    raise migration.MigrationError(rec.reason)
                if inst is None:
                    raise migration.MigrationError(f"instance {iid} does not run here")
                await migration.fault("migrate.source.snapshot")
                return {"ok": True, "state": (await inst.call({"op": "export"}))["state"]}
            if op == "freeze":
                return await self._freeze(iid, mid, rec, inst, bool((mig or {}).get("abort")))
            if op == "thaw":
                if rec is None or rec.phase != Sp.FROZEN:
                    return {"ok": True}  # never frozen, or thawed already
                await self._thaw(rec, inst, "the target gave up")
                return {"ok": True}
            if op == "release":
                if rec is not None and rec.phase == Sp.RELEASED:
                    return {"ok": True}
                if rec is None or rec.phase != Sp.FROZEN:
                    raise migration.MigrationError(f"{iid} was not frozen for migration {mid}")
                await migration.fault("migrate.source.release")
                self.records.step(rec, Sp.RELEASED)
                self.changed.set()
                if inst is not None:
                    self.instances.pop(iid, None)
                    self._spawn(iid, inst.stop())
                return {"ok": True}
        raise migration.MigrationError(f"unknown op {op!r}")

    async def _source_of(self, iid: str, mid: int) -> dict[str, Any] | None:
        """The desired state's word that `mid` moves `iid` away from here, or None."""
        for attempt in range(2):
            spec = self.desired.get(iid)
            mig: dict[str, Any] = (spec or {}).get("migration") or {}
            if mig.get("role") == "source" and int(mig.get("id", -1)) == mid:
                return mig
            if attempt == 0:
                # The orchestrator's word may not have reached us yet: ask once more.
                with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
                    self._converge(await self._fetch_now())
        return None

    async def _freeze(
        self, iid: str, mid: int, rec: Record | None, inst: Instance | None, abort: bool
    ) -> dict[str, Any]:
        if inst is None:
            raise migration.MigrationError(f"instance {iid} does not run here")
        if rec is None:
            if abort:
                raise migration.MigrationError("the migration's deadline passed: not freezing")
            rec = Record(instance=iid, migration=mid, side="source", phase=Sp.SERVING)
        elif rec.phase == Sp.REFUSED:
            raise migration.MigrationError(rec.reason)
        # Written before the copy stops serving: a restarted agent must know that its
        # final state may be elsewhere, and never thaw it on its own. (Not reported at
        # once: a report now would take the CPU from the cutover.)
        self.records.step(rec, Sp.FROZEN)
        try:
            resp = await inst.call({"op": "freeze"})
            await asyncio.to_thread(inst.bring_down)
        except Exception:
            # Nothing left here: the copy serves on (the target hears a refusal).
            with contextlib.suppress(Exception):
                await self._thaw(rec, inst, "its freeze failed")
            raise
        await migration.fault("migrate.source.frozen")
        return {"ok": True, "state": resp["state"], "frozen_at": resp["frozen_at"]}

    async def _thaw(self, rec: Record, inst: Instance | None, why: str) -> None:
        """Serve again with the frozen copy (called with the instance's lock held)."""
        if inst is not None and inst.alive():
            await asyncio.to_thread(inst.bring_up)
            await inst.call({"op": "activate"})
            self._announce_later(inst)
            log.info("instance %s thawed: %s", rec.instance, why)
        else:
            log.warning("instance %s: its frozen copy died; it starts again", rec.instance)
        self.records.step(rec, Sp.SERVING)
        self.records.forget(rec.instance)  # last: a crash before this thaws again
        self.changed.set()

    async def _thaw_here(self, rec: Record, why: str) -> None:
        async with self._lock(rec.instance):
            if self.records.get(rec.instance) is rec and rec.phase == Sp.FROZEN:
                await self._thaw(rec, self.instances.get(rec.instance), why)

    async def _fetch_now(self) -> dict[str, Any]:
        r = await self.client.get(f"{self.api}/agents/{self.ctx.node}/desired")
        r.raise_for_status()
        state: dict[str, Any] = r.json()
        return state

    # ---------------------------------------------------------------- report

    async def _report(self) -> None:
        body = self._build_report()  # cheap: statuses and cached figures
        r = await self.client.post(f"{self.api}/agents/{self.ctx.node}/report", json=body)
        if r.status_code == 404:
            raise httpx.HTTPStatusError("node unknown", request=r.request, response=r)
        r.raise_for_status()

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
        migs = [r.report() for r in self.records if r.phase != Sp.SERVING]
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
        self._unnumbered = [(p.name, p.peer) for p in infos if p.ofport is None]
        self.ports_pending = bool(self._unnumbered)
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
        for gone in self._last_cpu.keys() - self.instances.keys():
            del self._last_cpu[gone]  # one entry per instance ever run, otherwise
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
