"""Gateway settings set through the API, applied by the real vHG (nftables, dnsmasq).

    PREFIX-br  br0 ── vhg    (the address the platform gave the PN's vHG instance)
                  ├── node   (192.168.1.1, the node's LAN address, and 10.99.0.2:
                  │           an address of the node outside the PN: the upstream side)
                  └── server (a lease from the vHG's dnsmasq, the vHG as its router)

The API (in-process, SQLite) holds the PN and its vHG; the vHG function runs as the
agent runs it, with the configuration the agent is given (`GET /agents/cpe1/desired`).
Each settings change then reaches it the way the agent's reconfiguration passes it
(agent/supervisor.py `reconfigure`: the agent's check, then the function's
`configure` op on its control socket); the agent process itself is not in the loop.
A forward set through the API lets the node's outside address reach a TCP server in
the PN on the forwarded port; removed, it is closed; a new DHCP pool is what dnsmasq
hands out.
"""

from __future__ import annotations

import asyncio
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
from netfate.agent.instances import control_call, vet
from netfate.demo.dhcp import TAKE_LEASE
from netfate.orchestrator.app import Settings, create_app
from netfate.services.sharing import SERVICE as SHARING
from netns_lan import build_lan, remove_lan, sh, start_vnf, stop_procs
from tcp_peer import peer_echo, peer_seen

ALICE = "alice@home.example"
GW = f"/api/v1/sharing/pns/{ALICE}/gateway"
OUTSIDE = "10.99.0.2"
TOPO: dict[str, Any] = {
    "name": "gw",
    "nodes": {"cpe1": {"kind": "cpe", "lan": "192.168.1.0/24", "cpu": 2}},
    "hosts": {},
    "links": [],
}
NAMES = ("vhg", "node", "server")


@dataclass
class Rig:
    api: TestClient
    prefix: str
    control: str
    vhg_ip: str
    tmp: Path

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def agent_applies(self) -> dict[str, Any]:
        """What the node's agent does with a new desired configuration of a running
        instance: check it, then ask the function to take it in place."""
        specs = self.api.get("/api/v1/agents/cpe1/desired").json()["instances"]
        (spec,) = specs
        vet(spec, Path("/var/lib/netfate/images"))
        resp = asyncio.run(control_call(self.control, {"op": "configure",
                                                       "config": spec["config"]}))  # fmt: skip
        assert resp == {"ok": True, "applied": True}, resp
        return dict(spec["config"])

    def lease(self, name: str) -> str:
        """A lease for the server from the vHG's dnsmasq (busybox udhcpc): its address."""
        out = self.tmp / f"lease-{name}.txt"
        script = self.tmp / "udhcpc.sh"
        script.write_text(TAKE_LEASE)
        script.chmod(0o755)
        sh(self.ns("server"), "env", f"LEASE_OUT={out}", "busybox", "udhcpc", "-i", "eth0",
           "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", str(script), timeout=30)  # fmt: skip
        ip, router = out.read_text().split()
        assert router == self.vhg_ip
        return ip


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[SHARING],
    )
    prefix = "gw" + secrets.token_hex(2)
    procs = []
    with authn.client(app) as c:
        try:
            assert c.put("/api/v1/topology", json=TOPO).status_code == 200
            assert c.post("/api/v1/agents/cpe1/register", json={"endpoint": "127.0.0.1:1"})
            r = c.post("/api/v1/sharing/pns", json={"email": ALICE, "node": "cpe1", "vhg": True})
            assert r.status_code == 201, r.text
            iid = r.json()["vhg_instance"]
            running = {"instances": [{"id": iid, "status": "running", "pid": 1}], "ports": []}
            assert c.post("/api/v1/agents/cpe1/report", json=running).status_code == 200
            (spec,) = c.get("/api/v1/agents/cpe1/desired").json()["instances"]
            vet(spec, Path("/var/lib/netfate/images"))
            build_lan(prefix, [
                ("vhg", [spec["ip"]], [("default", "192.168.1.1")]),
                ("node", ["192.168.1.1/24", f"{OUTSIDE}/32"], []),
                ("server", [], []),
            ])  # fmt: skip
            control = str(tmp_path / "vhg.sock")
            procs.append(start_vnf(f"{prefix}-vhg", spec["function"], iid, control,
                                   spec["config"], tmp_path / "vhg.log"))  # fmt: skip
            yield Rig(c, prefix, control, spec["ip"].split("/")[0], tmp_path)
        finally:
            stop_procs(procs)
            remove_lan(prefix, NAMES)


def _from_outside(rig: Rig, port: int) -> str | None:
    """From the node's outside address to the vHG's on `port`: the peer the server in
    the PN saw, or None if nothing let the connection in."""
    return peer_seen(rig.ns("node"), rig.vhg_ip, port, src=OUTSIDE)


def test_a_forward_set_through_the_api_opens_and_removed_closes(rig: Rig) -> None:
    server_ip = rig.lease("first")
    with peer_echo(rig.ns("server"), 80):
        assert _from_outside(rig, 8080) is None
        fwd = {"proto": "tcp", "port": 8080, "to": server_ip, "to_port": 80}
        r = rig.api.put(GW, json={"forwards": [fwd]})
        assert r.status_code == 200, r.text
        assert rig.agent_applies()["forwards"] == [fwd]
        assert _from_outside(rig, 8080) == f"from {OUTSIDE}"
        assert _from_outside(rig, 8081) is None  # only the forwarded port
        assert rig.api.put(GW, json={"forwards": []}).status_code == 200
        assert rig.agent_applies()["forwards"] == []
        assert _from_outside(rig, 8080) is None


def test_a_dhcp_pool_set_through_the_api_is_what_dnsmasq_hands_out(rig: Rig) -> None:
    assert 100 <= int(rig.lease("before").split(".")[-1]) <= 149  # the default pool
    r = rig.api.put(GW, json={"dhcp": {"first": "192.168.1.150", "last": "192.168.1.150",
                                       "lease_seconds": 600}})  # fmt: skip
    assert r.status_code == 200, r.text
    cfg = rig.agent_applies()
    assert (cfg["dhcp_first"], cfg["dhcp_last"], cfg["lease_seconds"]) == (
        "192.168.1.150", "192.168.1.150", 600,
    )  # fmt: skip
    assert rig.lease("after") == "192.168.1.150"
