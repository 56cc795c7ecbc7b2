from pathlib import Path

import pytest

from api_cases import *  # noqa: F403  (the shared cases; see tests/api_cases.py)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/orchestrator.db"
