"""`examples/fog.yaml`, the name issue 15 gives the catalog's scenario, is the
topology `netfate demo catalog` runs on (services/catalog/topologies/fog.yaml): the
same bytes, so the two can never drift apart."""

from __future__ import annotations

from pathlib import Path

from netfate.model.topology import Topology
from netfate.services.catalog import demo

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "fog.yaml"


def test_the_example_is_the_demos_topology() -> None:
    assert EXAMPLE.read_bytes() == demo.TOPOLOGY.read_bytes()
    ex, ours = Topology.load(EXAMPLE), Topology.load(demo.TOPOLOGY)
    assert ex.nodes == ours.nodes and ex.hosts == ours.hosts
    # What the demo's walk needs: a laptop at each of the users' homes, RADIUS at pe1.
    assert {ex.hosts[h].node for h in demo.LAPTOPS.values()} == set(demo.USERS.values())
    assert "pe1" in ex.nodes
