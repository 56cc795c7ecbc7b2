"""PostgreSQL for the netns tests that run cases on it (test_api_postgres.py,
test_concurrency_postgres.py): one server per module, one database per test."""

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from pgserver import database_from, migrated_template


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[tuple[str, Engine]]:
    with migrated_template() as server:
        yield server


@pytest.fixture
def db_url(pg_admin: tuple[str, Engine]) -> Iterator[str]:
    """A migrated, empty database of its own."""
    yield from database_from(pg_admin, "netfate_template")
