"""The shared API cases against a real PostgreSQL server (root tier: the server runs
as the postgres user)."""

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from api_cases import *  # noqa: F403
from netfate.store import Database
from pgserver import postgres_server


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[tuple[str, Engine]]:
    """The server, and a template database migrated once (each test clones it:
    CREATE DATABASE ... TEMPLATE takes milliseconds, a migration seconds)."""
    with postgres_server() as url:
        admin = create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE netfate_template"))
        base = url.rsplit("/", 1)[0]
        db = Database(base + "/netfate_template")
        db.migrate()
        db.dispose()
        yield base, admin
        admin.dispose()


@pytest.fixture
def db_url(pg_admin: tuple[str, Engine]) -> Iterator[str]:
    base, admin = pg_admin
    name = "t" + secrets.token_hex(4)
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name} TEMPLATE netfate_template"))
    yield f"{base}/{name}"
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
