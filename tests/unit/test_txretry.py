"""Which database errors are lost races and which an unreachable server (store/conflicts.py),
and what the API does with each (orchestrator/txretry.py): runs the request again with
its body, then 409; 503 while the database is away; never twice once it began to commit."""

from __future__ import annotations

import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Body, FastAPI
from fastapi.responses import StreamingResponse
from sqlalchemy import exc, text
from sqlalchemy.orm import exc as orm_exc

from netfate.orchestrator.txretry import TransactionRetry
from netfate.store import Database
from netfate.store.conflicts import ATTEMPT, Failure, RetryTransaction, classify

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"driver error {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(cls: type[exc.DBAPIError], sqlstate: str | None, invalidated: bool = False) -> Any:
    return cls("SELECT 1", {}, _DriverError(sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (RetryTransaction("moved"), Failure.CONFLICT),
        (_wrapped(exc.IntegrityError, "23505"), Failure.CONFLICT),
        (orm_exc.StaleDataError("DELETE matched 0 rows"), Failure.CONFLICT),
        (_wrapped(exc.OperationalError, "40001"), Failure.CONFLICT),  # serialization
        (_wrapped(exc.OperationalError, "40P01"), Failure.CONFLICT),  # deadlock
        (_wrapped(exc.OperationalError, "55P03"), Failure.CONFLICT),  # lock not available
        (_wrapped(exc.OperationalError, "57P03"), Failure.UNAVAILABLE),  # starting up
        (_wrapped(exc.OperationalError, "08006"), Failure.UNAVAILABLE),  # connection failure
        (_wrapped(exc.OperationalError, None), Failure.UNAVAILABLE),  # refused, by the client
        (_wrapped(exc.OperationalError, "XX000", invalidated=True), Failure.UNAVAILABLE),
        (exc.TimeoutError("QueuePool limit reached"), Failure.UNAVAILABLE),
        (_wrapped(exc.DataError, "22003"), None),  # a value out of range: a bad request
        (_wrapped(exc.ProgrammingError, "42601"), None),  # a bug
        (ValueError("x"), None),
    ],
)
def test_classify(error: BaseException, failure: Failure | None) -> None:
    assert classify(error) is failure


def test_classify_real_sqlite_errors(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
            s.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(exc.IntegrityError) as dup, db.session() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
        assert classify(dup.value) is Failure.CONFLICT
        # Another process's writer (this process's writers queue before SQLite's lock).
        holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with db.engine.connect() as other:
                raw: Any = other.connection.driver_connection
                raw.execute("PRAGMA busy_timeout=0")  # give up at once, not after 30 s
                with pytest.raises(exc.OperationalError) as locked:
                    other.execute(text("SELECT 1"))
        finally:
            holder.close()
        assert "locked" in str(locked.value) and classify(locked.value) is Failure.CONFLICT
        with pytest.raises(exc.OperationalError) as bad, db.session() as s:
            s.execute(text("SELECT * FROM nowhere"))
        assert classify(bad.value) is None
    finally:
        db.dispose()


def test_a_read_session_does_not_take_the_write_lock(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        with db.engine.connect() as writer:
            writer.execute(text("SELECT 1"))  # holds the write lock (and this process's gate)
            with db.session(write=False) as s:
                assert s.execute(text("SELECT 2")).scalar() == 2
    finally:
        db.dispose()


def test_writers_of_one_process_take_turns(tmp_path: Path) -> None:
    """The gate is handed over when a writing transaction ends, however it ends."""
    db = Database(f"sqlite:///{tmp_path}/x.db")
    try:
        with db.session() as s:
            s.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
        with pytest.raises(exc.IntegrityError), db.session() as s:
            s.execute(text("INSERT INTO t VALUES (1), (1)"))  # rolled back
        errors: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                with db.session() as s:  # reads, then writes
                    s.execute(text("SELECT count(*) FROM t")).scalar_one()
                    s.execute(text("INSERT INTO t VALUES (:k)"), {"k": 100 + k})
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with db.session(write=False) as s:
            assert s.execute(text("SELECT count(*) FROM t")).scalar_one() == 20
    finally:
        db.dispose()


# ------------------------------------------------------------------ the middleware


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    db = Database(f"sqlite:///{tmp_path}/x.db")
    app = FastAPI()
    app.add_middleware(TransactionRetry, first_delay_s=0.001)
    seen: dict[str, Any] = {"calls": 0, "bodies": [], "fail": []}

    def fail_next() -> None:
        seen["calls"] += 1
        if seen["fail"]:
            raise seen["fail"].pop(0)

    @app.post("/echo")
    def echo(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        seen["bodies"].append(body)
        fail_next()
        return body

    @app.post("/commit-then")
    def commit_then() -> None:
        # A real commit (in the worker thread) marks the attempt: never run again.
        with db.session() as s:
            s.execute(text("SELECT 1"))
        fail_next()

    @app.post("/committing")
    def committing() -> None:
        a = ATTEMPT.get()
        assert a is not None
        a.committing = True  # as a commit whose answer never came
        fail_next()

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def gen() -> Iterator[bytes]:
            yield b"begun"
            fail_next()

        return StreamingResponse(gen())

    yield app, seen
    db.dispose()


def _client(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def test_a_lost_race_runs_again_with_the_same_body(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [RetryTransaction("filled"), _wrapped(exc.IntegrityError, "23505")]
    r = _client(a).post("/echo", json={"x": 1})
    assert r.status_code == 200 and r.json() == {"x": 1}
    assert seen["calls"] == 3 and seen["bodies"] == [{"x": 1}] * 3


def test_a_race_lost_every_time_is_a_409_with_its_reason(
    app: tuple[FastAPI, dict[str, Any]],
) -> None:
    a, seen = app
    seen["fail"] = [RetryTransaction("node cpe1 was filled")] * 50
    r = _client(a).post("/echo", json={"x": 1})
    assert r.status_code == 409 and seen["calls"] == 8
    assert "conflicted with concurrent changes 8 times" in r.json()["detail"]
    assert "node cpe1 was filled" in r.json()["detail"]


def test_an_unreachable_database_is_a_503(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [_wrapped(exc.OperationalError, None)] * 50
    r = _client(a).post("/echo", json={"x": 1})
    assert r.status_code == 503 and seen["calls"] == 3
    assert r.json()["detail"].startswith("database unavailable")
    assert r.headers["retry-after"] == "1"


def test_never_run_again_once_committed(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [_wrapped(exc.OperationalError, None)]
    r = _client(a).post("/commit-then")
    assert r.status_code == 503 and seen["calls"] == 1
    assert "the change was saved" in r.json()["detail"]


def test_a_commit_in_doubt_says_so(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [_wrapped(exc.OperationalError, None, invalidated=True)]
    r = _client(a).post("/committing")
    assert r.status_code == 503 and seen["calls"] == 1
    assert "may or may not have been saved" in r.json()["detail"]


def test_other_errors_are_not_retried(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [_wrapped(exc.ProgrammingError, "42601")]
    assert _client(a).post("/echo", json={}).status_code == 500
    assert seen["calls"] == 1


def test_a_response_already_begun_is_not_run_again(app: tuple[FastAPI, dict[str, Any]]) -> None:
    a, seen = app
    seen["fail"] = [RetryTransaction("late")]
    r = _client(a).get("/stream")
    assert r.status_code == 200 and r.content == b"begun"
    assert seen["calls"] == 1
