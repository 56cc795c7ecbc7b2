"""An orchestrator app that made its own database closes it when it stops: a process
that starts and stops apps (the test suite, an embedding program) does not collect
open database files."""

from __future__ import annotations

import os
from pathlib import Path

import authn
from netfate.orchestrator.app import Settings, create_app
from netfate.store import Database


def _db_files(path: Path) -> int:
    """Descriptors of this process open on the database file."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                n += 1
        except OSError:
            continue
    return n


def test_an_app_closes_the_database_it_opened(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    app = create_app(Settings(database_url=f"sqlite:///{path}"))
    with authn.client(app) as c:
        for _ in range(5):
            assert c.get("/api/v1/nodes").status_code == 200
        assert _db_files(path) > 0
    assert _db_files(path) == 0
    # A later session (a test reading the app's tables after it stopped) still works.
    with app.state.db.session() as s:
        assert s.connection() is not None


def test_a_database_handed_in_stays_open(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    db = Database(f"sqlite:///{path}")
    app = create_app(Settings(database_url=f"sqlite:///{path}"), db=db)
    with authn.client(app) as c:
        assert c.get("/api/v1/nodes").status_code == 200
    with db.session() as s:
        assert s.connection() is not None
    assert _db_files(path) > 0  # the caller's pool, the caller's to close
    db.dispose()
    assert _db_files(path) == 0
