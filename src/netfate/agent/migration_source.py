"""The source side of a migration: the server a target agent pulls an instance from.

migration.py has the protocol, its tables and the crash windows; this module walks
the source's column of them, one request at a time (the wire is `migration.serve`):

    snapshot  the state, while the copy here keeps serving
    freeze    (`frozen` written first) stop serving, port down, the final state
    thaw      the target gave up before holding the final state: serve again
    release   the target serves: stop the frozen copy (`released`)

It answers only a peer that proved it holds the migration's secret (the handshake of
migration_auth.py, with `secret_of`), and only for an instance the desired state
moves away from here under that migration id (asking the orchestrator once more if
its word has not arrived yet);
thaw and release also answer on this side's record alone, since the orchestrator may
have recorded the outcome first. Freeze, thaw and release of one instance never
interleave (one lock per instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from netfate.agent import migration
from netfate.agent.instances import Instance
from netfate.agent.migration import Record
from netfate.agent.migration import SourcePhase as Sp
from netfate.agent.supervisor import Supervisor

log = logging.getLogger("netfate.agent")

Desired = Mapping[str, Mapping[str, Any]]


class SourceSide:
    def __init__(
        self,
        sup: Supervisor,
        records: migration.Records,
        desired: Callable[[], Desired],
        refresh: Callable[[], Awaitable[None]],
    ) -> None:
        """`desired`: the desired state as last heard; `refresh`: hear it again now
        (and converge to it)."""
        self.sup = sup
        self.records = records
        self.desired = desired
        self.refresh = refresh
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, iid: str) -> asyncio.Lock:
        return self._locks.setdefault(iid, asyncio.Lock())

    def prune(self, desired: Desired) -> None:
        """Forget the locks of instances no longer desired here (and not held)."""
        for iid in [i for i, lk in self._locks.items() if i not in desired and not lk.locked()]:
            del self._locks[iid]

    def refuse(self, iid: str, mid: int) -> None:
        """Past the deadline and not frozen: never now (the orchestrator fails it)."""
        self.records.save(
            Record(
                instance=iid,
                migration=mid,
                side="source",
                phase=Sp.REFUSED,
                reason="the deadline passed before the target asked for the freeze",
            )
        )
        self.sup.changed.set()

    async def secret_of(self, iid: str, mid: int) -> str | None:
        """The secret of migration `mid` of `iid` away from here: the desired state's,
        or this side's record's (thaw and release may come after the orchestrator
        recorded the outcome)."""
        mig = await self._source_of(iid, mid)
        if mig is not None and mig.get("secret"):
            return str(mig["secret"])
        rec = self._record(iid, mid)
        return rec.secret if rec is not None and rec.secret else None

    async def on_peer(self, req: dict[str, Any]) -> dict[str, Any]:
        """One request of a target agent (`migration.serve` calls it)."""
        iid, mid, op = str(req["instance"]), int(req["migration"]), str(req["op"])
        rec = self._record(iid, mid)
        mig = await self._source_of(iid, mid)
        if mig is None and (rec is None or op not in ("thaw", "release")):
            # thaw and release also answer on the record alone: the orchestrator may
            # have recorded the outcome before this request arrived.
            raise migration.MigrationError(f"no migration {mid} of {iid} away from here")
        async with self._lock(iid):
            rec = self._record(iid, mid)
            inst = self.sup.instances.get(iid)
            if op == "snapshot":
                if rec is not None and rec.phase == Sp.REFUSED:
                    raise migration.MigrationError(rec.reason)
                if inst is None:
                    raise migration.MigrationError(f"instance {iid} does not run here")
                await migration.fault("migrate.source.snapshot")
                t0 = migration.now()
                state = (await inst.call({"op": "export"}))["state"]
                return {"ok": True, "state": state,
                        "stamps": {"src_asked": t0, "src_exported": migration.now()}}  # fmt: skip
            if op == "freeze":
                return await self._freeze(iid, mid, rec, inst, mig or {})
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
                self.sup.changed.set()
                if inst is not None:
                    self.sup.stop(inst)
                return {"ok": True}
        raise migration.MigrationError(f"unknown op {op!r}")

    def _record(self, iid: str, mid: int) -> Record | None:
        """This side's record of migration `mid` of `iid`, if any."""
        rec = self.records.get(iid)
        if rec is not None and (rec.side != "source" or rec.migration != mid):
            return None
        return rec

    async def _source_of(self, iid: str, mid: int) -> Mapping[str, Any] | None:
        """The desired state's word that `mid` moves `iid` away from here, or None."""
        for attempt in range(2):
            spec = self.desired().get(iid)
            mig: Mapping[str, Any] = (spec or {}).get("migration") or {}
            if mig.get("role") == "source" and int(mig.get("id", -1)) == mid:
                return mig
            if attempt == 0:
                # The orchestrator's word may not have reached us yet: ask once more.
                await self.refresh()
        return None

    async def _freeze(
        self, iid: str, mid: int, rec: Record | None, inst: Instance | None, mig: Mapping[str, Any]
    ) -> dict[str, Any]:
        if inst is None:
            raise migration.MigrationError(f"instance {iid} does not run here")
        if rec is None:
            if mig.get("abort"):
                raise migration.MigrationError("the migration's deadline passed: not freezing")
            rec = Record(
                instance=iid,
                migration=mid,
                side="source",
                phase=Sp.SERVING,
                secret=str(mig.get("secret") or ""),
            )
        elif rec.phase == Sp.REFUSED:
            raise migration.MigrationError(rec.reason)
        # Written before the copy stops serving: a restarted agent must know that its
        # final state may be elsewhere, and never thaw it on its own. (Not reported at
        # once: a report now would take the CPU from the cutover.)
        asked = migration.now()
        self.records.step(rec, Sp.FROZEN)
        try:
            c0 = time.perf_counter()
            resp = await inst.call({"op": "freeze"})
            c1, answered = time.perf_counter(), migration.now()
            await inst.bring_down_async()
            c2 = time.perf_counter()
        except Exception:
            # Nothing left here: the copy serves on (the target hears a refusal).
            with contextlib.suppress(Exception):
                await self._thaw(rec, inst, "its freeze failed")
            raise
        await migration.fault("migrate.source.frozen")
        # Logged once the answer is on its way (the server writes it before it next
        # yields): the downtime runs until the target serves.
        asyncio.get_running_loop().call_soon(
            log.info,
            "froze %s for migration %s: freeze %.2f ms (frozen -> answer here %.2f), "
            "port down %.2f ms",
            iid,
            mid,
            (c1 - c0) * 1e3,
            (answered - float(resp["frozen_at"])) * 1e3,
            (c2 - c1) * 1e3,
        )
        stamps = {"src_freeze_asked": asked, "src_port_down": migration.now()}
        return {
            "ok": True,
            "state": resp["state"],
            "frozen_at": resp["frozen_at"],
            "stamps": stamps,
        }

    async def _thaw(self, rec: Record, inst: Instance | None, why: str) -> None:
        """Serve again with the frozen copy (called with the instance's lock held)."""
        if inst is not None and inst.alive():
            await inst.bring_up_async()
            await inst.call({"op": "activate"})
            self.sup.announce_later(inst)
            log.info("instance %s thawed: %s", rec.instance, why)
        else:
            log.warning("instance %s: its frozen copy died; it starts again", rec.instance)
        self.records.step(rec, Sp.SERVING)
        self.records.forget(rec.instance)  # last: a crash before this thaws again
        self.sup.changed.set()

    async def thaw(self, rec: Record, why: str) -> None:
        """Serve again with the frozen copy, if the record still says frozen."""
        async with self._lock(rec.instance):
            if self.records.get(rec.instance) is rec and rec.phase == Sp.FROZEN:
                await self._thaw(rec, self.sup.instances.get(rec.instance), why)
