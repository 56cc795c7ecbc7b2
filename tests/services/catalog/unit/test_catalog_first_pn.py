"""The first subscription makes its user's Personal Network (issue 15 §2), through the
platform's ``personal-network`` capability (the sharing service's PN and vHG; the
catalog never imports it): made at the user's node in the subscribing request, said
in the answer and its `why`; a second subscription makes no other. Without the
sharing service registered the subscription is made as before and says no PN was;
a PN the provider refuses, or a subscription the engine refuses, leaves no PN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import authn
from netfate import services
from netfate.contract import Service
from netfate.orchestrator.app import Settings, create_app
from netfate.services.catalog import SERVICE as CATALOG

from .test_catalog_api import CHAIN, TOPO, V, publish

PN = "/api/v1/sharing/pns"
ALICE = "alice@example.org"


def _sharing() -> Service:
    """The sharing service as the registry hands it to the platform (not imported)."""
    (svc,) = [s for s in services.registered() if s.name == "sharing"]
    return svc


def _client(tmp_path: Path, svcs: list[Service], topo: dict[str, Any] = TOPO) -> Iterator[Any]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=svcs,
    )
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=topo).status_code == 200
        for node in topo["nodes"]:
            r = c.post(f"/api/v1/agents/{node}/register", json={"endpoint": "127.0.0.1:1"})
            assert r.status_code == 200, r.text
        assert publish(c).status_code == 201
        yield c


@pytest.fixture
def both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    yield from _client(tmp_path, [_sharing(), CATALOG])


@pytest.fixture
def two_lans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """cpe1 with two LANs (the topology's `lans`)."""
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    cpe1 = {**TOPO["nodes"]["cpe1"], "cpu": 2, "lans": ["192.168.1.0/24", "192.168.11.0/24"]}
    del cpe1["lan"]
    topo = {**TOPO, "nodes": {**TOPO["nodes"], "cpe1": cpe1}}
    yield from _client(tmp_path, [_sharing(), CATALOG], topo)


@pytest.fixture
def alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    yield from _client(tmp_path, [CATALOG])


def subscribe(c: Any, user: str, at: str) -> Any:
    return c.post(f"{V}/subscriptions", json={"user": user, "chain": "sensor-archive", "at": at})


def vhgs(c: Any) -> list[dict[str, Any]]:
    return [i for i in c.get("/api/v1/instances").json() if i["descriptor"] == "vhg"]


def test_the_first_subscription_makes_the_users_pn_and_its_vhg(both: Any) -> None:
    r = subscribe(both, ALICE, "cpe1")
    assert r.status_code == 201, r.text
    sub = r.json()
    made = sub["personal_network"]
    assert made["created"] is True
    (vhg,) = vhgs(both)
    assert (vhg["node"], vhg["name"]) == ("cpe1", "vhg-alice")
    pn = made["pn"]
    assert (pn["email"], pn["node"], pn["subnet"]) == (ALICE, "cpe1", "192.168.1.0/24")
    assert pn["vhg_instance"] == vhg["id"]
    said = f"created {ALICE}'s Personal Network at cpe1"
    assert made["why"] == said and sub["why"].endswith(f"; {said}") and made["detail"] == ""
    assert sub["why"].startswith("placed on cpe1")
    # the provider reads it with an abstract site, and nothing of the PN's LAN or vHG
    (seen,) = both.get(f"{V}/providers/acme/subscriptions").json()
    assert f"; created {ALICE}'s Personal Network at site-" in seen["why"]
    assert "cpe1" not in seen["why"] and "192.168" not in seen["why"]
    # the sharing service holds it, as if its owner had made it there
    got = both.get(f"{PN}/{ALICE}").json()
    assert (got["node"], got["vhg_instance"]) == ("cpe1", vhg["id"])
    # it is stored: the subscription read back says so too
    assert both.get(f"{V}/subscriptions/{sub['id']}").json()["why"] == sub["why"]
    kinds = [e["kind"] for e in both.get("/api/v1/events").json()]
    assert "PersonalNetworkCreated" in kinds

    # a second subscription, even at another node, makes no other PN nor vHG
    again = subscribe(both, ALICE, "cpe2")
    assert again.status_code == 201, again.text
    second = again.json()["personal_network"]
    assert second["created"] is False and second["pn"]["node"] == "cpe1"
    assert second["why"] == f"{ALICE}'s Personal Network is at cpe1"
    assert [v["id"] for v in vhgs(both)] == [vhg["id"]]
    assert [p["email"] for p in both.get(PN).json()] == [ALICE]


def test_any_account_gets_its_pn_not_only_an_email(both: Any) -> None:
    """A PN's id is its owner's account name: `alice`, with no email, gets hers."""
    r = subscribe(both, "alice", "cpe1")
    assert r.status_code == 201, r.text
    made = r.json()["personal_network"]
    assert made["created"] is True and made["detail"] == ""
    assert made["why"] == "created alice's Personal Network at cpe1"
    assert (made["pn"]["owner"], made["pn"]["email"], made["pn"]["node"]) == (
        "alice", "alice", "cpe1",
    )  # fmt: skip
    (vhg,) = vhgs(both)
    assert made["pn"]["vhg_instance"] == vhg["id"] and vhg["name"] == "vhg-alice"
    # the sharing service's routes take the account name where they took an email
    got = both.get(f"{PN}/alice")
    assert got.status_code == 200 and got.json()["vhg_instance"] == vhg["id"]
    assert both.get(f"{PN}/alice/gateway").json()["lan"]["subnet"] == "192.168.1.0/24"
    assert len(r.json()["instances"]) == 2


def test_a_lan_that_is_another_users_pn_is_not_taken(both: Any) -> None:
    assert subscribe(both, ALICE, "cpe1").json()["personal_network"]["created"] is True
    r = subscribe(both, "bob@example.org", "cpe1")
    assert r.status_code == 201, r.text
    bob = r.json()["personal_network"]
    assert bob["created"] is False and bob["pn"] is None
    assert bob["why"] == "no Personal Network made for bob@example.org: sharing refused"
    assert bob["detail"] == "LAN 192.168.1.0/24 of cpe1 is already PN alice@example.org"
    assert "alice" not in r.json()["why"]  # another user's PN stays out of the stored why
    assert [p["email"] for p in both.get(PN).json()] == [ALICE]
    assert len(vhgs(both)) == 1


def test_a_refused_subscription_keeps_no_pn(both: Any) -> None:
    assert publish(both, CHAIN.replace("cpu: 0.2", "cpu: 1.5")).status_code == 201
    r = subscribe(both, ALICE, "cpe1")
    assert r.status_code == 409, r.text
    assert both.get(PN).json() == [] and both.get("/api/v1/instances").json() == []


def test_without_the_sharing_service_a_subscription_makes_no_pn(alone: Any) -> None:
    r = subscribe(alone, ALICE, "cpe1")
    assert r.status_code == 201, r.text
    sub = r.json()
    said = "no Personal Network made: no registered service provides one"
    assert sub["personal_network"] == {"created": False, "why": said, "detail": "", "pn": None}
    assert sub["why"].startswith("placed on cpe1") and sub["why"].endswith(f"; {said}")
    assert len(sub["instances"]) == 2 and vhgs(alone) == []
    assert alone.get(PN).status_code == 404  # no sharing API either


def test_without_the_sharing_service_no_device_can_join_a_pn(alone: Any) -> None:
    body = {"user": ALICE, "chain": "sensor-archive", "at": "cpe1", "pn_devices": ["laptop"]}
    r = alone.post(f"{V}/subscriptions", json=body)
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["loc"] == ["body", "pn_devices"]
    assert err["msg"] == "no registered service provides Personal Networks"
    assert alone.get(f"{V}/subscriptions").json() == []
    assert alone.get("/api/v1/instances").json() == []


def test_a_second_user_at_a_node_with_another_lan_gets_that_lan(two_lans: Any) -> None:
    """The node's first LAN is alice's PN: bob's first subscription there makes his on
    the node's second LAN, his vHG addressed on it (its own LAN, not the first)."""
    alice = subscribe(two_lans, ALICE, "cpe1").json()["personal_network"]["pn"]
    r = subscribe(two_lans, "bob", "cpe1")
    assert r.status_code == 201, r.text
    made = r.json()["personal_network"]
    assert made["created"] is True, made
    assert (alice["subnet"], made["pn"]["subnet"]) == ("192.168.1.0/24", "192.168.11.0/24")
    by_id = {v["id"]: v for v in vhgs(two_lans)}
    bob_vhg = by_id[made["pn"]["vhg_instance"]]
    assert bob_vhg["ip"].startswith("192.168.11.") and bob_vhg["node"] == "cpe1"
    assert by_id[alice["vhg_instance"]]["ip"].startswith("192.168.1.")
    gw = two_lans.get(f"{PN}/bob/gateway").json()
    assert gw["lan"] == {"subnet": "192.168.11.0/24", "node_gateway": "192.168.11.1"}
    assert gw["dhcp"]["first"] == "192.168.11.100"
    # a third user finds both LANs taken: no PN, said, and nothing kept
    r = subscribe(two_lans, "carol", "cpe1")
    assert r.status_code == 201 and r.json()["personal_network"]["created"] is False
    assert "is already PN" in r.json()["personal_network"]["detail"]
    assert len(vhgs(two_lans)) == 2
