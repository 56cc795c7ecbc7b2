"""A warm standby's memory counts against its node's capacity (issue 15): placement
(coordinator.room, candidates; engine/placement.fits) treats the memory the node's
kept standbys hold as used, and a create or migration of a function the node keeps
a standby of takes one and reuses its memory (counted once). The node keeps only
the planned standbys that fit beside its instances (engine/predeploy.fit_standbys),
which is what its agent is told to keep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from netfate.orchestrator.engine.placement import Candidate, PlacementRequest, fits
from netfate.orchestrator.engine.predeploy import fit_standbys, image_mb
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import predeploy
from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.store.db import Database
from topology_db import topology_db

TOPO = {
    "name": "standbymem",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 2, "memory": "1024MiB"},
    },
    "hosts": {"laptop1": {"node": "cpe1", "ip": "192.168.1.10"}},
    "links": [{"a": "cpe1", "b": "pe1"}],
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def fill_with_standbys(db: Database, standbys: int = 7) -> None:
    """cpe1 (512 MiB) runs one counter (64 MiB, which makes the policy keep the
    counter's image there) and keeps `standbys` warm counters (64 MiB each): its
    storage budget holds the counter's image and no other."""
    mb = image_mb("counter")
    assert mb is not None
    with db.session() as s:
        nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
        predeploy.set_budget(s, "cpe1", mb, standbys)


def kept_standbys(s: Session, node: str) -> dict[str, int]:
    part = nfv.desired_state(s, node).get("predeploy") or {}
    return dict(part.get("standbys", {}))


def test_fit_standbys_goes_round_robin_and_stops_where_memory_ends() -> None:
    mem = {"counter": 64, "firewall": 100}
    assert fit_standbys({"counter": 2, "firewall": 2}, mem, 1000) == {"counter": 2, "firewall": 2}
    # 64 + 100 + 64 = 228 <= 250; the second firewall (100) no longer fits
    assert fit_standbys({"counter": 2, "firewall": 2}, mem, 250) == {"counter": 2, "firewall": 1}
    assert fit_standbys({"firewall": 3, "counter": 1}, mem, 90) == {"counter": 1}
    assert fit_standbys({"counter": 3}, mem, 0) == {}


def test_a_take_reuses_the_standbys_memory_and_only_for_its_function() -> None:
    c = Candidate("n", "cpe", True, 1.0, 10, standbys=(("counter", 64),))
    assert fits(PlacementRequest(0.1, 64, function="counter"), c)
    assert not fits(PlacementRequest(0.1, 64, function="forwarder"), c)
    assert not fits(PlacementRequest(0.1, 64), c)
    assert not fits(PlacementRequest(0.1, 128, function="counter"), c)  # 10 + 64 < 128


def test_a_node_full_of_standbys_refuses_another_function(db: Database) -> None:
    with db.session() as s:  # baseline: without standbys the forwarder fits there
        nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
        assert nfv.room(s, nfv.lock_nodes(s, "cpe1")["cpe1"]).free_memory_mb == 448
        s.rollback()
    fill_with_standbys(db)
    with db.session() as s:
        c = nfv.room(s, nfv.lock_nodes(s, "cpe1")["cpe1"])
        assert c.free_memory_mb == 0 and c.standbys == (("counter", 64),)
        assert kept_standbys(s, "cpe1") == {"counter": 7}
    full = "cpe1: 0 MiB free beside its warm standbys of counter < 64"
    with db.session() as s, pytest.raises(NoCapacity, match=full):
        nfv.create_instance(s, nfv.CreateRequest(descriptor="forwarder", node="cpe1"))
    with db.session() as s:  # placed: the nearest node with room instead
        fwd, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="forwarder", serves="laptop1"))
        assert fwd.node == "pe1"
    with db.session() as s:
        assert nfv.violations(s) == []
        predeploy.set_budget(s, "cpe1", 0.0, 0)  # no standbys: their memory is free again
    with db.session() as s:
        nfv.create_instance(s, nfv.CreateRequest(descriptor="forwarder", node="cpe1"))


def test_a_matching_create_takes_a_standby_and_fits(db: Database) -> None:
    fill_with_standbys(db)
    with db.session() as s:
        placed, _ = nfv.create_instance(
            s, nfv.CreateRequest(descriptor="counter", serves="laptop1")
        )
        assert placed.node == "cpe1"  # nearest, with a standby's memory to take
    with db.session() as s:
        # 2 instances (128 MiB) + the standbys that fit beside them: 6, not 7 (no
        # double count, no overcommit: the pool is refilled only where there is room)
        assert kept_standbys(s, "cpe1") == {"counter": 6}
        c = nfv.room(s, nfv.lock_nodes(s, "cpe1")["cpe1"])
        assert c.free_memory_mb == 0 and c.standbys == (("counter", 64),)
        nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
    with db.session() as s:
        assert kept_standbys(s, "cpe1") == {"counter": 5}
        assert nfv.violations(s) == []


def test_a_migration_into_a_node_full_of_standbys_takes_one_of_its_function(
    db: Database,
) -> None:
    with db.session() as s:
        ctr, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="pe1"))
        fwd, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="forwarder", node="pe1"))
        items = [{"id": i.id, "status": "running"} for i in (ctr, fwd)]
        nfv.apply_report(s, "pe1", {"instances": items})
    fill_with_standbys(db)
    with db.session() as s, pytest.raises(NoCapacity, match="cannot migrate to cpe1"):
        nfv.migrate_instance(s, fwd.id, "cpe1")
    with db.session() as s:
        m, _ = nfv.migrate_instance(s, ctr.id, "cpe1")
        assert m.target == "cpe1"
    with db.session() as s:
        assert kept_standbys(s, "cpe1") == {"counter": 6}
        assert nfv.violations(s) == []
