"""Night consolidation (services/catalog/night.py) from a load curve at explicit hours.

The fog topology: two homes (CPEs, 1 CPU, pinned on) and the provider edge (pe1,
80 W idle). By day the homes' own load leaves no room for the chains, which run at
pe1; at night it does, so pe1 is emptied and switched off; in the morning the
homes fill again and pe1 comes back. A node whose other instance cannot move
stays on, with the reason; nothing is placed on a node that is off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_db import FNS, TOPO, V1, FakeCoordinator, catalog_db
from netfate.orchestrator.nfv import coordinator as nfv
from netfate.orchestrator.nfv import power
from netfate.orchestrator.nfv.errors import NoCapacity
from netfate.services.catalog.conduit import Conduit, Refused
from netfate.services.catalog.night import (
    CompressedDay,
    LoadCurve,
    NightLoop,
    consolidate,
    set_day,
    state,
)
from netfate.services.catalog.tables import (
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogSubscriptionRow,
)
from netfate.services.catalog.templates import publish
from netfate.store.db import Database
from netfate.store.tables import EventRow, NodeRow

LOOSE = V1.replace("latency_ms: 5", "latency_ms: 50")
"""Within 50 ms: the chain may run at the edge as well as at home."""
CURVE = LoadCurve({"cpe1": (0.1, 0.95), "cpe2": (0.1, 0.95), "pe1": (0.2, 0.5)})
NIGHT, DAY = 3.0, 14.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = catalog_db(tmp_path, TOPO)
    yield d
    d.dispose()


def power_of(s: Session, node: str) -> str:
    row = s.get(NodeRow, node)
    assert row is not None
    return row.power


def where(s: Session) -> dict[tuple[str, str], str]:
    return {(i.subscription, i.block): i.node for i in s.scalars(select(CatalogInstanceRow))}


def entries(s: Session) -> dict[str, str]:
    """User -> the node of their chain's entry block."""
    users = {r.id: r.user for r in s.scalars(select(CatalogSubscriptionRow))}
    return {users[sid]: node for (sid, b), node in where(s).items() if b == "collector"}


def subscribed(s: Session, conduit: Conduit) -> None:
    c = publish(s, "acme", LOOSE, FNS)
    conduit.subscribe(s, "alice", c, "cpe1")
    conduit.subscribe(s, "bob", c, "cpe2")


def test_the_curve_follows_the_hours() -> None:
    assert CURVE.at(15.0)["cpe1"] == pytest.approx(0.95)
    assert CURVE.at(3.0)["cpe1"] == pytest.approx(0.1)
    clock = iter([100.0, 100.0, 115.0])
    day = CompressedDay(day_s=60.0, start_hour=12.0, now=lambda: next(clock))
    assert day.hour() == pytest.approx(12.0)
    assert day.hour() == pytest.approx(18.0)  # a quarter of a 60 s day later


def test_the_edge_goes_off_at_night_and_comes_back_in_the_morning(db: Database) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        subscribed(s, conduit)
        # By day the homes are full: the chains move to the edge.
        decisions, _ = consolidate(s, conduit, CURVE, DAY)
        assert [d.action for d in decisions] == []
        assert set(where(s).values()) == {"pe1"}
        assert power_of(s, "pe1") == "on"
        assert len(fake.migrated) == 4  # two blocks of each of two chains
    with db.session() as s:
        decisions, _ = consolidate(s, conduit, CURVE, NIGHT)
        assert [(d.node, d.action) for d in decisions] == [("pe1", "off")]
        why = decisions[0].why
        assert why.startswith("at 03:00 (load curve: cpe1 0.10/1 CPU") and "pe1 off" in why
        assert "within the SLAs" in why and " W -> " in why
        # the homes take them; each entry at its user's (the round trip counts in the mix)
        assert set(where(s).values()) <= {"cpe1", "cpe2"}
        assert entries(s) == {"alice": "cpe1", "bob": "cpe2"}
        assert power_of(s, "pe1") == "off"  # nothing of the platform's was left there
        assert state(s)["switched_off"] == {"pe1": why}
        moved = s.scalars(select(CatalogDecisionRow).where(CatalogDecisionRow.action == "moved"))
        assert all("consolidation: " in d.why for d in moved)
    with db.session() as s:
        assert [d.action for d in consolidate(s, conduit, CURVE, NIGHT)[0]] == []  # settled
        decisions, _ = consolidate(s, conduit, CURVE, DAY)
        assert [(d.node, d.action) for d in decisions] == [("pe1", "on")]
        assert decisions[0].why.startswith("at 14:00") and "no longer fit" in decisions[0].why
        assert power_of(s, "pe1") == "on"
        assert set(where(s).values()) == {"pe1"}
        assert state(s)["switched_off"] == {}
        kinds = [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert kinds.count("NodeConsolidated") == 2
        assert "NodePoweredOff" in kinds and kinds.count("NodePoweredOn") == 1


def at_the_edge(s: Session) -> tuple[FakeCoordinator, Conduit]:
    """alice and bob subscribed, and the chains at pe1 after a pass by day."""
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    subscribed(s, conduit)
    consolidate(s, conduit, CURVE, DAY)
    return fake, conduit


def test_a_node_running_anothers_instance_stays_on_with_why(db: Database) -> None:
    with db.session() as s:
        fake, conduit = at_the_edge(s)
        # something else of the platform's runs at pe1: the catalog does not move it
        inst, _ = nfv.create_instance(
            s, nfv.CreateRequest(descriptor="counter", node="pe1", name="theirs")
        )
        inst.state = "running"
    with db.session() as s:
        before = where(s)
        decisions, _ = consolidate(s, conduit, CURVE, NIGHT)
        assert [(d.node, d.action) for d in decisions] == [("pe1", "stays on")]
        assert f"pe1 runs {inst.id} (counter), not the catalog's" in decisions[0].why
        assert power_of(s, "pe1") == "on"
        assert where(s) == before  # its chains stay too: nothing moved for nothing
        assert all(target == "pe1" for _, target in fake.migrated)  # by day only
        consolidate(s, conduit, CURVE, NIGHT)  # again: refused again, recorded once
        assert [d["action"] for d in state(s)["recent"]] == ["stays on"]


def test_a_node_the_platform_would_not_drain_stays_on_with_why(db: Database) -> None:
    with db.session() as s:
        _fake, conduit = at_the_edge(s)
        # another's instance on its way to pe1: a drain now would be refused
        inst, _ = nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="cpe1"))
        inst.state = "running"
        nfv.migrate_instance(s, inst.id, "pe1")
    with db.session() as s:
        decisions, _ = consolidate(s, conduit, CURVE, NIGHT)
        assert [(d.node, d.action) for d in decisions] == [("pe1", "stays on")]
        assert "1 migration(s) to it under way" in decisions[0].why
        assert power_of(s, "pe1") == "on"


def test_a_chain_is_not_placed_on_a_node_off_for_another_reason(db: Database) -> None:
    """The operator switched pe1 off: the engine sees it hosting nothing (it does not
    switch it on, as it may a node the consolidation switched off)."""
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        row = s.get(NodeRow, "pe1")
        assert row is not None
        row.power, row.power_why = "off", "operator"
        c = publish(s, "acme", LOOSE.replace("cpu: 0.2", "cpu: 0.7"), FNS)  # 0.9 a chain
        conduit.subscribe(s, "alice", c, "cpe1")
        conduit.subscribe(s, "bob", c, "cpe2")
        assert set(where(s).values()) == {"cpe1", "cpe2"}
        with pytest.raises(Refused, match="capacity"):
            conduit.subscribe(s, "carol", c, "cpe1")  # only pe1 had room
        assert power_of(s, "pe1") == "off"
        with pytest.raises(NoCapacity, match="switched off"):
            nfv.create_instance(s, nfv.CreateRequest(descriptor="counter", node="pe1"))


def test_a_subscription_wakes_a_node_the_consolidation_switched_off(db: Database) -> None:
    with db.session() as s:
        _fake, conduit = at_the_edge(s)
        consolidate(s, conduit, CURVE, NIGHT)
        assert power_of(s, "pe1") == "off"
        big = publish(s, "acme", LOOSE.replace("name: sensor-archive", "name: big").replace(
            "cpu: 0.2", "cpu: 2"), FNS)  # fmt: skip
        conduit.subscribe(s, "carol", big, "cpe1")  # fits only at pe1
        assert power_of(s, "pe1") == "on"
        assert state(s)["switched_off"] == {}


def test_the_loop_follows_the_operators_day_and_records_only_changes(db: Database) -> None:
    """A week-long 'day' so that the hour stays where it was set while the test runs."""
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    loop = NightLoop(conduit)
    week = 7 * 86400.0
    with db.session() as s:
        assert loop.step(s) == set()  # no day set: nothing decided
        subscribed(s, conduit)
        set_day(s, CURVE, week, start_hour=DAY)
        loop.step(s)
        assert set(where(s).values()) == {"pe1"}
        set_day(s, CURVE, week, start_hour=NIGHT)
        assert state(s)["day"]["hour"] == pytest.approx(NIGHT, abs=0.01)
        loop.step(s)
        assert power_of(s, "pe1") == "off"
        loop.step(s)
        loop.step(s)  # nothing changes: nothing more recorded
        assert [d["action"] for d in state(s)["recent"]] == ["off"]
        set_day(s, CURVE, week, start_hour=DAY)
        loop.step(s)
        assert power_of(s, "pe1") == "on"
        assert [d["action"] for d in state(s)["recent"]] == ["off", "on"]
        kinds = [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert kinds.count("NodeConsolidated") == 2
        set_day(s, None)
        assert state(s)["day"] is None and loop.step(s) == set()


def test_a_node_the_operator_switched_on_is_no_longer_the_consolidations(db: Database) -> None:
    with db.session() as s:
        _fake, conduit = at_the_edge(s)
        consolidate(s, conduit, CURVE, NIGHT)
        assert set(state(s)["switched_off"]) == {"pe1"}
        power.power_on(s, "pe1", "operator")
        assert state(s)["switched_off"] == {}
