"""The streaming and catalog services' users and providers act as themselves
(issue 12: their `user` and `provider` fields were self-declared).

In the full scenario (tests/full_scenario.py: bob records and reserves streaming
events of provider uni; alice subscribes to acme's catalog chain), signed in as a
user or a provider: naming another in a body, a query or a path is refused, another's
recording, reservation, event or subscription is as if it did not exist (404), lists
hold the caller's own rows only, and a refusal changes nothing. The operator still
sees and names everyone.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

import authn
from full_scenario import dump
from netfate.contract import Role

ST, CAT = "/api/v1/streaming", "/api/v1/catalog"


def as_(c: TestClient, tok: str, method: str, url: str, **kw: Any) -> Any:
    return c.request(method, url, headers=authn.bearer(tok), auth=None, **kw)


def refused(c: TestClient, ids: dict[str, Any], tok: str, method: str, url: str,
            status: int, **kw: Any) -> None:  # fmt: skip
    before = dump(ids["db"])
    r = as_(c, tok, method, url, **kw)
    assert r.status_code == status, (method, url, r.status_code, r.text)
    assert dump(ids["db"]) == before, f"{method} {url} changed something"


def test_streaming_users_see_and_end_only_their_own_rows(
    scenario: tuple[TestClient, dict[str, Any]],
) -> None:
    c, ids = scenario
    alice = authn.token(c.app, "alice", Role.USER)
    bob = authn.token(c.app, "bob", Role.USER)
    rec = ids["recording"]
    assert [r["user"] for r in as_(c, bob, "GET", f"{ST}/recordings").json()] == ["bob"]
    assert as_(c, alice, "GET", f"{ST}/recordings").json() == []
    assert as_(c, alice, "GET", f"{ST}/reservations").json() == []
    refused(c, ids, alice, "GET", f"{ST}/recordings?user=bob", 403)
    refused(c, ids, alice, "DELETE", f"{ST}/recordings/{rec}", 404)
    reservation = as_(c, bob, "GET", f"{ST}/reservations").json()[0]["id"]
    refused(c, ids, alice, "DELETE", f"{ST}/reservations/{reservation}", 404)
    refused(c, ids, alice, "POST", f"{ST}/recordings", 403,
            json={"user": "bob", "event": ids["event"]})  # fmt: skip
    # Its own: recorded, listed, stopped.
    mine = as_(c, alice, "POST", f"{ST}/recordings", json={"user": "alice", "event": ids["event"]})
    assert mine.status_code == 201, mine.text
    assert [r["id"] for r in as_(c, alice, "GET", f"{ST}/recordings").json()] == [mine.json()["id"]]
    assert as_(c, bob, "DELETE", f"{ST}/recordings/{rec}").json()["state"] == "stopped"
    # The operator lists everyone's.
    assert {r["user"] for r in c.get(f"{ST}/recordings").json()} == {"alice", "bob"}
    # Viewers: bob's device c watches; alice neither joins as him, nor leaves it, nor
    # sees it; bob sees his own.
    viewers = f"{ST}/contents/ev{ids['event']}/viewers"
    assert [v["user"] for v in as_(c, bob, "GET", viewers).json()] == ["bob"]
    assert as_(c, alice, "GET", viewers).json() == []
    refused(c, ids, alice, "POST", viewers, 403, json={"user": "bob", "pe": "cpe1"})
    refused(c, ids, alice, "DELETE", f"{viewers}/c", 404)
    refused(c, ids, alice, "DELETE", f"{viewers}/c?user=bob", 403)
    assert as_(c, bob, "DELETE", f"{viewers}/c").json()["user"] == "bob"
    assert c.get(viewers).json() == []


def test_a_streaming_provider_schedules_starts_and_stops_only_its_own_events(
    scenario: tuple[TestClient, dict[str, Any]],
) -> None:
    c, ids = scenario
    assert c.post(f"{ST}/providers", json={"name": "other", "title": "O", "pe": "pe1"}).is_success
    uni = authn.token(c.app, authn.PROVIDER, Role.PROVIDER)  # the scenario's provider
    other = authn.token(c.app, "other", Role.PROVIDER)
    ev = {"provider": authn.PROVIDER, "title": "T", "start": time.time() + 60, "duration_s": 60}
    refused(c, ids, other, "POST", f"{ST}/events", 403, json=ev)
    refused(c, ids, other, "POST", f"{ST}/events/{ids['event']}/stop", 404)
    later = as_(c, uni, "POST", f"{ST}/events", json=ev)
    assert later.status_code == 201, later.text
    refused(c, ids, other, "POST", f"{ST}/events/{later.json()['id']}/start", 404)
    stopped = as_(c, uni, "POST", f"{ST}/events/{ids['event']}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "ended", stopped.text


def test_catalog_providers_and_users_act_as_themselves(
    scenario: tuple[TestClient, dict[str, Any]],
) -> None:
    c, ids = scenario
    acme = authn.token(c.app, "acme", Role.PROVIDER)
    other = authn.token(c.app, "other", Role.PROVIDER)
    alice = authn.token(c.app, "alice", Role.USER)
    bob = authn.token(c.app, "bob", Role.USER)
    sid = ids["subscription"]
    chain = {
        "provider": "acme",
        "descriptor": "name: archive\nblocks: [{name: a, function: counter}]",
    }
    refused(c, ids, other, "POST", f"{CAT}/chains", 403, json=chain)
    refused(c, ids, other, "GET", f"{CAT}/providers/acme/subscriptions", 404)
    seen = as_(c, acme, "GET", f"{CAT}/providers/acme/subscriptions")
    assert seen.status_code == 200 and [s["id"] for s in seen.json()] == [sid], seen.text
    assert as_(c, acme, "POST", f"{CAT}/chains", json=chain).status_code == 201
    # bob: nothing of alice's
    assert as_(c, bob, "GET", f"{CAT}/subscriptions").json() == []
    refused(c, ids, bob, "GET", f"{CAT}/subscriptions?user=alice", 403)
    refused(c, ids, bob, "GET", f"{CAT}/subscriptions/{sid}", 404)
    refused(c, ids, bob, "POST", f"{CAT}/subscriptions/{sid}/upgrade", 404, json={})
    refused(c, ids, bob, "DELETE", f"{CAT}/subscriptions/{sid}", 404)
    refused(c, ids, bob, "GET", f"{CAT}/positions/alice", 404)
    refused(c, ids, bob, "POST", f"{CAT}/subscriptions", 403,
            json={"user": "alice", "chain": "archive", "at": "cpe2"})  # fmt: skip
    # alice: her own
    assert [s["id"] for s in as_(c, alice, "GET", f"{CAT}/subscriptions").json()] == [sid]
    assert as_(c, alice, "GET", f"{CAT}/subscriptions/{sid}").status_code == 200
    assert as_(c, alice, "GET", f"{CAT}/positions/alice").status_code == 200
    assert as_(c, alice, "DELETE", f"{CAT}/subscriptions/{sid}").status_code == 200
