"""The role matrix (tests/role_matrix_cases.py) against a real PostgreSQL server
(root tier: the server runs as the postgres user)."""

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from netfate.services import registered
from netfate.store import Database
from pgserver import postgres_server
from role_matrix_cases import *  # noqa: F403


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[tuple[str, Engine]]:
    """The server, and a template database migrated once with every service's branch
    (each test clones it)."""
    with postgres_server() as url:
        admin = create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE netfate_template"))
        base = url.rsplit("/", 1)[0]
        db = Database(base + "/netfate_template")
        db.migrate([s.migrations for s in registered() if s.migrations])
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
