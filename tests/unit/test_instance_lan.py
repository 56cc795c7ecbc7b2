"""An instance's address on a named LAN of its node (CreateRequest.lan): a node with
several LANs gives an instance (a Personal Network's vHG) an address, gateway and
LAN of the one asked for; without it, the node's first, as before; a LAN the node
does not have, or no node, is refused and nothing is made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv.errors import NotFound
from netfate.store.db import Database
from netfate.store.tables import InstanceRow
from topology_db import topology_db

TOPO = {
    "name": "lans",
    "nodes": {
        "cpe1": {"kind": "cpe", "lans": ["192.168.1.0/24", "192.168.11.0/24"], "cpu": 2},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4},
    },
    "links": [{"a": "cpe1", "b": "pe1"}],
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def test_an_instance_takes_its_address_on_the_lan_asked_for(db: Database) -> None:
    with db.session() as s:
        first, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
        second, _ = nfv.create_instance(
            s, nfv.CreateRequest(descriptor="counter", node="cpe1", lan="192.168.11.0/24")
        )
        assert (first.lan, first.gateway) == ("192.168.1.0/24", "192.168.1.1")
        assert str(first.ip).startswith("192.168.1.")
        assert (second.lan, second.gateway) == ("192.168.11.0/24", "192.168.11.1")
        assert str(second.ip).startswith("192.168.11.") and second.node == "cpe1"


@pytest.mark.parametrize(
    ("node", "lan", "says"),
    [("cpe1", "10.10.0.0/24", "node cpe1 has no LAN 10.10.0.0/24"),
     (None, "192.168.11.0/24", "needs its node")],
)  # fmt: skip
def test_a_lan_the_node_has_not_is_refused(
    db: Database, node: str | None, lan: str, says: str
) -> None:
    with pytest.raises(NotFound, match=says), db.session() as s:
        nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node=node, lan=lan))
    with db.session(write=False) as s:
        assert s.scalars(select(InstanceRow)).all() == []
