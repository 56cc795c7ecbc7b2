"""Reservations feed the back-end's planning, on the paper's testbed
(services/streaming/topologies/streaming.yaml), with real functions: a reserved
event inside the lead time gets its acquirer and an edge streamer on each reserving
user's PE (pe2: the phone, pe4: the tv) running before the provider starts; the
phone's user joins after the start and is served by the pre-started streamer (case
1, the warm tree) and decodes frames; the tv's user never comes, and its
pre-started branch goes after the start and the grace period."""

from __future__ import annotations

import time

from netfate.demo.platform import Api
from netfate.services.streaming.demo import PROVIDERS, TOPOLOGY, Scene, appears, gone
from netfate.testbed.builder import Testbed
from testbed_procs import until

S = "/streaming"
LEAD_IN_S = 30.0
"""The event starts this long after it is reserved: inside the default lead time."""


def test_a_reserved_event_is_prestarted_and_the_join_is_warm() -> None:
    tb = Testbed.up(TOPOLOGY)
    sc: Scene | None = None
    try:
        assert tb.api_url
        api = Api(tb.api_url)
        sc = Scene(tb, api, lambda _m: None)
        api("PUT", f"{S}/settings", {"criterion": "consolidation", "grace_s": 1.0})
        prov, title, pe, _cam, ev_title = PROVIDERS["lecture"]
        api("POST", f"{S}/providers", {"name": prov, "title": title, "pe": pe})
        body = {"provider": prov, "title": ev_title, "start": time.time() + LEAD_IN_S,
                "duration_s": 900, "bitrate_kbps": 1500}  # fmt: skip
        eid = api("POST", f"{S}/events", body)["id"]
        for user, host in (("alice", "phone"), ("erin", "tv")):
            mine = {"user": user, "event": eid, "host": host}
            assert api.as_user(user)("POST", f"{S}/reservations", mine)["pe"]
        # before the start: the acquirer (its flow armed) and a streamer on pe2 and pe4
        plans = {p["pe"]: p for p in api("GET", f"{S}/tree")["state"]["plans"]}
        assert set(plans) == {"pe2", "pe4"}, plans
        assert all(p["why"].startswith("pre-started for 1 reservation") for p in plans.values())
        for name in (f"acquirer-{pe}", *(f"streamer-{p['streamer']}" for p in plans.values())):
            inst = until(name, appears(api, name), 60)
            api.wait_state(inst["id"], "running", timeout=90)
        (ev,) = [e for e in api("GET", f"{S}/events") if e["id"] == eid]
        assert ev["state"] == "scheduled" and ev["content"]["state"] == "planned", ev
        # the provider starts: the same content and port; its camera streams
        ev = api("POST", f"{S}/events/{eid}/start", None)
        sc.events["lecture"], sc.contents["lecture"] = eid, ev["content"]
        sc.stream("lecture")
        sc.recognised("lecture")
        # alice joins from the phone: the pre-started streamer (case 1), frames decoded
        a = sc.join("alice", "phone", "lecture")
        assert a["case"] == 1 and a["streamer"] == plans["pe2"]["streamer"], a
        assert "pre-started for reservations" in a["why"], a["why"]
        assert sc.decodes("alice") > 0
        # erin never comes: pe4's branch goes after the start and the grace period
        until("pe4's branch released", gone(api, f"streamer-{plans['pe4']['streamer']}"), 120)
        assert sc.decodes("alice") > 0  # pe2's, watched, stays
        sc.leave("alice")
    finally:
        if sc is not None:
            sc.stop()  # the camera's encoder
        problems = tb.down()
        assert not problems, problems
