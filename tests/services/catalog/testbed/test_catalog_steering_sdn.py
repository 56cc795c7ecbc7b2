"""A subscription's chain steered on real Open vSwitch bridges by the os-ken controller
(userspace datapath, secure mode, OpenFlow 1.3): nothing passes but what intents say.

    cpe1 -- pe1 -- cpe2          laptop1 (alice's device) at cpe1, later at cpe2

The catalog's conduit places alice's three-block chain (collector, index, archive)
over a SQLite database; its "platform" here is the rig: each instance is a
namespace on its node's bridge that forwards what it is sent (a one-armed router,
as the platform's `forwarder`), and a migration moves that namespace's port to
the target's bridge (same instance, MAC and address). The conduit's loop computes
the intents (services/catalog/steering.py); the stand-in orchestrator serves them
with the rig's view to the controller.

Packets laptop1 sends to the archive are captured in each block's namespace: the
collector gets them from laptop1, the index from the collector, the archive from
the index: chain order. Then alice walks to cpe2 (her laptop's port moves, a login
there is recorded): the loop re-places the chain, the collector migrates to cpe2,
and the same capture proves the packets flow through the new placement. After an
unsubscribe no flow of the catalog's intents is left on any bridge.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog_db import FOG, catalog_db
from chain_capture import CHAIN, ORDER, echo_senders, raw_socket
from netfate.orchestrator.sdn.api import load_intents
from netfate.orchestrator.sdn.intents import PortView, cookie_for
from netfate.services.catalog.conduit import Conduit, get_subscription
from netfate.services.catalog.descriptor import Function
from netfate.services.catalog.steering import PREFIX
from netfate.services.catalog.tables import CatalogInstanceRow
from netfate.services.catalog.templates import publish
from netfate.store.db import Database
from netfate.store.events import record_event
from netfate.store.tables import HostRow, InstanceRow
from sdn_rig import ControlledRig, wait_until

PORT = 6653


class RigPlatform:
    """The conduit's coordinator over the rig (module docstring)."""

    def __init__(self, net: ControlledRig) -> None:
        self.net = net
        self.n = 0

    def create(
        self, session: Session, *, descriptor: str, name: str, node: str, cpu: float,
        memory_mb: int,
    ) -> tuple[str, set[str]]:  # fmt: skip
        self.n += 1
        iid, ip = f"i{self.n}", f"10.1.0.{100 + self.n}"
        ep = self.net.rig.add_endpoint(iid, node, ip, kind="instance")
        session.add(
            InstanceRow(
                id=iid, name=name, descriptor=descriptor, node=node, state="running",
                ip=f"{ip}/24", mac=ep.mac, cpu=cpu, memory_mb=memory_mb, created_at=0.0,
                updated_at=0.0,
            )
        )  # fmt: skip
        session.flush()
        return iid, {node}

    def destroy(self, session: Session, instance: str) -> set[str]:
        inst = session.get(InstanceRow, instance)
        assert inst is not None
        inst.state = "gone"
        return {inst.node}

    def migrate(self, session: Session, instance: str, node: str) -> set[str]:
        inst = session.get(InstanceRow, instance)
        assert inst is not None
        src = inst.node
        move(self.net, instance, node)
        inst.node = node
        return {src, node}

    def state(self, session: Session, instance: str) -> tuple[str, str] | None:
        inst = session.get(InstanceRow, instance)
        return (inst.state, inst.node) if inst is not None else None


def move(net: ControlledRig, name: str, node: str) -> None:
    """An endpoint's port moves to another node's bridge (a migration's cut-over, or
    a laptop carried to another home): same namespace, MAC and address."""
    rig, ep = net.rig, net.rig.endpoints[name]
    old = rig.node_ports[ep.node]
    rig.node_ports[ep.node] = [p for p in old if p.name != ep.veth_sw]
    ofport = max((p.ofport for p in rig.node_ports[node]), default=0) + 1
    rig.vsctl("del-port", rig.bridge(ep.node), ep.veth_sw)
    rig.vsctl(
        "add-port", rig.bridge(node), ep.veth_sw, "--", "set", "interface", ep.veth_sw,
        f"ofport_request={ofport}", f"external_ids:netfate-peer={ep.kind}:{name}",
    )  # fmt: skip
    rig.node_ports[node].append(PortView(name=ep.veth_sw, ofport=ofport, peer=f"{ep.kind}:{name}"))
    ep.node, ep.ofport = node, ofport


class Fog:
    def __init__(self, tmp: Path) -> None:
        self.net = ControlledRig(
            "nfc" + secrets.token_hex(2), tmp, ["cpe1", "cpe2", "pe1"],
            [("cpe1", "pe1"), ("cpe2", "pe1")], {"laptop1": ("cpe1", "host")}, PORT,
        )  # fmt: skip
        self.db: Database = catalog_db(tmp, FOG)
        self.conduit = Conduit(RigPlatform(self.net))

    def build(self) -> None:
        self.net.build()
        with self.db.session() as s:
            host = s.get(HostRow, "laptop1")
            assert host is not None
            host.mac, host.ip = self.laptop.mac, self.laptop.ip

    @property
    def laptop(self) -> Any:
        return self.net.rig.endpoints["laptop1"]

    def step(self) -> None:
        """One pass of the conduit's loop, then what the orchestrator serves the
        controller: the rig's view and the stored intents."""
        with self.db.session() as s:
            self.conduit.step(s)
        with self.db.session() as s:
            intents = load_intents(s)
        self.net.orch.set(view=self.net.rig.view(), intents=intents)

    def blocks(self) -> dict[str, tuple[str, str]]:
        """Block -> (instance, node), as the conduit placed it."""
        with self.db.session() as s:
            return {i.block: (i.instance, i.node) for i in s.scalars(select(CatalogInstanceRow))}

    def ping(self, dst_ip: str) -> bool:
        r = self.net.rig.exec(
            "laptop1", "ping", "-n", "-q", "-c", "1", "-W", "1", dst_ip, check=False
        )
        return "1 received" in r

    def close(self) -> None:
        try:
            self.net.close()
        finally:
            self.db.dispose()


@pytest.fixture(scope="module")
def fog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fog]:
    f = Fog(tmp_path_factory.mktemp("catsteer"))
    try:
        f.build()
        yield f
    finally:
        f.close()


def through_the_chain(fog: Fog) -> dict[str, list[str]]:
    """laptop1 pings the archive three times; who sent each block the requests."""
    where = fog.blocks()
    eps = fog.net.rig.endpoints
    archive_ip = eps[where["archive"][0]].ip
    wait_until(lambda: fog.ping(archive_ip), timeout=60, what="laptop1 reaches the archive")
    socks = {b: raw_socket(fog.net.rig.endpoints[where[b][0]].netns) for b in ORDER}
    try:
        out = fog.net.rig.exec("laptop1", "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2",
                               archive_ip, check=False)  # fmt: skip
        assert "3 received" in out, out
        return {b: echo_senders(s, archive_ip, 3) for b, s in socks.items()}
    finally:
        for s in socks.values():
            s.close()


def expected(fog: Fog) -> dict[str, list[str]]:
    where, eps = fog.blocks(), fog.net.rig.endpoints
    mac = {b: eps[where[b][0]].mac for b in ORDER}
    return {
        "collector": [fog.laptop.mac] * 3,
        "index": [mac["collector"]] * 3,
        "archive": [mac["index"]] * 3,
    }


def test_a_users_packets_cross_the_chain_in_order_and_follow_a_replacement(fog: Fog) -> None:
    with fog.db.session() as s:
        chain = publish(s, "acme", CHAIN, {"forwarder": Function("forwarder", 0.2, 64)})
        sub, _, _ = fog.conduit.subscribe(s, "alice", chain, "cpe1", devices=[fog.laptop.mac])
        sid = sub.id
    fog.step()
    before = fog.blocks()
    assert before["collector"][1] == "cpe1"  # the 5 ms bound: at the user's home
    assert through_the_chain(fog) == expected(fog)
    steer = cookie_for(f"{PREFIX}{sid}-s-laptop1")
    assert any(f"cookie={steer:#x}," in f for f in fog.net.rig.flows("cpe1"))

    # Alice walks to cpe2 with her laptop and logs in there: the loop re-places.
    move(fog.net, "laptop1", "cpe2")
    with fog.db.session() as s:
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe2", "previous": "cpe1"})
    fog.step()
    after = fog.blocks()
    assert after["collector"] == (before["collector"][0], "cpe2")  # migrated, same instance
    assert {b: fog.net.rig.endpoints[i].node for b, (i, _) in after.items()} == {
        b: n for b, (_, n) in after.items()
    }
    wait_until(
        lambda: any(f"cookie={steer:#x}," in f for f in fog.net.rig.flows("cpe2")),
        what="the steering flows at cpe2",
    )
    assert through_the_chain(fog) == expected(fog)

    # Unsubscribed: the next pass removes the intents, the controller their flows.
    with fog.db.session() as s:
        fog.conduit.unsubscribe(s, get_subscription(s, sid))
    fog.step()
    cookies = {
        f"cookie={cookie_for(i):#x},"
        for i in (
            f"{PREFIX}{sid}-s-laptop1",
            f"{PREFIX}{sid}-e-laptop1",
            f"{PREFIX}{sid}-t0",
            f"{PREFIX}{sid}-t1",
        )
    }
    wait_until(
        lambda: (
            not any(
                c in f
                for n in ("cpe1", "cpe2", "pe1")
                for f in fog.net.rig.flows(n)
                for c in cookies
            )
        ),
        what="no flow of the subscription's intents left",
    )
