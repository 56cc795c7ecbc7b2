"""Crash windows of a migration, on a real testbed (issue 10, section 2).

Each test arms a fault point (netfate.faults) in one agent, starts a migration of a
counter that a host is talking to, and lets the fault happen at that exact step:
kill -9 of the source after it froze, of the source when asked to release, of the
target after the release; the orchestrator killed while the move is in the middle;
the link between the agents cut during the state transfer. Then it restarts what
was killed and checks the outcome on the nodes themselves (namespaces, processes,
OVS ports, the function's own `status`), not only through the API:

- the instance runs in exactly one place, with its state (the host's counter goes on
  from where it was), and nothing of it is left anywhere else;
- the API says where it runs, and the migration says done or failed with a reason;
- a migration that misses its deadline is rolled back.

The agents' channel runs between the nodes' namespaces (agent/channel.py), over the
emulated links; "cutting" it is still emulated, so that only the migration's own
connection is cut (not the node's other traffic): the source's migration server,
from the armed point on, reads every request and never answers, as over a cut link,
until the test disarms it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from netfate import faults
from netfate.agent.migration_auth import proof
from netfate.demo import platform
from netfate.demo.probe import CounterProbe
from netfate.host import proc as procs
from netfate.testbed.builder import Testbed
from rogue_peer import exchange
from testbed_procs import (
    copies,
    fault_dir,
    health,
    kill9,
    node_status,
    restart,
    role_ref,
    serving_at,
    until,
    up_testbed,
)

DEADLINE_S = 10.0  # the orchestrator's, for this run: short, so a rollback is quick
HEARTBEAT_TIMEOUT_S = 3.0  # the orchestrator's default (testbed/control.py)
SOURCE, TARGET = "cpe1", "pe1"


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    # Agents take part in fault injection only when started with NETFATE_FAULTS=1;
    # restarted ones inherit it too.
    old = os.environ.get(faults.ENV)
    os.environ[faults.ENV] = "1"
    try:
        with up_testbed("demo", migration_deadline_s=DEADLINE_S) as bed:
            yield bed
    finally:
        if old is None:
            os.environ.pop(faults.ENV, None)
        else:
            os.environ[faults.ENV] = old


@pytest.fixture
def api(tb: Testbed) -> platform.Api:
    assert tb.api_url
    return platform.Api(tb.api_url, tb.api_token)


class Moving:
    """A counter on SOURCE that laptop1 has asked twice, about to move to TARGET."""

    def __init__(self, tb: Testbed, api: platform.Api) -> None:
        self.tb, self.api = tb, api
        inst = api("POST", "/instances", {"descriptor": "counter", "node": SOURCE})
        self.iid: str = api.wait_state(inst["id"], "running")["id"]
        ip = str(api("GET", f"/instances/{self.iid}")["ip"]).split("/")[0]
        self.probe = CounterProbe(tb.netns_of("laptop1"), ip)
        assert [self.probe.ask().count for _ in range(2)] == [1, 2]
        assert serving_at(tb, self.iid) == SOURCE
        self.mid = -1
        self.down: dict[str, list[str]] = {}  # role -> argv, of what a test killed

    def killed_at(self, node: str, point: str) -> None:
        """Wait until the agent of `node` killed itself at `point`."""
        role = f"agent:{node}"
        ref = role_ref(self.tb, role)
        self.down[role] = procs.cmdline(ref)
        until(f"{role} killed at {point}", lambda: not procs.alive(ref), timeout=60.0)
        assert faults.was_hit(fault_dir(self.tb, node), point)

    def kill9(self, role: str) -> None:
        self.down[role] = kill9(self.tb, role)

    def restart(self, role: str) -> None:
        restart(self.tb, role, self.down.pop(role))

    def migrate(self) -> int:
        self.mid = int(self.api("POST", f"/instances/{self.iid}/migrate", {"node": TARGET})["id"])
        return self.mid

    def migration(self) -> dict[str, Any]:
        inst = self.api("GET", f"/instances/{self.iid}")
        found: dict[str, Any] = next(m for m in inst["migrations"] if m["id"] == self.mid)
        return found

    def settled(self, phase: str) -> dict[str, Any]:
        return dict(until(f"migration {phase}", lambda: self.phase_is(phase), timeout=60.0))

    def phase_is(self, phase: str) -> dict[str, Any] | None:
        m = self.migration()
        if m["phase"] in ("done", "failed") and m["phase"] != phase:
            pytest.fail(f"migration ended {m['phase']}, expected {phase}: {m['reason']}")
        return m if m["phase"] == phase else None

    def one_copy_at(self, node: str, count: int = 3) -> None:
        """Exactly one serving copy, at `node`; the API agrees; the count goes on."""
        until(f"one serving copy at {node}", lambda: serving_at(self.tb, self.iid) == node)
        inst = self.api.wait_state(self.iid, "running")
        assert inst["node"] == node
        assert self.probe.ask().count == count, "the state moved (or stayed) with the copy"
        assert serving_at(self.tb, self.iid) == node, copies(self.tb, self.iid)

    def close(self) -> None:
        for role in list(self.down):  # a test that failed half-way: the next needs them
            self.restart(role)
        until(
            "every node up",
            lambda: (
                health(self.api) and all(n["status"] == "up" for n in self.api("GET", "/nodes"))
            ),
        )
        self.probe.close()
        self.api("DELETE", f"/instances/{self.iid}")
        self.api.wait_state(self.iid, "gone")
        until("nothing left", lambda: all(c.absent for c in copies(self.tb, self.iid).values()))


@pytest.fixture
def moving(tb: Testbed, api: platform.Api) -> Iterator[Moving]:
    m = Moving(tb, api)
    try:
        yield m
    finally:
        for node in tb.state.nodes:
            for point in list(fault_dir(tb, node).glob("migrate.*")):
                point.unlink()
        m.close()


def test_source_killed_after_freeze_before_it_answers(
    tb: Testbed, api: platform.Api, moving: Moving
) -> None:
    """The source froze its copy and died before the final state left: the target
    never holds it, gives up, and the restarted source thaws its copy."""
    faults.arm(fault_dir(tb, SOURCE), "migrate.source.frozen", faults.Action.KILL)
    moving.migrate()
    moving.killed_at(SOURCE, "migrate.source.frozen")
    failed = moving.settled("failed")
    assert "may have frozen" in failed["reason"], failed["reason"]
    until(
        "the API tells the source is unreachable",
        lambda: node_status(api, SOURCE) == "unreachable",
        timeout=HEARTBEAT_TIMEOUT_S + 5,
    )
    # While the source agent is away its copy is frozen: none serves, none is extra.
    until("the target's standby gone", lambda: copies(tb, moving.iid)[TARGET].absent)
    frozen = copies(tb, moving.iid)[SOURCE]
    assert frozen.pids and frozen.active is False and frozen.port_up is False
    moving.restart(f"agent:{SOURCE}")
    moving.one_copy_at(SOURCE)


def test_source_killed_when_asked_to_release(
    tb: Testbed, api: platform.Api, moving: Moving
) -> None:
    """The target holds the final state and serves; the source dies before it
    releases: the move stands, and the restarted source removes its frozen copy."""
    faults.arm(fault_dir(tb, SOURCE), "migrate.source.release", faults.Action.KILL)
    moving.migrate()
    moving.killed_at(SOURCE, "migrate.source.release")
    done = moving.settled("done")
    assert "did not confirm the release" in done["reason"] and done["downtime_ms"] is not None
    assert api("GET", f"/instances/{moving.iid}")["node"] == TARGET
    found = copies(tb, moving.iid)
    assert found[TARGET].serving, found
    assert found[SOURCE].active is False and found[SOURCE].port_up is False, found
    moving.restart(f"agent:{SOURCE}")
    moving.one_copy_at(TARGET)


@pytest.mark.parametrize(
    ("point", "ends", "at"),
    [
        # the final state came back, the target died before writing it: the source's
        # frozen copy is the one; the target drops its standby and asks for a thaw
        ("migrate.target.freezing", "failed", SOURCE),
        # the target wrote `final` and died before activating: it completes on restart
        ("migrate.target.final", "done", TARGET),
    ],
)
def test_target_killed_in_the_cutover(
    tb: Testbed, api: platform.Api, moving: Moving, point: str, ends: str, at: str
) -> None:
    faults.arm(fault_dir(tb, TARGET), point, faults.Action.KILL)
    moving.migrate()
    moving.killed_at(TARGET, point)
    # Until the target is back, no copy serves (the source's is frozen, the target's
    # standby), and neither is thrown away: only the target knows who holds the state.
    found = copies(tb, moving.iid)
    assert not any(c.serving for c in found.values()), found
    assert found[SOURCE].active is False and found[TARGET].active is False, found
    moving.restart(f"agent:{TARGET}")
    moving.settled(ends)
    if ends == "done":  # on the target's own word, with its figures
        until("the target's figures", lambda: moving.migration()["downtime_ms"] is not None)
    moving.one_copy_at(at)


def test_target_killed_after_the_release(tb: Testbed, api: platform.Api, moving: Moving) -> None:
    """The source released its copy and the target died before reporting: its copy
    serves without its agent, the orchestrator records the move on the source's word
    once the target is unreachable, and the restarted target adds its figures."""
    faults.arm(fault_dir(tb, TARGET), "migrate.target.released", faults.Action.KILL)
    moving.migrate()
    moving.killed_at(TARGET, "migrate.target.released")
    until("the target's copy alone serves", lambda: serving_at(tb, moving.iid) == TARGET)
    assert moving.probe.ask().count == 3
    done = moving.settled("done")
    assert "has not reported" in done["reason"] and done["downtime_ms"] is None, done
    assert node_status(api, TARGET) == "unreachable"
    inst = api("GET", f"/instances/{moving.iid}")
    assert inst["node"] == TARGET and inst["state"] == "running"
    moving.restart(f"agent:{TARGET}")
    until("the target's own figures", lambda: moving.migration()["downtime_ms"] is not None)
    moving.one_copy_at(TARGET, count=4)


def test_orchestrator_killed_during_a_migration(
    tb: Testbed, api: platform.Api, moving: Moving
) -> None:
    """The target holds at a point mid-way; the orchestrator is killed; the agents
    finish the move between them, and the restarted orchestrator records it."""
    point = "migrate.target.snapshot"
    faults.arm(fault_dir(tb, TARGET), point, faults.Action.HANG)
    moving.migrate()
    until("the target holding mid-way", lambda: faults.was_hit(fault_dir(tb, TARGET), point))
    moving.kill9("orchestrator")
    faults.disarm(fault_dir(tb, TARGET), point)
    until("the target serving, the source's copy gone", lambda: serving_at(tb, moving.iid))
    assert serving_at(tb, moving.iid) == TARGET
    assert moving.probe.ask().count == 3
    moving.restart("orchestrator")
    until("orchestrator back", lambda: health(api))
    moving.settled("done")
    # Recorded on the target's word, or first on the source's "released" if its
    # report came first (the restarted orchestrator holds every node unreachable
    # until it hears from it): the target's figures follow either way.
    until("the target's figures", lambda: moving.migration()["downtime_ms"] is not None)
    moving.one_copy_at(TARGET, count=4)


@pytest.mark.parametrize(
    ("point", "froze"), [("migrate.source.snapshot", False), ("migrate.source.frozen", True)]
)
def test_link_cut_during_the_state_transfer_rolls_back_at_the_deadline(
    tb: Testbed, api: platform.Api, moving: Moving, point: str, froze: bool
) -> None:
    """The source stops answering the target (snapshot in flight, or the final state
    after it froze). Nothing ends the migration but its deadline: it is rolled back,
    the standby goes and the source serves (thawed, if it had frozen)."""
    faults.arm(fault_dir(tb, SOURCE), point, faults.Action.BLACKHOLE)
    t0 = time.monotonic()
    moving.migrate()
    until("the link cut", lambda: faults.was_hit(fault_dir(tb, SOURCE), point))
    if froze:
        assert copies(tb, moving.iid)[SOURCE].active is False
    failed = moving.settled("failed")
    t_failed = time.monotonic() - t0
    assert "deadline" in failed["reason"], failed["reason"]
    # Rolled back while the link is still cut: the thaw needs no word from the target.
    moving.one_copy_at(SOURCE)
    t_serving = time.monotonic() - t0
    print(
        f"\nlink cut at {point}: deadline {DEADLINE_S:g} s, migration failed after "
        f"{t_failed:.2f} s, one copy serving at the source after {t_serving:.2f} s"
    )


def test_the_migration_channel_opens_only_with_the_migrations_secret(
    tb: Testbed, api: platform.Api, moving: Moving
) -> None:
    """While a migration is open (the target held after its snapshot), a peer that
    knows the migration's id, which the API publishes, but not its secret connects to
    the source agent: every request is refused and the connection closed, and nothing
    changed (the source serves on and wrote no record). The real move then completes."""
    point = "migrate.target.snapshot"
    faults.arm(fault_dir(tb, TARGET), point, faults.Action.HANG)
    mid = moving.migrate()
    until("the target holding the move", lambda: faults.was_hit(fault_dir(tb, TARGET), point))
    endpoint = next(n["endpoint"] for n in api("GET", "/nodes") if n["name"] == SOURCE)
    ids = {"instance": moving.iid, "migration": mid}
    # The impostor dials from the target's namespace: the endpoint is the source's
    # transit address, which only the emulated network reaches.
    ns = tb.netns_of(TARGET)
    nt = "11" * 32
    forged = proof("00" * 32, "target", nt, "22" * 32, moving.iid, mid)

    async def rogue() -> list[list[dict[str, Any] | None]]:
        return [
            await exchange(endpoint, {"op": "freeze", **ids}, {"op": "snapshot", **ids}, netns=ns),
            await exchange(
                endpoint,
                {"op": "hello", **ids, "nonce": nt},
                {"op": "auth", "proof": forged},
                {"op": "freeze", **ids},
                netns=ns,
            ),
            await exchange(
                endpoint, {"op": "hello", **ids, "nonce": nt}, {"op": "release", **ids}, netns=ns
            ),
        ]

    straight, wrong, unproven = asyncio.run(rogue())
    assert straight[0] is not None and not straight[0]["ok"] and straight[1] is None, straight
    assert wrong[0] is not None and wrong[0]["ok"] and "state" not in wrong[0], wrong
    assert wrong[1] == {"ok": False, "error": "authentication failed"} and wrong[2] is None
    assert unproven[1] is not None and not unproven[1]["ok"], unproven
    record = tb.state.dir / "agents" / SOURCE / "migrations" / f"{moving.iid}.json"
    assert not record.exists()
    assert copies(tb, moving.iid)[SOURCE].active
    assert moving.probe.ask().count == 3  # served by the source, its state untouched
    faults.disarm(fault_dir(tb, TARGET), point)
    moving.settled("done")
    moving.one_copy_at(TARGET, count=4)
