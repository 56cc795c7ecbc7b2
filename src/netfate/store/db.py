"""Engine, sessions and schema migration for SQLite and PostgreSQL.

Concurrent writers are kept apart by the database, not by Python:

- SQLite: a transaction that may write starts with BEGIN IMMEDIATE, which takes the
  database's single write lock before the transaction reads anything (waiting up to
  busy_timeout for it). A deferred transaction that reads and then writes would get
  SQLITE_BUSY at once whenever another writer committed in between (in WAL mode a
  stale snapshot cannot be upgraded, and busy_timeout does not help), and its reads
  would not be serialized with the other writers. A read session (`write=False`)
  starts a deferred transaction and never holds up a writer. pysqlite's own
  transaction handling (BEGIN before DML only, reads outside it) is switched off.
  Within one process the writers queue on a Python lock first (`_Gate`), which hands
  over the moment a transaction ends: SQLite's busy handler instead wakes waiters by
  polling (sleeps of 1 to 100 ms), and with tens of waiting writers it left the lock
  idle most of the time (creates/s fell to a third; bench/contention.py).
- PostgreSQL: READ COMMITTED, plus row locks where a decision reads rows that
  another writer may change (`SELECT ... FOR UPDATE`, in one global order; see the
  coordinator) and `serialize()` where there is no row to lock.
- Both: unique indexes back what must be unique. The loser of a race that still
  happens gets an error that `conflicts.classify` recognises; the API runs its whole
  transaction again (orchestrator/txretry.py).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, create_engine, event, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from netfate.store import usage
from netfate.store.conflicts import RetryTransaction, track_commits

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "netfate_read_only"


class DatabaseURLError(ValueError):
    pass


def normalise_url(url: str) -> str:
    """Accept the URLs people type (`postgresql://`, `sqlite:///file.db`) and pick drivers."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("postgresql+psycopg://", "sqlite://")):
        return url
    raise DatabaseURLError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        """`pool_size`: connections kept open, and as many more at busy times (a
        request waiting for one gives up after BUSY_TIMEOUT_S, as it does for the
        write gate). The orchestrator's request threads (Settings.worker_threads)
        are as many as both: a request waits for the gate, never for a connection
        held by one that waits for the gate (issue 15's stall)."""
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": pool_size,
            "pool_timeout": BUSY_TIMEOUT_S,
        }
        if self.url.startswith("sqlite"):
            _owner_only(make_url(self.url).database)
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": BUSY_TIMEOUT_S,
                "factory": _GatedConnection,
            }
            if make_url(self.url).database in (None, "", ":memory:"):
                kwargs = {"connect_args": kwargs["connect_args"]}  # one shared connection
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            gate = _Gate()

            def connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.gate = gate
                _sqlite_connect(dbapi_conn)

            event.listen(self.engine, "connect", connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        """Sessions that may write (on SQLite: BEGIN IMMEDIATE)."""
        self.readers = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        """Sessions that only read (on SQLite: a deferred BEGIN, no write lock)."""
        track_commits(self.sessions)
        usage.track(self.sessions)  # each node's used CPU and memory, kept in its row

    def migrate(self, versions: Iterable[Path] = ()) -> None:
        """Bring the schema to the newest revision of every branch (idempotent).

        `versions`: the services' own Alembic version folders (their contracts'
        ``migrations``); each is a branch from the core's first revision, so
        services never depend on each other's migrations. A database once
        migrated with a service needs that service's folder again."""
        cfg = alembic_config(versions)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")  # one branch per service

    def open(self, *, write: bool = True) -> Session:
        return (self.sessions if write else self.readers)()

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        s = self.open(write=write)
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(versions: Iterable[Path] = ()) -> Config:
    """The core's migrations and the given services' version folders, as one Alembic
    script directory (its env.py runs with the connection put in `attributes`)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("path_separator", "os")
    locations = [MIGRATIONS / "versions", *versions]
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    return cfg


def exclusive(session: Session) -> bool:
    """Whether this session's transaction holds the whole database, and has since it
    began (a writing transaction on SQLite: BEGIN IMMEDIATE): nothing it read can
    have changed since, so a decision need not be checked again under a row lock."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    return not session.connection().get_execution_options().get(READ_ONLY, False)


def serialize(session: Session, name: str) -> None:
    """Make concurrent transactions that call this with the same `name` run one after
    the other from here to their end, for decisions with no row to lock (e.g. whether
    a new SDN intent conflicts with the stored ones). PostgreSQL: a transaction-level
    advisory lock; SQLite: a writing transaction holds the database's write lock
    already. Call it before reading what the decision depends on: rows this session
    loaded before keep what they held then (session.expire_all() reloads them)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(name.encode()) - (1 << 31)  # a stable signed 32-bit key
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


BUSY_TIMEOUT_S = 30


class _Gate:
    """One writing transaction at a time per database in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def close(self) -> None:
        if not self.lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise RetryTransaction(
                f"another writer of this process held the database for {BUSY_TIMEOUT_S} s"
            )

    def open(self) -> None:
        self.lock.release()


class _GatedConnection(sqlite3.Connection):
    """A SQLite connection that opens its database's gate once its writing transaction
    has ended (committed, rolled back, or the connection closed)."""

    gate: _Gate | None = None
    holds = False

    def enter(self) -> None:
        if self.gate is not None and not self.holds:
            self.gate.close()
            self.holds = True

    def leave(self) -> None:
        if self.gate is not None and self.holds:
            self.holds = False
            self.gate.open()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave()


def _owner_only(database: str | None) -> None:
    """A SQLite file holds secrets (write-only in reads, e.g. RADIUS shared secrets):
    only its owner reads it. SQLite gives its -wal and -shm files the database's mode."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # no directory: SQLite says
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if (mode := f.stat().st_mode) & 0o077:
                os.chmod(f, mode & 0o700)


def _sqlite_connect(dbapi_conn: Any) -> None:
    # Transactions are begun by _sqlite_begin, not by the driver.
    dbapi_conn.isolation_level = None
    # WAL lets the dashboard read while the API writes; foreign keys are off by default.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READ_ONLY, False):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.driver_connection
    gated = raw if isinstance(raw, _GatedConnection) else None
    if gated is not None:
        gated.enter()
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if gated is not None:
            gated.leave()
        raise
