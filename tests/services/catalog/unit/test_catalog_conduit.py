"""The catalog's conduit (services/catalog/conduit.py) over a real SQLite database.

Publishing decomposes a chain into templates and allocates nothing; a subscription
is placed by the placement engine and its instances asked of the coordinator (a
fake one that records what it is asked, or the platform's own); a refusal, or a
coordinator that fails half-way, leaves nothing behind; v2 is published while v1
runs and a subscription moves on request; the loop follows the user (a RADIUS
login recorded by the platform, or only a DHCP lease of their phone at another
node's dnsmasq) and moves off a node that went down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_db import FNS, FOG, V1, V2, FakeCoordinator, catalog_db
from catalog_leases import dhcp_server, lease
from netfate.orchestrator.nfv.errors import Conflict, NoCapacity
from netfate.services.catalog import whereabouts
from netfate.services.catalog.conduit import Conduit, Platform, Refused, abstracted
from netfate.services.catalog.tables import (
    CatalogBlockRow,
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
    CatalogPositionRow,
    CatalogSubscriptionRow,
    CatalogTalkRow,
)
from netfate.services.catalog.templates import Impossible, publish
from netfate.services.catalog.whereabouts import Whereabouts
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import EventRow, InstanceRow, NodeRow


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = catalog_db(tmp_path, FOG)
    yield d
    d.dispose()


def count(s: Session, table: Any) -> int:
    return int(s.scalar(select(func.count()).select_from(table)) or 0)


def chain(s: Session, text: str = V1) -> CatalogChainRow:
    return publish(s, "acme", text, FNS)


def login(s: Session, user: str, node: str) -> None:
    """What the firewall's RADIUS server records on an Access-Accept."""
    record_event(s, "UserLoggedIn", {"user": user, "node": node, "previous": None})


def test_publishing_stores_templates_and_allocates_nothing(db: Database) -> None:
    with db.session() as s:
        row = chain(s)
        assert (row.name, row.version, row.provider) == ("sensor-archive", 1, "acme")
        blocks = s.scalars(select(CatalogBlockRow).order_by(CatalogBlockRow.position)).all()
        assert [(b.name, b.function, b.cpu, b.storage_mb) for b in blocks] == [
            ("collector", "counter", 0.2, 0.0),
            ("archive", "forwarder", 0.2, 100.0),
        ]
        assert [(t.a, t.b, t.mbps) for t in s.scalars(select(CatalogTalkRow))] == [
            ("collector", "archive", 1.0)
        ]
        assert count(s, InstanceRow) == 0 and count(s, CatalogSubscriptionRow) == 0
        kinds = {e.kind for e in s.scalars(select(EventRow))}
        assert "ChainPublished" in kinds


def test_versions_go_up_and_a_name_stays_its_providers(db: Database) -> None:
    with db.session() as s:
        chain(s)
        assert chain(s, V2).version == 2
        with pytest.raises(Conflict, match="versions only go up"):
            chain(s, "version: 2\n" + V1)
        with pytest.raises(Conflict, match="another provider"):
            publish(s, "other", V1, FNS)


def test_a_chain_no_node_could_run_is_refused_at_publishing(db: Database) -> None:
    with db.session() as s, pytest.raises(Impossible) as e:
        chain(s, V1.replace("cpu: 0.2", "cpu: 16"))
    assert set(e.value.errors) == {"blocks[0].cpu"}


def test_a_subscription_is_placed_and_its_instances_asked_for(db: Database) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        row, d, touched = conduit.subscribe(s, "alice", chain(s), "cpe1")
        # The 5 ms latency bound keeps the entry at the user's CPE (pe1 is 10 ms there
        # and back); the archive goes with it: cpe1 stays on anyway (a home gateway is
        # pinned), so it costs only its CPU, where pe1 would cost its idle power.
        assert d.nodes == {"collector": "cpe1", "archive": "cpe1"}
        assert fake.created == [("counter", "cpe1"), ("forwarder", "cpe1")]
        assert touched == {"cpe1"}
        assert d.why.startswith("placed on cpe1 by mix") and d.why == row.why
        assert d.data["binding"] in ("none", "latency")
        insts = s.scalars(select(CatalogInstanceRow).order_by(CatalogInstanceRow.block)).all()
        assert [(i.block, i.node) for i in insts] == [("archive", "cpe1"), ("collector", "cpe1")]


def test_an_infeasible_subscription_is_refused_and_nothing_is_written(db: Database) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        tight = chain(s, V1.replace("cpu: 0.2", "cpu: 1.5"))
        s.commit()
        before = (count(s, CatalogSubscriptionRow), count(s, CatalogInstanceRow))
        # The entry needs 1.5 CPU within 5 ms of cpe1: only cpe1 is, and it has 1.
        with pytest.raises(Refused) as e:
            conduit.subscribe(s, "bob", tight, "cpe1")
        assert e.value.refusals and e.value.refusals[0]["constraint"].startswith("capacity")
        assert fake.created == []
        assert (count(s, CatalogSubscriptionRow), count(s, CatalogInstanceRow)) == before


def test_a_coordinator_failing_half_way_leaves_nothing_half_deployed(db: Database) -> None:
    """The second create fails: the caller rolls back, and neither the subscription,
    nor the first block's instance, nor its decision remains (the platform's rows)."""
    with db.session() as s:
        chain(s)
    conduit = Conduit(_FailingPlatform(fail_at=2))
    with db.session() as s:
        c = s.scalars(select(CatalogChainRow)).one()
        with pytest.raises(NoCapacity):
            conduit.subscribe(s, "alice", c, "cpe1")
        s.rollback()
        assert count(s, InstanceRow) == 0
        assert count(s, CatalogSubscriptionRow) == 0
        assert count(s, CatalogInstanceRow) == 0
        assert count(s, CatalogDecisionRow) == 0


class _FailingPlatform(Platform):
    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.calls = fail_at, 0

    def create(self, session: Session, **kw: Any) -> tuple[str, set[str]]:
        self.calls += 1
        if self.calls == self.fail_at:
            raise NoCapacity("filled meanwhile")
        return super().create(session, **kw)


def test_the_platform_coordinator_creates_real_instance_rows(db: Database) -> None:
    conduit = Conduit()
    with db.session() as s:
        conduit.subscribe(s, "alice", chain(s), "cpe1")
        insts = {i.descriptor: i for i in s.scalars(select(InstanceRow))}
        assert set(insts) == {"counter", "forwarder"}
        assert {i.node for i in insts.values()} == {"cpe1"}
        # the block's figures are reserved, not the function's smaller ones
        assert insts["counter"].cpu == pytest.approx(0.2)
        assert insts["forwarder"].state == "requested"


def test_v2_is_published_while_v1_runs_and_a_subscription_moves_on_request(
    db: Database,
) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        v1 = chain(s)
        row, _, _ = conduit.subscribe(s, "alice", v1, "cpe1")
        v2 = chain(s, V2)
        # publishing v2 touched nothing of v1's subscription
        assert row.chain == v1.id and fake.destroyed == []
        old = {i.instance for i in s.scalars(select(CatalogInstanceRow))}
        d, _ = conduit.upgrade(s, row, v2)
        assert row.chain == v2.id and d.action == "upgraded"
        assert set(fake.destroyed) == old
        now = s.scalars(select(CatalogInstanceRow)).all()
        assert {i.block for i in now} == {"collector", "index", "archive"}
        assert not {i.instance for i in now} & old


def test_the_loop_follows_the_user_to_their_new_login(db: Database) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake, Whereabouts())
    with db.session() as s:
        row, _, _ = conduit.subscribe(s, "alice", chain(s), "cpe1")
        login(s, "alice", "cpe1")
        assert conduit.step(s) == set()  # where it is placed already: nothing to do
        assert fake.migrated == []
        login(s, "alice", "cpe2")
        touched = conduit.step(s)
        last = s.scalars(select(CatalogDecisionRow).order_by(CatalogDecisionRow.id.desc())).first()
        assert last is not None and last.action == "moved"
        # The entry must be within 5 ms of the user: it follows them to cpe2. The
        # archive has no bound of its own; the engine moves it only if that pays
        # (here it stays: moving costs, a CPE is as cheap as another).
        assert last.nodes["collector"] == "cpe2"
        blocks = {i.instance: i.block for i in s.scalars(select(CatalogInstanceRow))}
        assert {(blocks[i], n) for i, n in fake.migrated} == {
            (b, n) for b, n in last.nodes.items() if n != "cpe1"
        }
        assert touched == {"cpe1", "cpe2"} and row.at == "cpe2"
        assert row.why.startswith("user seen at cpe2 (login): moved on ")
        seen = [(p.node, p.source) for p in s.scalars(select(CatalogPositionRow))]
        assert seen == [("cpe1", "login"), ("cpe2", "login")]
        assert conduit.step(s) == set()  # settled: the next pass does nothing


def test_a_move_waits_while_an_instance_is_unsettled_and_the_last_position_wins(
    db: Database,
) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        row, _, _ = conduit.subscribe(s, "alice", chain(s), "cpe1")
        first = s.scalars(select(CatalogInstanceRow)).first()
        assert first is not None
        fake.states[first.instance] = ("starting", "cpe1")
        login(s, "alice", "cpe2")
        conduit.step(s)
        assert fake.migrated == [] and "waiting for" in row.detail
        login(s, "alice", "cpe1")  # back before anything moved
        fake.states[first.instance] = ("running", "cpe1")
        conduit.step(s)
        assert fake.migrated == [] and row.at == "cpe1"


def test_a_node_that_goes_down_is_left_and_a_refusal_keeps_the_chain_where_it_is(
    db: Database,
) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        loose = chain(s, V1.replace("latency_ms: 5", "latency_ms: 50"))
        row, d, _ = conduit.subscribe(s, "alice", loose, "cpe1")
        home = d.nodes["collector"]
        s.get(NodeRow, home).status = "unreachable"  # type: ignore[union-attr]
        conduit.step(s)
        moved = {node for _, node in fake.migrated}
        assert moved and home not in moved
        assert "not up" in row.why
        # Now every node is down: no room anywhere; it stays, and says why.
        for n in s.scalars(select(NodeRow)):
            n.status = "unreachable"
        before = list(fake.migrated)
        conduit.step(s)
        assert fake.migrated == before and "cannot re-place" in row.detail


def test_unsubscribing_stops_the_instances_and_keeps_the_history(db: Database) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake)
    with db.session() as s:
        row, _, _ = conduit.subscribe(s, "alice", chain(s), "cpe1")
        conduit.unsubscribe(s, row)
        assert row.state == "ended" and len(fake.destroyed) == 2
        actions = [d.action for d in s.scalars(select(CatalogDecisionRow))]
        assert actions == ["placed", "ended"]
        assert conduit.step(s) == set()  # an ended subscription is not placed again


def test_node_names_become_abstract_sites_even_inside_words_boundaries() -> None:
    sites = {"pe1": "site-aa", "cpe1": "site-bb", "pe10": "site-cc"}
    text = "placed on cpe1 by mix; runner-up pe1 lost; pe10@pe1 and xpe1 and pe1-x"
    assert abstracted(text, sites) == (
        "placed on site-bb by mix; runner-up site-aa lost; site-cc@site-aa and xpe1 and pe1-x"
    )


# ------------------------------------------------------------------ a move seen by DHCP only

PHONE = "02:aa:00:00:00:01"


def test_a_move_seen_only_through_a_dhcp_lease_re_places_the_subscription(
    db: Database,
) -> None:
    fake = FakeCoordinator()
    conduit = Conduit(fake, Whereabouts())
    with db.session() as s:
        row, _, _ = conduit.subscribe(s, "alice", chain(s), "cpe1", devices=[PHONE.upper()])
        t = int(time.time())
        dhcp_server(s, "i-cpe1", "cpe1", lease(PHONE, "192.168.1.100", t - 100))
        assert conduit.step(s) == set()  # leased where it is placed: nothing to do
        assert fake.migrated == []
        # The phone gets a lease at cpe2's DHCP server: no login, no switch sighting.
        dhcp_server(s, "i-cpe2", "cpe2", lease(PHONE, "192.168.2.100", t - 10))
        touched = conduit.step(s)
        last = s.scalars(select(CatalogDecisionRow).order_by(CatalogDecisionRow.id.desc())).first()
        assert last is not None and last.action == "moved"
        assert last.nodes["collector"] == "cpe2"
        assert fake.migrated and all(node == "cpe2" for _, node in fake.migrated)
        assert touched >= {"cpe2"} and row.at == "cpe2"
        assert row.why.startswith("user seen at cpe2 (lease): moved on ")
        hist = [(p.node, p.source) for p in s.scalars(select(CatalogPositionRow))]
        assert hist == [("cpe1", "lease"), ("cpe2", "lease")]
        newest = whereabouts.history(s, "alice")[0]
        said = f"(t={t - 10}.000, {PHONE} got 192.168.2.100 from vhg-cpe2 (i-cpe2))"
        assert newest.why.startswith(f"newest: lease at cpe2 {said}")
        assert "lease at cpe1" in newest.why and "is older" in newest.why
        assert conduit.step(s) == set()  # settled


def test_a_users_devices_are_those_of_all_their_subscriptions(db: Database) -> None:
    conduit = Conduit(FakeCoordinator(), Whereabouts())
    with db.session() as s:
        c = chain(s)
        a, _, _ = conduit.subscribe(s, "alice", c, "cpe1", devices=[PHONE])
        b, _, _ = conduit.subscribe(s, "alice", c, "cpe1", devices=["02:aa:00:00:00:02"])
        tablet = lease("02:aa:00:00:00:02", "192.168.2.9", int(time.time()))
        dhcp_server(s, "i-cpe2", "cpe2", tablet)  # her second subscription's device
        conduit.step(s)
        assert a.at == b.at == "cpe2"


def test_the_engine_sees_a_nodes_warm_standbys_as_memory_load(tmp_path: Path) -> None:
    """A node's planned standbys (that fit) hold memory: the catalog's engine counts
    them as background load on it (the create there counts them the same way)."""
    from netfate.orchestrator.engine.predeploy import image_mb
    from netfate.orchestrator.nfv import coordinator as platform
    from netfate.orchestrator.nfv import predeploy
    from netfate.services.catalog.conduit import infrastructure

    db = catalog_db(tmp_path, FOG)
    try:
        with db.session() as s:
            platform.create_instance(s, platform.CreateRequest(descriptor="counter", node="cpe2"))
            before = {n.name: n.load.memory_mb for n in infrastructure(s).nodes}
            predeploy.set_budget(s, "cpe2", image_mb("counter") or 1.0, 3)
        with db.session() as s:
            after = {n.name: n.load.memory_mb for n in infrastructure(s).nodes}
        assert before["cpe2"] == 64.0  # the counter itself
        assert after["cpe2"] == 64.0 + 3 * 64  # and three warm counters of 64 MiB
        assert after["cpe1"] == before["cpe1"] and after["pe1"] == before["pe1"]
    finally:
        db.dispose()
