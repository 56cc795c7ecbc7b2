"""The API fuzz cases (tests/api_fuzz.py) on a real PostgreSQL server (root tier: the
server runs as the postgres user; `pg_admin` comes from tests/shared_fixtures.py)."""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from api_fuzz import *  # noqa: F403  (the shared cases)
from api_fuzz import Backend, seed_template
from pgserver import database_from


@pytest.fixture(scope="module")
def backend(pg_admin: tuple[str, Engine]) -> Iterator[Backend]:
    """The seeded database is a template; each operation gets a copy of it
    (CREATE DATABASE ... TEMPLATE takes milliseconds)."""
    template = database_from(pg_admin, "netfate_template")
    url = next(template)
    seed_template(url)
    yield Backend(lambda: database_from(pg_admin, url.rsplit("/", 1)[1]))
    next(template, None)  # drops it
