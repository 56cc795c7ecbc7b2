"""The role matrix (tests/role_matrix_cases.py) on SQLite."""

from pathlib import Path

import pytest

from role_matrix_cases import *  # noqa: F403


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/o.db"
