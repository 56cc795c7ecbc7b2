"""The streaming service's API in unit tests (tests/services/streaming/unit): an
orchestrator app with the service, its topology put and each node's agent
registered; a response's body; the message of a keyed 422."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.orchestrator.api.errors import ErrorBody
from netfate.orchestrator.app import Settings, create_app
from netfate.services.streaming import SERVICE as STREAMING


@contextmanager
def streaming_api(tmp_path: Path, topo: dict[str, Any]) -> Iterator[TestClient]:
    """A client signed in per route (authn) to an app with the streaming service on
    `topo`, every node's agent registered."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600)
    with authn.client(create_app(settings, services=[STREAMING])) as c:
        ok(c.put("/api/v1/topology", json=topo))
        for n in topo["nodes"]:
            ok(c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"}))
        yield c


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def keyed(r: Any, field: str) -> str:
    """The message of a 422 keyed to ``field`` (in the API's one error body)."""
    assert r.status_code == 422, r.text
    body = ErrorBody.model_validate(r.json())
    (err,) = [e for e in body.errors or [] if e.loc[-1] == field]
    return err.msg
