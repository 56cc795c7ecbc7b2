"""A placed chain as SDN intents (services/catalog/steering.py).

The intents of a chain and a placement, compiled and walked through a simulated
switch table: the user's packets reach the entry block and cross the blocks in
chain order, and after a block moves the same intents carry them to its new node.
Over a real SQLite database with the platform's coordinator: the conduit's loop
stores them, replaces them when the blocks run as new instances (an upgrade),
keeps them through a migration, removes them on unsubscribe, and says a refused
one, keyed, in the subscription's and its decision's `why`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_db import FOG, catalog_db
from netfate.orchestrator.sdn.api import load_intents
from netfate.orchestrator.sdn.compile import compile_intents
from netfate.orchestrator.sdn.intents import ConnectivityIntent, NetworkView, SteeringIntent
from netfate.services.catalog.conduit import Conduit
from netfate.services.catalog.descriptor import Function
from netfate.services.catalog.steering import PREFIX, chain_intents, intent_id
from netfate.services.catalog.tables import (
    CatalogChainRow,
    CatalogDecisionRow,
    CatalogInstanceRow,
)
from netfate.services.catalog.templates import publish
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import InstanceRow, MigrationRow
from sdn_fixtures import simulate, ties

LAPTOP = FOG["hosts"]["laptop1"]["mac"]
FNS = {"counter": Function("counter", 0.1, 64), "forwarder": Function("forwarder", 0.2, 64)}
THREE = """
name: sensor-path
blocks:
  - {name: collector, function: forwarder, cpu: 0.2}
  - {name: index, function: forwarder, cpu: 0.2}
  - {name: archive, function: forwarder, cpu: 0.2}
user_mbps: 1
sla: {latency_ms: 5}
"""
BLOCKS = ["collector", "index", "archive"]
TALKS = [("collector", "index"), ("index", "archive")]

# ------------------------------------------------------------------ pure: chain -> intents

MACS = {"alice": "02:00:00:00:00:0a", "i0": "02:00:00:00:01:00"}
MACS |= {"i1": "02:00:00:00:01:01", "i2": "02:00:00:00:01:02"}
IPS = {"alice": "10.0.0.10", "i0": "10.0.0.100", "i1": "10.0.0.101", "i2": "10.0.0.102"}


def _view(where: dict[str, str]) -> NetworkView:
    """cpe1 - pe1 - cpe2; alice on cpe1; instance i (i0, i1, i2) on where[i]."""
    ports: dict[str, list[dict[str, Any]]] = {
        "cpe1": [{"name": "c1up", "ofport": 1, "peer": "node:pe1"}],
        "cpe2": [{"name": "c2up", "ofport": 1, "peer": "node:pe1"}],
        "pe1": [
            {"name": "p1", "ofport": 1, "peer": "node:cpe1"},
            {"name": "p2", "ofport": 2, "peer": "node:cpe2"},
        ],
    }
    ports["cpe1"].append({"name": "c1h", "ofport": 2, "peer": "host:alice"})
    for iid, node in sorted(where.items()):
        ports[node].append({"name": iid, "ofport": len(ports[node]) + 1, "peer": f"instance:{iid}"})
    return NetworkView.model_validate(
        {
            "nodes": [
                {"name": n, "dpid": k + 1, "ports": p} for k, (n, p) in enumerate(ports.items())
            ],
            "hosts": [{"name": "alice", "mac": MACS["alice"], "ip": IPS["alice"], "node": "cpe1"}],
            "instances": [
                {"id": i, "mac": MACS[i], "ip": IPS[i], "node": n} for i, n in where.items()
            ],
            "links": [{"a": "cpe1", "b": "pe1"}, {"a": "cpe2", "b": "pe1"}],
        }
    )


def _port(view: NetworkView, peer: str) -> tuple[str, int]:
    return next((n.name, p.ofport) for n in view.nodes for p in n.ports if p.peer == peer)


def _pkt(src: str, dst: str, *, eth_src: str | None = None) -> dict[str, Any]:
    """An IPv4 datagram src -> dst as `eth_src` sends it (a block forwarding it keeps
    the addresses and puts its own MAC; whatever next hop it chose, the switch decides)."""
    return {
        "eth_src": MACS[eth_src or src], "eth_dst": "02:00:00:00:00:ff", "eth_type": 0x0800,
        "ipv4_src": IPS[src], "ipv4_dst": IPS[dst], "ip_proto": 17, "udp_dst": 7777,
    }  # fmt: skip


def _walk(view: NetworkView) -> list[str]:
    """Where alice's datagram to the last block goes, stage by stage (each block
    forwarding what it gets), and the reply back: the peers that receive it."""
    sid = "c-1"
    res = compile_intents(
        view,
        [
            k.intent
            for k in chain_intents(
                sid,
                BLOCKS,
                TALKS,
                {"collector": "i0", "index": "i1", "archive": "i2"},
                {0: "alice"},
            )
        ],
    )
    assert res.errors == {} and res.pending == {} and ties(res) == []
    seen = []
    sender = "alice"
    for _ in range(3):
        node, port = _port(view, "host:alice" if sender == "alice" else f"instance:{sender}")
        out = simulate(view, res, node, port, _pkt("alice", "i2", eth_src=sender))
        assert len(out) == 1, out
        peer, pkt = out[0]
        seen.append(peer)
        sender = peer.partition(":")[2]
        assert pkt["eth_dst"] == MACS[sender]  # the block's stack takes it
    for _ in range(3):  # the reply crosses the chain in reverse
        node, port = _port(view, f"instance:{sender}")
        out = simulate(view, res, node, port, _pkt("i2", "alice", eth_src=sender))
        assert len(out) == 1, out
        seen.append(out[0][0])
        sender = out[0][0].partition(":")[2]
    return seen


def test_a_placed_chain_becomes_entry_steering_and_talks_intents() -> None:
    where = {"collector": "i0", "index": "i1", "archive": "i2"}
    keyed = chain_intents("c-1", BLOCKS, TALKS, where, {0: "alice"})
    by_key = {k.key: k.intent for k in keyed}
    assert set(by_key) == {"devices[0].entry", "devices[0].chain", "talks[0]", "talks[1]"}
    entry, steer = by_key["devices[0].entry"], by_key["devices[0].chain"]
    assert isinstance(entry, ConnectivityIntent) and isinstance(steer, SteeringIntent)
    assert (str(entry.a), str(entry.b)) == ("host:alice", "instance:i0")
    assert (steer.host, steer.chain, str(steer.to)) == ("alice", ["i0", "i1"], "instance:i2")
    assert steer.symmetric
    assert [(str(by_key[f"talks[{j}]"].a), str(by_key[f"talks[{j}]"].b)) for j in (0, 1)] == [  # type: ignore[union-attr]
        ("instance:i0", "instance:i1"),
        ("instance:i1", "instance:i2"),
    ]
    assert all(k.intent.id.startswith(f"{PREFIX}c-1-") for k in keyed)
    # A one-block chain: the user reaches it, nothing to steer through.
    assert [k.key for k in chain_intents("c-1", ["a"], [], {"a": "i0"}, {0: "alice"})] == [
        "devices[0].entry"
    ]
    # A block not running: no steering through it, no talks with it; the entry stays.
    partial = chain_intents(
        "c-1", BLOCKS, TALKS, {"collector": "i0", "archive": "i2"}, {0: "alice"}
    )
    assert [k.key for k in partial] == ["devices[0].entry"]
    # A host name intent ids cannot hold keeps a readable prefix and a digest.
    long = intent_id("c-1", "s", "bob@example.org")
    assert long.startswith("catalog-c-1-s-bob_example.org-") and len(long) <= 63


def test_packets_reach_the_entry_and_cross_the_blocks_in_order_then_follow_a_move() -> None:
    before = {"i0": "cpe1", "i1": "pe1", "i2": "pe1"}
    order = [
        "instance:i0",
        "instance:i1",
        "instance:i2",
        "instance:i1",
        "instance:i0",
        "host:alice",
    ]
    assert _walk(_view(before)) == order
    # Re-placed: the collector migrated to cpe2 (the same instance), the intents are the
    # same; compiled against the new view, the packets cross to it and on, in order.
    after = {"i0": "cpe2", "i1": "pe1", "i2": "cpe1"}
    assert _walk(_view(after)) == order


# ------------------------------------------------------------------ the conduit's loop


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = catalog_db(tmp_path, FOG)
    yield d
    d.dispose()


def _chain(s: Session, text: str = THREE) -> CatalogChainRow:
    return publish(s, "acme", text, FNS)


def _ours(s: Session, sid: str) -> dict[str, Any]:
    return {it.id: it for it in load_intents(s) if it.id.startswith(f"{PREFIX}{sid}-")}


def _instances(s: Session, sid: str) -> dict[str, str]:
    return {
        i.block: i.instance
        for i in s.scalars(select(CatalogInstanceRow).where(CatalogInstanceRow.subscription == sid))
    }


def _run_all(s: Session) -> None:
    """What the agents report once the instances run."""
    for i in s.scalars(select(InstanceRow)):
        if i.state in ("requested", "starting"):
            i.state = "running"


def test_the_loop_stores_the_intents_moves_them_with_the_blocks_and_removes_them(
    db: Database,
) -> None:
    conduit = Conduit()
    with db.session() as s:
        row, _, _ = conduit.subscribe(s, "alice", _chain(s), "cpe1", devices=[LAPTOP.upper()])
        conduit.step(s)
        got = _ours(s, row.id)
        inst = _instances(s, row.id)
        want = chain_intents(row.id, BLOCKS, TALKS, inst, {0: "laptop1"})
        assert got == {k.intent.id: k.intent for k in want}
        assert "steering refused" not in row.why
        # A migration keeps the instance: the intents stay, the controller moves the flows.
        _run_all(s)
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2", "previous": None})
        conduit.step(s)
        assert row.at == "cpe2"
        moved = [i for i in s.scalars(select(InstanceRow)) if i.state == "migrating"]
        assert moved and _instances(s, row.id) == inst
        assert _ours(s, row.id) == got
        # An upgrade runs the blocks as new instances: the intents follow them.
        _run_all(s)
        for i in moved:
            i.state, i.node = "running", "cpe2"
        for m in s.scalars(select(MigrationRow)):  # ended: no room held at the target
            m.phase = "done"
        v2 = _chain(
            s, THREE.replace("cpu: 0.2}\n  - {name: archive", "cpu: 0.3}\n  - {name: archive")
        )
        conduit.upgrade(s, row, v2)
        conduit.step(s)
        new = _instances(s, row.id)
        assert not set(new.values()) & set(inst.values())
        want = chain_intents(row.id, BLOCKS, TALKS, new, {0: "laptop1"})
        assert _ours(s, row.id) == {k.intent.id: k.intent for k in want}
        # Unsubscribed: its intents go on the next pass.
        conduit.unsubscribe(s, row)
        conduit.step(s)
        assert [it.id for it in load_intents(s) if it.id.startswith(PREFIX)] == []


def test_a_refused_intent_is_said_keyed_in_the_why_and_cleared_once_it_holds(
    db: Database,
) -> None:
    conduit = Conduit()
    with db.session() as s:
        chain = _chain(s)
        first, _, _ = conduit.subscribe(s, "alice", chain, "cpe1", devices=[LAPTOP])
        conduit.step(s)
        second, _, _ = conduit.subscribe(s, "alice", chain, "cpe1", devices=[LAPTOP])
        conduit.step(s)
        steer1 = intent_id(first.id, "s", "laptop1")
        steer2 = intent_id(second.id, "s", "laptop1")
        assert "steering refused" not in first.why
        assert (
            f"; steering refused: devices[0].chain: host 'laptop1' is already steered by "
            f"intent {steer1!r} ({steer2})"
        ) in second.why
        last = s.scalars(
            select(CatalogDecisionRow)
            .where(CatalogDecisionRow.subscription == second.id)
            .order_by(CatalogDecisionRow.id.desc())
        ).first()
        assert last is not None and last.why == second.why
        assert set(last.data["steering_refused"]) == {"devices[0].chain"}
        # Its entry and talks hold; only the steering is refused.
        assert set(_ours(s, second.id)) == {
            k.intent.id
            for k in chain_intents(
                second.id, BLOCKS, TALKS, _instances(s, second.id), {0: "laptop1"}
            )
        } - {steer2}
        # The first ends: the second's steering holds on the next pass, the why says so.
        conduit.unsubscribe(s, first)
        conduit.step(s)
        assert steer2 in _ours(s, second.id)
        assert "steering refused" not in second.why
        last = s.get(CatalogDecisionRow, last.id)
        assert last is not None and "steering refused" not in last.why
        assert last.data["steering_refused"] == {}
