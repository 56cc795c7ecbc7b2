"""A user's move seen only through DHCP, from a real dnsmasq to the conduit.

    PREFIX-br  br0 ── vhg   (192.168.78.2)  the vHG function, as the agent starts it:
                  │                          its dnsmasq hands out .100-.149
                  └── phone (no address)     busybox udhcpc, eth0's MAC = PHONE

The phone asks for a lease; the vHG's stats (what its agent reports and the
orchestrator stores) carry dnsmasq's lease file naming PHONE. Stored as the stats
of a function running on cpe2, they place alice (PHONE is a device of her
subscription) at cpe2, and the conduit's pass re-places her subscription there:
the platform's migration of its block to cpe2 is asked for, and her history says
the lease is why.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from catalog_db import catalog_db
from catalog_leases import HOMES, dhcp_server
from netfate.agent.instances import control_call
from netfate.services.catalog.conduit import Conduit
from netfate.services.catalog.descriptor import Function
from netfate.services.catalog.templates import publish
from netfate.services.catalog.whereabouts import Whereabouts, history
from netfate.store.tables import InstanceRow, MigrationRow
from netns_lan import build_lan, remove_lan, sh, start_vnf, stop_procs, until

PHONE = "02:aa:00:00:78:01"
NAMES = ("vhg", "phone")
CHAIN = """
name: sensor-archive
blocks:
  - {name: collector, function: counter, cpu: 0.2}
sla: {latency_ms: 5}
"""


def status(control: str) -> dict[str, Any]:
    stats: dict[str, Any] = asyncio.run(control_call(control, {"op": "status"}))["stats"]
    return stats


@pytest.fixture
def vhg(tmp_path: Path) -> Iterator[str]:
    """The vHG's control socket, once the phone holds a lease from its dnsmasq."""
    prefix = "wh" + secrets.token_hex(2)
    procs = []
    try:
        build_lan(prefix, [("vhg", ["192.168.78.2/24"], []), ("phone", [], [])],
                  macs={"phone": PHONE})  # fmt: skip
        control = str(tmp_path / "vhg.sock")
        config = {"subnet": "192.168.78.0/24", "dhcp_first": "192.168.78.100",
                  "dhcp_last": "192.168.78.149", "upstream_gateway": "192.168.78.1",
                  "ifname": "eth0"}  # fmt: skip
        procs.append(
            start_vnf(f"{prefix}-vhg", "netfate.vnf.vhg:Vhg", "wh-vhg", control, config,
                      tmp_path / "vhg.log")
        )  # fmt: skip
        phone = f"{prefix}-phone"

        def leased() -> bool:
            # A real DHCP client (its script, true, leaves the interface as it is);
            # asked again if dnsmasq was not listening yet.
            sh(phone, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1",
               "-s", "/bin/true", "-x", "hostname:phone", check=False, timeout=30)  # fmt: skip
            return PHONE in status(control)["dhcp"]["lease_file"]

        assert until(leased, timeout=60), status(control)
        yield control
    finally:
        stop_procs(procs)
        remove_lan(prefix, NAMES)


def test_a_lease_from_the_real_dnsmasq_moves_the_users_subscription(
    vhg: str, tmp_path: Path
) -> None:
    stats = status(vhg)
    assert stats["dhcp"]["lease_seconds"] == 3600
    db = catalog_db(tmp_path, HOMES)
    try:
        conduit = Conduit(locator=Whereabouts())  # the platform's coordinator
        with db.session() as s:
            fns = {"counter": Function("counter", 0.1, 64)}
            row, _, _ = conduit.subscribe(s, "alice", publish(s, "acme", CHAIN, fns), "cpe1",
                                          devices=[PHONE])  # fmt: skip
            for inst in s.scalars(select(InstanceRow)):
                inst.state = "running"  # as its agent would report
            assert conduit.step(s) == set()  # not seen anywhere yet: it stays
            dhcp_server(s, "i-vhg", "cpe2", stats=stats)  # what the vHG's agent stored
            pos = Whereabouts().where(s, {"alice": [PHONE]})["alice"]
            assert (pos.node, pos.source) == ("cpe2", "lease")
            assert f"{PHONE} got 192.168.78.1" in pos.why
            conduit.step(s)
            assert row.at == "cpe2"
            assert row.why.startswith("user seen at cpe2 (lease): moved on ")
            moves = [(m.target, m.phase) for m in s.scalars(select(MigrationRow))]
            assert moves == [("cpe2", "pending")]  # the platform's migration, asked for
            assert [(h.node, h.source) for h in history(s, "alice")] == [("cpe2", "lease")]
    finally:
        db.dispose()
