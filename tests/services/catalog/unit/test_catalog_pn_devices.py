"""Which of a user's devices join their Personal Network (issue 15 §2): said at the
first subscription (`pn_devices`) and changed later (`PUT /users/{user}/devices`),
through the platform's `personal-network-devices` capability (the sharing service's;
the catalog never imports it). The PN's devices and the subscriptions' `devices` are
one set; an unknown device, one named twice, one off the PN's LAN, and another user's
(their PN's or their subscription's) are keyed 422s that change nothing; a user acts
for itself only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import authn
from netfate import services
from netfate.contract import Role, Service
from netfate.orchestrator.app import Settings, create_app
from netfate.services.catalog import SERVICE as CATALOG

from .test_catalog_api import TOPO, V, publish

PN = "/api/v1/sharing/pns"
HOSTS = {
    "laptop1": {"node": "cpe1", "kind": "laptop"},
    "phone1": {"node": "cpe1", "kind": "phone"},
    "tv1": {"node": "cpe1", "kind": "tv"},
    "laptop2": {"node": "cpe2", "kind": "laptop"},
    "sensor": {"node": "pe1"},
}


def _sharing() -> Service:
    (svc,) = [s for s in services.registered() if s.name == "sharing"]
    return svc


@pytest.fixture
def c(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[_sharing(), CATALOG],
    )
    with authn.client(app) as client:
        assert client.put("/api/v1/topology", json={**TOPO, "hosts": HOSTS}).status_code == 200
        for node in TOPO["nodes"]:
            r = client.post(f"/api/v1/agents/{node}/register", json={"endpoint": "127.0.0.1:1"})
            assert r.status_code == 200, r.text
        assert publish(client).status_code == 201
        yield client


def macs(c: Any) -> dict[str, str]:
    return {h["name"]: h["mac"].lower() for h in c.get("/api/v1/hosts").json()}


def subscribe(c: Any, user: str, at: str, **extra: Any) -> Any:
    body = {"user": user, "chain": "sensor-archive", "at": at, **extra}
    return c.post(f"{V}/subscriptions", json=body)


def state(c: Any) -> Any:
    """What a refused request must leave as it was (the conduit's loop may rewrite a
    subscription's `why` meanwhile: not the requests' doing, so not compared)."""
    subs = c.get(f"{V}/subscriptions").json()
    pns = c.get(f"{PN}").json()
    return (
        [(x["id"], x["user"], x["state"], x["devices"]) for x in subs],
        [(p["owner"], p["subnet"], p["members"], p["devices"], p["vhg_instance"]) for p in pns],
        [(i["id"], i["node"]) for i in c.get("/api/v1/instances?include_gone=true").json()],
    )


def test_the_devices_chosen_at_the_first_subscription_join_the_pn(c: Any) -> None:
    mac = macs(c)
    r = subscribe(c, "alice", "cpe1", pn_devices=["laptop1", mac["phone1"].upper()])
    assert r.status_code == 201, r.text
    sub = r.json()
    pn = sub["personal_network"]["pn"]
    assert sub["personal_network"]["created"] is True and pn["owner"] == "alice"
    assert pn["members"] == ["laptop1", "phone1"]
    # tv1 is on the LAN but was not chosen: it is not the PN's
    assert sorted(d["name"] for d in pn["devices"]) == ["laptop1", "phone1"]
    # the catalog's and the PN's device sets agree: the subscription's are their MACs
    assert sub["devices"] == sorted([mac["laptop1"], mac["phone1"]])
    stored = c.get(f"{PN}/alice").json()
    assert sorted(d["mac"].lower() for d in stored["devices"]) == sub["devices"]
    assert c.get(f"{V}/subscriptions/{sub['id']}").json()["devices"] == sub["devices"]
    # without pn_devices a PN keeps every host of its LAN, as before
    bob = subscribe(c, "bob", "cpe2").json()["personal_network"]["pn"]
    assert bob["members"] is None and [d["name"] for d in bob["devices"]] == ["laptop2"]


@pytest.mark.parametrize(
    ("case", "where", "says"),
    [
        ("unknown", ("pn_devices", 1), "unknown device 'nope'"),
        ("named twice", ("pn_devices", 1), "already given at [0]"),
        ("another user's PN", ("pn_devices", 0), "'laptop2' is another user's device"),
        ("another user's subscription", ("pn_devices", 0), "'phone1' is another user's device"),
        ("off the PN's LAN", ("pn_devices", 0), "'sensor' is on pe1's LAN"),
        ("devices disagree", ("devices",), "with pn_devices, the devices are theirs"),
    ],
)
def test_bad_pn_devices_are_keyed_and_change_nothing(
    c: Any, case: str, where: tuple[Any, ...], says: str
) -> None:
    mac = macs(c)
    # bob: his PN at cpe2 (laptop2 on its LAN), and his subscription lists phone1
    assert subscribe(c, "bob", "cpe2", devices=[mac["phone1"]]).status_code == 201
    extra: dict[str, Any] = {
        "unknown": {"pn_devices": ["laptop1", "nope"]},
        "named twice": {"pn_devices": ["laptop1", mac["laptop1"]]},
        "another user's PN": {"pn_devices": ["laptop2"]},
        "another user's subscription": {"pn_devices": ["phone1"]},
        "off the PN's LAN": {"pn_devices": ["sensor"]},
        "devices disagree": {"pn_devices": ["laptop1"], "devices": [mac["tv1"]]},
    }[case]
    before = state(c)
    r = subscribe(c, "alice", "cpe1", **extra)
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert tuple(err["loc"]) == ("body", *where) and says in err["msg"], err
    assert state(c) == before  # no subscription, no PN for alice, no instance
    assert c.get(f"{PN}/alice").status_code == 404


def test_the_user_changes_which_devices_join_later(c: Any) -> None:
    mac = macs(c)
    first = subscribe(c, "alice", "cpe1", pn_devices=["laptop1"]).json()
    second = subscribe(c, "alice", "cpe2").json()  # her PN stays at cpe1
    assert second["personal_network"]["created"] is False
    alice = authn.bearer(authn.token(c.app, "alice", Role.USER))
    r = c.put(f"{V}/users/alice/devices", json={"devices": ["tv1", "phone1"]}, headers=alice)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["pn"]["members"] == ["phone1", "tv1"]
    assert got["macs"] == sorted([mac["tv1"], mac["phone1"]])
    assert sorted(got["subscriptions"]) == sorted([first["id"], second["id"]])
    for sid in (first["id"], second["id"]):
        assert c.get(f"{V}/subscriptions/{sid}").json()["devices"] == got["macs"]
    pn = c.get(f"{PN}/alice").json()
    assert sorted(d["name"] for d in pn["devices"]) == ["phone1", "tv1"]

    # a bad change is keyed and changes nothing
    before = state(c)
    for body, loc in (
        ({"devices": ["tv1", "laptop2x"]}, ["body", "devices", 1]),
        ({"devices": ["sensor"]}, ["body", "devices", 0]),
        ({"devices": ["tv1", "tv1"]}, ["body", "devices", 1]),
    ):
        r = c.put(f"{V}/users/alice/devices", json=body, headers=alice)
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["errors"]] == [loc]
    r = c.put(f"{V}/users/alice/devices", json={"devices": [1]}, headers=alice)
    assert r.status_code == 422
    assert state(c) == before

    # a user without a PN has nothing to join
    carol = authn.bearer(authn.token(c.app, "carol", Role.USER))
    r = c.put(f"{V}/users/carol/devices", json={"devices": ["laptop2"]}, headers=carol)
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["loc"] == ["body", "devices"] and "no Personal Network to join" in err["msg"]
    assert state(c) == before


def test_a_user_chooses_devices_for_itself_only(c: Any) -> None:
    assert subscribe(c, "alice", "cpe1", pn_devices=["laptop1"]).status_code == 201
    assert subscribe(c, "bob", "cpe2").status_code == 201
    before = state(c)
    bob = authn.bearer(authn.token(c.app, "bob", Role.USER))
    r = c.put(f"{V}/users/alice/devices", json={"devices": ["tv1"]}, headers=bob)
    assert r.status_code == 404, r.text  # another's: as if it did not exist
    acme = authn.bearer(authn.token(c.app, "acme", Role.PROVIDER))
    r = c.put(f"{V}/users/alice/devices", json={"devices": ["tv1"]}, headers=acme)
    assert r.status_code == 403, r.text
    body = {"user": "alice", "chain": "sensor-archive", "at": "cpe1", "pn_devices": ["tv1"]}
    assert c.post(f"{V}/subscriptions", json=body, headers=bob).status_code == 403
    assert state(c) == before
    # the operator may set them for her
    r = c.put(f"{V}/users/alice/devices", json={"devices": ["tv1"]})
    assert r.status_code == 200 and r.json()["pn"]["members"] == ["tv1"]
