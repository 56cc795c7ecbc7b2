"""The vHG function with the real parts: dnsmasq, nftables masquerade and firewall.

    client (DHCP) ─┐
    vhg (.2)  ─────┤ Linux bridge (sw) ── gw (.1 | 10.99.0.1) ── outside (10.99.0.2)
                   (PN 192.168.77.0/24)

The vHG process is started the way the agent starts it (python -m netfate.vnf
inside its namespace, control socket). The client gets a lease from the vHG with
the vHG as router; its traffic to the outside is masqueraded; the outside cannot
open a connection into the PN unless an `allow` rule says so (gw routes the
client's address via the vHG, as an operator routes a PN via its gateway); the
inventory shows the lease. Reconfigured while running (the agent's `configure`
op): a port forward lets the outside reach a server in the PN through the vHG's
own address, and is gone once removed; a new DHCP pool is what dnsmasq hands out.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netfate.demo.dhcp import TAKE_LEASE
from netfate.host import links, netns
from tcp_peer import peer_echo, peer_seen


@dataclass
class Net:
    ns: dict[str, str]
    ifs: dict[str, str]
    control: Path
    proc: subprocess.Popen[bytes]
    client_ip: str
    config: dict[str, Any]
    tmp: Path


def control(path: Path, req: dict[str, Any]) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    out: dict[str, Any] = json.loads(buf)
    return out


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    tmp = tmp_path_factory.mktemp("vhg")
    p = "nft" + secrets.token_hex(2)
    ns = {k: f"{p}-{k}" for k in ("sw", "vhg", "client", "gw", "out")}
    ifs = {k: p + k for k in ("v", "V", "c", "C", "g", "G", "u", "U")}
    proc: subprocess.Popen[bytes] | None = None
    try:
        for n in ns.values():
            netns.ensure(n)
            links.set_up(n, "lo")
        netns.run_in(ns["sw"], ["ip", "link", "add", "br0", "type", "bridge"])
        links.set_up(ns["sw"], "br0")
        for host, a, b in (("vhg", "v", "V"), ("client", "c", "C"), ("gw", "g", "G")):
            links.veth_pair(ifs[a], ns[host], ifs[b], ns["sw"])
            netns.run_in(ns["sw"], ["ip", "link", "set", ifs[b], "master", "br0"])
            links.set_up(ns["sw"], ifs[b])
            links.set_up(ns[host], ifs[a])
        links.veth_pair(ifs["u"], ns["gw"], ifs["U"], ns["out"])
        links.set_up(ns["gw"], ifs["u"])
        links.set_up(ns["out"], ifs["U"])
        links.add_address(ns["vhg"], ifs["v"], "192.168.77.2/24")
        links.add_route(ns["vhg"], "0.0.0.0/0", "192.168.77.1")
        links.add_address(ns["gw"], ifs["g"], "192.168.77.1/24")
        links.add_address(ns["gw"], ifs["u"], "10.99.0.1/24")
        links.sysctl(ns["gw"], "net.ipv4.ip_forward", 1)
        links.add_address(ns["out"], ifs["U"], "10.99.0.2/24")
        links.add_route(ns["out"], "0.0.0.0/0", "10.99.0.1")
        config: dict[str, Any] = {
            "subnet": "192.168.77.0/24",
            "dhcp_first": "192.168.77.100",
            "dhcp_last": "192.168.77.149",
            "upstream_gateway": "192.168.77.1",
            "ifname": ifs["v"],
            "allow": [{"proto": "udp", "port": 9001}],
        }
        ctl = tmp / "vhg.sock"
        log = open(tmp / "vhg.log", "wb")  # noqa: SIM115 - handed to the child
        proc = netns.popen_in(
            ns["vhg"],
            [sys.executable, "-m", "netfate.vnf", "netfate.vnf.vhg:Vhg", "--instance", "vhgtest",
             "--control", str(ctl), "--config", json.dumps(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while not Path(str(ctl) + ".ready").exists():
            assert proc.poll() is None, (tmp / "vhg.log").read_text()
            assert time.monotonic() < deadline, "vHG not ready"
            time.sleep(0.02)
        script = tmp / "udhcpc.sh"
        script.write_text(TAKE_LEASE)  # the demo's: it writes 'address router'
        script.chmod(0o755)
        lease_out = tmp / "lease.txt"
        netns.run_in(
            ns["client"],
            ["env", f"LEASE_OUT={lease_out}", "busybox", "udhcpc", "-i", ifs["c"], "-n", "-q",
             "-f", "-t", "5", "-T", "1", "-s", str(script), "-x", "hostname:tv"],
            timeout=30,
        )  # fmt: skip
        client_ip = lease_out.read_text().split()[0]
        yield Net(ns, ifs, ctl, proc, client_ip, config, tmp)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        for n in ns.values():
            netns.remove(n)


def test_dhcp_lease_from_the_pool_with_the_vhg_as_router(net: Net) -> None:
    assert net.client_ip.startswith("192.168.77.1")
    assert 100 <= int(net.client_ip.split(".")[-1]) <= 149
    routes = netns.run_in(net.ns["client"], ["ip", "route", "show", "default"]).stdout
    assert "via 192.168.77.2" in routes


def test_inventory_shows_the_lease_with_its_hostname(net: Net) -> None:
    st = control(net.control, {"op": "status"})
    assert st["ok"] and st["stats"]["dhcp"]["running"]
    devs = {d["ip"]: d for d in st["stats"]["devices"]}
    assert devs[net.client_ip]["name"] == "tv" and devs[net.client_ip]["source"] == "lease"


def _udp_exchange(src_ns: str, dst_ns: str, dst: str, port: int) -> str | None:
    srv = netns.socket_in(dst_ns, socket.AF_INET, socket.SOCK_DGRAM)
    cli = netns.socket_in(src_ns, socket.AF_INET, socket.SOCK_DGRAM)
    with srv, cli:
        srv.bind(("0.0.0.0", port))
        srv.settimeout(2)
        cli.sendto(b"x", (dst, port))
        try:
            _, peer = srv.recvfrom(10)
        except TimeoutError:
            return None
        return str(peer[0])


def test_nat_masquerades_the_pn_towards_the_outside(net: Net) -> None:
    seen = _udp_exchange(net.ns["client"], net.ns["out"], "10.99.0.2", 9000)
    assert seen == "192.168.77.2"  # the vHG's address, not the client's
    netns.run_in(net.ns["client"], ["ping", "-c", "1", "-W", "5", "10.99.0.2"])


def test_firewall_drops_new_inbound_but_allows_the_allowed_port(net: Net) -> None:
    netns.run_in(net.ns["gw"], ["ip", "route", "replace", f"{net.client_ip}/32",
                                "via", "192.168.77.2"])  # fmt: skip
    # Sentinel ordering, not a timeout: the allowed datagram goes the same way after
    # the refused one, so the receiver's first datagram shows which got through.
    srv = netns.socket_in(net.ns["client"], socket.AF_INET, socket.SOCK_DGRAM)
    cli = netns.socket_in(net.ns["out"], socket.AF_INET, socket.SOCK_DGRAM)
    srv2 = netns.socket_in(net.ns["client"], socket.AF_INET, socket.SOCK_DGRAM)
    with srv, cli, srv2:
        srv.bind(("0.0.0.0", 9002))
        srv2.bind(("0.0.0.0", 9001))
        srv2.settimeout(5)
        srv.setblocking(False)
        cli.sendto(b"refused", (net.client_ip, 9002))
        cli.sendto(b"allowed", (net.client_ip, 9001))
        data, peer = srv2.recvfrom(10)
        assert (data, peer[0]) == (b"allowed", "10.99.0.2")
        with pytest.raises(BlockingIOError):
            srv.recvfrom(10)
    counters = netns.run_in(net.ns["vhg"], ["nft", "list", "chain", "ip", "vhg", "forward"]).stdout
    assert "udp dport 9001 counter packets 1" in counters


def _connect(net: Net, port: int) -> str | None:
    """From the outside to the vHG's address: the peer the server in the PN saw, or
    None when nothing is let through."""
    return peer_seen(net.ns["out"], "192.168.77.2", port)


def _reconfigure(net: Net, **changes: Any) -> None:
    net.config = {**net.config, **changes}
    resp = control(net.control, {"op": "configure", "config": net.config})
    assert resp == {"ok": True, "applied": True}, resp


def test_a_port_forward_reaches_the_pn_server_and_closes_when_removed(net: Net) -> None:
    with peer_echo(net.ns["client"], 8080):
        assert _connect(net, 18080) is None  # nothing forwarded: the vHG refuses
        fwd = {"proto": "tcp", "port": 18080, "to": net.client_ip, "to_port": 8080}
        _reconfigure(net, forwards=[fwd])
        assert _connect(net, 18080) == "from 10.99.0.2"  # the outside's own address
        rules = netns.run_in(net.ns["vhg"], ["nft", "list", "table", "ip", "vhg"]).stdout
        assert f"dnat to {net.client_ip}:8080" in rules
        # the forward filter let the DNATed flow in by its own rule
        let_in = rf"ip daddr {net.client_ip} tcp dport 8080 counter packets [1-9]"
        assert re.search(let_in, rules)
        _reconfigure(net, forwards=[])
        assert _connect(net, 18080) is None
        # dnsmasq was not restarted for a change of rules alone
        assert control(net.control, {"op": "status"})["stats"]["dhcp"]["running"]


def test_a_new_dhcp_pool_is_what_dnsmasq_hands_out(net: Net) -> None:
    _reconfigure(net, dhcp_first="192.168.77.150", dhcp_last="192.168.77.150")
    st = control(net.control, {"op": "status"})["stats"]["dhcp"]
    assert st["range"] == ["192.168.77.150", "192.168.77.150"]
    lease_out = net.tmp / "lease2.txt"
    netns.run_in(
        net.ns["client"],
        ["env", f"LEASE_OUT={lease_out}", "busybox", "udhcpc", "-i", net.ifs["c"], "-n", "-q",
         "-f", "-t", "5", "-T", "1", "-s", str(net.tmp / "udhcpc.sh"), "-x", "hostname:tv"],
        timeout=30,
    )  # fmt: skip
    assert lease_out.read_text().split() == ["192.168.77.150", "192.168.77.2"]


def test_a_static_lease_is_what_dnsmasq_gives_that_mac(net: Net) -> None:
    """A static DHCP lease (dhcp-host), added in place: the client's MAC gets its
    address, outside the pool; removed, the client gets a pool address again."""
    mac = netns.run_in(net.ns["client"], ["cat", f"/sys/class/net/{net.ifs['c']}/address"])
    mac_s = mac.stdout.strip()

    def lease(name: str) -> list[str]:
        out = net.tmp / name
        netns.run_in(
            net.ns["client"],
            ["env", f"LEASE_OUT={out}", "busybox", "udhcpc", "-i", net.ifs["c"], "-n", "-q",
             "-f", "-t", "5", "-T", "1", "-s", str(net.tmp / "udhcpc.sh"), "-x", "hostname:tv"],
            timeout=30,
        )  # fmt: skip
        return out.read_text().split()

    pool = {"dhcp_first": "192.168.77.100", "dhcp_last": "192.168.77.149"}
    _reconfigure(net, **pool, static=[{"mac": mac_s.upper(), "ip": "192.168.77.42",
                                       "name": "tv"}])  # fmt: skip
    assert lease("static.txt") == ["192.168.77.42", "192.168.77.2"]
    _reconfigure(net, static=[])
    got = lease("pool.txt")
    assert got[1] == "192.168.77.2"
    assert 100 <= int(got[0].rsplit(".", 1)[1]) <= 149, got


def test_a_change_the_vhg_cannot_take_in_place_is_refused_for_a_restart(net: Net) -> None:
    resp = control(net.control, {"op": "configure", "config": {**net.config, "ifname": "eth9"}})
    assert resp == {"ok": True, "applied": False}  # the agent restarts it instead


def test_stop_removes_dnsmasq_and_rules(net: Net) -> None:
    st = control(net.control, {"op": "status"})
    assert st["stats"]["dhcp"]["running"]
    control(net.control, {"op": "stop"})
    net.proc.wait(10)
    tables = netns.run_in(net.ns["vhg"], ["nft", "list", "tables"]).stdout
    assert "vhg" not in tables
    ps = subprocess.run(["pgrep", "-f", "dhcp-leasefile=.*vhg-vhgtest"], capture_output=True)
    assert ps.returncode != 0
