"""What an agent does to converge its node: a decision, without I/O.

`decide` takes what the orchestrator wants here (the desired state), what runs here,
what is under way, what failed and this agent's migration records, and returns the
actions that bring the node closer, in the order the agent takes them:

1. each migration record, as migration.py's SETTLE tables say given what the desired
   state says of its migration now (open, over, gone): forget it, thaw the frozen
   copy, or resume a move this agent drove before it restarted;
2. a move away that is past its deadline and never froze: refuse it from now on;
3. each desired instance not busy: a standby spec starts a move in (unless a record
   of that migration exists: settled above); a copy frozen for a move or handed over
   is left alone (1 decides); else start it, activate the standby here, apply a new
   configuration, or start again a copy that died;
4. stop what is not desired here; forget failures of what is not desired either.

One action per instance at most (one task each: `busy`); an action taken earlier in
the list counts for the later ones, as if it had already been taken. A start that
failed is not tried again while the instance stays desired (its failure is
reported). The agent turns the actions into tasks (agent.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from netfate.agent.migration import Record, Settle
from netfate.agent.migration import SourcePhase as Sp
from netfate.model.lifecycle import InstanceRole

Spec = dict[str, Any]  # one instance's desired state (poll.py)


@dataclass(frozen=True)
class Local:
    """A copy that runs here, as the decision sees it."""

    role: InstanceRole
    alive: bool
    """Its process runs (not a zombie, not a reused pid)."""
    config: Mapping[str, Any]
    """The configuration it runs with (its spec's `config`, {} when none)."""


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class _OnRecord:
    record: Record


@dataclass(frozen=True)
class _OnSpec:
    instance: str
    spec: Spec


@dataclass(frozen=True)
class _OnInstance:
    instance: str


class Forget(_OnRecord):
    """Drop a migration record (settled: forget, or restart: a move in starts afresh)."""


class Thaw(_OnRecord):
    """The migration that froze the copy here ended without a move: serve again."""


class Resume(_OnRecord):
    """A move in this agent drove before it restarted: abort it or complete it."""


@dataclass(frozen=True)
class Refuse:
    """A move away past its deadline, never frozen: refuse to freeze from now on."""

    instance: str
    migration: int


class MigrateIn(_OnSpec):
    """Start a standby copy here and pull the instance from its source."""


class Start(_OnSpec):
    """Start a copy that is desired here and runs nowhere here."""


class Activate(_OnSpec):
    """The standby copy here is the one (the orchestrator recorded a move)."""


class Reconfigure(_OnSpec):
    """The copy here runs with another configuration than the desired one."""


class Restart(_OnSpec):
    """The copy here died: start it again."""


class Stop(_OnInstance):
    """The copy here is not desired here."""


class ClearFailure(_OnInstance):
    """A start that failed, of an instance no longer desired here."""


Action = (
    Forget
    | Thaw
    | Resume
    | Refuse
    | MigrateIn
    | Start
    | Activate
    | Reconfigure
    | Restart
    | Stop
    | ClearFailure
)


def _migration(spec: Spec | None) -> Mapping[str, Any]:
    return (spec or {}).get("migration") or {}


def situation(rec: Record, desired: Mapping[str, Spec]) -> str:
    """What the desired state says of a record's migration (migration.py's SETTLE
    tables): `open` (still there, on this side), `over` (gone from an instance still
    desired here) or `gone` (the instance is not desired here)."""
    spec = desired.get(rec.instance)
    if spec is None:
        return "gone"
    mig = _migration(spec)
    return "open" if mig.get("id") == rec.migration and mig.get("role") == rec.side else "over"


def decide(
    desired: Mapping[str, Spec],
    local: Mapping[str, Local],
    busy: Collection[str],
    failed: Collection[str],
    records: Mapping[str, Record],
) -> list[Action]:
    """The actions that converge this node (see the module's docstring).

    `desired`: instance id -> spec (role, config, migration); `local`: the copies
    here; `busy`: instances with a task under way; `failed`: instances whose start
    failed; `records`: this agent's migration records by instance."""
    actions: list[Action] = []
    busy = set(busy)
    records = dict(records)

    # 1. migration records
    for iid, rec in list(records.items()):
        if iid in busy:
            continue  # a move, thaw or stop of it is under way
        settle = rec.settle(situation(rec, desired))
        if settle is Settle.WAIT:
            continue
        if settle is Settle.FORGET or settle is Settle.RESTART:
            del records[iid]  # RESTART: step 3 starts the move afresh
            actions.append(Forget(rec))
        elif settle is Settle.THAW:
            busy.add(iid)
            actions.append(Thaw(rec))
        else:  # ABORT, COMPLETE
            busy.add(iid)
            actions.append(Resume(rec))

    # 2. moves away past their deadline (a refused record changes nothing below)
    for iid, spec in desired.items():
        mig = _migration(spec)
        if mig.get("role") == "source" and mig.get("abort") and iid not in records:
            actions.append(Refuse(iid, int(mig["id"])))

    # 3. desired instances
    for iid, spec in desired.items():
        if iid in busy:
            continue
        record = records.get(iid)
        mig = _migration(spec)
        if spec["role"] == InstanceRole.STANDBY:
            if mig.get("role") == "target" and (record is None or record.migration != mig["id"]):
                busy.add(iid)
                actions.append(MigrateIn(iid, spec))
            continue
        if record is not None and record.phase in (Sp.FROZEN, Sp.RELEASED):
            continue  # frozen for a move, or handed over: step 1 decides, never a restart
        here = local.get(iid)
        if here is None:
            if iid not in failed:
                busy.add(iid)
                actions.append(Start(iid, spec))
        elif here.role == InstanceRole.STANDBY and here.alive:
            busy.add(iid)
            actions.append(Activate(iid, spec))
        elif here.alive and here.config != (spec.get("config") or {}):
            busy.add(iid)
            actions.append(Reconfigure(iid, spec))
        elif not here.alive:
            busy.add(iid)
            actions.append(Restart(iid, spec))

    # 4. what is not desired here
    for iid in local:
        if iid not in desired and iid not in busy:
            actions.append(Stop(iid))
    for iid in failed:
        if iid not in desired:
            actions.append(ClearFailure(iid))
    return actions
