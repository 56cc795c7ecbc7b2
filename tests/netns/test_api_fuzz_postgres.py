"""The API fuzz cases (tests/api_fuzz.py) on a real PostgreSQL server (root tier: the
server runs as the postgres user)."""

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from api_fuzz import *  # noqa: F403  (the shared cases)
from api_fuzz import Backend, seed_template
from pgserver import postgres_server


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    """The seeded database is a template; each operation gets a copy of it
    (CREATE DATABASE ... TEMPLATE takes milliseconds)."""
    with postgres_server() as url:
        admin = create_engine(
            url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
        )
        base = url.rsplit("/", 1)[0]
        with admin.connect() as c:
            c.execute(text("CREATE DATABASE fuzz_template"))
        seed_template(f"{base}/fuzz_template")
        counter = itertools.count()

        def clone() -> str:
            name = f"fuzz{next(counter)}"
            with admin.connect() as c:
                c.execute(text(f"CREATE DATABASE {name} TEMPLATE fuzz_template"))
            return f"{base}/{name}"

        def drop(db_url: str) -> None:
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE {db_url.rsplit('/', 1)[1]} WITH (FORCE)"))

        yield Backend(clone, drop)
        admin.dispose()
