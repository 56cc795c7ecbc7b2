"""RFC 5176 Disconnect in the NetFATE case study (services/firewall/topologies/firewall.yaml).

After the idle release the scenario proves client1 is captive again (TCP 8080 no
longer reaches server1). Here: that it is so because the orchestrator's RADIUS
server ended client1's portal sessions with Disconnect-Requests, sent from its
listener inside pe1's namespace to the portals (both the cpe2 session and the
one left at cpe1 before the move), each acknowledged, and the portals answered
with an Accounting Stop whose cause is Admin-Reset. And that it still is so when
the orchestrator was killed with -9 and started again between the login and the
release.
"""

from __future__ import annotations

import time
from typing import Any

from netfate.demo.platform import Api
from netfate.services.firewall import demo
from netfate.testbed.builder import Testbed
from testbed_procs import health, kill9, restart, until

EXAMPLE = demo.TOPOLOGY


def test_idle_release_disconnects_the_portal_sessions(run_prefix: str) -> None:
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix) as tb:
        demo.check(tb, said.append)
        assert tb.api_url
        api = Api(tb.api_url, tb.api_token)
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


def test_an_idle_release_after_an_orchestrator_restart_disconnects(run_prefix: str) -> None:
    """client1 logs in at cpe1; once the portal's accounting Start is recorded the
    orchestrator is killed with -9 and started again. The portals send no
    Interim-Update in the test's time (one an hour), so what the restarted
    orchestrator knows of the portal session it learnt before it died: its idle
    release must still end that session at the portal."""
    said: list[str] = []
    with Testbed.up(EXAMPLE, prefix=run_prefix) as tb:
        sc = demo.Scenario(tb, said.append)
        try:
            sc.setup(idle_s=demo.IDLE_S, interim=3600.0)
            sc.wait_captive()
            sc.login("cpe1")
            sc.wait_firewall_running("cpe1")
            api = sc.api
            until(
                "the portal's session to be remembered",
                lambda: api("GET", "/firewall/radius/status")["nas_sessions"] == 1,
            )
            starts = api("GET", f"/firewall/accounting?user={demo.USER}&limit=100")
            (sid,) = {a["session_id"] for a in starts if a["status"] == "start"}
            restarted_at = time.time()
            restart(tb, "orchestrator", kill9(tb, "orchestrator"))
            until("the orchestrator to answer again", lambda: health(api), timeout=60)
            until(
                f"{demo.USER}'s idle release",
                lambda: (
                    next(u for u in api("GET", "/firewall/users") if u["name"] == demo.USER)[
                        "status"
                    ]
                    == "offline"
                ),
                timeout=demo.IDLE_S + 60,
            )

            def kinds() -> dict[str, list[dict[str, Any]]]:
                out: dict[str, list[dict[str, Any]]] = {}
                for e in api("GET", "/events?tail=5000"):
                    if e["at"] >= restarted_at:
                        out.setdefault(e["kind"], []).append({**e["data"], "at": e["at"]})
                return out

            by_kind = until(
                "the Disconnect to be acknowledged",
                lambda: (k := kinds()).get("DisconnectAcked") and k,
            )
            stops = until(
                "the portal's Accounting Stop",
                lambda: [
                    a
                    for a in api("GET", f"/firewall/accounting?user={demo.USER}&limit=100")
                    if a["status"] == "stop" and a["session_id"] == sid
                ],
            )
        finally:
            sc.close()
    (sent,) = by_kind["DisconnectSent"]
    assert (sent["session"], sent["nas"]) == (sid, "cpe1")
    assert sent["to"] == f"{sc.portals['cpe1']}:3799"
    assert sent["netns"] == tb.netns_of("pe1")
    assert str(sent["reason"]).startswith("no packet for")
    assert [a["session"] for a in by_kind["DisconnectAcked"]] == [sid]
    assert not by_kind.get("DisconnectFailed") and not by_kind.get("DisconnectNaked")
    assert len(stops) == 1
