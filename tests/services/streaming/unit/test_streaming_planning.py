"""Reservations feed the back-end's planning (services/streaming/planning.py and
Tree.prestart/unplan): shortly before a reserved event the acquirer and a branch to
each reserving user's PE are pre-started, bandwidth reserved, the why saying so; a
later join there is the warm tree (case 1); what nobody joined goes after the grace
period, a cancelled reservation's branch and a cancelled event's content at once.
The tree is driven with explicit times, the service with an injected clock."""

from __future__ import annotations

import time
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
from netfate.services.streaming import SERVICE as STREAMING
from netfate.services.streaming import planning, reconcile
from netfate.services.streaming.tree import (
    BranchPrestarted,
    BranchPruned,
    Limits,
    PrestartRefused,
    StreamerReleased,
    Tree,
    ViewerAssigned,
)
from services.streaming.unit.test_streaming_service import TOPO, instances, keyed, ok
from services.streaming.unit.test_streaming_tree import MBIT, paper_net
from waiting import until

V1 = "/api/v1/streaming"

# ------------------------------------------------------------------ the tree


def prestarted(evs: list[Any]) -> BranchPrestarted:
    (ev,) = evs
    assert isinstance(ev, BranchPrestarted), ev
    return ev


def test_a_prestarted_branch_reserves_bandwidth_and_a_join_there_is_warm() -> None:
    t = Tree(paper_net(), Limits(grace_s=10.0))
    t.publish("X", "pe1", 4 * MBIT)
    p = prestarted(t.prestart("X", "pe2", 2, until=1010.0, now=900.0))
    assert p.case == 4 and p.node == "pe2" and p.reservations == 2
    assert p.why.startswith("pre-started for 2 reservations: case 4"), p.why
    # as a real branch: the tree's copy on pe1-c1-pe2, the streamer on pe2
    L = t.loads()
    assert L.link_bps[frozenset(("pe1", "c1"))] == 4 * MBIT
    assert L.link_bps[frozenset(("c1", "pe2"))] == 4 * MBIT
    assert t.desired().streamers[p.streamer] == ("pe2", ("X",))
    assert t.plans[("X", "pe2")].why == p.why
    # asked again (the loop's next pass): nothing new, the count follows
    assert t.prestart("X", "pe2", 3, until=1010.0, now=901.0) == []
    assert t.plans[("X", "pe2")].reservations == 3
    # the reserving user joins: case 1, the pre-started streamer (the warm tree)
    a = t.join("alice", "X", "pe2", 1000.0)
    assert isinstance(a, ViewerAssigned) and a.case == 1 and a.streamer == p.streamer, a
    assert "pre-started for reservations" in a.why
    # joined: the plan's end does not take it away
    assert t.tick(2000.0) == [] and p.streamer in t.streamers and t.plans == {}


def test_a_prestarted_branch_nobody_joined_goes_at_its_end() -> None:
    t = Tree(paper_net(), Limits(grace_s=10.0))
    t.publish("X", "pe1", 4 * MBIT)
    p = prestarted(t.prestart("X", "pe4", 1, until=1010.0, now=900.0))
    assert p.why.startswith("pre-started for 1 reservation: case 4"), p.why
    assert t.tick(1009.0) == [] and p.streamer in t.streamers
    evs = t.tick(1010.0)
    assert [type(e) for e in evs] == [BranchPruned, StreamerReleased], evs
    assert t.streamers == {} and t.plans == {} and t.loads().link_bps == {}
    assert t.contents["X"].parent == {"pe1": None}  # the acquirer stays: the event may run


def test_a_viewer_leaving_before_the_end_keeps_the_branch_until_then() -> None:
    t = Tree(paper_net(), Limits(grace_s=10.0))
    t.publish("X", "pe1", 4 * MBIT)
    p = prestarted(t.prestart("X", "pe2", 1, until=1010.0, now=900.0))
    t.join("alice", "X", "pe2", 950.0)
    t.leave("alice", 960.0)  # grace would end at 970: the plan holds it to 1010
    assert t.tick(990.0) == [] and p.streamer in t.streamers
    assert [type(e) for e in t.tick(1010.0)] == [BranchPruned, StreamerReleased]


def test_unplan_drops_the_branch_unless_watched_or_shared() -> None:
    t = Tree(paper_net(), Limits(grace_s=10.0))
    t.publish("X", "pe1", 4 * MBIT)
    p2 = prestarted(t.prestart("X", "pe2", 1, until=1010.0, now=900.0))
    # pe3 has no streamer: case 3, the neighbour pe2's streamer (shared by both plans)
    p3 = prestarted(t.prestart("X", "pe3", 1, until=1010.0, now=900.0))
    assert p3.case == 3 and p3.streamer == p2.streamer, p3.why
    assert t.unplan("X", "pe2", 901.0) == []  # pe3's plan still uses it
    evs = t.unplan("X", "pe3", 902.0)
    assert [type(e) for e in evs] == [BranchPruned, StreamerReleased], evs
    assert t.streamers == {} and t.plans == {}
    # a watched one stays
    p4 = prestarted(t.prestart("X", "pe4", 1, until=1010.0, now=903.0))
    t.join("erin", "X", "pe4", 904.0)
    assert t.unplan("X", "pe4", 905.0) == [] and p4.streamer in t.streamers
    assert t.unplan("X", "pe4", 905.0) == []  # twice: nothing


def test_a_prestart_without_room_is_refused_once_per_count() -> None:
    # pe5's link carries 10 Mbit/s: a 12 Mbit/s content reaches no streamer there or near
    t = Tree(paper_net(link_mbit=10.0))
    t.publish("X", "pe5", 6 * MBIT)
    t.publish("Y", "pe1", 12 * MBIT)
    (r,) = t.prestart("Y", "pe2", 1, until=1010.0, now=900.0)
    assert isinstance(r, PrestartRefused) and "nothing can be pre-started" in r.why, r
    assert t.prestart("Y", "pe2", 1, until=1010.0, now=901.0) == []  # not again
    (again,) = t.prestart("Y", "pe2", 2, until=1010.0, now=902.0)  # more: tried again
    assert isinstance(again, PrestartRefused)
    (bad,) = t.prestart("X", "c1", 1, until=1010.0, now=903.0)
    assert isinstance(bad, PrestartRefused) and "not an access PE" in bad.why
    assert t.violations() == [] and t.streamers == {}


def test_plans_survive_a_dump_and_load_and_unpublish_clears_them() -> None:
    net = paper_net()
    t = Tree(net)
    t.publish("X", "pe1", 4 * MBIT)
    p = prestarted(t.prestart("X", "pe2", 1, until=1010.0, now=900.0))
    u = Tree.load(net, t.limits, t.dump())
    assert u.plans == t.plans and u.prune_at == {("X", p.streamer): 1010.0}
    u.unpublish("X", 950.0)
    assert u.plans == {} and u.streamers == {} and u.contents == {}


# ------------------------------------------------------------------ the window


def test_the_planning_window_and_the_lead_time(monkeypatch: pytest.MonkeyPatch) -> None:
    b = [
        planning.Booking(1, "scheduled", 1000.0, "pe2"),
        planning.Booking(1, "scheduled", 1000.0, "pe2"),
        planning.Booking(1, "scheduled", 1000.0, "pe4"),
        planning.Booking(1, "scheduled", 1000.0, None),  # no PE said: nothing
        planning.Booking(2, "cancelled", 1000.0, "pe2"),
        planning.Booking(3, "started", 1000.0, "pe3"),
    ]
    assert planning.wanted(b, 879.0, 120.0, 10.0) == {}
    assert planning.wanted(b, 880.0, 120.0, 10.0) == {1: {"pe2": 2, "pe4": 1}, 3: {"pe3": 1}}
    assert planning.wanted(b, 1009.0, 120.0, 10.0) == {1: {"pe2": 2, "pe4": 1}, 3: {"pe3": 1}}
    assert planning.wanted(b, 1010.0, 120.0, 10.0) == {}
    monkeypatch.delenv(planning.LEAD_ENV, raising=False)
    assert planning.lead_s() == planning.LEAD_S == 120.0
    monkeypatch.setenv(planning.LEAD_ENV, "30")
    assert planning.lead_s() == 30.0
    for bad in ("soon", "-1", "1e9"):
        monkeypatch.setenv(planning.LEAD_ENV, bad)
        with pytest.raises(ValueError, match=planning.LEAD_ENV):
            planning.lead_s()


# ------------------------------------------------------------------ the service


class Clock:
    """The reconcile loop's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(reconcile, "clock", c)
    monkeypatch.delenv(planning.LEAD_ENV, raising=False)
    return c


@pytest.fixture
def api(tmp_path: Path, clock: Clock) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[STREAMING],
    )
    topo = {**TOPO, "hosts": {**TOPO["hosts"], "laptop": {"node": "pe3"}}}
    with authn.client(app) as c:
        assert c.put("/api/v1/topology", json=topo).status_code == 200
        for n in topo["nodes"]:
            ok(c.post(f"/api/v1/agents/{n}/register", json={"endpoint": f"127.0.0.1:{n}"}))
        ok(c.post(f"{V1}/providers", json={"name": "uni", "title": "U", "pe": "pe1"}), 201)
        yield c


def scheduled(c: TestClient, start: float, title: str = "Lecture") -> int:
    body = {"provider": "uni", "title": title, "start": start, "duration_s": 3600}
    return int(ok(c.post(f"{V1}/events", json={**body, "bitrate_kbps": 4000}), 201)["id"])


def reserve(c: TestClient, user: str, eid: int, **where: str) -> int:
    return int(
        ok(c.post(f"{V1}/reservations", json={"user": user, "event": eid, **where}), 201)["id"]
    )


def plans(c: TestClient) -> dict[str, dict[str, Any]]:
    return {p["pe"]: p for p in ok(c.get(f"{V1}/tree"))["state"]["plans"]}


def streamers_on(c: TestClient) -> dict[str, str]:
    """Node -> the streamer instance there."""
    return {i["node"]: n for n, i in instances(c).items() if n.startswith("streamer-")}


def test_reservations_prestart_the_tree_and_a_join_is_warm(api: TestClient, clock: Clock) -> None:
    start = clock.now + 3600
    eid = scheduled(api, start)
    alice = reserve(api, "alice", eid, host="phone")  # pe2
    reserve(api, "bob", eid, pe="pe2")
    reserve(api, "erin", eid, host="tablet")  # pe4
    reserve(api, "fred", eid)  # no PE said: reminders only
    dave = reserve(api, "dave", eid, host="laptop")  # pe3
    mine = ok(api.get(f"{V1}/reservations", params={"user": "alice"}))
    assert [r["pe"] for r in mine] == ["pe2"]
    assert "unknown host" in keyed(
        api.post(f"{V1}/reservations", json={"user": "x", "event": eid, "host": "tv"}), "host"
    )
    assert "core node" in keyed(
        api.post(f"{V1}/reservations", json={"user": "x", "event": eid, "pe": "c1"}), "pe"
    )
    # before the lead time: nothing runs
    assert instances(api) == {} and plans(api) == {}
    # the lead time (two minutes) before the start: the acquirer (armed, not started)
    # and a streamer on pe2 and on pe4 (pe3: pe2's, its neighbour: case 3)
    clock.now = start - 120
    assert until(lambda: set(streamers_on(api)) == {"pe2", "pe4"}), instances(api)
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["state"] == "scheduled" and len(flow["next_hops"]) == 2, flow
    got = plans(api)
    assert got["pe2"]["why"].startswith("pre-started for 2 reservations: case 4"), got
    assert got["pe4"]["why"].startswith("pre-started for 1 reservation: case 4"), got
    assert got["pe3"]["why"].startswith("pre-started for 1 reservation: case 3"), got
    tree = ok(api.get(f"{V1}/tree"))
    # reserved as real branches: c1 (no compute) passes a copy per streamer below it
    assert tree["loads"]["link_bps"]["c1-pe1"] == 8e6 and tree["violations"] == []
    assert tree["loads"]["link_bps"]["c2-pe4"] == 4e6
    kinds = [e["kind"] for e in api.get("/api/v1/events").json()]
    assert kinds.count("StreamingBranchPrestarted") == 3
    (ev,) = [e for e in ok(api.get(f"{V1}/events")) if e["id"] == eid]
    assert ev["state"] == "scheduled" and ev["content"]["state"] == "planned"
    assert ev["content"]["acquirer"]["port"] == 5000
    assert ok(api.get(f"{V1}/contents")) == []  # not live yet
    # dave cancels: pe3's plan goes; pe2's streamer stays (pe2's own reservations)
    ok(api.delete(f"{V1}/reservations/{dave}"))
    assert "pe3" not in plans(api) and "pe2" in streamers_on(api)
    # the provider starts on time: the same content, its flow started
    clock.now = start
    started = ok(api.post(f"{V1}/events/{eid}/start"))
    assert started["content"]["id"] == f"ev{eid}" and started["content"]["acquirer"]["port"] == 5000
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["state"] == "started"
    # alice joins from pe2: the warm tree (case 1, the pre-started streamer)
    a = ok(api.post(f"{V1}/contents/ev{eid}/viewers", json={"user": "alice", "host": "phone"}))
    assert a["case"] == 1 and "pre-started for reservations" in a["why"], a
    assert f"streamer-{a['streamer']}" == streamers_on(api)["pe2"]
    # nobody joined on pe4: after the grace period (10 s) its branch goes; pe2's stays
    clock.now = start + 11
    assert until(lambda: set(streamers_on(api)) == {"pe2"}), instances(api)
    assert plans(api) == {}
    kinds = [e["kind"] for e in api.get("/api/v1/events").json()]
    assert "StreamingStreamerReleased" in kinds
    # a late cancellation changes nothing now
    ok(api.delete(f"{V1}/reservations/{alice}"))
    assert set(streamers_on(api)) == {"pe2"}


def test_a_cancelled_event_or_one_never_started_releases_what_was_prestarted(
    api: TestClient, clock: Clock
) -> None:
    start = clock.now + 3600
    first, second = scheduled(api, start, "First"), scheduled(api, start + 60, "Second")
    reserve(api, "alice", first, host="phone")
    reserve(api, "erin", second, host="tablet")
    clock.now = start - 60  # inside both lead times
    assert until(lambda: set(streamers_on(api)) == {"pe2", "pe4"}), instances(api)
    assert len(instances(api)["acquirer-pe1"]["config"]["flows"]) == 2
    # the provider cancels the second: its content, acquirer flow and branch go at once
    assert ok(api.post(f"{V1}/events/{second}/cancel"))["state"] == "cancelled"
    assert set(streamers_on(api)) == {"pe2"}
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["id"] == f"ev{first}"
    assert api.post(f"{V1}/events/{second}/cancel").status_code == 409
    assert api.post(f"{V1}/events/{second}/start").status_code == 409
    # the first is never started: after its start and the grace period, all goes
    clock.now = start + 10
    assert until(lambda: instances(api) == {}), instances(api)
    (ev,) = [e for e in ok(api.get(f"{V1}/events")) if e["id"] == first]
    assert ev["state"] == "scheduled" and ev["content"] is None
    assert ok(api.get(f"{V1}/tree"))["state"]["contents"] == []
    # a late start still works the usual way
    assert ok(api.post(f"{V1}/events/{first}/start"))["content"]["state"] == "live"


def test_a_planned_flow_keeps_its_protocol_and_a_start_may_choose_another(
    api: TestClient, clock: Clock
) -> None:
    """A reserved RTMP event's planned flow carries its protocol and stream key; a
    start with SRT makes a new secret for the new protocol, on the same content and
    port, and the provider's ingest URL says SRT."""
    start = clock.now + 3600
    body = {"provider": "uni", "title": "Match", "start": start, "duration_s": 600,
            "bitrate_kbps": 4000, "protocol": "rtmp"}  # fmt: skip
    eid = int(ok(api.post(f"{V1}/events", json=body), 201)["id"])
    reserve(api, "alice", eid, host="phone")
    clock.now = start - 60
    assert until(lambda: "acquirer-pe1" in instances(api)), instances(api)
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["state"] == "scheduled" and flow["protocol"] == "rtmp", flow
    assert flow.get("stream_secret") not in (None, ""), "the planned flow has its key"
    port = flow["port"]
    clock.now = start
    started = ok(api.post(f"{V1}/events/{eid}/start", json={"protocol": "srt"}))
    assert started["content"]["id"] == f"ev{eid}"
    (flow,) = instances(api)["acquirer-pe1"]["config"]["flows"]
    assert flow["state"] == "started" and flow["protocol"] == "srt" and flow["port"] == port
    assert flow.get("passphrase") not in (None, "") and "stream_secret" not in flow, flow
    prov = authn.bearer(authn.token(api.app, "uni", Role.PROVIDER))
    got = ok(api.get(f"{V1}/events/{eid}/ingest", headers=prov))
    assert got["protocol"] == "srt" and got["url"].startswith("srt://"), got
