"""The night switch-off on the catalog's fog topology with real agents
(services/catalog/night_demo.py): by day the loose chains run at the edge (pe1);
at night their instances migrate home, pe1 is drained and reported off; in the
morning pe1 is on and they are back. Then the operator's drain: a function at pe1
migrates to a home, pe1 is off and refuses a placement, and is on again."""

from __future__ import annotations

import pytest

from netfate.demo.platform import Api, DemoFailed
from netfate.demo.sdn import until
from netfate.services.catalog.demo import TOPOLOGY
from netfate.services.catalog.night_demo import night
from netfate.testbed.builder import Testbed


def test_the_edge_is_off_at_night_and_back_in_the_morning() -> None:
    tb = Testbed.up(TOPOLOGY)
    said: list[str] = []
    try:
        powers = night(tb, said.append)
        assert powers == ["on", "off", "on"], said
        text = "\n".join(said)
        # by day at the edge; at night at home, the edge off; in the morning back
        runs = [s for s in said if s.startswith("pe1 ")]
        assert "'pe1'" in runs[0] and "'pe1'" not in runs[1] and "'pe1'" in runs[2], said
        # cpe1's background: the curve's 0.10 and the vHG of alice's Personal Network
        # (0.1 CPU), made by her first subscription
        assert text.count("off: at 03:00 (load curve: cpe1 0.20/2 CPU") == 1, said
        assert "pe1 off: " in text and "within the SLAs" in text, said
        assert "on: at 11:00" in text and "no longer fit" in text, said
        assert tb.api_url
        api = Api(tb.api_url)
        kinds = [e["kind"] for e in api("GET", "/events?tail=5000")]
        assert "NodeDraining" in kinds and "NodePoweredOff" in kinds and "NodePoweredOn" in kinds
        assert kinds.count("NodeConsolidated") >= 2
        migrations = api("GET", "/migrations")
        assert migrations and all(m["phase"] == "done" for m in migrations), migrations
        # the operator's drain, with the platform's own placement: a function at pe1
        # migrates to a home, pe1 is off, nothing is placed there; then on again
        inst = api("POST", "/instances", {"descriptor": "counter", "node": "pe1"})
        api.wait_state(inst["id"], "running", timeout=90)
        r = api("PUT", "/nodes/pe1/power", {"state": "off", "why": "test"})
        assert r["power"] == "draining" and set(r["moves"]) == {inst["id"]}, r
        until("pe1 off", lambda: api("GET", "/nodes/pe1")["power"] == "off", 120)
        moved = api.wait_state(inst["id"], "running", timeout=60)
        assert moved["node"] == r["moves"][inst["id"]] != "pe1", moved
        with pytest.raises(DemoFailed, match="switched off"):
            api("POST", "/instances", {"descriptor": "counter", "node": "pe1"})
        assert api("PUT", "/nodes/pe1/power", {"state": "on"})["power"] == "on"
    finally:
        problems = tb.down()
        assert not problems, problems
