"""The migration cases (tests/migration_cases.py) on a real PostgreSQL server (root
tier: the server runs as the postgres user)."""

import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from migration_cases import *  # noqa: F403
from pgserver import postgres_server


@pytest.fixture
def db_url() -> Iterator[str]:
    with postgres_server() as url:
        admin = create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        name = "m" + secrets.token_hex(4)
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        yield url.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
