"""Each node's kept use (nodes.used_cpu, nodes.used_memory_mb; store/usage.py) equals
the sum recomputed from its instances and the open migrations to it: after creates
(placed and pinned), the agents' reports, migrations that end, fail or are destroyed
midway, destroys, a random walk of all of these, writes that bypass the ORM (then
`recount`), and the Alembic revision that adds the columns to a database that has
instances already."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import Conflict, NoCapacity
from netfate.store import usage
from netfate.store.db import Database, alembic_config
from netfate.store.tables import InstanceRow, MigrationRow, NodeRow
from topology_db import topology_db

TOPO = {
    "name": "usage",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 2, "memory": "1024MiB"},
    },
    "hosts": {"laptop1": {"node": "cpe1", "ip": "192.168.1.10"}},
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def kept(s: Session) -> dict[str, tuple[float, int]]:
    rows = s.execute(select(NodeRow.name, NodeRow.used_cpu, NodeRow.used_memory_mb))
    return {n: (c, m) for n, c, m in rows if c or m}


def assert_kept_is_recomputed(db: Database) -> dict[str, tuple[float, int]]:
    """In a fresh read transaction: the kept figures, node by node, are the sums."""
    with db.session(write=False) as s:
        have, want = kept(s), usage.recompute(s)
        assert set(have) == {n for n, (c, m) in want.items() if c or m}
        for n, (c, m) in have.items():
            assert c == pytest.approx(want[n][0], abs=usage.CPU_SLACK) and m == want[n][1], n
        assert nfv.violations(s) == []
        return have


def report(s: Session, node: str, status: str = "running") -> None:
    """The node's agent runs (or has dropped, status None) every instance it holds."""
    live = s.scalars(select(InstanceRow).where(InstanceRow.node == node)).all()
    items = [{"id": i.id, "status": status} for i in live if i.state not in ("stopping", "gone")]
    nfv.apply_report(s, node, {"instances": items})


def test_creates_reports_migrations_and_destroys_keep_the_sums(db: Database) -> None:
    with db.session() as s:
        placed, _ = nfv.create_instance(
            s, nfv.CreateRequest(descriptor="counter", serves="laptop1")
        )
        pinned, _ = nfv.create_instance(
            s, nfv.CreateRequest(descriptor="counter", node="pe1", cpu=0.5, memory_mb=128)
        )
    assert placed.node == "cpe1"
    assert assert_kept_is_recomputed(db) == {"cpe1": (0.1, 64), "pe1": (0.5, 128)}
    with db.session() as s:
        report(s, "cpe1")
        report(s, "pe1")
    assert_kept_is_recomputed(db)
    # A migration reserves its instance's room at the target until it ends.
    with db.session() as s:
        m, _ = nfv.migrate_instance(s, placed.id, "cpe2")
        mid = m.id
    have = assert_kept_is_recomputed(db)
    assert have["cpe1"] == (0.1, 64) and have["cpe2"] == (0.1, 64)
    with db.session() as s:
        nfv.apply_report(s, "cpe2", {"migrations": [{"id": mid, "status": "done"}]})
    have = assert_kept_is_recomputed(db)
    assert "cpe1" not in have and have["cpe2"] == (0.1, 64)
    # One that fails gives its reservation back; the instance stays where it was.
    with db.session() as s:
        m, _ = nfv.migrate_instance(s, pinned.id, "cpe1")
        mid = m.id
    assert assert_kept_is_recomputed(db)["cpe1"] == (0.5, 128)
    with db.session() as s:
        nfv.apply_report(s, "cpe1", {"migrations": [{"id": mid, "status": "failed"}]})
    assert "cpe1" not in assert_kept_is_recomputed(db)
    # Destroyed during a migration: the reservation goes at once, the instance's own
    # share when its agent has removed it (stopping counts no more).
    with db.session() as s:
        nfv.migrate_instance(s, placed.id, "pe1")
    assert assert_kept_is_recomputed(db)["pe1"] == (0.6, 192)
    with db.session() as s:
        nfv.destroy_instance(s, placed.id)
        nfv.destroy_instance(s, pinned.id)
    assert assert_kept_is_recomputed(db) == {}
    with db.session() as s:
        report(s, "cpe2", "gone")
        report(s, "pe1", "gone")
    assert assert_kept_is_recomputed(db) == {}


def test_a_random_walk_keeps_the_sums(db: Database) -> None:
    rng = random.Random(15)
    nodes = ["cpe1", "cpe2", "pe1"]
    for _ in range(120):
        op = rng.choice(["create", "create", "pin", "report", "migrate", "done", "destroy"])
        with db.session() as s:
            ids = [i.id for i in s.scalars(select(InstanceRow).where(InstanceRow.state != "gone"))]
            try:
                if op == "create":
                    nfv.create_instance(s, nfv.CreateRequest(descriptor="counter"))
                elif op == "pin":
                    cpu = rng.choice([0.1, 0.25, 0.3])
                    node = rng.choice(nodes)
                    nfv.create_instance(
                        s, nfv.CreateRequest(descriptor="counter", node=node, cpu=cpu)
                    )
                elif op == "report":
                    report(s, rng.choice(nodes), rng.choice(["running", "running", "gone"]))
                elif op == "migrate" and ids:
                    nfv.migrate_instance(s, rng.choice(ids), rng.choice(nodes))
                elif op == "done":
                    for m in s.scalars(select(MigrationRow).where(MigrationRow.phase == "pending")):
                        status = rng.choice(["done", "failed"])
                        nfv.apply_report(
                            s, m.target, {"migrations": [{"id": m.id, "status": status}]}
                        )
                elif op == "destroy" and ids:
                    nfv.destroy_instance(s, rng.choice(ids))
            except (Conflict, NoCapacity):
                s.rollback()
        assert_kept_is_recomputed(db)


def test_writes_past_the_orm_are_said_and_recount_mends_them(db: Database) -> None:
    row = {
        "id": "i-bulk",
        "name": "bulk",
        "descriptor": "counter",
        "node": "pe1",
        "state": "running",
        "mac": "02:4e:00:00:00:01",
        "config": {},
        "cpu": 0.3,
        "memory_mb": 32,
        "created_at": 1.0,
        "updated_at": 1.0,
        "detail": "",
    }
    with db.session() as s:
        s.execute(insert(InstanceRow), [row])
    with db.session(write=False) as s:
        assert nfv.violations(s) == [
            "pe1 keeps 0.00 CPU, 0 MiB used; its instances use 0.30 CPU, 32 MiB"
        ]
    with db.session() as s:
        assert usage.recount(s) == 1
        assert usage.recount(s) == 0
    assert assert_kept_is_recomputed(db) == {"pe1": (0.3, 32)}


def test_the_revision_fills_the_columns_from_what_runs(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/old.db")
    try:
        cfg = alembic_config()
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0018_night_power")
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO nodes (name, kind, cpu, memory_mb, status, resources, revision) "
                "VALUES ('n1', 'pe', 4, 1024, 'up', '{}', 0), ('n2', 'pe', 4, 1024, 'up', '{}', 0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO descriptors (name, function, cpu, memory_mb, stateful, "
                "description, config) VALUES ('counter', 'counter', 0.1, 64, 1, '', '{}')"
            )
            for iid, node, state, cpu in (
                ("i-1", "n1", "running", 0.5),
                ("i-2", "n1", "gone", 1.0),
                ("i-3", "n1", "migrating", 0.25),
                ("i-4", "n2", "stopping", 2.0),
            ):
                conn.exec_driver_sql(
                    "INSERT INTO instances (id, name, descriptor, node, state, mac, config, cpu, "
                    "memory_mb, created_at, updated_at, detail, stats) VALUES "
                    f"('{iid}', '{iid}', 'counter', '{node}', '{state}', 'm', '{{}}', {cpu}, "
                    "100, 1, 1, '', '{}')"
                )
            conn.exec_driver_sql(
                "INSERT INTO migrations (instance, source, target, phase, started_at, reason) "
                "VALUES ('i-3', 'n1', 'n2', 'preparing', 1, ''), ('i-1', 'n1', 'n2', 'done', 1, '')"
            )
        db.migrate()
        with db.session(write=False) as s:
            assert kept(s) == {"n1": (0.75, 200), "n2": (0.25, 100)}
            assert nfv.violations(s) == []
    finally:
        db.dispose()
