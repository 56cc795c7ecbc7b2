"""Engine, sessions and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


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
        self.url = normalise_url(url)
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

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

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self.sessions()
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the dashboard read while the API writes; foreign keys are off by default.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
