"""The concurrency cases on SQLite: the orchestrator app in this process, behind a
real uvicorn server on 127.0.0.1, with real client threads (see
tests/concurrency_cases.py)."""

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

import authn
import storm
from concurrency_cases import *  # noqa: F403  (the shared cases)
from netfate.apiclient import SignedIn
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import accounts
from netfate.store import Database


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/orchestrator.db"
    db = Database(url)
    db.migrate()
    db.dispose()
    return url


@pytest.fixture
def orchestrator(db_url: str) -> Iterator[str]:
    # Nodes have played agents only: a long timeout keeps them up between reports.
    app = create_app(Settings(database_url=db_url, heartbeat_timeout_s=3600))
    with storm.serve(app) as base:
        agents = functools.cache(
            lambda node: authn.token(app, accounts.agent_name(node), Role.AGENT, node)
        )
        storm.sign_in(base, SignedIn(authn.token(app, authn.OPERATOR, Role.OPERATOR), agents))
        yield base
