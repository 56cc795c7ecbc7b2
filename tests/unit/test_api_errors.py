"""The API's one error body (orchestrator/api/errors.py): documented as every error
answer of every operation, and given as such by the routes, their services' aliases
and the app around them (unknown paths, wrong methods)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import authn
from netfate import services
from netfate.orchestrator.api.errors import ErrorBody
from netfate.orchestrator.app import Settings, create_app
from netfate.services.firewall.radius import ENV_LISTEN

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SERVICES = services.registered()
JSON = {"content-type": "application/json"}
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _document() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_app(Settings(database_url="sqlite://"), services=SERVICES).openapi()


def test_every_error_answer_is_documented_as_the_error_body() -> None:
    doc = _document()
    ops = [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) > 50  # the core's, the SDN's and every service's operations
    for method, path, op in ops:
        responses = op["responses"]
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        assert errors, (method, path)
        for code, r in errors.items():
            assert r["content"] == ERROR_BODY, (method, path, code)
        # Around every route: the database unreachable (503), a lost race (409).
        assert "503" in errors, (method, path)
        if method != "get":
            assert "409" in errors, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(errors), (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv(ENV_LISTEN, "127.0.0.1:0")  # the firewall's RADIUS server: not 1812
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/o.db"), services=SERVICES)
    with authn.client(app) as c:  # signed in per route
        yield c


def _error(r: Any, status: int) -> ErrorBody:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    return ErrorBody.model_validate(r.json())


@pytest.mark.parametrize("prefix", ["/api/v1/firewall", "/api/v1/netfate"])
def test_a_service_and_its_alias_answer_the_error_body(client: TestClient, prefix: str) -> None:
    assert "nobody" in _error(client.get(f"{prefix}/users/nobody"), 404).detail
    bad = _error(client.post(f"{prefix}/users", json={"name": 5}), 422)
    assert bad.errors and all(e.loc[0] == "body" for e in bad.errors)
    _error(client.put(f"{prefix}/users", json={}), 405)
    not_utf8 = b'{"name": "\xff"}'
    _error(client.post(f"{prefix}/users", content=not_utf8, headers=JSON), 400)
    _error(client.get(f"{prefix}/no/such/thing"), 404)


def test_the_app_answers_unknown_paths_and_methods_with_the_error_body(
    client: TestClient,
) -> None:
    _error(client.get("/api/v1/no-such-thing"), 404)
    _error(client.delete("/api/v1/topology"), 405)
    bad = _error(client.get("/api/v1/events", params={"limit": "many"}), 422)
    assert bad.errors and bad.errors[0].loc == ["query", "limit"]
