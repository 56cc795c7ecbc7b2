"""The kernel fast path against the Python reference, packet for packet (issue 5, item 4).

Four namespaces, the seed's example (both PNs 192.168.0.0/24, Fig. 4 / Table 1):

    d2 (.2) ── vi [VP2: .31 .27] ══ underlay 172.31.0.0/30 ══ [VP1: .13] vi ── d4 (.3)
                         EI: VXLAN 10.0.0.1/30 <-> 10.0.0.2/30, underlay MTU 1550

Each scenario crafts IPv4 packets, sends them as Ethernet frames from one end
host with a raw packet socket, and captures what arrives at the other end
host. The same packets go through the reference translators (VP2 then VP1, or
VP1 then VP2); the captured IP packets must equal the reference's bytes, and
what the reference drops must not arrive. A sentinel packet sent after each
scenario marks the end of its capture, so no test waits for a fixed time.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from netfate.host import links, netns
from netfate.proto import ipv4
from netfate.vnf.virtual_presence import ATT, Dropped, Forward, Ignored, Role, Side, Translator
from netfate.vnf.virtual_presence import kernel as kp
from vp_rig import build_chain, chain_names, remove_chain, vp_configs

A = ipaddress.IPv4Address
N = ipaddress.IPv4Network
NET = N("192.168.0.0/24")
D2, D4, ALIAS1 = A("192.168.0.2"), A("192.168.0.3"), A("192.168.0.13")
ATT1 = ATT(
    NET,
    NET,
    D2,
    ALIAS1,
    ((A("192.168.0.31"), D4), (A("192.168.0.27"), A("192.168.0.5"))),
)
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


@dataclass
class Rig:
    ns: dict[str, str]
    ifs: dict[str, str]
    macs: dict[str, bytes]
    cfg: dict[str, kp.KernelConfig]


def _mac(ns: str, ifname: str) -> bytes:
    with links.rtnl(ns) as ipr:
        msg = ipr.link("get", index=links.link_index(ipr, ns, ifname))[0]
    return bytes.fromhex(str(msg.get("IFLA_ADDRESS")).replace(":", ""))


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    ns, ifs = chain_names()
    try:
        build_chain(ns, ifs)
        common = {"att": ATT1.to_dict(), "share": 7, "vi_prefixlen": 24, "underlay_mtu": 1550}
        cfg = {n: kp.KernelConfig.from_dict(c) for n, c in vp_configs(ifs, common).items()}
        for name, c in cfg.items():
            kp.install(ns[name], c)
            kp.install(ns[name], c)  # idempotent: a restarted VP installs again
        macs = {k: _mac(ns[n], ifs[k]) for n, k in (("d2", "a"), ("vp2", "b"), ("vp1", "e"),
                                                    ("d4", "f"))}  # fmt: skip
        yield Rig(ns, ifs, macs, cfg)
    finally:
        remove_chain(ns)


def test_real_stacks_ping_and_udp_both_ways(rig: Rig) -> None:
    """Unmodified host stacks talk through the VPs: D4 pings D2 at .13, D2 pings D4 at .31."""
    netns.run_in(rig.ns["d4"], ["ping", "-c", "1", "-W", "5", str(ALIAS1)])
    netns.run_in(rig.ns["d2"], ["ping", "-c", "1", "-W", "5", "192.168.0.31"])
    srv = netns.socket_in(rig.ns["d2"], socket.AF_INET, socket.SOCK_DGRAM)
    cli = netns.socket_in(rig.ns["d4"], socket.AF_INET, socket.SOCK_DGRAM)
    with srv, cli:
        srv.bind(("0.0.0.0", 5555))
        srv.settimeout(5)
        cli.settimeout(5)
        cli.sendto(b"hello D2", (str(ALIAS1), 5555))
        data, peer = srv.recvfrom(100)
        # D2 sees D4 as its PN1 alias, not as a PN2 address.
        assert (data, peer[0]) == (b"hello D2", "192.168.0.31")
        srv.sendto(b"hello D4", peer)
        data, back = cli.recvfrom(100)
        assert (data, back[0]) == (b"hello D4", str(ALIAS1))


def test_unshared_device_cannot_reach_pn2(rig: Rig) -> None:
    """A PN1 device that is not D2 (192.168.0.7 here) gets nothing through VP2."""
    netns.run_in(rig.ns["d2"], ["ip", "addr", "add", "192.168.0.7/24", "dev", rig.ifs["a"]])
    try:
        proc = netns.run_in(
            rig.ns["d2"],
            ["ping", "-c", "1", "-W", "1", "-I", "192.168.0.7", "192.168.0.31"],
            check=False,
        )
        assert proc.returncode != 0
    finally:
        netns.run_in(rig.ns["d2"], ["ip", "addr", "del", "192.168.0.7/24", "dev", rig.ifs["a"]])


@pytest.fixture
def quiet(rig: Rig) -> Iterator[None]:
    """End hosts drop what they receive at IP level, so that no reply (echo reply,
    RST, port unreachable) travels back into another scenario's capture. Packet
    sockets see frames before netfilter, and ARP is untouched."""
    doc = "table ip quiet {\nchain input {\ntype filter hook input priority 0; policy drop;\n}\n}\n"
    for h in ("d2", "d4"):
        netns.run_in(rig.ns[h], ["nft", "-f", "-"], input=doc)
    yield
    for h in ("d2", "d4"):
        netns.run_in(rig.ns[h], ["nft", "delete", "table", "ip", "quiet"], check=False)


# ------------------------------------------------------------------ scenarios

BIG = bytes(range(256)) * 12  # 3072 bytes: three fragments at MTU 1500


def _to_pn2(ident: int) -> dict[str, list[bytes]]:
    """Packets D2 sends (into PN1), by scenario."""
    a31 = "192.168.0.31"
    return {
        "udp": [ipv4.build_udp(D2, a31, 4000, 5000, b"udp to D4", ident=ident)],
        "tcp": [ipv4.build_tcp(D2, a31, 4001, 80, seq=1000, ident=ident)],
        "tcp_data": [ipv4.build_tcp(D2, a31, 4001, 80, flags=0x18, data=b"GET /", ident=ident)],
        "icmp": [ipv4.build_icmp_echo(D2, a31, 77, 1, b"ping", ident=ident)],
        "broadcast": [ipv4.build_udp(D2, "255.255.255.255", 68, 67, b"bcast", ident=ident)],
        "directed_broadcast": [ipv4.build_udp(D2, "192.168.0.255", 9, 9, b"x", ident=ident)],
        "ssdp_multicast": [
            ipv4.build_udp(D2, "239.255.255.250", 1900, 1900, b"NOTIFY", ident=ident)
        ],
        "fragments": ipv4.fragment(ipv4.build_udp(D2, a31, 4002, 5000, BIG, ident=ident), 1500),
        "udp_no_checksum": [
            ipv4.build_udp(D2, a31, 1, 2, b"nock", with_checksum=False, ident=ident)
        ],
        "full_size_df": [
            ipv4.build_udp(D2, a31, 4003, 5000, b"m" * 1472, ident=ident, flags_frag=0x4000)
        ],
        "wrong_sender": [ipv4.build_udp("192.168.0.7", a31, 1, 2, b"x", ident=ident)],
        "wrong_sender_broadcast": [
            ipv4.build_udp("192.168.0.7", "255.255.255.255", 1, 2, b"x", ident=ident)
        ],
        "not_for_vp": [ipv4.build_udp(D2, "192.168.0.1", 1, 2, b"x", ident=ident)],
        "ttl_expiring": [ipv4.build_udp(D2, a31, 1, 2, b"x", ttl=1, ident=ident)],
    }


def _to_pn1(ident: int) -> dict[str, list[bytes]]:
    """Packets D4 sends (into PN2), by scenario."""
    return {
        "udp": [ipv4.build_udp(D4, ALIAS1, 5000, 4000, b"udp to D2", ident=ident)],
        "tcp": [ipv4.build_tcp(D4, ALIAS1, 5001, 80, ident=ident)],
        "icmp": [ipv4.build_icmp_echo(D4, ALIAS1, 78, 1, b"ping", ident=ident)],
        "broadcast": [ipv4.build_udp(D4, "255.255.255.255", 68, 67, b"bcast", ident=ident)],
        "ssdp_msearch": [
            ipv4.build_udp(D4, "239.255.255.250", 40000, 1900, b"M-SEARCH", ident=ident)
        ],
        "fragments": ipv4.fragment(ipv4.build_udp(D4, ALIAS1, 5002, 4000, BIG, ident=ident), 1500),
        "unknown_pn2_sender": [ipv4.build_udp("192.168.0.9", ALIAS1, 1, 2, b"x", ident=ident)],
        "ttl_expiring": [ipv4.build_udp(D4, ALIAS1, 1, 2, b"x", ttl=1, ident=ident)],
    }


def reference(first: Translator, second: Translator, packet: bytes) -> tuple[bytes | None, str]:
    """What the two VPs deliver at the far end, and where it stopped if nothing."""
    v = first.handle(Side.VI, packet)
    if isinstance(v, Dropped):
        return None, v.reason
    if isinstance(v, Ignored):
        return None, "ignored"
    assert isinstance(v, Forward) and v.out is Side.EI
    w = second.handle(Side.EI, v.packet)
    if isinstance(w, Forward):
        assert w.out is Side.VI
        return w.packet, "delivered"
    return None, w.reason if isinstance(w, Dropped) else "ignored"


class Capture:
    def __init__(self, ns: str, ifname: str) -> None:
        self.sock = netns.socket_in(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(5.0)

    def until(self, marker: bytes) -> list[bytes]:
        """IPv4 packets received (not sent) until one whose payload ends with `marker`."""
        got = []
        deadline = time.monotonic() + 10  # a hang guard: failing, never passing, on timeout
        while time.monotonic() < deadline:
            frame, addr = self.sock.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
                continue
            pkt = ipv4.parse(frame[14:], verify=False).data
            if pkt.endswith(marker):
                return got
            got.append(pkt)
        raise AssertionError(f"sentinel {marker!r} never arrived")

    def close(self) -> None:
        self.sock.close()


def _send(rig: Rig, host: str, ifname: str, dst_mac: bytes, packets: list[bytes]) -> None:
    with contextlib.closing(netns.socket_in(rig.ns[host], socket.AF_PACKET, socket.SOCK_RAW)) as s:
        s.bind((ifname, 0))
        for p in packets:
            d = ipv4.parse(p).dst
            group = d.is_multicast or d == A("255.255.255.255") or d == NET.broadcast_address
            mac = b"\xff" * 6 if group else dst_mac
            if d.is_multicast:
                mac = b"\x01\x00\x5e" + (int(d) & 0x7FFFFF).to_bytes(3, "big")
            s.send(mac + rig.macs[ifname[-1]] + b"\x08\x00" + p)


def _run(rig: Rig, direction: str, name: str) -> None:
    ident = secrets.randbelow(0xFFFF)
    if direction == "to_pn2":
        pkts = _to_pn2(ident)[name]
        first, second = Translator(Role.EXPORTER, ATT1), Translator(Role.IMPORTER, ATT1)
        src_host, src_if, via, cap_host, cap_if = "d2", rig.ifs["a"], "b", "d4", rig.ifs["f"]
        marker = b"sentinel-%d" % ident
        sentinel = ipv4.build_udp(D2, "192.168.0.31", 9999, 9999, marker)
    else:
        pkts = _to_pn1(ident)[name]
        first, second = Translator(Role.IMPORTER, ATT1), Translator(Role.EXPORTER, ATT1)
        src_host, src_if, via, cap_host, cap_if = "d4", rig.ifs["f"], "e", "d2", rig.ifs["a"]
        marker = b"sentinel-%d" % ident
        sentinel = ipv4.build_udp(D4, ALIAS1, 9999, 9999, marker)
    expected, why = [], []
    for p in pkts:
        out, reason = reference(first, second, p)
        why.append(reason)
        if out is not None:
            expected.append(out)
    cap = Capture(rig.ns[cap_host], cap_if)
    try:
        _send(rig, src_host, src_if, rig.macs[via], [*pkts, sentinel])
        got = [g for g in cap.until(marker) if ipv4.parse(g, verify=False).ident == ident]
    finally:
        cap.close()
    assert [g.hex() for g in got] == [e.hex() for e in expected], why


TO_PN2 = list(_to_pn2(0))
TO_PN1 = list(_to_pn1(0))


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("name", TO_PN2)
def test_pn1_to_pn2_kernel_equals_reference(rig: Rig, name: str) -> None:
    _run(rig, "to_pn2", name)


@pytest.mark.usefixtures("quiet")
@pytest.mark.parametrize("name", TO_PN1)
def test_pn2_to_pn1_kernel_equals_reference(rig: Rig, name: str) -> None:
    _run(rig, "to_pn1", name)


def test_reference_expectations_are_not_vacuous() -> None:
    """The scenarios cover both outcomes: delivered and each kind of drop."""
    reasons = set()
    for name, pkts in _to_pn2(1).items():
        for p in pkts:
            _, r = reference(Translator(Role.EXPORTER, ATT1), Translator(Role.IMPORTER, ATT1), p)
            reasons.add((name, r))
    for name, pkts in _to_pn1(1).items():
        for p in pkts:
            _, r = reference(Translator(Role.IMPORTER, ATT1), Translator(Role.EXPORTER, ATT1), p)
            reasons.add((name, r))
    kinds = {r for _, r in reasons}
    assert {"delivered", "wrong_sender", "unknown_sender", "ignored", "ttl_expired"} <= kinds


def test_drop_counters_match_reference(rig: Rig) -> None:
    """The kernel's named counters saw the drops the reference predicts (at least those)."""
    c2 = kp.counters(rig.ns["vp2"], rig.cfg["vp2"])
    assert c2.get("wrong_sender", 0) >= 2
    assert c2.get("unknown_sender", 0) >= 1


def test_remove_leaves_nothing(rig: Rig) -> None:
    """Revocation: tables, VXLAN device, aliases and rules go; install again works."""
    ns, cfg = rig.ns["vp1"], rig.cfg["vp1"]
    kp.remove(ns, cfg)
    kp.remove(ns, cfg)  # twice is fine
    assert not links.link_exists(ns, cfg.ei)
    tables = netns.run_in(ns, ["nft", "list", "tables"]).stdout
    assert cfg.table not in tables
    addrs = netns.run_in(ns, ["ip", "-4", "-o", "addr", "show", "dev", cfg.vi]).stdout
    assert str(ALIAS1) not in addrs
    rules = netns.run_in(ns, ["ip", "rule", "show"]).stdout
    assert hex(cfg.mark) not in rules and "fwmark" not in rules
    proc = netns.run_in(rig.ns["d4"], ["ping", "-c", "1", "-W", "1", str(ALIAS1)], check=False)
    assert proc.returncode != 0
    kp.install(ns, cfg)
    netns.run_in(rig.ns["d4"], ["ping", "-c", "1", "-W", "5", str(ALIAS1)])


def _snmp_ip(ns: str) -> dict[str, int]:
    def read() -> dict[str, int]:
        # thread-self: /proc/net is the main thread's view, not this switched thread's.
        with open("/proc/thread-self/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith("Ip:")]
        return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:], strict=True)}

    return netns.in_netns(ns, read)


@pytest.mark.usefixtures("quiet")
def test_our_vxlan_frames_interoperate_and_malformed_inner_packets_are_dropped_and_counted(
    rig: Rig,
) -> None:
    """VXLAN frames built by netfate.proto.overlay reach D2 through the kernel VXLAN of
    VP2; one whose inner IP header is broken is dropped there and counted (Ip
    InHdrErrors of VP2's namespace), as the reference drops and counts it."""
    from netfate.proto import overlay

    cfg2 = rig.cfg["vp2"]
    ident = secrets.randbelow(0xFFFF)
    bad = bytearray(ipv4.build_udp(D4, ALIAS1, 1, 2, b"broken", ident=ident))
    bad[10:12] = b"\x00\x00"  # wrong header checksum
    marker = b"sentinel-%d" % ident
    good = ipv4.build_udp(D4, ALIAS1, 9999, 9999, marker)
    assert Translator(Role.EXPORTER, ATT1).handle(Side.EI, bytes(bad)) == Dropped(
        "malformed_header_checksum"
    )
    dst_mac = bytes.fromhex(cfg2.ei_mac().replace(":", ""))
    src_mac = bytes.fromhex(rig.cfg["vp1"].ei_mac().replace(":", ""))
    before_all = _snmp_ip(rig.ns["vp2"])
    before = before_all["InHdrErrors"]
    cap = Capture(rig.ns["d2"], rig.ifs["a"])
    sock = netns.socket_in(rig.ns["vp1"], socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("172.31.0.2", 0))
        for inner in (bytes(bad), good):
            frame = overlay.encapsulate(cfg2.vni, dst_mac, src_mac, 0x0800, inner)
            sock.sendto(frame, ("172.31.0.1", overlay.VXLAN_PORT))
        got = [g for g in cap.until(marker) if ipv4.parse(g, verify=False).ident == ident]
    finally:
        sock.close()
        cap.close()
    assert got == []
    after_all = _snmp_ip(rig.ns["vp2"])
    assert after_all["InHdrErrors"] > before, {
        k: after_all[k] - before_all[k] for k in after_all if after_all[k] != before_all[k]
    }
