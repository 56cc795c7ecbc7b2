"""The instances of this node, kept as a supervisor keeps its children.

What runs here (`instances`), what is under way (`tasks`: one start, stop, restart,
move or thaw at a time per instance) and what could not start (`failed`). Starting
and stopping run as tasks so that a slow instance never delays the agent's
heartbeat; each task that ends sets `changed`, so the agent reports at once.

    start        namespace, process (forked by the zygote), wiring, limits
    stop         politely, then SIGKILL; every trace removed (instances.py)
    restart      a copy that died: stop what is left, start again
    reconfigure  in place if the function can, else export, stop, start, import
    activate     the standby copy here is the instance (the orchestrator says so)
    start_from   a create that takes a warm standby of its function (standbys.py)
    adopt        what a previous run of this agent left running (instances.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from netfate.agent.instances import (
    Instance,
    NodeContext,
    Zygote,
    adopt_all,
    control_call,
    vet,
)
from netfate.agent.standbys import Pool, Standby
from netfate.host import netns
from netfate.host.private import write_private
from netfate.model.lifecycle import InstanceRole

log = logging.getLogger("netfate.agent")

# Re-announcements after an instance starts serving (seconds after it): dense at
# first, then sparse (RFC 5227 announces more than once).
ANNOUNCE_AT = (0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Supervisor:
    def __init__(self, ctx: NodeContext, changed: asyncio.Event) -> None:
        self.ctx = ctx
        self.changed = changed
        self.instances: dict[str, Instance] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: dict[str, str] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.pool = Pool(ctx, changed)
        self.heard_at = 0.0
        """When the agent last heard a desired state (time.time()): the start of a
        take's stamps in the log (bench/lifecycle.py's breakdown)."""
        self.ports_changed: Callable[[tuple[str, str] | None], Coroutine[Any, Any, None]] | None = (
            None
        )
        """Report the bridge's ports again (the agent's Figures.refresh_ports), with
        the (port, label) just relabelled if known."""

    async def adopt(self) -> None:
        """Take over what a previous run of this agent left running, but only what it
        would start now: an instance whose function left the registry, or whose
        configuration its schema now refuses, is stopped and reported failed. Warm
        standbys a previous run left are removed (standbys.py: none is adopted)."""
        for sid in await asyncio.to_thread(self.pool.clear_leftovers):
            log.info("removed warm standby %s of a previous run", sid)
        for iid, inst in (await asyncio.to_thread(adopt_all, self.ctx)).items():
            try:
                inst.vet()
            except ValueError as e:
                log.warning("not adopting instance %s: %s", iid, e)
                self.failed[iid] = f"refused at adoption: {e}"[:500]
                await inst.stop()
                continue
            self.instances[iid] = inst

    def start_zygote(self, z: Zygote) -> None:
        """Started in the background: until it is ready, instances start as new
        interpreters."""

        async def start() -> None:
            if not await z.start_async():
                log.warning("fork server did not start; instances start as new interpreters")

        self.keep(asyncio.create_task(start()))

    def keep(self, task: asyncio.Task[None]) -> None:
        """Hold a background task until it ends (the loop keeps only weak references)."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def spawn(self, iid: str, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as the one task under way for instance `iid`."""
        task = asyncio.create_task(coro)
        self.tasks[iid] = task

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.pop(iid, None)
            self.changed.set()
            if not t.cancelled() and t.exception() is not None:
                log.error("task for %s failed: %s", iid, t.exception())

        task.add_done_callback(done)

    def announce_later(self, inst: Instance) -> None:
        """Announce the address again (RFC 5227 announces more than once): the first
        gratuitous ARP can arrive before the switch polls a port it just added, and
        after a migration, replies of the old copy still in flight on a delayed link
        can teach learning switches the old place again. Dense at first, then sparse.
        """

        async def repeat() -> None:
            previous = 0.0
            for at in ANNOUNCE_AT:
                await asyncio.sleep(at - previous)
                previous = at
                if inst.id not in self.instances or inst.role != InstanceRole.ACTIVE:
                    return
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(inst.announce)

        self.keep(asyncio.create_task(repeat()))

    # ---------------------------------------------------------------- the actions

    async def start(self, spec: dict[str, Any], role: InstanceRole = InstanceRole.ACTIVE) -> None:
        """Start a copy; on failure nothing of it is left, and `failed` says why. A
        copy takes a warm standby of its function when one is ready here (a migration
        target's standby copy too: its port stays down until the cut-over)."""
        sb = self.pool.take(str(spec.get("function")))
        if sb is not None:
            await self.start_from(sb, spec, role)
            return
        inst = Instance(spec=spec, ctx=self.ctx, role=role)
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(inst.vet)  # before a namespace is made for it
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
        if role == InstanceRole.ACTIVE:
            self.announce_later(inst)
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

    async def start_from(
        self, sb: Standby, spec: dict[str, Any], role: InstanceRole = InstanceRole.ACTIVE
    ) -> None:
        """Start a copy in a warm standby: its namespace and process become the
        instance's; what is left is the wiring and the configuration (standbys.py)."""
        heard = self.heard_at
        inst = Instance(spec=spec, ctx=self.ctx, role=role, from_standby=True, port_name=sb.port)
        inst.pid = sb.pid
        inst._rtnl, inst._garp = sb.sockets()
        t0 = time.perf_counter()
        try:
            inst.vet()  # the configuration, as a cold start checks it
            if netns.exists(inst.netns):  # of a crashed earlier try (its veth goes with it)
                await asyncio.to_thread(netns.remove, inst.netns)
            # The instance's own name from now on: whatever finds an instance's
            # namespace by its name (tests, demos, the migration) finds this one.
            netns.rename(sb.netns, inst.netns)
            config = json.dumps(spec.get("config") or {})
            cfg = write_private(inst.path(".config"), config)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(inst.control + ".ready")
            with contextlib.suppress(OSError):
                sb.path(".log").rename(inst.path(".log"))  # the process keeps writing it
            inst.path(".pid").write_text(str(inst.pid))
            inst.save()
            sb.handed_over()
            take = {"op": "take", "instance": inst.id, "control": inst.control,
                    "config_file": str(cfg), "standby": role == InstanceRole.STANDBY}  # fmt: skip
            tt = time.perf_counter()
            marks: dict[str, float] = {}

            async def timed(name: str, aw: Any) -> None:
                await aw
                marks[name] = (time.perf_counter() - tt) * 1e3

            async def configure() -> None:
                await timed("take", control_call(sb.control, take, timeout=5.0))
                await inst.wait_ready()

            async def attach() -> None:
                await asyncio.to_thread(inst.attach)
                # Its port's new label, reported now (not waited for), not once the
                # process is ready: the controller moves the steering to the port
                # only once the view gives it to the instance, and a move in one
                # round (registry.ONE_ROUND) cuts over soon after the take.
                if self.ports_changed is not None:
                    label = (str(inst.port), f"instance:{inst.id}")
                    self.keep(asyncio.create_task(self.ports_changed(label)))

            # The wiring needs only the namespace: it runs while the process takes its
            # configuration (as a cold start wires while the interpreter starts).
            await asyncio.gather(timed("attach", attach()), timed("ready", configure()))
            t1 = time.perf_counter()
            serving = time.time()
            await asyncio.to_thread(inst.limit, sb.cgroup)
        except Exception as e:
            detail = str(e) or type(e).__name__
            log.error("instance %s failed to start from standby %s: %s", inst.id, sb.id, detail)
            self.failed[inst.id] = detail[:2000]
            await inst.stop()
            await sb.stop()  # not taken after all (still named as the standby): killed
            self.pool.refill()
            return
        self.instances[inst.id] = inst
        if role == InstanceRole.ACTIVE:
            self.announce_later(inst)
        self.pool.refill()  # now that it serves: the refill does not slow this take
        log.info(
            "instance %s %s in %.0f ms from warm standby %s (files %.0f, then take %.0f, "
            "attach %.0f, ready %.0f; pid %s, %s; heard at %.4f, serving at %.4f, done at %.4f)",
            inst.id, role, (t1 - t0) * 1e3, sb.id, (tt - t0) * 1e3, marks.get("take", 0),
            marks.get("attach", 0), marks.get("ready", 0), inst.pid, inst.limits, heard, serving,
            time.time(),
        )  # fmt: skip

    def stop(self, inst: Instance) -> None:
        """Stop a copy here (not desired here, or handed over to a migration target)."""
        self.instances.pop(inst.id, None)
        self.spawn(inst.id, inst.stop())

    def restart(self, iid: str, spec: dict[str, Any]) -> None:
        """The copy here died: start it again."""
        log.warning("instance %s died; starting it again", iid)
        old = self.instances.pop(iid)

        async def restart() -> None:
            await old.stop()
            await self.start(spec)

        self.spawn(iid, restart())

    async def reconfigure(self, inst: Instance, spec: dict[str, Any]) -> None:
        """A new configuration: in place if the function can take it, else a restart
        that carries the function's state across (export, stop, start, import)."""
        config = spec.get("config") or {}
        try:
            vet(spec, self.ctx.image_dir)
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
        await self.start(spec)
        new = self.instances.get(inst.id)
        if new is not None:
            with contextlib.suppress(Exception):
                await new.call({"op": "import", "state": state})
            log.info("instance %s restarted with its new configuration and its state", inst.id)

    async def activate(self, inst: Instance, spec: dict[str, Any]) -> None:
        """The orchestrator says the standby copy here is the one (a move it recorded
        without this agent's word): serve with it."""
        await inst.call({"op": "activate"})
        await inst.bring_up_async()
        inst.promote()
        inst.spec = spec
        inst.save()
        self.announce_later(inst)
