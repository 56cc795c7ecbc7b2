"""The orchestrator's history bounds (orchestrator/nfv/history.py): gone instances
beyond the newest N go with their transitions and migrations, events beyond the
newest M go; live instances are never touched. On a migrated SQLite database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from netfate.orchestrator.nfv import history
from netfate.orchestrator.nfv.coordinator import ensure_descriptors
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import EventRow, InstanceRow, MigrationRow, NodeRow, TransitionRow


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'h.db'}")
    d.migrate()
    with d.session() as s:
        ensure_descriptors(s)
        s.add(NodeRow(name="cpe1", kind="cpe"))
    yield d
    d.dispose()


def _instance(iid: str, state: str, at: float) -> InstanceRow:
    return InstanceRow(
        id=iid,
        name=iid,
        descriptor="counter",
        node="cpe1",
        state=state,
        mac="02:00:00:00:00:01",
        cpu=0.1,
        memory_mb=64,
        created_at=at,
        updated_at=at,
    )


def _add(db: Database, iid: str, state: str, at: float) -> None:
    with db.session() as s:
        s.add(_instance(iid, state, at))
        s.flush()
        for st in ("requested", "starting", "running", "stopping", "gone"):
            s.add(TransitionRow(instance=iid, state=st, node="cpe1", at=at))
        s.add(MigrationRow(instance=iid, source="cpe1", target="cpe2", phase="done", started_at=at))


def _count(db: Database, table: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_gone_instances_beyond_the_newest_go_with_their_history(db: Database) -> None:
    for i in range(6):
        _add(db, f"i-gone{i}", "gone", 100.0 + i)
    _add(db, "i-old-live", "running", 1.0)  # older than all, but live
    _add(db, "i-failed", "failed", 2.0)
    with db.session() as s:
        done = history.prune(s, keep_gone=2, keep_events=1000)
    assert done == history.Pruned(instances=4, events=0)
    with db.session() as s:
        left = set(s.scalars(select(InstanceRow.id)))
        orphans = s.scalars(
            select(TransitionRow.instance).where(TransitionRow.instance.not_in(left))
        ).all()
    assert left == {"i-gone4", "i-gone5", "i-old-live", "i-failed"}
    assert orphans == []
    assert _count(db, TransitionRow) == 4 * 5 and _count(db, MigrationRow) == 4
    with db.session() as s:  # within the bound: nothing more
        assert history.prune(s, keep_gone=2, keep_events=1000) == history.Pruned(0, 0)


def test_batches_bound_one_transaction(db: Database) -> None:
    for i in range(5):
        _add(db, f"i-gone{i}", "gone", 100.0 + i)
    with db.session() as s:
        assert history.prune(s, keep_gone=0, keep_events=10, batch=2).instances == 2
    with db.session() as s:
        assert history.prune(s, keep_gone=0, keep_events=10, batch=2).instances == 2
    assert _count(db, InstanceRow) == 1


def test_events_beyond_the_newest_go(db: Database) -> None:
    with db.session() as s:
        for i in range(25):
            record_event(s, "Thing", {"n": i})
    with db.session() as s:
        assert history.prune(s, keep_gone=10, keep_events=10, batch=4).events == 4
    with db.session() as s:
        assert history.prune(s, keep_gone=10, keep_events=10).events == 11
    with db.session() as s:
        kept = [e.data["n"] for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert history.prune(s, keep_gone=10, keep_events=10).events == 0
    assert kept == list(range(15, 25))


def test_the_newest_event_always_stays(db: Database) -> None:
    """Ids keep rising: a reader following the log by id misses nothing."""
    with db.session() as s:
        for i in range(3):
            record_event(s, "Thing", {"n": i})
    with db.session() as s:
        assert history.prune(s, keep_gone=0, keep_events=0).events == 2
    with db.session() as s:
        newer = record_event(s, "Thing", {"n": 3})
        s.flush()
        assert newer.id == 4
    assert _count(db, EventRow) == 2


def test_bounds_must_not_be_negative(db: Database) -> None:
    with db.session() as s, pytest.raises(ValueError):
        history.prune(s, keep_gone=-1, keep_events=0)
