"""Agents of several nodes in one process on a real testbed (`--agents-per-process 2`,
agent/group.py): four nodes, two agent processes; every node is up, each with its
own token; an instance created on a node of one process migrates to a node of the
other, across the emulated link, and its state goes with it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from netfate.demo import platform
from netfate.demo.probe import CounterProbe
from netfate.host import proc
from netfate.model.topology import Topology
from netfate.testbed.builder import Testbed
from testbed_procs import until

FOUR = """
name: groups
transit: 10.255.0.0/24
nodes:
  cpe1: {kind: cpe, lan: 192.168.1.0/24}
  cpe2: {kind: cpe, lan: 192.168.2.0/24}
  cpe3: {kind: cpe, lan: 192.168.3.0/24}
  pe1:  {kind: pe, lan: 10.10.0.0/24}
hosts:
  laptop1: {node: cpe1, kind: laptop}
  laptop3: {node: cpe3, kind: laptop}
links:
  - {a: cpe1, b: pe1, rate: 100Mbit, delay: 2ms}
  - {a: cpe2, b: pe1, rate: 100Mbit, delay: 2ms}
  - {a: cpe3, b: pe1, rate: 100Mbit, delay: 2ms}
"""


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    bed = Testbed.up(Topology.from_yaml(FOUR), agents_per_process=2, prometheus=False)
    try:
        yield bed
    finally:
        refs = bed.state.process_refs()
        problems = bed.down()
        assert not problems, problems
        assert not any(proc.alive(r) for r in refs)


def test_two_processes_serve_four_nodes_each_as_itself(tb: Testbed) -> None:
    assert tb.api_url
    roles = sorted(r.role for r in tb.state.process_refs() if r.role.startswith("agent"))
    assert roles == ["agents:cpe1..cpe2", "agents:cpe3..pe1"]
    api = platform.Api(tb.api_url, tb.api_token)
    until("all four nodes up", lambda: {n["name"]: n["status"] for n in api("GET", "/nodes")}
          == {"cpe1": "up", "cpe2": "up", "cpe3": "up", "pe1": "up"}, timeout=60)  # fmt: skip
    # Each node's agent registered its own migration endpoint, on its transit address.
    endpoints = {n["name"]: n.get("endpoint") for n in api("GET", "/nodes")}
    assert all(str(endpoints[n]).startswith("10.255.0.") for n in endpoints), endpoints
    # A node's token acts for its node only, though its agent shares a process.
    cpe1_token = (tb.state.secrets / "agent-cpe1.token").read_text().strip()
    r = httpx.post(f"{tb.api_url}/api/v1/agents/cpe3/report", json={"instances": []},
                   headers={"authorization": f"Bearer {cpe1_token}"}, timeout=10)  # fmt: skip
    assert r.status_code == 403


def test_create_and_migrate_across_agent_processes(tb: Testbed) -> None:
    assert tb.api_url
    api = platform.Api(tb.api_url, tb.api_token)
    inst = api("POST", "/instances", {"descriptor": "counter", "node": "cpe1"})
    inst = api.wait_state(inst["id"], "running")
    ip = inst["ip"].split("/")[0]
    with CounterProbe(tb.netns_of("laptop1"), ip) as probe:
        before = probe.ask().count
        assert before >= 1
        # cpe1's agent runs in the first process, pe1's in the second.
        mig = api("POST", f"/instances/{inst['id']}/migrate", {"node": "pe1"})
        assert api.wait_migration(inst["id"], mig["id"])["phase"] == "done"
        moved = api("GET", f"/instances/{inst['id']}")
        assert moved["node"] == "pe1" and moved["state"] == "running"
        # The state went with it: the counter goes on from where it was.
        assert until("the moved counter answers", lambda: probe.ask().count > before, 30)
    api("DELETE", f"/instances/{inst['id']}")
    api.wait_state(inst["id"], "gone")
