"""Fixtures any test may use, wherever it sits (tests/conftest.py loads this module as a
plugin, so a service's tests under tests/services/NAME/ get them too).

- fault_dir: fault injection (netfate.faults) armed in this process.
- pg_admin, db_url: PostgreSQL for the tests that run cases on it (test_api_postgres.py,
  test_concurrency_postgres.py): one server per module, one database per test.
- orch: an orchestrator process (tests/orchproc.py), signed in as its first operator.
- scenario: every registered service's app filled with the full scenario
  (tests/full_scenario.py), its test client signed in per route.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from full_scenario import scenario  # noqa: F401  (a fixture: every service, filled)
from netfate import faults
from orchproc import orch  # noqa: F401  (a fixture: an orchestrator process)
from pgserver import database_from, migrated_template


@pytest.fixture
def fault_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process takes part in fault injection (netfate.faults), armed from here."""
    monkeypatch.setenv(faults.ENV, "1")
    monkeypatch.setattr(faults, "_dir", None)
    monkeypatch.setattr(faults, "_holes", set())
    d = tmp_path / "faults"
    assert faults.enable(d)
    yield d


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[tuple[str, Engine]]:
    with migrated_template() as server:
        yield server


@pytest.fixture
def db_url(pg_admin: tuple[str, Engine]) -> Iterator[str]:
    """A migrated, empty database of its own."""
    yield from database_from(pg_admin, "netfate_template")
