"""The life of a VNF instance, as a transition table.

    requested ──▶ starting ──▶ running ──▶ migrating ──▶ running (at the target)
        │            │           │  ▲          │
        │            │           │  └──────────┘ (migration aborted: stays at the source)
        ▼            ▼           ▼
     stopping ◀──────┴───────────┘ ──▶ gone
        any live state ──▶ failed ──▶ stopping | starting (retry)

`requested`  the orchestrator accepted it; no agent has acted yet.
`starting`   the node's agent is creating the namespace and the process.
`running`    the agent reports the process alive and attached to the bridge.
`migrating`  a make-before-break move is under way; the source still serves.
`stopping`   destroy was asked; the agent is tearing it down.
`gone`       nothing of it remains (terminal).
`failed`     the agent could not run it; destroy or retry.

Every accepted transition is recorded with its time. An illegal one raises
`IllegalTransition`, which the API turns into 409 Conflict.
"""

from __future__ import annotations

from enum import StrEnum


class InstanceState(StrEnum):
    REQUESTED = "requested"
    STARTING = "starting"
    RUNNING = "running"
    MIGRATING = "migrating"
    STOPPING = "stopping"
    GONE = "gone"
    FAILED = "failed"


S = InstanceState

TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    S.REQUESTED: frozenset({S.STARTING, S.STOPPING, S.FAILED}),
    S.STARTING: frozenset({S.RUNNING, S.STOPPING, S.FAILED}),
    S.RUNNING: frozenset({S.MIGRATING, S.STOPPING, S.FAILED, S.STARTING}),
    S.MIGRATING: frozenset({S.RUNNING, S.STOPPING, S.FAILED}),
    S.STOPPING: frozenset({S.GONE, S.FAILED}),
    S.FAILED: frozenset({S.STOPPING, S.STARTING}),
    S.GONE: frozenset(),
}

# States in which an instance should exist on its node.
LIVE: frozenset[InstanceState] = frozenset({S.REQUESTED, S.STARTING, S.RUNNING, S.MIGRATING})


class IllegalTransition(Exception):
    """A transition the table does not allow."""

    def __init__(self, current: InstanceState, target: InstanceState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (terminal)"
        super().__init__(
            f"cannot go from '{current}' to '{target}'; allowed from '{current}': {allowed}"
        )
        self.current = current
        self.target = target


def check_transition(current: InstanceState, target: InstanceState) -> None:
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)


class MigrationPhase(StrEnum):
    """A make-before-break migration, as the orchestrator records it.

        pending ──▶ preparing ──▶ done | failed
           │            │
           └────────────┴──▶ aborting ──▶ done | failed
        (pending may also end at once: done or failed)

    pending    recorded; the target agent has not acted yet.
    preparing  the target started a standby copy with a state snapshot.
    aborting   the deadline passed: the agents were told to roll back. The outcome
               is still theirs to report: a target that already holds the final
               state completes the move (done); otherwise the source thaws (failed).
    done       the target serves, the source stopped; downtime recorded.
    failed     aborted; the instance keeps running at the source.

    The orchestrator never picks the outcome alone (agent/migration.py says why):
    done on the target's "done" or the source's "released", failed on the target's
    "failed" or the source's "refused".
    """

    PENDING = "pending"
    PREPARING = "preparing"
    ABORTING = "aborting"
    DONE = "done"
    FAILED = "failed"


M = MigrationPhase

MIGRATION_TRANSITIONS: dict[MigrationPhase, frozenset[MigrationPhase]] = {
    M.PENDING: frozenset({M.PREPARING, M.ABORTING, M.DONE, M.FAILED}),
    M.PREPARING: frozenset({M.ABORTING, M.DONE, M.FAILED}),
    M.ABORTING: frozenset({M.DONE, M.FAILED}),
    M.DONE: frozenset(),
    M.FAILED: frozenset(),
}

# Migrations still under way (they reserve room at the target, and agents act on them).
OPEN_MIGRATIONS: frozenset[MigrationPhase] = frozenset({M.PENDING, M.PREPARING, M.ABORTING})


class IllegalMigrationStep(Exception):
    """A migration phase change the table does not allow."""

    def __init__(self, current: MigrationPhase, target: MigrationPhase) -> None:
        super().__init__(f"migration cannot go from '{current}' to '{target}'")
        self.current = current
        self.target = target


def check_migration_step(current: MigrationPhase, target: MigrationPhase) -> None:
    if target not in MIGRATION_TRANSITIONS[current]:
        raise IllegalMigrationStep(current, target)


class MigrationStatus(StrEnum):
    """What an agent reports of one migration (`MigrationReport.status`): its side's
    phase (agent/migration.py) in the words the orchestrator acts on. Not a state
    the orchestrator holds (MigrationPhase is; these words move it), so no table.

    from the target:
    preparing  its copy is on the way (standby started, final state in flight or in
               hand, activated): nothing settled yet
    done       it serves; the source released its copy (or could not answer)
    failed     it gave up before holding the final state; the source may thaw
    from the source:
    frozen     its copy stopped serving; the final state went to the target
    released   the target holds the final state; its copy is stopped
    refused    the deadline passed before the target asked for the freeze
    """

    PREPARING = "preparing"
    DONE = "done"
    FAILED = "failed"
    FROZEN = "frozen"
    RELEASED = "released"
    REFUSED = "refused"


# Who may say what: a word from the node that is not that side is ignored.
TARGET_SAYS: frozenset[MigrationStatus] = frozenset(
    {MigrationStatus.PREPARING, MigrationStatus.DONE, MigrationStatus.FAILED}
)
SOURCE_SAYS: frozenset[MigrationStatus] = frozenset(
    {MigrationStatus.FROZEN, MigrationStatus.RELEASED, MigrationStatus.REFUSED}
)


class InstanceRole(StrEnum):
    """What one copy of an instance does on its node (the desired state's `role`, the
    agent's copy, its report).

        standby ──▶ active

    standby   a migration's target copy: started with its switch port down, it
              imports the source's state and serves nothing.
    active    serves. A copy is started active, or a standby becomes it when the
              move completes (or when the orchestrator says the copy here is the one).
              It never goes back: a move away starts a new standby elsewhere.
    """

    STANDBY = "standby"
    ACTIVE = "active"


ROLE_TRANSITIONS: dict[InstanceRole, frozenset[InstanceRole]] = {
    InstanceRole.STANDBY: frozenset({InstanceRole.ACTIVE}),
    InstanceRole.ACTIVE: frozenset(),
}


class IllegalRoleChange(Exception):
    """A role change the table does not allow."""

    def __init__(self, current: InstanceRole, target: InstanceRole) -> None:
        super().__init__(f"an instance copy cannot go from '{current}' to '{target}'")
        self.current = current
        self.target = target


def check_role_change(current: InstanceRole, target: InstanceRole) -> None:
    if target not in ROLE_TRANSITIONS[current]:
        raise IllegalRoleChange(current, target)


class CopyStatus(StrEnum):
    """What an agent reports of one instance copy (`InstanceReport.status`).

    Not a state the agent holds, so no transition table: each report derives it
    afresh from what is true at that moment (a task under way, the process alive,
    the copy's role, a start that failed), and two reports may be any two of these.

    starting  a start (or restart, or a move in) is under way, or the process died
              and the next converge starts it again
    running   an active copy whose process is alive
    standby   a standby copy whose process is alive
    stopping  being torn down: gone from the report once nothing of it remains
    failed    its start failed (the detail says why); the agent does not start it
              again on its own (the entry goes when it leaves the desired state)
    """

    STARTING = "starting"
    RUNNING = "running"
    STANDBY = "standby"
    STOPPING = "stopping"
    FAILED = "failed"


class NodeStatus(StrEnum):
    UNKNOWN = "unknown"  # declared in the topology, no agent registered yet
    UP = "up"
    UNREACHABLE = "unreachable"  # missed heartbeats


class NodePower(StrEnum):
    """A node's power switch (orchestrator/nfv/power.py), apart from its status.

        on ──▶ draining ──▶ off ──▶ on
                  │
                  └──▶ on (a move failed: the drain is given up, nothing lost)

    `draining`: nothing new is placed there; its instances are migrating away.
    `off`: it hosts nothing and is counted at 0 W. On the emulated testbed its
    namespace, switch and agent stay (the switch keeps forwarding, as the
    engine's model says; the agent keeps reporting): off means out of service
    for compute, not a dark box.
    """

    ON = "on"
    DRAINING = "draining"
    OFF = "off"


POWER_TRANSITIONS: dict[NodePower, frozenset[NodePower]] = {
    NodePower.ON: frozenset({NodePower.DRAINING, NodePower.OFF}),
    NodePower.DRAINING: frozenset({NodePower.OFF, NodePower.ON}),
    NodePower.OFF: frozenset({NodePower.ON}),
}
"""on -> off at once: a node with nothing to drain."""
