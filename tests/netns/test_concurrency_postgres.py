"""The concurrency cases on a real PostgreSQL server, with `netfate orchestrator` as
a process (see tests/concurrency_cases.py); and the server killed with -9 in the
middle of a storm of creates and migrations, then started again. (`pg_admin` and
`db_url` come from tests/shared_fixtures.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import storm
from concurrency_cases import *  # noqa: F403  (the shared cases)
from netfate.apiclient import SignedIn
from netfate.store import Database
from orchproc import Orchestrator
from pgserver import pg_server

ORCHESTRATOR_ARGS = ("--heartbeat-timeout", "1000000", "--log-level", "warning")


@pytest.fixture
def orchestrator(db_url: str, tmp_path: Path) -> Iterator[str]:
    o = Orchestrator(tmp_path, topology=None, database_url=db_url, args=ORCHESTRATOR_ARGS)
    o.start()
    storm.sign_in(o.base, SignedIn(o.token, o.agent_token))
    try:
        yield o.base
    finally:
        o.stop()


def test_postgres_killed_during_a_storm(tmp_path: Path) -> None:
    with pg_server() as pg:
        db = Database(pg.url)
        orch = Orchestrator(tmp_path, topology=None, database_url=pg.url, args=ORCHESTRATOR_ARGS)
        orch.start()
        storm.sign_in(orch.base, SignedIn(orch.token, orch.agent_token))
        log = storm.Log()
        agents = storm.Agents(orch.base, log)
        halt = threading.Event()
        mixers = [storm.Mixer(orch.base, log, halt, seed=i, ops=1_000_000) for i in range(8)]
        try:
            storm.prepare(orch.base)
            agents.start()
            for m in mixers:
                m.start()
            storm.until("15 creates", lambda: len(log.created) >= 15)
            storm.until("a migration", lambda: log.statuses("migrate")[202] > 0)

            pg.kill9()
            with storm.client(orch.base) as c:
                # While it is down the API says so, with its reason; no request fails otherwise.
                health = storm.until(
                    "health to say 503", lambda: (r := c.get("/health")).status_code == 503 and r
                )
                assert "database unavailable" in health.json()["detail"]
                assert health.headers["retry-after"] == "1"
                storm.until("the storm to see 503s", lambda: log.statuses()[503] >= 10)
                pg.start()
                storm.until("health back", lambda: c.get("/health").status_code == 200)
            back = time.monotonic()
            n = len(log.created)
            storm.until("creates after the restart", lambda: len(log.created) >= n + 10)
            storm.until("migrations after the restart", lambda: any(
                a.op == "migrate" and a.status == 202 and a.started > back for a in log.answers
            ))  # fmt: skip
        finally:
            halt.set()
            for m in mixers:
                m.join(120)
            agents.stop()
        try:
            # 503 only while the server was down (requests sent before it was back).
            assert storm.bad_answers(log, allowed_503=lambda a: a.started < back) == []
            assert storm.problems(db) == []
            storm.check_created(orch.base, log)
        finally:
            orch.stop()
            db.dispose()
