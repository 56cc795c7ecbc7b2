"""A create's rows (nfv.create_instance): written by plain INSERTs and one UPDATE of
its node (issue 15: fewer statements under SQLite's write lock), they are what the
ORM wrote before: the instance, its first transition, its InstancePlaced event
(readers included) in the order events were recorded, its node's kept use and
revision; the instance stays in the session, and later changes to it are tracked
(its use kept). And threads creating at once on one node and one LAN, each in its
own writing transaction, never share an address nor fill the node past its room.
Through the API, fifty at once: tests/concurrency_cases.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from netfate.model import events as ev
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.store import events as store_events
from netfate.store.db import Database
from netfate.store.tables import EventReaderRow, EventRow, InstanceRow, NodeRow, TransitionRow
from topology_db import topology_db

TOPO = {
    "name": "rows",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/28", "cpu": 0.3, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 2, "memory": "1024MiB"},
    },
    "hosts": {"laptop1": {"node": "cpe1", "ip": "192.168.1.2"}},
    "links": [{"a": "cpe1", "b": "pe1"}],
}
PLACED = nfv.CreateRequest(descriptor="counter", serves="laptop1")  # cpu 0.1, 64 MiB


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def problems(db: Database) -> list[str]:
    with db.session(write=False) as s:
        return nfv.violations(s)


def test_a_create_writes_its_rows_and_keeps_its_node(db: Database) -> None:
    with db.session(write=False) as s:
        before = s.get(NodeRow, "cpe1")
        assert before is not None
        revision = before.revision
    token = store_events.ACTOR.set("prov@example.org")  # a provider's request
    try:
        with db.session() as s:
            store_events.record(s, ev.NodeRegistered("pe1", "127.0.0.1:9"))
            inst, touched = nfv.create_instance(s, PLACED)
            assert touched == {"cpe1"}
            node = s.get(NodeRow, "cpe1")
            assert node is not None and node.revision == revision + 1  # read again
            assert node.used_cpu == pytest.approx(0.1) and node.used_memory_mb == 64
            iid = inst.id
    finally:
        store_events.ACTOR.reset(token)
    with db.session(write=False) as s:
        got = s.get(InstanceRow, iid)
        assert got is not None
        assert (got.node, got.state, got.ip, got.lan, got.gateway, got.owner) == (
            "cpe1",
            "requested",
            "192.168.1.14/28",
            "192.168.1.0/28",
            "192.168.1.1",
            "prov@example.org",
        )
        assert got.stats == {} and got.detail == "" and got.pid is None
        t = s.scalars(select(TransitionRow).where(TransitionRow.instance == iid)).one()
        assert (t.previous, t.state, t.node, t.reason) == (None, "requested", "cpe1", "created")
        kinds = [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert kinds[-2:] == ["NodeRegistered", "InstancePlaced"]  # recorded order
        placed = s.scalars(select(EventRow).where(EventRow.kind == "InstancePlaced")).one()
        assert placed.data["instance"] == iid and placed.actor == "prov@example.org"
        readers = s.scalars(
            select(EventReaderRow.reader).where(EventReaderRow.event_id == placed.id)
        ).all()
        assert readers == ["prov@example.org"]
    assert problems(db) == []


def test_a_created_instance_is_tracked_in_its_session(db: Database) -> None:
    with db.session() as s:
        inst, _ = nfv.create_instance(s, PLACED)
        nfv.transition(s, inst, nfv.S.STARTING, "agent starts it")
        nfv.transition(s, inst, nfv.S.FAILED, "it failed")  # no longer live: frees its room
    with db.session(write=False) as s:
        node = s.get(NodeRow, "cpe1")
        assert node is not None and node.used_cpu == pytest.approx(0.0)
        got = s.get(InstanceRow, inst.id)
        assert got is not None and got.state == "failed"
    assert problems(db) == []


def test_threads_creating_at_once_never_share_an_address_or_overfill(db: Database) -> None:
    # Room on cpe1 for three, addresses in its /28 for twelve (the gateway and the
    # host hold two of fourteen): twelve threads, half placed near laptop1 (the
    # nearest is cpe1, then pe1, the address from laptop1's LAN either way) and
    # half pinned to cpe1, all at once.
    start = threading.Barrier(12)
    made: list[InstanceRow] = []
    refused: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        req = nfv.CreateRequest(descriptor="counter", node="cpe1") if i % 2 else PLACED
        start.wait()
        try:
            with db.session() as s:
                inst, _ = nfv.create_instance(s, req)
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
    assert len([i for i in made if i.node == "cpe1"]) == 3  # its room, exactly
    assert len([i for i in made if i.serves == "laptop1"]) == 6  # every placed one: pe1 has room
    assert {i.node for i in made if i.node != "cpe1"} <= {"pe1"}
    assert all("no node has room" in r or "cpe1" in r for r in refused)
    ips = [i.ip for i in made]
    assert all(i.lan == "192.168.1.0/28" for i in made)
    assert len(ips) == len(set(ips)) == len(made)
    assert problems(db) == []
