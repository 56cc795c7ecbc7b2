"""The target side of a migration: the client that drives a move in.

migration.py has the protocol, its tables and the crash windows; this module walks
the target's column of them:

    preparing  start a standby copy, pull and import a snapshot meanwhile (none
               for a function of registry.ONE_ROUND: its state moves whole at the freeze)
    freezing   (written first) ask the source to freeze; import the final state
    final      (written first) activate, raise the port, announce
    active     ask the source to release its frozen copy
    done       (or aborted, before `final`: the standby goes, the source thaws)

and resumes a move this agent was driving when it was restarted. The orchestrator
can call a move off (its deadline passed, or the migration left the desired state):
`hear` turns that into the move's abort event, which the waits on the source obey
until this side holds the final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from netfate.agent import migration
from netfate.agent.instances import Instance
from netfate.agent.migration import Record
from netfate.agent.migration import TargetPhase as Tp
from netfate.agent.migration_auth import Credentials
from netfate.agent.supervisor import Supervisor
from netfate.model.lifecycle import InstanceRole
from netfate.vnf import registry

log = logging.getLogger("netfate.agent")


class Window:
    """Where the time of one migration's downtime goes (frozen_at to active_at, what
    the orchestrator records), step by step, for the agent's log.

    The first step runs from the source's `frozen_at` (its wall clock) to the final
    state's arrival here: between two machines it carries their clock offset too.
    The others are this side's own (monotonic clock)."""

    def __init__(self, frozen_at: float, asked: float) -> None:
        """Made when the final state arrives; `asked`: perf_counter at the request."""
        now = time.perf_counter()
        self.frozen_at = frozen_at
        self.round_trip = now - asked
        self.steps = [("frozen -> answer here", migration.now() - frozen_at)]
        self.total: float | None = None
        self._last = now
        self.stamps: dict[str, float] = {}
        """Wall-clock stamps of the move's steps (bench/handover.py's breakdown)."""

    def mark(self, step: str, active_at: float | None = None) -> None:
        """`step` ended now; `active_at`: the wall-clock time it ended at, the last."""
        now = time.perf_counter()
        self.steps.append((step, now - self._last))
        self._last = now
        if active_at is not None:
            self.total = active_at - self.frozen_at

    def __str__(self) -> str:
        total = "" if self.total is None else f" {self.total * 1e3:.2f} ms"
        parts = ", ".join(f"{step} {s * 1e3:.2f}" for step, s in self.steps)
        return f"downtime{total} = {parts} (freeze round trip {self.round_trip * 1e3:.2f})"


def _take_stamps(stamps: dict[str, float], resp: Mapping[str, Any]) -> None:
    """The source's stamps an answer carries (migration.serve), for the log."""
    for k, v in (resp.get("stamps") or {}).items():
        with contextlib.suppress(TypeError, ValueError):
            stamps[str(k)[:32]] = float(v)


def _credentials(rec: Record) -> Credentials:
    return Credentials(rec.instance, rec.migration, rec.secret)


async def _timed(aw: Awaitable[Any]) -> float:
    """Seconds `aw` took."""
    t0 = time.perf_counter()
    await aw
    return time.perf_counter() - t0


class TargetSide:
    def __init__(
        self, sup: Supervisor, records: migration.Records, netns: str | None = None
    ) -> None:
        """`netns`: where connections to source agents are opened (the migration
        channel's namespace, agent/channel.py; None: the agent's own)."""
        self.sup = sup
        self.records = records
        self.netns = netns
        self.aborts: dict[int, asyncio.Event] = {}  # migration id -> called off

    def _abort(self, mid: int) -> asyncio.Event:
        return self.aborts.setdefault(mid, asyncio.Event())

    def hear(self, desired: Mapping[str, Mapping[str, Any]]) -> None:
        """What the desired state says of the moves in hand: one marked `abort` gives
        up, and so does one that ended without this agent's word (the instance was
        destroyed, say); unless it holds the final state."""
        live: set[int] = set()
        for spec in desired.values():
            mig = spec.get("migration") or {}
            if not mig:
                continue
            live.add(int(mig["id"]))
            if mig.get("role") == "target" and mig.get("abort"):
                self._abort(int(mig["id"])).set()
        for mid in [m for m in self.aborts if m not in live]:
            self.aborts.pop(mid).set()

    async def migrate_in(self, spec: dict[str, Any]) -> None:
        """Drive a move here, up to the point where this copy holds the final state;
        `complete` takes it from there (see migration.py)."""
        mig = spec["migration"]
        mid, iid = int(mig["id"]), str(spec["id"])
        endpoint = str(mig.get("peer_endpoint") or "")
        abort = self._abort(mid)
        old = self.sup.instances.pop(iid, None)
        if old is not None:  # a standby of an earlier try (this agent was restarted)
            await old.stop()
        rec = Record(
            instance=iid,
            migration=mid,
            side="target",
            phase=Tp.PREPARING,
            peer=endpoint,
            secret=str(mig.get("secret") or ""),
        )
        self.records.save(rec)
        inst: Instance | None = None
        stamps = {"in": migration.now()}
        starting: asyncio.Future[None] | None = None
        try:
            if abort.is_set():
                raise migration.Aborted("the orchestrator called the migration off")
            if not endpoint:
                raise migration.MigrationError(f"source node {mig.get('peer')} has no agent")
            # The standby starts (or a warm one is taken: its rule set goes in with
            # its configuration) while the source is asked for the snapshot: the
            # connection, its handshake and the source's export overlap the start.
            starting = asyncio.ensure_future(self.sup.start(spec, role=InstanceRole.STANDBY))
            async with migration.Peer(endpoint, _credentials(rec), netns=self.netns) as peer:
                stamps["authenticated"] = migration.now()
                ids = {"instance": iid, "migration": mid}
                # A function with a small state (registry.ONE_ROUND) is moved whole at
                # the freeze: no snapshot round trip before it.
                snap: dict[str, Any] | None = None
                if str(spec.get("function")) not in registry.ONE_ROUND:
                    snap = await migration.unless(abort, peer.call({"op": "snapshot", **ids}))
                    stamps["snapshot"] = migration.now()
                    _take_stamps(stamps, snap)
                await starting  # bounded; never half-built
                inst = self.sup.instances.get(iid)
                if inst is None:
                    raise migration.MigrationError(
                        f"standby copy did not start: {self.sup.failed.pop(iid, 'unknown')}"
                    )
                stamps["standby"] = migration.now()
                if snap is not None:
                    await inst.call({"op": "import", "state": snap["state"]})
                    stamps["imported"] = migration.now()
                await migration.fault("migrate.target.snapshot")
                self.records.step(rec, Tp.FREEZING)
                c0 = time.perf_counter()
                final = await migration.unless(abort, peer.call({"op": "freeze", **ids}))
                stamps["frozen_answer"] = migration.now()
                _take_stamps(stamps, final)
                window = Window(float(final["frozen_at"]), c0)
                window.stamps = stamps
                await migration.fault("migrate.target.freezing")
                await inst.call({"op": "import", "state": final["state"]})
                window.mark("import")
                self.records.step(rec, Tp.FINAL, frozen_at=float(final["frozen_at"]))
                window.mark("written")
                await migration.fault("migrate.target.final")
                await self.complete(rec, inst, peer, final["state"], window)
        except Exception as e:
            if starting is not None and not starting.done():
                with contextlib.suppress(Exception):
                    await starting  # bounded: then it is stopped below, whole
            if inst is None and starting is not None:
                inst = self.sup.instances.get(iid)  # the copy started for this move
            if rec.phase in (Tp.PREPARING, Tp.FREEZING):
                reason = str(e) or type(e).__name__
                # A refusal is an answer: the source did not freeze.
                await self._abort_in(rec, inst, reason, froze=not isinstance(e, migration.Refused))
            else:  # holds the final state: complete() reported what it could not do
                log.error("migration %s of %s: %s", mid, iid, e)

    async def resume(self, rec: Record) -> None:
        """A move this agent was driving when it was restarted (its record survived)."""
        inst = self.sup.instances.get(rec.instance)
        if rec.phase == Tp.FREEZING:
            await self._abort_in(
                rec, inst, "the target agent restarted while the final state was in flight"
            )
        elif rec.phase == Tp.FINAL and (inst is None or not inst.alive()):
            # Never activated: the source's frozen copy holds the state and serves again.
            await self._abort_in(rec, inst, "the standby copy holding the final state died")
        else:
            await self.complete(rec, inst, None)

    async def complete(
        self,
        rec: Record,
        inst: Instance | None,
        peer: migration.Peer | None,
        state: dict[str, Any] | None = None,
        window: Window | None = None,
    ) -> None:
        """From `final` to `done`: nothing here is undone, whatever the source or the
        link do now (the source's copy is frozen and goes when the move is recorded).
        `inst` is None only in `active` when the copy died since: converge restarts it.
        `window`: the downtime so far, when this agent drove the move from its start."""
        if rec.phase == Tp.FINAL and inst is not None:
            c0 = time.perf_counter()
            # Both at once: each waits on another process or thread. A frame the port
            # lets in before the function is active is lost, as it was before the port
            # was up; nothing arrives that the copy here cannot take.
            done = await asyncio.gather(
                _timed(inst.call({"op": "activate"})),
                _timed(inst.bring_up_async()),
                return_exceptions=True,  # both end before either failure is raised
            )
            active_at = migration.now()
            activated, raised = done
            if isinstance(activated, BaseException):
                raise activated
            if isinstance(raised, BaseException):
                raise raised
            if window is not None:
                window.mark(
                    f"activate ({activated * 1e3:.2f}) with port up and announce "
                    f"({raised * 1e3:.2f})",
                    active_at,
                )
            if inst.role == InstanceRole.STANDBY:  # active already: saved so, then killed
                inst.promote()
            inst.save()
            self.records.step(rec, Tp.ACTIVE, active_at=active_at)
            if window is not None:
                log.info("cutover of %s: %s", rec.instance, window)
            else:
                log.info(
                    "cutover of %s: activate, port up and announce %.2f ms",
                    rec.instance,
                    (time.perf_counter() - c0) * 1e3,
                )
            # Announce again from now on, not after the release round trip: the
            # first announcement can be lost while the switch still sees the new
            # port as down, and until one arrives traffic goes to the old place.
            self.sup.announce_later(inst)
        if state is not None:  # measured once serving: a large state takes a while
            rec.state_bytes = len(json.dumps(state))
        note = ""
        ids = {"instance": rec.instance, "migration": rec.migration, "op": "release"}
        try:
            if peer is not None:
                await peer.call(ids, timeout=3.0)
            else:
                async with migration.Peer(
                    rec.peer, _credentials(rec), timeout=3.0, netns=self.netns
                ) as again:
                    await again.call(ids, timeout=3.0)
        except Exception as e:  # the source died or the link is cut: the move stands
            note = f"the source did not confirm the release ({e}); it stops its frozen copy "
            note += "when the orchestrator records the move"
            log.warning("migration %s of %s: %s", rec.migration, rec.instance, note)
        await migration.fault("migrate.target.released")
        if inst is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(inst.limit)
            if inst.from_standby:  # the migration's record says so (issue 15)
                note = "the copy here took a warm standby (pre-deployed)" + (
                    f"; {note}" if note else ""
                )
        self.records.step(rec, Tp.DONE, reason=note)
        log.info("migrated %s in: %s", rec.instance, rec.report())
        if window is not None and rec.active_at is not None:
            st = {**window.stamps, "active": rec.active_at, "done": migration.now()}
            log.info("migration stamps of %s: %s", rec.instance,
                     ", ".join(f"{k} at {v:.4f}" for k, v in st.items()))  # fmt: skip

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
            self.sup.instances.pop(rec.instance, None)
            await inst.stop()
        if froze and rec.peer:
            try:
                async with migration.Peer(
                    rec.peer, _credentials(rec), timeout=2.0, netns=self.netns
                ) as peer:
                    await peer.call(
                        {"op": "thaw", "instance": rec.instance, "migration": rec.migration},
                        timeout=2.0,
                    )
            except Exception as e:
                log.warning("could not ask the source to thaw %s: %s", rec.instance, e)
        self.records.step(rec, Tp.ABORTED, reason=reason[:2000])
