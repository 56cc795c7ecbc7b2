"""Agents' reports written in batches (orchestrator/reports.py): reports that arrive
together share one transaction, and one refused report is rolled back alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from netfate.orchestrator.nfv.errors import NotFound
from netfate.orchestrator.reports import ReportBatcher
from netfate.store.tables import NodeRow, PortRow
from topology_db import topology_db

TOPO: dict[str, Any] = {
    "name": "batches",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24"},
        "pe1": {"kind": "pe"},
    },
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}


def _report(node: str) -> dict[str, Any]:
    return {"resources": {"cpu_pct": 3.0}, "ports": [{"name": f"{node}-p", "ofport": 1}]}


def test_reports_together_share_a_transaction_and_a_refusal_stays_alone(
    tmp_path: Path,
) -> None:
    db = topology_db(tmp_path, TOPO)
    commits: list[int] = []
    event.listen(db.engine, "commit", lambda _c: commits.append(1))  # savepoints aside
    notified: list[set[str]] = []
    batcher = ReportBatcher(db, notified.append)

    async def main() -> list[Any]:
        calls = [batcher.apply(n, _report(n)) for n in ("cpe1", "nowhere", "cpe2", "pe1")]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        got = asyncio.run(main())
        assert isinstance(got[1], NotFound)
        assert all(isinstance(r, int) for i, r in enumerate(got) if i != 1), got
        assert (batcher.figures.batches, batcher.figures.reports) == (1, 4)
        assert len(commits) == 1
        with db.session(write=False) as s:
            ports = set(s.scalars(select(PortRow.name)))
            seen = {n.name: n.resources for n in s.scalars(select(NodeRow))}
        assert ports == {"cpe1-p", "cpe2-p", "pe1-p"}
        assert all(seen[n] == {"cpu_pct": 3.0} for n in ("cpe1", "cpe2", "pe1"))
    finally:
        db.dispose()


def test_a_batch_that_fails_whole_fails_each_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = topology_db(tmp_path, TOPO)
    batcher = ReportBatcher(db, lambda _t: None)

    def broken(*_a: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(batcher, "_write", broken)

    async def main() -> list[Any]:
        calls = [batcher.apply(n, _report(n)) for n in ("cpe1", "cpe2")]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        got = asyncio.run(main())
        assert [type(e) for e in got] == [RuntimeError, RuntimeError]
        assert batcher.figures.batches == 0
    finally:
        db.dispose()


def test_a_database_gone_mid_batch_fails_the_whole_batch_as_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection lost while one report is written (PostgreSQL killed): every
    report of the batch gets that error, which txretry answers 503 or runs again,
    not a per-report refusal followed by the broken session's PendingRollbackError
    (a 500); nothing of the batch is kept."""
    from sqlalchemy import exc as sa_exc

    from netfate.orchestrator import reports
    from netfate.store.conflicts import Failure, classify

    db = topology_db(tmp_path, TOPO)
    batcher = ReportBatcher(db, lambda _t: None)
    real = reports.nfv.apply_report

    def apply(session: Any, node: str, report: dict[str, Any], on_event: Any) -> set[str]:
        if node == "cpe2":
            raise sa_exc.OperationalError("UPDATE nodes", {}, Exception("server closed it"))
        return real(session, node, report, on_event)

    monkeypatch.setattr(reports.nfv, "apply_report", apply)

    async def main() -> list[Any]:
        calls = [batcher.apply(n, _report(n)) for n in ("cpe1", "cpe2", "pe1")]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        got = asyncio.run(main())
        assert all(classify(e) is Failure.UNAVAILABLE for e in got), got
        with db.session(write=False) as s:
            assert set(s.scalars(select(PortRow.name))) == set()  # cpe1's rolled back too
    finally:
        db.dispose()
