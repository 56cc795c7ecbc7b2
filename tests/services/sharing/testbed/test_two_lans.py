"""Two users' Personal Networks at one node with two LANs (topology `lans`), on the
testbed with real agents: the first PN takes the node's first LAN, the second the
node's second, and each vHG runs with its address on its own PN's LAN (the agent
starts it; a vHG with no address in its subnet fails). Standalone bridges: the two
PNs share the node's bridge at L2 here (isolating them is the secure bridges'
business, tested elsewhere), so no DHCP client is asked."""

from __future__ import annotations

from pathlib import Path

from netfate.demo.platform import Api
from netfate.host import netns
from netfate.testbed.builder import Testbed

TOPOLOGY = """
name: twolans
transit: 10.255.0.0/24
nodes:
  cpe1: {kind: cpe, lans: [192.168.91.0/24, 192.168.92.0/24], cpu: 2, memory: 512MiB}
  pe1:  {kind: pe, lan: 10.91.0.0/24, cpu: 2, memory: 1GiB}
links:
  - {a: cpe1, b: pe1, rate: 100Mbit, delay: 1ms}
"""


def test_a_pn_per_lan_and_each_vhg_on_its_own_lan(tmp_path: Path) -> None:
    topo = tmp_path / "twolans.yaml"
    topo.write_text(TOPOLOGY)
    tb = Testbed.up(topo, prometheus=False)
    try:
        assert tb.api_url is not None
        api = Api(tb.api_url)
        made = {}
        for user in ("alice", "bob"):
            body = {"email": user, "node": "cpe1", "vhg": True}
            made[user] = api.as_user(user)("POST", "/sharing/pns", body)
        assert made["alice"]["subnet"] == "192.168.91.0/24"
        assert made["bob"]["subnet"] == "192.168.92.0/24"
        for user, lan in (("alice", "192.168.91."), ("bob", "192.168.92.")):
            inst = api.wait_state(made[user]["vhg_instance"], "running", 90)
            assert str(inst["ip"]).startswith(lan) and inst["node"] == "cpe1", inst
            gw = api.as_user(user)("GET", f"/sharing/pns/{user}/gateway")
            assert gw["lan"]["node_gateway"] == f"{lan}1"
            assert gw["vhg"]["state"] == "running"
    finally:
        problems = tb.down()
        assert not problems, problems
        assert netns.list_with_prefix(tb.prefix + "-") == []
