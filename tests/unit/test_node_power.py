"""A node's power switch (orchestrator/nfv/power.py) over a real SQLite database.

Off drains first (each running instance migrates away, make-before-break), then the
node is off and nothing is placed there; a node that cannot be drained is refused
with the reason and nothing changes; a failed move gives the drain up (the instance
keeps running where it was, the node is on again); on brings it back for placement.
The agents' side is played by their reports (apply_report), as the agents send them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import authn
from netfate.contract import Role
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import power
from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.store.db import Database
from netfate.store.tables import EventRow, InstanceRow, MigrationRow, NodeRow
from topology_db import topology_db

TOPO = {
    "name": "fog",
    "nodes": {
        "cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 1, "memory": "512MiB"},
        "cpe2": {"kind": "cpe", "lan": "192.168.2.0/24", "cpu": 1, "memory": "512MiB"},
        "pe1": {"kind": "pe", "lan": "10.10.0.0/24", "cpu": 4, "memory": "4096MiB"},
    },
    "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = topology_db(tmp_path, TOPO)
    yield d
    d.dispose()


def running(s: Session, node: str, cpu: float = 0.1, name: str | None = None) -> str:
    """An instance on `node` its agent reports running."""
    inst, _ = nfv.create_instance(
        s, nfv.CreateRequest(descriptor="counter", node=node, cpu=cpu, name=name)
    )
    inst.state = "running"
    return inst.id


def target_says(s: Session, node: str, status: str, reason: str = "") -> None:
    """The migration target's agent reports each open migration to it."""
    for m in s.scalars(select(MigrationRow).where(MigrationRow.target == node)):
        nfv.apply_report(
            s, node, {"migrations": [{"id": m.id, "status": status, "reason": reason}]}
        )


def kinds(s: Session) -> list[str]:
    return [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]


def test_an_empty_node_goes_off_at_once_and_nothing_is_placed_there(db: Database) -> None:
    with db.session() as s:
        drain, _ = power.power_off(s, "pe1", "night")
        assert (drain.power, drain.moves) == ("off", {})
        assert "NodePoweredOff" in kinds(s)
    with db.session() as s:
        with pytest.raises(NoCapacity, match="pe1: switched off"):
            nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="pe1"))
        # placement picks among the nodes that are on only
        for _ in range(4):
            inst, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", cpu=0.1))
            assert inst.node != "pe1"
        iid = running(s, "cpe1")
        with pytest.raises(NoCapacity, match="switched off"):
            nfv.migrate_instance(s, iid, "pe1")
    with db.session() as s:
        power.power_on(s, "pe1", "morning")
        assert kinds(s)[-1] == "NodePoweredOn"
        inst, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="pe1"))
        assert inst.node == "pe1"
        row = s.get(NodeRow, "pe1")
        assert row is not None and (row.power, row.power_why) == ("on", "morning")


def test_off_drains_the_node_then_it_is_off(db: Database) -> None:
    with db.session() as s:
        a = running(s, "pe1", 0.3, "a")
        b = running(s, "pe1", 0.3, "b")
    with db.session() as s:
        drain, touched = power.power_off(s, "pe1", "night")
        # least-loaded picks, room taken by the first counted for the second
        assert drain.power == "draining" and set(drain.moves) == {a, b}
        assert set(drain.moves.values()) == {"cpe1", "cpe2"}
        assert "pe1" in touched
        assert power.settle(s) == []  # still moving
    with db.session() as s:
        for target in ("cpe1", "cpe2"):
            target_says(s, target, "done")
        assert power.settle(s) == ["pe1"]
        row = s.get(NodeRow, "pe1")
        assert row is not None and row.power == "off"
        insts = {i.id: (i.node, i.state) for i in s.scalars(select(InstanceRow))}
        # never two copies: each is one row, running at its target
        assert insts == {a: (drain.moves[a], "running"), b: (drain.moves[b], "running")}
        assert kinds(s).count("NodeDraining") == 1 and kinds(s)[-1] == "NodePoweredOff"


def test_a_node_that_cannot_be_drained_is_refused_and_nothing_changes(db: Database) -> None:
    with db.session() as s:
        big = running(s, "pe1", 2.0, "big")  # the CPEs have 1 CPU each
    with db.session() as s:
        with pytest.raises(power.NotDrainable, match=rf"{big} .*fits on no other node"):
            power.power_off(s, "pe1", "night")
        s.rollback()
        row = s.get(NodeRow, "pe1")
        assert row is not None and row.power == "on"
        assert s.scalars(select(MigrationRow)).all() == []
    with db.session() as s:
        waiting, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
    with db.session() as s, pytest.raises(power.NotDrainable, match=f"{waiting.id} .*is requested"):
        power.power_off(s, "cpe1", "night")


def test_a_failed_move_gives_the_drain_up_and_nothing_is_lost(db: Database) -> None:
    with db.session() as s:
        a = running(s, "pe1", 0.3, "a")
        power.power_off(s, "pe1", "night")
    with db.session() as s:
        m = s.scalars(select(MigrationRow)).one()
        target_says(s, m.target, "failed", "no room for its state")
        assert power.settle(s) == ["pe1"]
        row = s.get(NodeRow, "pe1")
        assert row is not None and row.power == "on"
        assert "no room for its state" in row.power_why
        inst = s.get(InstanceRow, a)
        assert inst is not None and (inst.node, inst.state) == ("pe1", "running")
        assert kinds(s)[-1] == "NodeDrainFailed"


def test_the_api_switches_a_node_for_the_operator_only(db: Database) -> None:
    app = create_app(Settings(database_url=str(db.engine.url)), services=())
    with authn.client(app) as c:  # signed in as the operator (the route's only role)
        r = c.put("/api/v1/nodes/pe1/power", json={"state": "off", "why": "test"})
        assert r.status_code == 202, r.text
        assert r.json()["power"] == "off" and r.json()["power_why"].endswith(": test")
        assert c.get("/api/v1/nodes/pe1").json()["power"] == "off"
        assert c.put("/api/v1/nodes/pe1/power", json={"state": "sleep"}).status_code == 422
        assert c.put("/api/v1/nodes/nope/power", json={"state": "off"}).status_code == 404
        user = authn.bearer(authn.token(app, "someone", Role.USER))
        r = c.put("/api/v1/nodes/pe1/power", json={"state": "on"}, headers=user)
        assert r.status_code == 403
        r = c.put("/api/v1/nodes/pe1/power", json={"state": "on"})
        assert r.status_code == 202 and r.json()["power"] == "on"
