"""Concurrent writers: what a database error means, and which transaction a request ran.

Two transactions that both read and then write can lose a race; the database, not
Python, decides who loses (unique indexes, row locks, SQLite's single write lock,
PostgreSQL's deadlock detector). The loser's whole transaction can simply run again:
`classify` tells such a conflict apart from a database that cannot be reached and
from every other error (a bug, which stays an error). The retry itself is the
caller's (`netfate.orchestrator.txretry` for HTTP requests); it must never re-run a
transaction that may have committed, which `Attempt` records.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.orm import exc as orm_exc


class RetryTransaction(Exception):
    """Raised inside a transaction that decided on rows a concurrent one changed
    before they could be locked: run the whole transaction again."""


class Failure(StrEnum):
    CONFLICT = "conflict"
    """Lost a race (unique violation, deadlock, serialization failure, lock busy):
    running the whole transaction again may succeed."""
    UNAVAILABLE = "unavailable"
    """The database cannot be reached (connection refused or lost, server starting
    up or shutting down, connection pool exhausted)."""


# PostgreSQL SQLSTATEs of a lost race (Appendix A of its manual).
PG_CONFLICT = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available
}
# 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now; class 08:
# connection exceptions.
PG_UNAVAILABLE = {"57P01", "57P02", "57P03"}


def classify(e: BaseException) -> Failure | None:
    """CONFLICT, UNAVAILABLE, or None for any other error."""
    if isinstance(e, RetryTransaction | sa_exc.IntegrityError | orm_exc.StaleDataError):
        # Races, here: a unique index refused the second of two equal rows, a row
        # referenced was deleted meanwhile, or a row this session updates or deletes
        # was deleted by a concurrent transaction (the ORM's UPDATE matched none). A
        # deterministic one is retried a few times and then answered 409 as well.
        return Failure.CONFLICT
    if isinstance(e, sa_exc.TimeoutError):  # no pooled connection came free in time
        return Failure.UNAVAILABLE
    if not isinstance(e, sa_exc.DBAPIError):
        return None
    if e.connection_invalidated:
        return Failure.UNAVAILABLE
    orig: Any = e.orig
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        # SQLITE_BUSY(_SNAPSHOT/_RECOVERY/_TIMEOUT), SQLITE_LOCKED(_SHAREDCACHE): another
        # connection holds the lock, or a deferred transaction's snapshot went stale.
        if sqlite_name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return Failure.CONFLICT
        return None
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in PG_CONFLICT:
        return Failure.CONFLICT
    if sqlstate in PG_UNAVAILABLE or (isinstance(sqlstate, str) and sqlstate.startswith("08")):
        return Failure.UNAVAILABLE
    if sqlstate is None and isinstance(e, sa_exc.OperationalError):
        # No SQLSTATE: the error came from the client library, not from a server's
        # answer (connection refused, server closed the connection).
        return Failure.UNAVAILABLE
    return None


def first_line(e: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameters."""
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip()
    return (text.splitlines() or [type(e).__name__])[0][:300]


@dataclass
class Attempt:
    """One run of a request's transactions: whether any of them began to commit."""

    tries: int = 1
    """1 for the first run, 2 once it lost a race and runs again, ..."""
    committing: bool = False
    committed: bool = False


ATTEMPT: ContextVar[Attempt | None] = ContextVar("netfate_attempt", default=None)


def retrying() -> bool:
    """Whether this request runs again after losing a race (then a contended decision
    may rather queue than race again)."""
    a = ATTEMPT.get()
    return a is not None and a.tries > 1


def _before_commit(_session: Session) -> None:
    a = ATTEMPT.get()
    if a is not None:
        a.committing = True


def _after_commit(_session: Session) -> None:
    a = ATTEMPT.get()
    if a is not None:
        a.committed = True


def track_commits(factory: Any) -> None:
    """Record the commits of sessions from `factory` in the current Attempt (if any)."""
    from sqlalchemy import event

    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_commit", _after_commit)
