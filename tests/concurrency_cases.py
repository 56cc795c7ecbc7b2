"""Concurrent writes, against SQLite and against PostgreSQL (issue 10, section 3).

Collected twice, as tests/api_cases.py is: by tests/unit/test_concurrency_sqlite.py
(the app in this process behind a real HTTP server) and by
tests/netns/test_concurrency_postgres.py (`netfate orchestrator` as a process on a
real PostgreSQL server). Each defines `db_url` (a migrated, empty database),
and `orchestrator` (its base URL, on `db_url`). An earlier database's upgrade to
revision 0005_concurrency is in tests/migration_cases.py.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import exc, insert, text

import storm
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.store import Database
from netfate.store.tables import (
    DescriptorRow,
    InstanceRow,
    MigrationRow,
    NodeRow,
)


def test_fifty_concurrent_creates(orchestrator: str, db_url: str) -> None:
    storm.prepare(orchestrator)
    log = storm.Log()
    bodies = [dict(storm.PLACED[i % len(storm.PLACED)]) for i in range(50)]
    storm.creates_at_once(orchestrator, log, bodies)

    assert storm.bad_answers(log) == []
    statuses = log.statuses("create")
    assert sum(statuses.values()) == 50
    # Placed creates fail only for want of room: exactly the capacity is used, unless a
    # race was lost more often than the retries allow (then it says so, and is a 409).
    refused = [a.body["detail"] for a in log.answers if a.status == 409]
    lost = [d for d in refused if "conflicted with concurrent changes" in d]
    assert all("no node has room" in d for d in refused if d not in lost), refused
    assert storm.CAPACITY - len(lost) <= statuses[201] <= storm.CAPACITY, statuses
    ips = [i["ip"] for i in log.created.values() if i["ip"] is not None]
    assert len(ips) == len(set(ips))
    db = Database(db_url)
    try:
        assert storm.problems(db) == []
    finally:
        db.dispose()
    storm.check_created(orchestrator, log)


def test_creates_migrations_and_destroys_at_once(orchestrator: str, db_url: str) -> None:
    storm.prepare(orchestrator)
    log = storm.Log()
    db = Database(db_url)
    agents, sampler = storm.Agents(orchestrator, log), storm.Sampler(db)
    agents.start()
    sampler.start()
    try:
        storm.creates_at_once(orchestrator, log, [dict(b) for b in storm.PLACED * 10])
        with storm.client(orchestrator) as c:
            storm.until(
                "ten instances running",
                lambda: len(c.get("/instances", params={"state": "running"}).json()) >= 10,
            )
        halt = threading.Event()
        mixers = [storm.Mixer(orchestrator, log, halt, seed=i, ops=25) for i in range(10)]
        for m in mixers:
            m.start()
        for m in mixers:
            m.join(600)
    finally:
        agents.stop()
        seen = sampler.stop()
    try:
        assert storm.bad_answers(log) == []
        assert seen == [], seen[:10]
        assert sampler.samples > 0
        assert storm.problems(db) == []
        # The storm did what it says: migrations and destroys were accepted too.
        assert log.statuses("migrate")[202] > 0 and log.statuses("destroy")[202] > 0
        storm.check_created(orchestrator, log)
    finally:
        db.dispose()


def test_concurrent_revision_bumps_all_count(db_url: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            s.add(NodeRow(name="n1", kind="cpe", status="up", revision=0, resources={}))
        threads, each = 8, 25
        gate = threading.Barrier(threads)
        errors: list[BaseException] = []

        def bumper() -> None:
            gate.wait()
            for _ in range(each):
                try:
                    with db.session() as s:
                        s.get(NodeRow, "n1")  # read first, as the coordinator's paths do
                        nfv.bump(s, "n1")
                except BaseException as e:
                    errors.append(e)

        ts = [threading.Thread(target=bumper) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        assert errors == []
        with db.session(write=False) as s:
            node = s.get(NodeRow, "n1")
            assert node is not None and node.revision == threads * each
    finally:
        db.dispose()


def _instance(
    iid: str, ip: str | None, state: str = "running", at: float = 1.0
) -> dict[str, object]:
    return {
        "id": iid, "name": iid, "descriptor": "counter", "node": "n1", "state": state,
        "ip": ip, "lan": "10.1.0.0/24", "gateway": "10.1.0.1", "mac": "02:4e:00:00:00:00",
        "config": {}, "cpu": 0.1, "memory_mb": 64, "created_at": at, "updated_at": at,
        "detail": "", "stats": {},
    }  # fmt: skip


def _seed(db: Database) -> None:
    with db.session() as s:
        # Only the columns every revision has (migration_cases seeds an earlier schema):
        # plain SQL, as the ORM would add the newer columns' defaults.
        s.execute(
            text(
                "INSERT INTO nodes (name, kind, cpu, memory_mb, status, resources, revision) "
                "VALUES ('n1', 'cpe', 2.0, 1024, 'up', '{}', 0)"
            )
        )
        counter = {"name": "counter", "function": "counter", "cpu": 0.1, "memory_mb": 64}
        s.execute(insert(DescriptorRow), [counter])


def test_the_database_refuses_a_second_holder_of_an_address(db_url: str) -> None:
    """Enforced by the database itself, whatever Python does: rows written with plain
    SQL, as a buggy or concurrent writer would."""
    db = Database(db_url)
    try:
        _seed(db)
        with db.session() as s:
            s.execute(insert(InstanceRow), [_instance("i-1", "10.1.0.9/24")])
            # A gone instance's address may be held again.
            s.execute(insert(InstanceRow), [_instance("i-2", "10.1.0.8/24", "gone")])
            s.execute(insert(InstanceRow), [_instance("i-3", "10.1.0.8/24")])
        with pytest.raises(exc.IntegrityError), db.session() as s:
            s.execute(insert(InstanceRow), [_instance("i-4", "10.1.0.9/24", "stopping")])
        mig = {"source": "n1", "target": "n1", "started_at": 1.0, "reason": ""}
        with db.session() as s:
            s.execute(insert(MigrationRow), [{"instance": "i-1", "phase": "done", **mig}] * 2)
            s.execute(insert(MigrationRow), [{"instance": "i-1", "phase": "pending", **mig}])
        with pytest.raises(exc.IntegrityError), db.session() as s:
            s.execute(insert(MigrationRow), [{"instance": "i-1", "phase": "preparing", **mig}])
    finally:
        db.dispose()
