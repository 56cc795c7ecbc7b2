"""An end user acts only as itself (issue 12: `by` and `?pn=` were self-declared).

The sharing service's routes name the user they act for: a PN is its owner's email
({email}), `by` says who accepts, declines or revokes, `owner` who shares, `?pn=`
whose shares to list. Signed in as a user, naming another user is refused and
changes nothing; lists and reads show the user's own shares only. (The operator
still sees and names everyone.)
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.services.sharing import SERVICE as SHARING

TOPO: dict[str, Any] = {
    "name": "users",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 2},
        "cpe3": {"kind": "cpe", "lan": "192.168.3.0/24", "cpu": 2},
        "pe1": {"kind": "pe", "cpu": 4},
    },
    "hosts": {"nas": {"node": "cpe1", "kind": "nas"}, "tv": {"node": "cpe2", "kind": "tv"}},
    "links": [{"a": n, "b": "pe1"} for n in ("cpe1", "cpe2", "cpe3")],
}
ALICE, BOB, CAROL = "alice@home.example", "bob@hotel.example", "carol@x.example"
V1 = "/api/v1/sharing"


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SHARING],
    )


@pytest.fixture
def c(app: Any) -> Iterator[TestClient]:
    """The operator's client; the PNs of alice (cpe1), bob (cpe2), carol (cpe3); a
    share alice -> carol of alice's NAS, requested by alice herself."""
    with authn.client(app) as client:
        assert client.put("/api/v1/topology", json=TOPO).status_code == 200
        for n in TOPO["nodes"]:
            r = client.post(f"/api/v1/agents/{n}/register", json={"endpoint": "127.0.0.1:1"})
            assert r.is_success, r.text
        for email, node in ((ALICE, "cpe1"), (BOB, "cpe2"), (CAROL, "cpe3")):
            assert client.post(f"{V1}/pns", json={"email": email, "node": node}).status_code == 201
        nas = {"name": "nas", "ip": "192.168.1.10"}
        assert client.post(f"{V1}/pns/{ALICE}/devices", json=nas).status_code == 201
        yield client


def user(app: Any, name: str) -> dict[str, str]:
    return authn.bearer(authn.token(app, name, Role.USER))


def share(c: TestClient, app: Any) -> int:
    body = {"owner": ALICE, "device": "nas", "recipient": CAROL}
    r = c.post(f"{V1}/shares", json=body, headers=user(app, ALICE))
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def state(c: TestClient) -> Any:
    """Everything a refusal must leave as it was (read as the operator)."""
    return c.get(f"{V1}/shares").json(), c.get(f"{V1}/pns").json()


def test_a_user_cannot_share_another_users_device(c: TestClient, app: Any) -> None:
    before = state(c)
    body = {"owner": ALICE, "device": "nas", "recipient": BOB}
    r = c.post(f"{V1}/shares", json=body, headers=user(app, BOB))
    assert r.status_code == 403 and "owner" in r.json()["detail"]
    assert state(c) == before


def test_a_user_cannot_accept_decline_or_revoke_for_another(c: TestClient, app: Any) -> None:
    sid = share(c, app)
    before = state(c)
    for act in ("accept", "decline", "revoke"):
        r = c.post(f"{V1}/shares/{sid}/{act}", json={"by": CAROL}, headers=user(app, BOB))
        assert r.status_code == 403, (act, r.text)
        # As itself, bob is neither the recipient nor the owner: the workflow refuses.
        r = c.post(f"{V1}/shares/{sid}/{act}", json={"by": BOB}, headers=user(app, BOB))
        assert 400 <= r.status_code < 500 and r.status_code != 401, (act, r.text)
    assert state(c) == before
    r = c.post(f"{V1}/shares/{sid}/accept", json={"by": CAROL}, headers=user(app, CAROL))
    assert r.status_code == 200 and r.json()["state"] in ("accepted", "active"), r.text


def test_a_user_sees_only_its_own_pn_and_shares(c: TestClient, app: Any) -> None:
    sid = share(c, app)
    bob = user(app, BOB)
    for path in (f"/pns/{ALICE}", f"/pns/{ALICE}/devices"):
        assert c.get(V1 + path, headers=bob).status_code == 404, path
    assert c.get(f"{V1}/pns/{BOB}", headers=bob).json()["email"] == BOB
    r = c.post(f"{V1}/pns/{ALICE}/devices", json={"name": "x", "ip": "192.168.1.11"}, headers=bob)
    assert r.status_code == 404
    assert c.get(f"{V1}/shares", headers=bob).json() == []
    assert c.get(f"{V1}/shares", params={"pn": ALICE}, headers=bob).status_code == 403
    assert c.get(f"{V1}/shares/{sid}", headers=bob).status_code == 404
    for who in (ALICE, CAROL):
        mine = c.get(f"{V1}/shares", headers=user(app, who)).json()
        assert [s["id"] for s in mine] == [sid], who
        assert c.get(f"{V1}/shares/{sid}", headers=user(app, who)).json()["id"] == sid
    assert [s["id"] for s in c.get(f"{V1}/shares").json()] == [sid]  # the operator's


def test_a_user_cannot_make_a_pn_for_another(c: TestClient, app: Any) -> None:
    body = {"email": "dave@x.example", "node": "cpe3"}
    r = c.post(f"{V1}/pns", json=body, headers=user(app, BOB))
    assert r.status_code == 403
    assert "dave@x.example" not in {p["email"] for p in c.get(f"{V1}/pns").json()}


def test_a_body_that_is_not_json_is_the_handlers_to_refuse(c: TestClient, app: Any) -> None:
    r = c.post(
        f"{V1}/shares",
        content=b"\xff{not json",
        headers={**user(app, BOB), "content-type": "application/json"},
    )
    assert r.status_code in (400, 422) and r.json()["detail"]  # FastAPI's, never a 500
