"""The shared API cases against a real PostgreSQL server (root tier: the server runs
as the postgres user)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from api_cases import *  # noqa: F403
from pgserver import postgres_server


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def db_url(pg_server: str) -> Iterator[str]:
    # A fresh database per test, so the cases are as independent as with SQLite files.
    import secrets

    name = "t" + secrets.token_hex(4)
    admin = create_engine(
        pg_server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield pg_server.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()
