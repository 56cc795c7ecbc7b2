"""RFC 5176 Disconnect in the NetFATE case study (services/firewall/topologies/firewall.yaml).

After the idle release the scenario proves client1 is captive again (TCP 8080 no
longer reaches server1). Here: that it is so because the orchestrator's RADIUS
server ended client1's portal sessions with Disconnect-Requests, sent from its
listener inside pe1's namespace to the portals (both the cpe2 session and the
one left at cpe1 before the move), each acknowledged, and the portals answered
with an Accounting Stop whose cause is Admin-Reset.
"""

from __future__ import annotations

import time
from typing import Any

from netfate.demo.platform import Api
from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed

EXAMPLE = demo.TOPOLOGY


def test_idle_release_disconnects_the_portal_sessions(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix) as tb:
        demo.check(tb, said.append)
        assert tb.api_url
        api = Api(tb.api_url)
        portals = {
            i["node"]: i["ip"].split("/")[0]
            for i in api("GET", "/instances")
            if i["descriptor"] == "captive-portal"
        }
        # The acknowledgements are recorded, and the portals' Stops arrive, just
        # after the step that found client1 captive: wait for them (bounded).
        deadline = time.monotonic() + 15
        while True:
            by_kind: dict[str, list[dict[str, Any]]] = {}
            for e in api("GET", "/events?tail=5000"):
                by_kind.setdefault(e["kind"], []).append(e["data"])
            acct = api("GET", "/firewall/accounting?user=alice&limit=1000")
            sent = by_kind.get("DisconnectSent", [])
            acked = by_kind.get("DisconnectAcked", [])
            stopped = {a["session_id"] for a in acct if a["status"] == "stop"}
            done = {d["session"] for d in sent}
            if done and {d["session"] for d in acked} == done and done <= stopped:
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert "after the release TCP 8080 no longer reaches server1" in said
    assert {d["nas"] for d in sent} == {"cpe1", "cpe2"}, by_kind.keys()
    assert {d["to"] for d in sent} == {f"{portals[n]}:3799" for n in ("cpe1", "cpe2")}
    assert all(d["netns"] == tb.netns_of("pe1") for d in sent)
    assert all(str(d["reason"]).startswith("no packet for") for d in sent)
    assert {d["session"] for d in acked} == done
    assert done <= stopped  # each portal sent its Accounting Stop
    assert not by_kind.get("DisconnectFailed") and not by_kind.get("DisconnectNaked")
