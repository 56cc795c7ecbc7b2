"""A create's plan (nfv.plan_create): its node and address read in a read transaction
before the writing one, taken by create_instance only if it still holds under the
lock. A plan made stale by a create, a destroy, a fuller node or a new topology in
between is not taken: the create decides again, and never gives an address twice
or a node more than its room. Concurrent creates through the API on SQLite, which
plan outside the write lock, are in tests/concurrency_cases.py (fifty at once on
room for thirty) and below (many threads on one LAN and one node)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from netfate.model.topology import Topology
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.orchestrator.nfv.topology import load_topology
from netfate.store import usage
from netfate.store.db import Database
from netfate.store.tables import EventRow, InstanceRow, NodeRow, TransitionRow
from topology_db import topology_db

TOPO = {
    "name": "plan",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/28", "cpu": 0.3, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 2, "memory": "1024MiB"},
    },
    "hosts": {"laptop1": {"node": "cpe1", "ip": "192.168.1.2"}},
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}
PLACED = nfv.CreateRequest(descriptor="counter", serves="laptop1")  # cpu 0.1


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def plan(db: Database, req: nfv.CreateRequest = PLACED) -> nfv.CreatePlan:
    with db.session(write=False) as r:
        p = nfv.plan_create(r, req)
    assert p is not None
    return p


def create(db: Database, req: nfv.CreateRequest, p: nfv.CreatePlan | None) -> InstanceRow:
    with db.session() as s:
        inst, _ = nfv.create_instance(s, req, p)
    return inst


def problems(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return nfv.violations(s)


def test_a_fresh_plan_is_what_the_locked_create_chooses(db: Database) -> None:
    p = plan(db)
    assert (p.node, p.ip) == ("cpe1", "192.168.1.14/28")  # nearest; the LAN from the top
    inst = create(db, PLACED, p)
    assert (inst.node, inst.ip, inst.lan) == ("cpe1", "192.168.1.14/28", "192.168.1.0/28")
    # The same request without a plan decides the same way for the next address.
    other = create(db, PLACED, None)
    assert (other.node, other.ip) == ("cpe1", "192.168.1.13/28")
    with db.session(write=False) as s:
        t = s.scalars(select(TransitionRow).where(TransitionRow.instance == inst.id)).one()
        assert (t.previous, t.state, t.reason) == (None, "requested", "created")
        kinds = [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert kinds == ["InstancePlaced", "InstancePlaced"]
    assert problems(db) == []


def test_a_plan_whose_address_was_taken_meanwhile_is_not_taken(db: Database) -> None:
    p1, p2 = plan(db), plan(db)
    assert p1.ip == p2.ip  # both read before either wrote
    a = create(db, PLACED, p1)
    b = create(db, PLACED, p2)  # stale: allocates again under the lock
    assert a.ip == "192.168.1.14/28" and b.ip == "192.168.1.13/28"
    assert problems(db) == []


def test_a_plan_whose_address_was_freed_and_used_meanwhile_is_not_taken(db: Database) -> None:
    first = create(db, PLACED, None)  # .14
    p = plan(db)  # .13, never used
    with db.session() as s:  # .14 is gone, long ago
        s.execute(update(InstanceRow).values(state="gone", updated_at=1.0))
        usage.recount(s)  # (a plain UPDATE: the kept use counted again)
    # Another create takes .13 and is gone too, just now.
    second = create(db, PLACED, None)
    assert second.ip == "192.168.1.13/28"
    with db.session() as s:
        s.execute(
            update(InstanceRow)
            .where(InstanceRow.id == second.id)
            .values(state="gone", updated_at=9e9)
        )
        usage.recount(s)
    got = create(db, PLACED, p)  # the plan saw .13 never used; now it is the latest
    assert got.ip == "192.168.1.12/28"  # never used: ahead of both
    assert first.ip == "192.168.1.14/28"
    assert problems(db) == []


def test_a_plan_whose_node_filled_meanwhile_is_not_taken(db: Database) -> None:
    stale = [plan(db) for _ in range(4)]
    assert {p.node for p in stale} == {"cpe1"}  # 0.3 CPU: room for three
    made = [create(db, PLACED, p) for p in stale]
    assert [i.node for i in made] == ["cpe1", "cpe1", "cpe1", "pe1"]
    # The fourth went to the next nearest, its address still from the host's LAN.
    assert made[3].lan == "192.168.1.0/28"
    assert len({i.ip for i in made}) == 4
    assert problems(db) == []


def test_a_pinned_plan_on_a_full_node_is_refused(db: Database) -> None:
    req = nfv.CreateRequest(descriptor="counter", node="cpe1")
    stale = [plan(db, req) for _ in range(4)]
    for p in stale[:3]:
        create(db, req, p)
    with pytest.raises(NoCapacity):
        create(db, req, stale[3])
    assert problems(db) == []


def test_a_plan_from_before_a_topology_load_is_not_taken(db: Database) -> None:
    p = plan(db)
    topo = {**TOPO, "nodes": {**TOPO["nodes"]}}
    topo["nodes"]["cpe1"] = {**TOPO["nodes"]["cpe1"], "lan": "192.168.9.0/28"}  # type: ignore[dict-item]
    topo["hosts"] = {"laptop1": {"node": "cpe1", "ip": "192.168.9.2"}}
    with db.session() as s:
        load_topology(s, Topology.from_dict(topo))
    inst = create(db, PLACED, p)
    assert (inst.ip, inst.lan) == ("192.168.9.14/28", "192.168.9.0/28")


def test_a_plan_for_a_down_node_is_not_taken(db: Database) -> None:
    p = plan(db)
    with db.session() as s:
        s.execute(update(NodeRow).where(NodeRow.name == "cpe1").values(status="down"))
    inst = create(db, PLACED, p)
    assert inst.node == "pe1"


def test_threads_planning_outside_the_lock_never_share_an_address_or_overfill(
    db: Database,
) -> None:
    # Room on cpe1 for three, addresses in its /28 for twelve (the gateway and the
    # host hold two of fourteen): twelve threads, half placed near laptop1 and half
    # pinned to cpe1, each plan in a read transaction, then create in a writing one,
    # all at once.
    start = threading.Barrier(12)
    made: list[InstanceRow] = []
    refused: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        req = nfv.CreateRequest(descriptor="counter", node="cpe1") if i % 2 else PLACED
        start.wait()
        with db.session(write=False) as r:
            p = nfv.plan_create(r, req)
        try:
            inst = create(db, req, p)
        except NoCapacity as e:
            with lock:
                refused.append(str(e))
            return
        with lock:
            made.append(inst)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(made) + len(refused) == 12
    on_cpe1 = [i for i in made if i.node == "cpe1"]
    assert len(on_cpe1) == 3  # its room, exactly
    ips = [i.ip for i in made if i.lan == "192.168.1.0/28"]
    assert len(ips) == len(set(ips)) == len(made)
    assert problems(db) == []


def test_a_plan_for_a_node_without_room_now_is_not_taken(db: Database) -> None:
    p = plan(db)
    with db.session() as s:  # its room went otherwise than by a create (same address)
        s.execute(update(NodeRow).where(NodeRow.name == "cpe1").values(used_cpu=0.25))
    inst = create(db, PLACED, p)
    assert (inst.node, inst.ip) == ("pe1", p.ip)  # the address was still the choice
