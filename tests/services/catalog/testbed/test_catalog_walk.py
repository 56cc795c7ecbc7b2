"""A user who moves during a migration: the last move wins, and there are never two
copies (issue 15, "Bad input").

The demo's fog with a third home (cpe3). alice subscribes at cpe1, then logs in at
cpe2's captive portal (the firewall service's RADIUS server records the login,
services/catalog/walk.py): the conduit follows her and the platform migrates her
chain to cpe2 (the collector, the entry, under the SLA's bound; the archive follows
it, since the traffic between them would otherwise cross cpe2 -> pe1 -> cpe1 and add
20 ms to the chain's path: the engine's decision says so). That move is held mid-way
(cpe2's agent hangs at a fault point, netfate.faults) while she logs in again, at
cpe3: the conduit does not start a second move of a migrating instance, it says it
waits. Released, the first move completes and the conduit follows the last login:
both blocks run at cpe3, each the instance it always was, one copy on the whole
machine (its namespaces, processes and ports read from the system,
testbed_procs.serving_at), and the collector's count of alice's requests came along
both moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate import faults
from netfate.demo.platform import Api
from netfate.services.catalog import demo
from netfate.services.catalog.walk import Portals
from netfate.testbed.builder import Testbed
from testbed_procs import fault_dir, serving_at, until

THREE_HOMES = (
    demo.TOPOLOGY.read_text().replace(
        "  pe1:", "  cpe3: {kind: cpe, lan: 192.168.83.0/24, cpu: 2, memory: 512MiB}\n  pe1:"
    )
    + "  - {a: cpe3, b: pe1, rate: 100Mbit, delay: 5ms}\n"
)


HELD = "migrate.target.snapshot"
"""Where cpe2's agent holds the first migration (the target, before the state)."""


@pytest.fixture
def faulty_agents() -> Iterator[None]:
    """Agents take part in fault injection only when started with NETFATE_FAULTS=1."""
    old = os.environ.get(faults.ENV)
    os.environ[faults.ENV] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(faults.ENV, None)
        else:
            os.environ[faults.ENV] = old


def test_a_login_during_a_migration_the_last_wins_never_two_copies(
    run_prefix: str, tmp_path: Path, faulty_agents: None
) -> None:
    topo = tmp_path / "fog3.yaml"
    topo.write_text(THREE_HOMES)
    # The held migration must not reach its deadline (and roll back) while held.
    with Testbed.up(topo, prefix=run_prefix, migration_deadline_s=300) as tb:
        assert tb.api_url
        api = Api(tb.api_url)
        acme, alice = api.as_user("acme", role="provider"), api.as_user("alice")
        acme("POST", f"{demo.V}/chains", {"provider": "acme", "descriptor": demo.CHAIN})
        sub = alice("POST", f"{demo.V}/subscriptions",
                    {"user": "alice", "chain": "sensor-archive", "at": "cpe1"})  # fmt: skip
        sub = demo._running(alice, sub)
        ids = {i["block"]: i["instance"] for i in sub["instances"]}
        for _ in range(3):
            _, before = demo.ask_collector(tb, api, "alice", sub)
        portals = Portals(tb, api, ["cpe2", "cpe3"], ["alice"])
        faults.arm(fault_dir(tb, "cpe2"), HELD, faults.Action.HANG)

        portals.login("laptop1", "cpe2", "alice")
        until("the move to cpe2 held mid-way", lambda: faults.was_hit(fault_dir(tb, "cpe2"), HELD),
              timeout=60)  # fmt: skip
        portals.login("laptop1", "cpe3", "alice")

        def waiting() -> str:
            got = alice("GET", f"{demo.V}/subscriptions/{sub['id']}")
            detail = str(got["detail"])
            return detail if "(migrating) to settle" in detail else ""

        detail = until("the conduit waiting for the migration", waiting, timeout=60)
        assert detail.startswith("user seen at cpe3 (login)"), detail
        faults.disarm(fault_dir(tb, "cpe2"), HELD)

        now = demo.followed(api, sub, "cpe3")
        last = now["decisions"][-1]
        assert last["why"].startswith("user seen at cpe3 (login): moved on "), last
        assert {i["block"]: i["instance"] for i in now["instances"]} == ids  # moved, not new
        placed = {i["block"]: i["node"] for i in now["instances"]}
        # The whole chain followed her, and the decision says why the archive did.
        assert placed == {"collector": "cpe3", "archive": "cpe3"}, last
        assert "archive follows collector: 1 Mbit/s between them would cross " in last["why"]
        for block, iid in ids.items():
            at = placed[block]
            until(f"one copy of {block}, at {at}",
                  lambda iid=iid, at=at: serving_at(tb, iid) == at, timeout=60)  # fmt: skip
        assert {b: len(v) for b, v in demo.copies(api, now).items()} == {
            "collector": 1,
            "archive": 1,
        }
        for iid in ids.values():
            migs = api("GET", f"/instances/{iid}")["migrations"]
            assert [(m["source"], m["target"], m["phase"]) for m in migs] == [
                ("cpe1", "cpe2", "done"),
                ("cpe2", "cpe3", "done"),
            ], migs
        got = alice("GET", f"{demo.V}/subscriptions/{sub['id']}")
        assert got["at"] == "cpe3" and got["detail"] == "", got
        _, after = demo.ask_collector(tb, api, "alice", now)
        assert after.instance == before.instance and after.count > before.count
        where = alice("GET", f"{demo.V}/positions/alice")
        assert where["now"]["node"] == "cpe3" and where["now"]["source"] == "login", where
        assert [h["node"] for h in where["history"][:2]] == ["cpe3", "cpe2"], where["history"]
