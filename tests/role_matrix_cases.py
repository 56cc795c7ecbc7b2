"""The role matrix, proven on every operation (DESIGN.md, convention 12).

With every registered service loaded and the full scenario in the database
(tests/full_scenario.py), each operation of the OpenAPI document (the core's,
the SDN API's, every service's) is called:

- without credentials: 401, unless the operation is PUBLIC;
- by a principal of each role the operation does not declare: 403;
- and another principal's object: a provider's instance asked for by another
  provider (404), a node's agent routes called with another node's agent token
  (403), a provider's descriptor replaced by another (403);

and a dump of every table is the same before and after each refused request.

Collected twice: by tests/unit/test_role_matrix.py (SQLite) and by
tests/netns/test_role_matrix_postgres.py (a real PostgreSQL server). Each
defines the `db_url` fixture (an empty database).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from full_scenario import dump, fill, populate
from netfate.contract import Role
from netfate.orchestrator.api.roles import pages, served
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.identity import accounts
from netfate.services import registered
from netfate.store.db import Database

SIGNED_IN_ROLES = (Role.OPERATOR, Role.PROVIDER, Role.USER, Role.AGENT, Role.CONTROLLER)
OTHER_PROVIDER = "other-provider"


@pytest.fixture
def world(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    db = Database(db_url)
    app = create_app(
        Settings(database_url=db_url, heartbeat_timeout_s=3600), db, services=registered()
    )
    with authn.client(app) as c:
        ids = populate(c, db)
        c.portal.call(app.state.loops.stop)  # the loops write: only requests may now
        tok = {
            Role.OPERATOR: authn.token(app, authn.OPERATOR, Role.OPERATOR),
            Role.PROVIDER: authn.token(app, authn.PROVIDER, Role.PROVIDER),
            Role.USER: authn.token(app, authn.USER, Role.USER),
            Role.AGENT: authn.token(app, accounts.agent_name("cpe1"), Role.AGENT, node="cpe1"),
            Role.CONTROLLER: authn.token(app, authn.CONTROLLER, Role.CONTROLLER),
        }
        yield c, {"ids": ids, "db": db, "tokens": tok}
    db.dispose()


def operations(app: Any) -> list[tuple[str, str, tuple[Role, ...]]]:
    """Every operation of the app's OpenAPI document, with its declared roles."""
    doc = app.openapi()
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            roles = tuple(Role(r) for r in op["x-roles"])
            out.append((method.upper(), path, roles))
    return out


def call(c: TestClient, method: str, url: str, headers: dict[str, str]) -> Any:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return c.request(method, url, json=body, headers=headers, auth=None)


def refused(c: TestClient, db: Database, method: str, url: str, tok: str | None) -> int:
    """The status of a request; fails the test if it changed any table."""
    headers = authn.bearer(tok) if tok else {}
    before = dump(db)
    status = int(call(c, method, url, headers).status_code)
    after = dump(db)
    changed = sorted(t for t in set(before) | set(after) if before.get(t) != after.get(t))
    assert not changed, f"{method} {url} ({status}) changed {changed}"
    return status


def test_every_operation_refuses_the_unsigned_and_the_wrong_roles(
    world: tuple[TestClient, Any],
) -> None:
    c, w = world
    ops = operations(c.app)
    assert len(ops) > 60
    # Pages outside the document are PUBLIC pages (their data is behind the API), or
    # web pages behind sign-in (the dashboard, a service's `pages`): those refuse as
    # the API does, except that a browser without a session is sent to sign in.
    documented = {f"{m} {p}" for m, p, _ in ops}
    hidden = {k for k in served(c.app.routes) if k.replace(":path}", "}") not in documented}  # type: ignore[attr-defined]
    signed = {k for k in hidden if c.app.state.roles[k] != (Role.PUBLIC,)}  # type: ignore[attr-defined]
    assert hidden - signed and signed <= set(pages(registered())), signed
    assert {"GET /", "GET /api/v1/sharing/page"} <= signed
    tested = 0
    for key in sorted(signed):
        method, path = key.split(" ", 1)
        assert refused(c, w["db"], method, path, None) == 401, key
        r = c.request(method, path, headers={"accept": "text/html"}, auth=None,
                      follow_redirects=False)  # fmt: skip
        assert r.status_code == 303, (key, r.status_code)
        assert r.headers["location"] == "/signin?next=" + quote(path, safe=""), key
        for role in SIGNED_IN_ROLES:
            if role not in c.app.state.roles[key]:  # type: ignore[attr-defined]
                assert refused(c, w["db"], method, path, w["tokens"][role]) == 403, (key, role)
                tested += 1
    for method, path, roles in ops:
        url = fill(path, w["ids"])
        if Role.PUBLIC in roles:
            continue
        status = refused(c, w["db"], method, url, None)
        assert status == 401, f"{method} {url} without credentials: {status}"
        for role in SIGNED_IN_ROLES:
            if role not in roles:
                status = refused(c, w["db"], method, url, w["tokens"][role])
                assert status == 403, f"{method} {url} as {role.value}: {status}"
                tested += 1
    assert tested > 150


def test_a_malformed_or_dead_credential_is_401_and_changes_nothing(
    world: tuple[TestClient, Any],
) -> None:
    c, w = world
    db = w["db"]
    url = "/api/v1/instances"
    for header in ("", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "Bearer a b", "Token abc",
                   "Bearer " + "x" * 600, "Bearer ünicode-token-ünicode-token-ünicode-tok",
                   "Bearer " + "A" * 43):  # fmt: skip
        for method in ("GET", "POST"):
            before = dump(db)
            r = c.request(method, url, json={} if method == "POST" else None,
                          headers={"authorization": header.encode()}, auth=None)  # fmt: skip
            assert r.status_code == 401, (header[:20], method, r.status_code, r.text)
            assert dump(db) == before


def test_another_providers_instance_is_not_found(world: tuple[TestClient, Any]) -> None:
    c, w = world
    db = w["db"]
    mine = c.post("/api/v1/instances", json={"descriptor": "counter", "serves": "laptop1"},
                  headers=authn.bearer(w["tokens"][Role.PROVIDER]))  # fmt: skip
    assert mine.status_code == 201, mine.text
    iid = mine.json()["id"]
    other = authn.token(c.app, OTHER_PROVIDER, Role.PROVIDER)
    for method, url in (
        ("GET", f"/api/v1/instances/{iid}"),
        ("PATCH", f"/api/v1/instances/{iid}"),
        ("DELETE", f"/api/v1/instances/{iid}"),
    ):
        before = dump(db)
        body = {"config": {"x": 1}} if method == "PATCH" else None
        r = c.request(method, url, json=body, headers=authn.bearer(other), auth=None)
        assert r.status_code == 404, (method, r.status_code, r.text)
        assert dump(db) == before, f"{method} {url} changed something"
    listed = c.get("/api/v1/instances", headers=authn.bearer(other), auth=None).json()
    assert iid not in {i["id"] for i in listed}
    # Its own provider sees it; so does the operator.
    seen = c.get(f"/api/v1/instances/{iid}", headers=authn.bearer(w["tokens"][Role.PROVIDER]))
    assert seen.status_code == 200 and seen.json()["owner"] == authn.PROVIDER
    assert c.get(f"/api/v1/instances/{iid}").json()["node"]


def test_an_agent_acts_for_its_own_node_only(world: tuple[TestClient, Any]) -> None:
    c, w = world
    db = w["db"]
    cpe2 = authn.token(c.app, accounts.agent_name("cpe2"), Role.AGENT, node="cpe2")
    bodies: dict[str, Any] = {
        "register": {"endpoint": "127.0.0.1:9"},  # what a forged agent would register
        "report": {"instances": [], "ports": []},
    }
    for method, leaf in (("POST", "register"), ("POST", "report"), ("GET", "desired")):
        before = dump(db)
        r = c.request(method, f"/api/v1/agents/cpe1/{leaf}", json=bodies.get(leaf),
                      headers=authn.bearer(cpe2), auth=None)  # fmt: skip
        assert r.status_code == 403, (leaf, r.status_code, r.text)
        assert dump(db) == before, f"{leaf} for another node changed something"
    own = c.get("/api/v1/agents/cpe2/desired", headers=authn.bearer(cpe2), auth=None)
    assert own.status_code == 200


def test_another_providers_descriptor_is_not_replaced(world: tuple[TestClient, Any]) -> None:
    c, w = world
    db = w["db"]
    desc = {"name": "p-fn", "function": "counter", "cpu": 0.1, "memory_mb": 16}
    r = c.post("/api/v1/descriptors", json=desc, headers=authn.bearer(w["tokens"][Role.PROVIDER]))
    assert r.status_code == 201 and r.json()["owner"] == authn.PROVIDER
    other = authn.token(c.app, OTHER_PROVIDER, Role.PROVIDER)
    for name in ("p-fn", "counter"):  # another provider's, and the platform's own
        before = dump(db)
        r = c.post("/api/v1/descriptors", json={**desc, "name": name, "cpu": 3.0},
                   headers=authn.bearer(other), auth=None)  # fmt: skip
        assert r.status_code == 403, (name, r.status_code, r.text)
        assert dump(db) == before


def test_where_users_are_and_where_their_services_run_by_role(
    world: tuple[TestClient, Any],
) -> None:
    """The catalog's pages' data (GET /positions, GET /placements): the operator sees
    every user; a user themself only; a provider its subscribers only; the placements
    of a provider and of a user name no node (abstract sites); a principal with
    nothing there gets empty lists; no answer changes anything."""
    c, w = world
    db = w["db"]
    # the scenario: alice subscribed to acme's chain "archive" at cpe2
    alice = authn.token(c.app, "alice", Role.USER)
    acme = authn.token(c.app, "acme", Role.PROVIDER)
    nodes = [n["name"] for n in c.get("/api/v1/nodes").json()]
    assert "cpe2" in nodes
    cat = "/api/v1/catalog"
    before = dump(db)

    def get(path: str, tok: str | None = None) -> Any:
        r = c.get(cat + path, headers=authn.bearer(tok), auth=None) if tok else c.get(cat + path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r

    assert "alice" in {u["user"] for u in get("/positions").json()["users"]}
    assert {s["user"] for s in get("/placements").json()} >= {"alice"}
    for tok, users in ((alice, ["alice"]), (acme, ["alice"]),
                       (w["tokens"][Role.USER], []), (w["tokens"][Role.PROVIDER], [])):  # fmt: skip
        pos = get("/positions", tok)
        assert [u["user"] for u in pos.json()["users"]] == users, pos.text
        subs = get("/placements", tok)
        assert sorted({s["user"] for s in subs.json()}) == users, subs.text
        assert not [n for n in nodes if n in subs.text], subs.text
        if tok == acme:  # a provider: abstract sites in positions too
            assert not [n for n in nodes if n in pos.text], pos.text
    assert dump(db) == before
