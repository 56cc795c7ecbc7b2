"""The personal firewall VNF in real namespaces, nftables and conntrack.

One L2 segment (a Linux bridge in namespace P-br) joins:

    P-cli  10.77.0.10/24, default via 10.77.0.3 (the firewall)
    P-srv  10.77.1.20/24, 10.77.0.0/24 via 10.77.1.3 (the firewall)
    P-fw1, P-fw2  two places of the firewall instance, same MAC and addresses
                  (10.77.0.3/24, 10.77.1.3/24): only one is linked up at a time,
                  as the agent does for a migration's source and target.

The firewall runs as the platform runs it: `python -m netfate.vnf ... --control`,
driven over its control socket (export / freeze / import / activate).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.agent.instances import control_call
from netfate.host import netns, nft
from netfate.services.firewall.demo import echo
from netns_lan import build_lan, remove_lan, sh, start_vnf, stop_procs

CLIENT_IP, SERVER_IP = "10.77.0.10", "10.77.1.20"
RULES = {
    "default_in": "deny",
    "default_out": "allow",
    "rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": 8081}],
}


class Net:
    def __init__(self, prefix: str, tmp: Path) -> None:
        self.p = prefix
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: list[threading.Thread] = []
        self.servers: list[socket.socket] = []

    def ns(self, name: str) -> str:
        return f"{self.p}-{name}"

    def port(self, name: str) -> str:
        return f"{self.p}{name}"

    def build(self) -> None:
        fw_mac = "02:4e:00:00:00:03"
        build_lan(
            self.p,
            [
                ("cli", [f"{CLIENT_IP}/24"], [("default", "10.77.0.3")]),
                ("srv", [f"{SERVER_IP}/24"], [("10.77.0.0/24", "10.77.1.3")]),
                ("fw1", ["10.77.0.3/24", "10.77.1.3/24"], []),
                ("fw2", ["10.77.0.3/24", "10.77.1.3/24"], []),
            ],
            macs={"fw1": fw_mac, "fw2": fw_mac},
            down={"fw2"},
        )

    def switch_to(self, name: str) -> None:
        """Link `name` up and the other place down, then announce (gratuitous ARP)."""
        other = "fw1" if name == "fw2" else "fw2"
        br = self.ns("br")
        sh(br, "ip", "link", "set", self.port(other), "down")
        sh(br, "ip", "link", "set", self.port(name), "up")
        for a in ("10.77.0.3", "10.77.1.3"):
            netns.run_in(
                self.ns(name), ["arping", "-q", "-U", "-c", "1", "-I", "eth0", a], check=False
            )

    def start_fw(self, name: str, rules: dict[str, Any], standby: bool = False) -> str:
        control = str(self.tmp / f"{name}.sock")
        cfg = {"user": "alice", "user_ip": CLIENT_IP, "rules": rules}
        self.procs[name] = start_vnf(
            self.ns(name),
            "netfate.vnf.firewall:Firewall",
            "i-fw",
            control,
            cfg,
            self.tmp / f"{name}.log",
            ["--standby"] if standby else [],
        )
        return control

    def serve(self, port: int) -> None:
        """An echo server in P-srv on `port` (a thread per connection)."""
        s = netns.socket_in(self.ns("srv"), socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((SERVER_IP, port))
        s.listen(8)
        self.servers.append(s)

        def loop() -> None:
            while True:
                try:
                    c, _ = s.accept()
                except OSError:
                    return

                def echo(c: socket.socket = c) -> None:
                    with c, contextlib.suppress(OSError):  # the client may reset
                        while data := c.recv(4096):
                            c.sendall(data)

                threading.Thread(target=echo, daemon=True).start()

        t = threading.Thread(target=loop, daemon=True)
        t.start()

    def connect(self, src: str, dst: str, port: int, timeout: float = 1.0) -> socket.socket | None:
        c = netns.socket_in(self.ns(src), socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(timeout)
        try:
            c.connect((dst, port))
        except OSError:
            c.close()
            return None
        return c

    def close(self) -> None:
        for s in self.servers:
            s.close()
        stop_procs(self.procs.values())
        remove_lan(self.p, ("cli", "srv", "fw1", "fw2"))


def call(control: str, req: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(control_call(control, req, timeout=15.0))


@pytest.fixture
def net(run_prefix: str, tmp_path: Path) -> Iterator[Net]:
    n = Net(run_prefix, tmp_path)
    try:
        n.build()
        n.serve(8080)
        n.serve(8081)
        yield n
    finally:
        n.close()


def test_rules_enforced_statefully(net: Net) -> None:
    net.start_fw("fw1", RULES)
    c = net.connect("cli", SERVER_IP, 8080)
    assert c is not None, "allowed outbound TCP 8080 must connect"
    assert echo(c, b"hello")
    c.close()
    assert net.connect("cli", SERVER_IP, 8081) is None, "TCP 8081 is denied outbound"
    # Inbound default deny: a connection from the server to the client is refused,
    # although the answers of the client's own connection came in above.
    lst = netns.socket_in(net.ns("cli"), socket.AF_INET, socket.SOCK_STREAM)
    lst.bind((CLIENT_IP, 9000))
    lst.listen(1)
    try:
        assert net.connect("srv", CLIENT_IP, 9000) is None
    finally:
        lst.close()
    st = call(str(net.tmp / "fw1.sock"), {"op": "status"})["stats"]
    assert st["counters"]["out_packets"] > 0 and st["counters"]["in_packets"] > 0


def test_bad_rule_set_refused_whole_and_old_stays(net: Net) -> None:
    net.start_fw("fw1", RULES)
    before = sh(net.ns("fw1"), "nft", "list", "table", "inet", "netfate_fw").stdout
    # A batch whose last command cannot apply: nft refuses the whole transaction.
    doc = {
        "nftables": [
            {"flush": {"table": {"family": "inet", "name": "netfate_fw"}}},
            {
                "add": {
                    "rule": {
                        "family": "inet",
                        "table": "netfate_fw",
                        "chain": "nochain",
                        "expr": [{"accept": None}],
                    }
                }
            },
        ]
    }
    with pytest.raises(nft.NftError):
        nft.apply(doc, net.ns("fw1"))
    assert sh(net.ns("fw1"), "nft", "list", "table", "inet", "netfate_fw").stdout == before
    assert net.connect("cli", SERVER_IP, 8081) is None


def test_established_tcp_survives_move_with_conntrack(net: Net) -> None:
    src = net.start_fw("fw1", RULES)
    dst = net.start_fw("fw2", RULES, standby=True)
    c = net.connect("cli", SERVER_IP, 8080)
    assert c is not None and echo(c, b"before the move")
    snap = call(src, {"op": "export"})["state"]
    assert any(e["dport"] == 8080 and e["state"] == "ESTABLISHED" for e in snap["conntrack"])
    call(dst, {"op": "import", "state": snap})
    final = call(src, {"op": "freeze"})["state"]
    call(dst, {"op": "import", "state": final})
    net.switch_to("fw2")
    call(dst, {"op": "activate"})
    assert echo(c, b"after the move"), "the established connection must survive"
    # The blocked port is still blocked at the new place; new allowed ones work.
    assert net.connect("cli", SERVER_IP, 8081) is None
    c2 = net.connect("cli", SERVER_IP, 8080)
    assert c2 is not None and echo(c2, b"new")
    c.close()
    c2.close()
    st = call(dst, {"op": "status"})["stats"]
    assert st["imported_conntrack"] >= 1 and st["rules_version"] == 0


def test_without_conntrack_import_the_connection_dies(net: Net) -> None:
    """The control: same move, rules only. Mid-stream packets are invalid at fw2."""
    net.start_fw("fw1", RULES)
    net.start_fw("fw2", RULES)
    c = net.connect("cli", SERVER_IP, 8080, timeout=1.0)
    assert c is not None and echo(c, b"before")
    net.switch_to("fw2")
    assert not echo(c, b"after")
    c.close()


def test_conntrack_over_netlink_agrees_with_the_tool(net: Net) -> None:
    """The firewall moves its entries with ctnetlink from its own process: what the
    `conntrack` tool (the reference peer) inserted, the netlink dump reads; what the
    netlink insert re-creates elsewhere, the tool lists, state and flags included."""
    from netfate.vnf.firewall import conntrack

    a, b = net.ns("fw1"), net.ns("fw2")
    pair = ["-s", CLIENT_IP, "-d", SERVER_IP, "-r", SERVER_IP, "-q", CLIENT_IP]
    sh(a, "conntrack", "-I", "-p", "tcp", *pair, "--sport", "40000", "--dport", "8080",
       "--reply-port-src", "8080", "--reply-port-dst", "40000", "--timeout", "300",
       "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED")  # fmt: skip
    sh(a, "conntrack", "-I", "-p", "udp", *pair, "--sport", "40001", "--dport", "9999",
       "--reply-port-src", "9999", "--reply-port-dst", "40001", "--timeout", "100",
       "--mark", "7")  # fmt: skip
    sh(a, "conntrack", "-I", "-p", "icmp", *pair, "--icmp-type", "8", "--icmp-code", "0",
       "--icmp-id", "55", "--timeout", "30")  # fmt: skip

    def view(es: list[conntrack.Entry]) -> list[tuple[Any, ...]]:
        # conntrack -L -o xml gives no ICMP id: compared without it
        return sorted(
            (e.proto, e.src, e.dst, e.reply_src, e.reply_dst, e.state, e.assured, e.mark,
             e.seen_reply, *((e.sport, e.dport) if e.proto != "icmp" else ()))
            for e in es
        )  # fmt: skip

    got = netns.in_netns(a, conntrack.dump)
    assert len(got) == 3 and view(got) == view(netns.in_netns(a, conntrack.dump_tool))
    assert next(e for e in got if e.proto == "icmp").sport == 55
    assert netns.in_netns(b, lambda: conntrack.insert(got)) == (3, [])
    assert view(netns.in_netns(b, conntrack.dump_tool)) == view(got)
    listed = sh(b, "conntrack", "-L", "-p", "icmp").stdout
    assert "id=55" in listed  # the ICMP id went across too
    ok, errors = netns.in_netns(b, lambda: conntrack.insert(got[:1]))
    assert ok == 0 and "exists" in errors[0]  # an entry already there stays as it is


def test_one_round_move_keeps_the_connection_and_the_rules(net: Net) -> None:
    """The agent's move of a firewall (registry.ONE_ROUND): no snapshot, the whole
    state at the freeze. The standby enforces the rule set from its start (before
    its port is up); the established connection survives; the blocked port stays
    blocked at the new place."""
    from netfate.vnf import registry

    assert "netfate.vnf.firewall:Firewall" in registry.ONE_ROUND
    src = net.start_fw("fw1", RULES)
    dst = net.start_fw("fw2", RULES, standby=True)
    c = net.connect("cli", SERVER_IP, 8080)
    assert c is not None and echo(c, b"before the move")
    listed = sh(net.ns("fw2"), "nft", "list", "chain", "inet", "netfate_fw", "user_out").stdout
    assert "8081" in listed  # the standby's rules are in before anything reaches it
    final = call(src, {"op": "freeze"})["state"]
    call(dst, {"op": "import", "state": final})
    net.switch_to("fw2")
    call(dst, {"op": "activate"})
    assert echo(c, b"after the move"), "the established connection must survive"
    assert net.connect("cli", SERVER_IP, 8081) is None
    c.close()
    assert call(dst, {"op": "status"})["stats"]["imported_conntrack"] >= 1
