"""The controller against real Open vSwitch bridges (userspace datapath, secure mode).

Topology (rig.py): cpe1 - pe - cpe2, alice and instance fw1 on cpe1, bob on cpe2,
server and instance fw2 on pe, carol (attachment unknown to the view) on cpe2.
The orchestrator is a stand-in that serves the view and intents and records the
events the controller posts; the API itself is covered by tests/unit/test_sdn_api.py
and end to end by test_sdn_e2e.py.
"""

from __future__ import annotations

import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netfate.orchestrator.sdn.intents import cookie_for, parse_intent
from sdn_rig import ControllerProcess, FakeOrchestrator, Rig, wait_until

PORT = 6653


class Net:
    def __init__(self, tmp: Path) -> None:
        self.rig = Rig("nft" + secrets.token_hex(2), controller_port=PORT)
        self.orch = FakeOrchestrator()
        self.tmp = tmp
        self.ctl: ControllerProcess | None = None

    def build(self) -> None:
        r = self.rig
        r.start()
        for n in ("cpe1", "pe", "cpe2"):
            r.add_node(n)
        r.link("cpe1", "pe")
        r.link("cpe2", "pe")
        r.add_endpoint("alice", "cpe1", "10.0.0.10")
        r.add_endpoint("fw1", "cpe1", "10.0.0.101", kind="instance")
        r.add_endpoint("bob", "cpe2", "10.0.0.11")
        r.add_endpoint("carol", "cpe2", "10.0.0.12")
        r.add_endpoint("server", "pe", "10.0.0.5")
        r.add_endpoint("fw2", "pe", "10.0.0.102", kind="instance")
        r.add_endpoint("eve", "cpe1", "10.0.0.66")
        self.orch.set(view=self.view())

    def view(self) -> Any:
        # carol is known but her port is an anonymous access port (she will be
        # discovered there); eve is unknown altogether.
        from netfate.orchestrator.sdn.intents import PortView

        v = self.rig.view()
        nodes = [
            n.model_copy(
                update={
                    "ports": [
                        PortView(name=p.name, ofport=p.ofport, peer="host:guest")
                        if p.peer == "host:carol"
                        else p
                        for p in n.ports
                    ]
                }
            )
            for n in v.nodes
        ]
        hosts = [h for h in v.hosts if h.name != "eve"]
        return v.model_copy(update={"nodes": nodes, "hosts": hosts})

    def start_controller(self) -> None:
        self.ctl = ControllerProcess(self.orch.url, PORT, self.rig.sw, self.tmp / "ctl.log")
        self.rig.wait_connected()

    def stop_controller(self, sig: int = 15) -> None:
        if self.ctl is not None:
            self.ctl.stop(sig)
            self.ctl = None

    def intents(self, *specs: dict[str, Any]) -> None:
        self.orch.set(intents=[parse_intent(s) for s in specs])

    def cookie_flows(self, node: str, intent_id: str) -> list[str]:
        c = cookie_for(intent_id)
        return [f for f in self.rig.flows(node) if f"cookie={c:#x}," in f]

    def close(self) -> None:
        try:
            self.stop_controller()
        finally:
            self.rig.close()
            self.orch.close()


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    n = Net(tmp_path_factory.mktemp("sdn"))
    try:
        n.build()
        n.start_controller()
        yield n
    finally:
        if n.ctl is not None:
            print(n.ctl.output()[-5000:])
        n.close()


@pytest.fixture
def clean(net: Net) -> Iterator[Net]:
    net.intents()
    yield net
    net.intents()


def rx_packets(net: Net, name: str) -> int:
    return int(net.rig.exec(name, "cat", "/sys/class/net/eth0/statistics/rx_packets"))


# --- secure mode, discovery -------------------------------------------------


def test_without_intents_nothing_crosses(clean: Net) -> None:
    wait_until(lambda: any("priority=0" in f for f in clean.rig.flows("pe")), what="base flows")
    assert not clean.rig.ping("alice", "bob", wait_s=0.5)
    assert not clean.rig.ping("bob", "server", wait_s=0.5)


def test_unknown_host_is_reported_as_host_seen(clean: Net) -> None:
    eve = clean.rig.endpoints["eve"]
    clean.rig.exec("eve", "ping", "-c", "1", "-W", "0.3", "10.0.0.10", check=False)
    seen = wait_until(
        lambda: [e for e in clean.orch.events_of("host_seen") if e["mac"] == eve.mac],
        what="host_seen for eve",
    )
    ev = seen[0]
    assert (ev["node"], ev["ofport"], ev["port"]) == ("cpe1", eve.ofport, eve.veth_sw)
    assert ev["ip"] == "10.0.0.66" and ev["known_as"] is None and ev["time"] > 0
    # Its further unmatched packets are dropped at the switch for a while, not sent up.
    wait_until(lambda: any("dl_src=" + eve.mac in f for f in clean.rig.flows("cpe1")))


def test_known_host_discovered_on_a_new_port_gets_its_flows_and_first_packet(clean: Net) -> None:
    # carol has an intent, but the view does not know where she is attached.
    clean.intents(
        {"kind": "connectivity", "id": "carol-server", "a": "host:carol", "b": "host:server"}
    )
    time.sleep(1.0)  # let the controller take the new intents (nothing to install yet)
    assert clean.cookie_flows("cpe2", "carol-server") == []
    # Her first packets raise a packet-in; the controller places her and installs.
    out = clean.rig.exec("carol", "ping", "-c", "3", "-W", "2", "10.0.0.5", check=False)
    assert " 0 received" not in out, out
    ev = wait_until(
        lambda: [e for e in clean.orch.events_of("host_seen") if e.get("known_as") == "carol"]
    )[0]
    assert ev["node"] == "cpe2" and ev["ofport"] == clean.rig.endpoints["carol"].ofport
    assert clean.cookie_flows("cpe2", "carol-server")


# --- each intent kind -----------------------------------------------------


def test_connectivity_and_delete_removes_exactly_its_flows(clean: Net) -> None:
    clean.intents(
        {"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"},
        {"kind": "connectivity", "id": "as", "a": "host:alice", "b": "host:server"},
    )
    wait_until(lambda: clean.rig.ping("alice", "bob"), what="alice -> bob")
    assert clean.rig.ping("bob", "alice")
    assert clean.rig.ping("alice", "server")
    assert not clean.rig.ping("bob", "server", wait_s=0.5)
    before_as = {n: clean.cookie_flows(n, "as") for n in ("cpe1", "pe")}
    clean.intents({"kind": "connectivity", "id": "as", "a": "host:alice", "b": "host:server"})
    wait_until(lambda: not any(clean.cookie_flows(n, "ab") for n in ("cpe1", "pe", "cpe2")))
    assert {n: clean.cookie_flows(n, "as") for n in ("cpe1", "pe")} == before_as
    assert not clean.rig.ping("alice", "bob", wait_s=0.5)
    assert clean.rig.ping("alice", "server")


def test_steering_crosses_the_instance_then_direct_path_after_delete(clean: Net) -> None:
    steer = {"kind": "steering", "id": "fw", "host": "alice", "chain": ["fw1"], "to": "host:server"}
    direct = {"kind": "connectivity", "id": "direct", "a": "host:alice", "b": "host:server"}
    clean.intents(direct, steer)
    wait_until(lambda: clean.cookie_flows("cpe1", "fw"), what="steering flows")
    wait_until(lambda: clean.rig.ping("alice", "server"), what="ping through fw1")
    before = rx_packets(clean, "fw1")
    assert clean.rig.ping("alice", "server", count=5)
    crossed = rx_packets(clean, "fw1") - before
    assert crossed >= 10  # 5 requests and 5 replies went through fw1 (symmetric)
    # The flow that sends alice's packets to fw1 counted them too.
    out = clean.rig.ofctl(
        clean.rig.bridge("cpe1"), "dump-flows", f"cookie={cookie_for('fw'):#x}/-1"
    )
    to_fw = [ln for ln in out.splitlines() if "nw_src=10.0.0.10" in ln and "set_field" in ln]
    assert to_fw and all("n_packets=0," not in ln for ln in to_fw)
    clean.intents(direct)
    wait_until(lambda: not clean.cookie_flows("cpe1", "fw"), what="steering flows removed")
    before = rx_packets(clean, "fw1")
    assert clean.rig.ping("alice", "server", count=5)
    assert rx_packets(clean, "fw1") - before < 5  # at most stray ARP/IPv6 noise


def test_steering_chain_of_two_instances_on_two_nodes(clean: Net) -> None:
    clean.intents(
        {
            "kind": "steering",
            "id": "chain",
            "host": "bob",
            "chain": ["fw1", "fw2"],
            "to": "host:alice",
        }
    )
    wait_until(lambda: clean.rig.ping("bob", "alice"), what="bob -> alice through the chain")
    b1, b2 = rx_packets(clean, "fw1"), rx_packets(clean, "fw2")
    assert clean.rig.ping("bob", "alice", count=4)
    assert rx_packets(clean, "fw1") - b1 >= 8 and rx_packets(clean, "fw2") - b2 >= 8


def _listen(net: Net, host: str, proto: str, port: int, count: int) -> subprocess.Popen[str]:
    code = (
        "import socket,sys\n"
        f"s=socket.socket(socket.AF_INET, socket.SOCK_{'STREAM' if proto == 'tcp' else 'DGRAM'})\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port}))\n"
        "s.settimeout(15)\n"
        + (
            "s.listen(4)\nprint('ready', flush=True)\n"
            f"for _ in range({count}):\n c,_=s.accept(); c.sendall(c.recv(100)); c.close()\n"
            if proto == "tcp"
            else "print('ready', flush=True)\n"
            f"for _ in range({count}):\n d,a=s.recvfrom(100); print(d.decode(), flush=True)\n"
        )
    )
    p = net.rig.popen(host, sys.executable, "-c", code, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _tcp(net: Net, src: str, dst_ip: str, port: int) -> bool:
    code = (
        "import socket,sys\n"
        "try:\n"
        f" c=socket.create_connection(('{dst_ip}', {port}), timeout=1.5); c.sendall(b'hi');"
        " sys.exit(0 if c.recv(10)==b'hi' else 1)\n"
        "except OSError: sys.exit(1)\n"
    )
    r = subprocess.run(
        ["ip", "netns", "exec", net.rig.endpoints[src].netns, sys.executable, "-c", code],
        capture_output=True,
        timeout=20,
    )
    return r.returncode == 0


def test_tunnel_opens_one_port_and_nothing_else(clean: Net) -> None:
    clean.intents(
        {
            "kind": "tunnel",
            "id": "usbip",
            "a": "host:alice",
            "b": "host:server",
            "protocol": "tcp",
            "port": 3240,
        }
    )
    wait_until(lambda: clean.cookie_flows("pe", "usbip"), what="tunnel flows")
    ok = _listen(clean, "server", "tcp", 3240, 1)
    other = _listen(clean, "server", "tcp", 3241, 1)
    try:
        assert wait_until(lambda: _tcp(clean, "alice", "10.0.0.5", 3240), what="tcp/3240")
        assert not _tcp(clean, "alice", "10.0.0.5", 3241)
        assert not clean.rig.ping("alice", "server", wait_s=0.5)
    finally:
        for p in (ok, other):
            p.kill()
            p.wait()


def test_replication_copies_to_every_target(clean: Net) -> None:
    clean.intents(
        {
            "kind": "replication",
            "id": "tv",
            "source": "host:server",
            "protocol": "udp",
            "port": 5004,
            "targets": ["host:alice", "host:bob"],
        },
        # The source resolves nothing for 10.0.0.99: give it a static neighbour below.
    )
    wait_until(lambda: clean.cookie_flows("pe", "tv"), what="replication flows")
    groups = clean.rig.ofctl(clean.rig.bridge("pe"), "dump-groups")
    assert "type=all" in groups and groups.count("bucket=") == 2
    clean.rig.exec(
        "server",
        "ip",
        "neigh",
        "replace",
        "10.0.0.99",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        "eth0",
    )
    rx = {h: _listen(clean, h, "udp", 5004, 3) for h in ("alice", "bob")}
    try:
        send = (
            "import socket,time\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for i in range(3):\n s.sendto(b'frame%d' % i, ('10.0.0.99', 5004)); time.sleep(0.05)\n"
        )
        clean.rig.exec("server", sys.executable, "-c", send)
        for h, p in rx.items():
            out, _ = p.communicate(timeout=20)
            assert out.split() == ["frame0", "frame1", "frame2"], h
    finally:
        for p in rx.values():
            if p.poll() is None:
                p.kill()
                p.wait()


# --- observation ------------------------------------------------------------


def test_flow_table_snapshots_carry_counters(clean: Net) -> None:
    clean.intents({"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"})
    wait_until(lambda: clean.rig.ping("alice", "bob"))
    assert clean.rig.ping("alice", "bob", count=3)
    c = f"{cookie_for('ab'):#018x}"

    def counted() -> bool:
        for ev in reversed(clean.orch.events_of("flows")):
            if ev["node"] == "cpe2":
                return any(f["cookie"] == c and f["packets"] > 0 for f in ev["flows"])
        return False

    wait_until(counted, what="a cpe2 snapshot with counted packets")
    snap = next(e for e in reversed(clean.orch.events_of("flows")) if e["node"] == "cpe2")
    assert snap["dpid"] == "0000000000000003" and snap["ports"]


# --- bad switches -------------------------------------------------------------


def _connect_in_ns(ns: str, port: int) -> socket.socket:
    """A TCP client socket created inside namespace `ns` (as the listener is)."""
    from netfate.host.netns import socket_in

    s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def _recv_msg(s: socket.socket) -> tuple[int, int, bytes]:
    hdr = b""
    while len(hdr) < 8:
        hdr += s.recv(8 - len(hdr))
    _v, typ, length, xid = struct.unpack("!BBHI", hdr)
    body = b""
    while len(body) < length - 8:
        body += s.recv(length - 8 - len(body))
    return typ, xid, body


def _handshake_as(ns: str, dpid: int) -> socket.socket:
    """A raw OpenFlow 1.3 client in `ns` that says HELLO and announces `dpid`."""
    s = _connect_in_ns(ns, PORT)
    s.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # HELLO, OpenFlow 1.3
    types = set()
    while 5 not in types:  # until FEATURES_REQUEST
        typ, xid, _ = _recv_msg(s)
        types.add(typ)
    # FEATURES_REPLY: dpid, n_buffers, n_tables, aux id, pad, capabilities, reserved
    s.sendall(struct.pack("!BBHIQIBB2xII", 4, 6, 32, xid, dpid, 0, 254, 0, 0, 0))
    return s


def _types_until_closed(s: socket.socket, timeout: float = 15.0) -> list[int] | None:
    """The message types the controller sent until it closed `s`; None if it did not
    close within `timeout`."""
    deadline = time.monotonic() + timeout
    types: list[int] = []
    buf = b""
    try:
        while True:
            # A session the controller keeps talking to never idles: bound the whole wait.
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                _v, typ, length, _x = struct.unpack("!BBHI", buf[:8])
                if len(buf) < length:
                    break
                types.append(typ)
                buf = buf[length:]
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return types


def test_malformed_messages_are_survived_and_other_switches_unaffected(clean: Net) -> None:
    s = _handshake_as(clean.rig.sw, 0xBAD)
    try:
        time.sleep(0.3)
        # A PACKET_IN whose body is cut short, then bytes that are not OpenFlow at all.
        s.sendall(struct.pack("!BBHI", 4, 10, 12, 77) + b"\x00\x00\x00\x01")
        s.sendall(struct.pack("!BBHI", 4, 99, 12, 78) + b"junk")
        # The session is still alive: an echo request gets its reply.
        s.sendall(struct.pack("!BBHI", 4, 2, 8, 4242))
        s.settimeout(5)
        while True:
            typ, xid, _ = _recv_msg(s)
            if typ == 3:
                assert xid == 4242
                break
    finally:
        s.close()
    # The real switches are still served.
    clean.intents({"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"})
    wait_until(lambda: clean.rig.ping("alice", "bob"), what="ping after the bad switch")
    assert clean.ctl is not None and clean.ctl.proc.poll() is None
    assert "malformed OpenFlow message skipped" in clean.ctl.output()


def test_a_second_connection_claiming_a_connected_datapath_id_is_refused(clean: Net) -> None:
    """An impostor announces cpe1's datapath id while cpe1's switch is connected: it is
    closed before anything is sent to it, and the real switch keeps its session, its
    flows and its place (new intents still reach it)."""
    ab = {"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"}
    clean.intents(ab)
    wait_until(lambda: clean.rig.ping("alice", "bob"), what="alice -> bob")
    before = sorted(clean.cookie_flows("cpe1", "ab"))
    assert before
    s = _handshake_as(clean.rig.sw, clean.rig.nodes["cpe1"])
    try:
        types = _types_until_closed(s)
    finally:
        s.close()
    assert types is not None, "the impostor's session was not closed"
    # No port description request (os-ken's next handshake step), no flow or
    # statistics traffic: the session never got past the claim.
    assert 18 not in types and 14 not in types, types
    assert clean.ctl is not None and "is already connected" in clean.ctl.output()
    assert clean.rig.is_connected("cpe1")
    assert sorted(clean.cookie_flows("cpe1", "ab")) == before
    assert clean.rig.ping("alice", "bob")
    # The controller still drives the real switch: a new intent is installed on it.
    clean.intents(ab, {"kind": "connectivity", "id": "as", "a": "host:alice", "b": "host:server"})
    wait_until(lambda: clean.cookie_flows("cpe1", "as"), what="a new intent on the real cpe1")
    wait_until(lambda: clean.rig.ping("alice", "server"), what="alice -> server")


def test_flows_a_switch_refuses_keep_that_intent_off_it_whole(clean: Net) -> None:
    from netfate.orchestrator.sdn.intents import HostView, PortView

    good = clean.view()
    # A port number no switch accepts (in the reserved range): every flow of an
    # intent that uses it is refused by the switch.
    nodes = [
        n.model_copy(
            update={
                "ports": [*n.ports, PortView(name="bogus", ofport=0xFFFFFF01, peer="host:ghost")]
            }
        )
        if n.name == "cpe1"
        else n
        for n in good.nodes
    ]
    ghost = HostView(name="ghost", mac="02:00:00:00:66:66", ip="10.0.0.99", node="cpe1")
    clean.orch.set(view=good.model_copy(update={"nodes": nodes, "hosts": [*good.hosts, ghost]}))
    try:
        clean.intents(
            {"kind": "connectivity", "id": "ab", "a": "host:alice", "b": "host:bob"},
            {"kind": "connectivity", "id": "bad", "a": "host:alice", "b": "host:ghost"},
        )
        ev = wait_until(lambda: clean.orch.events_of("install_error"), what="install_error")[0]
        assert ev["node"] == "cpe1" and ev["intents"] == ["bad"] and ev["errors"]
        wait_until(lambda: clean.rig.ping("alice", "bob"), what="the good intent still works")
        # None of the refused intent's flows stay on that switch, the good one is whole.
        wait_until(lambda: not clean.cookie_flows("cpe1", "bad"), what="bad intent removed")
        assert len(clean.cookie_flows("cpe1", "ab")) == 4
    finally:
        clean.orch.set(view=good)


def test_a_host_plugged_into_a_port_the_view_does_not_know_is_placed_at_its_first_packet(
    clean: Net,
) -> None:
    """bob's cable moves to a new port of pe's switch; the orchestrator's view is never
    told (its agent has not reported yet). The controller listens on a new port as
    soon as the switch says it is up, so bob's first packet places him there."""
    bob = clean.rig.endpoints["bob"]
    clean.intents({"kind": "connectivity", "id": "bs", "a": "host:bob", "b": "host:server"})
    wait_until(lambda: clean.rig.ping("bob", "server"), what="bob -> server at cpe2")
    clean.rig.vsctl("del-port", clean.rig.bridge("cpe2"), bob.veth_sw)
    clean.rig.vsctl("add-port", clean.rig.bridge("pe"), bob.veth_sw, "--", "set", "interface",
                    bob.veth_sw, "ofport_request=40")  # fmt: skip
    try:
        wait_until(lambda: clean.rig.ping("bob", "server"), what="bob -> server from pe:40")
        seen = [e for e in clean.orch.events_of("host_seen") if e["mac"] == bob.mac]
        assert any((e["node"], e["ofport"]) == ("pe", 40) for e in seen), seen
        assert clean.cookie_flows("pe", "bs")
    finally:
        clean.rig.vsctl("del-port", clean.rig.bridge("pe"), bob.veth_sw)
        clean.rig.vsctl("add-port", clean.rig.bridge("cpe2"), bob.veth_sw, "--", "set",
                        "interface", bob.veth_sw, f"ofport_request={bob.ofport}",
                        "external_ids:netfate-peer=host:bob")  # fmt: skip
