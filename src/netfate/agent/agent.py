"""The agent loop: poll desired state, converge, report. Forever, and idempotently.

    register ──▶ ┌─ GET desired (long-poll on the node's revision, ≤ heartbeat) ─┐
                 │  converge: start missing, stop extra, drive migrations in     │
                 └─ POST report (also the heartbeat) ◀───────────────────────────┘

This class is the wiring; each part is its own module:

    poll.py              the orchestrator's agent API (register, desired, report)
    converge.py          what to do, decided without I/O (desired vs what runs here)
    supervisor.py        the instances here: start, stop, restart, reconfigure, adopt
    standbys.py          warm standbys kept ready as the pre-deploy policy says
    migration_target.py  a move in: the client that pulls an instance here
    migration_source.py  a move away: the server a target pulls from
    migration.py         the protocol both sides speak, its tables and records
    channel.py           where its sockets live (testbed: the node's namespace)
    report.py            the report body and the figures gathered for it
    metrics.py           those figures for Prometheus (--metrics, loopback only)

Starting and stopping run as tasks so a slow instance never delays the heartbeat.
When the orchestrator is away the instances keep running and the agent retries
with backoff; when the agent itself restarts it adopts what still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx

from netfate import faults
from netfate.agent import channel, converge, migration
from netfate.agent import metrics as agent_metrics
from netfate.agent.instances import NodeContext
from netfate.agent.migration_source import SourceSide
from netfate.agent.migration_target import TargetSide
from netfate.agent.poll import OrchestratorLink
from netfate.agent.report import Figures, report_body
from netfate.agent.supervisor import Supervisor
from netfate.host.private import private_dir
from netfate.metrics import exposition

log = logging.getLogger("netfate.agent")

LONG_POLL_MAX_S = 30.0
"""The longest wait GET /agents/NODE/desired accepts (orchestrator/api/routes.py)."""


@dataclass(frozen=True)
class AgentConfig:
    ctx: NodeContext
    orchestrator: str
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    advertise_host: str | None = None
    migration_netns: str | None = None
    """The namespace the migration channel's sockets are made in (agent/channel.py):
    the testbed node's, so migrations cross its emulated links; None: the agent's."""
    heartbeat_s: float = 1.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    """Serve /metrics on this loopback port (0: any free one); None: no metrics."""
    verify: ssl.SSLContext | bool = True
    """How the orchestrator's certificate is checked (clihelp.client_tls)."""
    token: str | None = None
    """This node's agent token (it acts for this node only); None: unauthenticated,
    which an orchestrator refuses (401)."""
    own_zygote: bool = True
    """Start and stop `ctx.zygote` (False: a group's, shared by its nodes, group.py)."""
    watch_ports: bool = True
    """Run this node's own `ovsdb-client monitor` (False: the group's one watch
    for all its bridges calls `figures.port_event`)."""


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.ctx = cfg.ctx
        self.orchestrator = OrchestratorLink(cfg.orchestrator, cfg.ctx.node, cfg.verify, cfg.token)
        self.changed = asyncio.Event()  # something here changed: report at once
        self.sup = Supervisor(cfg.ctx, self.changed)
        # Each instance's migration phase here, on disk (see migration.py's tables).
        self.records = migration.Records(cfg.ctx.state_dir / "migrations")
        self.target = TargetSide(self.sup, self.records, cfg.migration_netns)
        self.source = SourceSide(self.sup, self.records, lambda: self.desired, self._refresh)
        self.figures = Figures(self.sup)
        self.sup.ports_changed = self.figures.refresh_ports
        self.desired: dict[str, dict[str, Any]] = {}
        self.revision = -1
        self.endpoint = ""
        self.registered = asyncio.Event()  # set once the orchestrator took the registration
        self.register_gate: asyncio.Semaphore | None = None
        """Held for each registration attempt (a group's: few of its nodes at once)."""
        self.metrics: exposition.MetricsServer | None = None

    async def run(self) -> None:
        private_dir(self.ctx.state_dir)  # configurations with secrets: 0700
        faults.enable(self.ctx.state_dir / "faults")  # only under NETFATE_FAULTS=1 (tests)
        await self.sup.adopt()
        self.records.load()
        where = channel.Channel(
            self.cfg.listen_host,
            self.cfg.listen_port,
            self.cfg.migration_netns,
            self.cfg.advertise_host,
        )
        server = await migration.serve(self.source.on_peer, self.source.secret_of, where)
        self.endpoint = where.endpoint(server.sockets[0].getsockname()[1])
        if self.cfg.metrics_port is not None:
            reg = agent_metrics.registry(self.ctx.node, self.figures)
            self.metrics = exposition.serve(reg, self.cfg.metrics_host, self.cfg.metrics_port)
            log.info("metrics on http://%s:%d/metrics", self.cfg.metrics_host, self.metrics.port)
        try:
            await self._register()
            if self.ctx.zygote is not None and self.cfg.own_zygote:
                # Started after registration, so it never delays a node coming up.
                self.sup.start_zygote(self.ctx.zygote)
            loops = [
                asyncio.create_task(self._report_loop()),
                asyncio.create_task(self.figures.loop(self.cfg.heartbeat_s)),
                asyncio.create_task(self.sup.pool.loop()),
            ]
            if self.cfg.watch_ports:
                loops.append(asyncio.create_task(self.figures.watch_ports()))
            try:
                await self._poll_loop()
            finally:
                for task in loops:
                    task.cancel()
        finally:
            await self.sup.pool.close()  # warm standbys are the agent's own: they go
            server.close()
            if self.metrics is not None:
                self.metrics.close()
            await self.orchestrator.aclose()
            if self.ctx.zygote is not None and self.cfg.own_zygote:
                self.ctx.zygote.stop()

    # ---------------------------------------------------------------- the orchestrator

    async def _register(self) -> None:
        delay = 0.1
        while True:
            try:
                async with self.register_gate or contextlib.nullcontext():
                    r = await self.orchestrator.register(self.endpoint)
                    if r.status_code == 200:
                        log.info("registered node %s, migrations on %s", self.ctx.node,
                                 self.endpoint)  # fmt: skip
                        self.converge(r.json())
                        await self._report()
                        self.registered.set()
                        return
                log.error("registration refused: %s %s", r.status_code, r.text[:300])
                if r.status_code in (401, 403):
                    log.error("this agent needs node %s's own token (--token-file or "
                              "NETFATE_TOKEN)", self.ctx.node)  # fmt: skip
            except (httpx.HTTPError, OSError) as e:
                log.warning("orchestrator not reachable yet: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _poll_loop(self) -> None:
        backoff = 0.2
        while True:
            try:
                if self.converge(await self.orchestrator.desired(self.revision, self._poll_wait())):
                    self.changed.set()
                backoff = 0.2
            except (httpx.HTTPError, OSError, ValueError) as e:
                log.warning("orchestrator unreachable (%s); retrying in %.1f s", e, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                if isinstance(e, httpx.HTTPStatusError) and e.response.status_code == 404:
                    await self._register()

    def _poll_wait(self) -> float:
        """The long poll's wait: a heartbeat, at most what the orchestrator accepts (a
        1,000-node testbed's 33 s heartbeat was refused with 422 at every poll)."""
        return min(self.cfg.heartbeat_s, LONG_POLL_MAX_S)

    async def _refresh(self) -> None:
        """Hear the desired state now (the migration server's doubt), if it can."""
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            self.converge(await self.orchestrator.desired())

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

    async def _report(self) -> None:
        # Cheap: statuses and cached figures.
        body = report_body(self.sup, self.figures, self.desired, self.records)
        await self.orchestrator.report(body)

    # ---------------------------------------------------------------- converge

    def converge(self, state: dict[str, Any]) -> bool:
        """Act on a desired state: the decision is converge.decide's, the acts are
        tasks of the parts (none of them waits here). True: report now; False when
        every act is a start a warm standby here takes (Pool.will_take): its task
        reports it running within milliseconds, and a report of it "starting" sent
        meanwhile would only compete with the take and delay that report."""
        self.sup.heard_at = time.time()
        self.revision = int(state.get("revision", -1))
        desired = {str(s["id"]): s for s in state.get("instances", [])}
        self.desired = desired
        self.target.hear(desired)
        sup = self.sup
        sup.pool.plan(state.get("predeploy"))
        local = {
            iid: converge.Local(inst.role, inst.alive(), inst.spec.get("config") or {})
            for iid, inst in sup.instances.items()
        }
        records = {rec.instance: rec for rec in self.records}
        acts = converge.decide(desired, local, sup.tasks, sup.failed, records)
        starts = [str(a.spec.get("function")) for a in acts if isinstance(a, converge.Start)]
        report_now = not (acts and len(starts) == len(acts) and sup.pool.will_take(starts))
        for act in acts:
            match act:
                case converge.Forget(rec):
                    self.records.forget(rec.instance)
                case converge.Thaw(rec):
                    why = "the migration ended without a move"
                    sup.spawn(rec.instance, self.source.thaw(rec, why))
                case converge.Resume(rec):
                    sup.spawn(rec.instance, self.target.resume(rec))
                case converge.Refuse(iid, mid):
                    self.source.refuse(iid, mid)
                case converge.MigrateIn(iid, spec):
                    sup.spawn(iid, self.target.migrate_in(spec))
                case converge.Start(iid, spec):
                    sup.spawn(iid, sup.start(spec))
                case converge.Activate(iid, spec):
                    sup.spawn(iid, sup.activate(sup.instances[iid], spec))
                case converge.Reconfigure(iid, spec):
                    sup.spawn(iid, sup.reconfigure(sup.instances[iid], spec))
                case converge.Restart(iid, spec):
                    sup.restart(iid, spec)
                case converge.Stop(iid):
                    sup.stop(sup.instances[iid])
                case converge.ClearFailure(iid):
                    del sup.failed[iid]
        self.source.prune(desired)
        return report_now
