"""The pages' data (services/catalog/views.py): where each user is, and where their
services run at abstract sites, as each role may see them.

- GET /positions: the operator every user, with nodes and evidence; a user only
  themself; a provider only its subscribers, at abstract sites, without devices;
- GET /placements: active subscriptions' blocks at abstract sites ("edge near you",
  "home (where you are)"): a user their own, a provider its chains', and no node
  name (nor a link's, "cpe1--pe1") in any answer but the operator's positions;
- GET /where: the page, behind sign-in.

A request from someone else changes nothing and reveals nothing (the role matrix,
tests/role_matrix_cases.py, proves the refusals on every route).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from catalog_db import TOPO  # the fog topology the catalog's unit tests share
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.services.catalog import SERVICE
from netfate.services.catalog import conduit as cd
from netfate.store.events import record_event

NODES = tuple(TOPO["nodes"])
V = "/api/v1/catalog"
# Two blocks: the collector fits at home; the archive needs more CPU than a CPE has,
# so it runs at the edge, one link from the user (its reason names that link); the
# SLA (5 ms to the entry) keeps the collector at home.
CHAIN = """
name: sensor-archive
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, cpu: 1.5}
sla: {latency_ms: 5, availability: 0.9}
"""
OTHER = "name: other\nblocks: [{name: a, function: counter, cpu: 0.1}]\n"
PHONE = "02:aa:00:00:00:01"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SERVICE],
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=TOPO).status_code == 200
        for node in NODES:
            r = c.post(f"/api/v1/agents/{node}/register", json={"endpoint": "127.0.0.1:1"})
            assert r.status_code == 200, r.text
        c.portal.call(app.state.loops.stop)  # the answers below are the requests' alone
        for provider, text in (("acme", CHAIN), ("zeta", OTHER)):
            r = c.post(f"{V}/chains", json={"provider": provider, "descriptor": text})
            assert r.status_code == 201, r.text
        for user, chain, at in (
            ("alice", "sensor-archive", "cpe1"),
            ("bob", "sensor-archive", "cpe2"),
            ("carol", "other", "cpe2"),
        ):
            body = {"user": user, "chain": chain, "at": at}
            if user == "alice":
                body["devices"] = [PHONE]
            r = c.post(f"{V}/subscriptions", json=body)
            assert r.status_code == 201, r.text
        with app.state.db.session() as s:
            record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe1"})
            record_event(s, "UserLoggedIn", {"user": "bob", "node": "cpe2"})
            record_event(s, "UserLoggedIn", {"user": "dave", "node": "cpe2"})  # no subscription
        yield c


def as_(c: TestClient, name: str, role: Role) -> dict[str, str]:
    return authn.bearer(authn.token(c.app, name, role))


def named(text: str) -> list[str]:
    return [n for n in NODES if n in text]


def test_the_operator_sees_every_user_where_they_are_and_why(api: TestClient) -> None:
    got = api.get(f"{V}/positions").json()
    now = {u["user"]: (u["now"] or {}).get("node") for u in got["users"]}
    assert now == {"alice": "cpe1", "bob": "cpe2", "carol": None, "dave": "cpe2"}
    alice = next(u for u in got["users"] if u["user"] == "alice")
    assert (alice["now"]["source"], alice["sources"][0]["source"]) == ("login", "login")
    assert "refused" in got
    assert api.get(f"{V}/positions", params={"history": 101}).status_code == 422


def test_positions_come_in_pages_by_name_within_what_the_asker_may_see(
    api: TestClient,
) -> None:
    def page(after: str | None, limit: int, **headers: str) -> tuple[list[str], str | None, int]:
        params: dict[str, str | int] = {"limit": limit, **({"after": after} if after else {})}
        got = api.get(f"{V}/positions", params=params, headers=headers).json()
        return [u["user"] for u in got["users"]], got["next"], got["total"]

    assert page(None, 2) == (["alice", "bob"], "bob", 4)
    assert page("bob", 2) == (["carol", "dave"], None, 4)
    assert page("carol", 200) == (["dave"], None, 4)
    assert page(None, 200) == (["alice", "bob", "carol", "dave"], None, 4)
    acme = as_(api, "acme", Role.PROVIDER)
    assert page(None, 1, **acme) == (["alice"], "alice", 2)  # its subscribers' pages only
    assert page("alice", 1, **acme) == (["bob"], None, 2)
    assert page("bob", 5, **as_(api, "alice", Role.USER)) == ([], None, 1)  # after herself
    for bad in ({"limit": 0}, {"limit": 1001}, {"after": ""}, {"after": "x" * 65}):
        assert api.get(f"{V}/positions", params=bad).status_code == 422, bad


def test_a_user_sees_only_themself(api: TestClient) -> None:
    r = api.get(f"{V}/positions", headers=as_(api, "alice", Role.USER))
    assert r.status_code == 200
    got = r.json()
    assert [u["user"] for u in got["users"]] == ["alice"]
    assert got["users"][0]["now"]["node"] == "cpe1"  # her own node: she is there
    for other in ("bob", "carol", "dave"):
        assert other not in r.text
    assert "refused" not in got
    # dave is known by a login only; someone nothing is known of gets an empty list
    dave = api.get(f"{V}/positions", headers=as_(api, "dave", Role.USER)).json()
    assert [u["user"] for u in dave["users"]] == ["dave"]
    assert api.get(f"{V}/positions", headers=as_(api, "erin", Role.USER)).json()["users"] == []


def test_a_provider_sees_its_subscribers_at_abstract_sites(api: TestClient) -> None:
    r = api.get(f"{V}/positions", headers=as_(api, "acme", Role.PROVIDER))
    got = r.json()
    assert [u["user"] for u in got["users"]] == ["alice", "bob"]  # not carol (zeta's), not dave
    # a node no block ever ran on has no site yet (reads never make one): "another site"
    assert all(u["now"]["node"].startswith(("site-", "another site")) for u in got["users"])
    assert named(r.text) == [] and PHONE not in r.text and "refused" not in got
    zeta = api.get(f"{V}/positions", headers=as_(api, "zeta", Role.PROVIDER)).json()
    assert [u["user"] for u in zeta["users"]] == ["carol"]
    assert (
        api.get(f"{V}/positions", headers=as_(api, "nobody", Role.PROVIDER)).json()["users"] == []
    )


def test_placements_are_abstract_for_everyone_and_scoped_by_role(api: TestClient) -> None:
    op = api.get(f"{V}/subscriptions").json()
    nodes = {(s["user"], i["block"]): i["node"] for s in op for i in s["instances"]}
    assert nodes[("alice", "collector")] == "cpe1" and nodes[("alice", "archive")] == "pe1"

    r = api.get(f"{V}/placements", headers=as_(api, "alice", Role.USER))
    assert r.status_code == 200
    (sub,) = r.json()
    assert sub["user"] == "alice" and sub["user_at"]["label"] == "home (where you are)"
    where = {b["block"]: (b["tier"], b["label"]) for b in sub["blocks"]}
    assert where == {"collector": ("premises", "home (where you are)"),
                     "archive": ("edge", "edge near you")}  # fmt: skip
    assert all(b["site"].startswith("site-") for b in sub["blocks"])
    assert sub["decisions"][0]["blocks"] == {"archive": "edge near you",
                                             "collector": "home (where you are)"}  # fmt: skip
    assert "--site-" in sub["decisions"][0]["why"]  # the link it crosses, in sites
    assert named(r.text) == [], r.text
    assert "bob" not in r.text and "carol" not in r.text

    r = api.get(f"{V}/placements", headers=as_(api, "acme", Role.PROVIDER))
    subs = r.json()
    assert sorted(s["user"] for s in subs) == ["alice", "bob"]
    bob = next(s for s in subs if s["user"] == "bob")
    assert {b["label"] for b in bob["blocks"]} == {"home (where the user is)", "edge near the user"}
    assert named(r.text) == [], r.text
    # the same node is the same site to everyone; the operator sees everyone's, abstract too
    r = api.get(f"{V}/placements")
    assert sorted(s["user"] for s in r.json()) == ["alice", "bob", "carol"]
    assert named(r.text) == []
    assert api.get(f"{V}/placements", headers=as_(api, "erin", Role.USER)).json() == []


def test_labels_follow_where_the_user_is_now(api: TestClient) -> None:
    """alice logs in at cpe2 and her chain has not moved (the loops are stopped): her
    collector is no longer "where you are", and the placement says whom it was for."""
    with api.app.state.db.session() as s:  # type: ignore[attr-defined]
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2"})
    (sub,) = api.get(f"{V}/placements", headers=as_(api, "alice", Role.USER)).json()
    assert sub["user_at"]["label"] == "home (where you are)"
    assert sub["placed_for"]["label"] == "another home"
    assert sub["placed_for"]["site"] != sub["user_at"]["site"]
    where = {b["block"]: b["label"] for b in sub["blocks"]}
    assert where == {"collector": "another home", "archive": "edge near you"}  # pe1: cpe2's too


def test_a_link_between_two_nodes_is_abstracted_too() -> None:
    sites = {"cpe2": "site-aa", "pe1": "site-bb", "pe1-b": "site-cc"}
    said = "1 Mbit/s would cross cpe2--pe1, pe1-b--pe1 (+20 ms); pe1 has room"
    assert cd.abstracted(said, sites) == (
        "1 Mbit/s would cross site-aa--site-bb, site-cc--site-bb (+20 ms); site-bb has room"
    )


def test_the_page_is_behind_sign_in_and_served_with_the_policy(api: TestClient) -> None:
    r = api.get(f"{V}/where", headers=as_(api, "alice", Role.USER), auth=None)
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert "/static/catalog/where.js" in r.text and 'id="where-app"' in r.text
    page = api.get(f"{V}/where", headers={"accept": "text/html"}, auth=None, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=")
    js = api.get("/static/catalog/where.js", auth=None)
    assert js.status_code == 200 and "registerPanel" in js.text
    assert json.loads(json.dumps(SERVICE.pages)) == {"Where each user is": "/where"}
