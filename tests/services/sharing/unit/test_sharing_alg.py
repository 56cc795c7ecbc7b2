"""VP1's discovery ALG without I/O: the datagram path and the tap's BPF program."""

from __future__ import annotations

import ipaddress
import struct

from alg_vectors import LIBUPNP_RESPONSE, ZEROCONF_ANSWER
from netfate.proto import dns, ipv4
from netfate.proto.ipv4.checksum import checksum
from netfate.proto.ssdp import parse_ssdp
from netfate.vnf.virtual_presence import ATT, Role, Translator
from netfate.vnf.virtual_presence.alg import address_maps, datagram_alg, sniff, tap_filter

A = ipaddress.IPv4Address
NET = ipaddress.IPv4Network("192.168.0.0/24")
ATT1 = ATT(NET, NET, A("192.168.0.2"), A("192.168.0.13"), ((A("192.168.0.31"), A("192.168.0.3")),))
ATT2 = ATT(
    ipaddress.IPv4Network("192.168.1.0/24"), NET, A("192.168.1.2"), A("192.168.0.13"),
    ((A("192.168.1.31"), A("192.168.0.3")),),
)  # fmt: skip
NOTIFY = (
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nLOCATION: http://192.168.0.2:8200/"
    b"rootDesc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n"
)


def run_bpf(prog: list[tuple[int, int, int, int]], pkt: bytes) -> int:
    """A classic BPF interpreter for the opcodes the tap uses (linux/filter.h semantics)."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:
            a = int.from_bytes(pkt[k : k + 4], "big") if k + 4 <= len(pkt) else -1
        elif code == 0x28:
            a = int.from_bytes(pkt[k : k + 2], "big") if k + 2 <= len(pkt) else -1
        elif code == 0x30:
            a = pkt[k] if k < len(pkt) else -1
        elif code == 0xB1:
            x = (pkt[k] & 0xF) * 4 if k < len(pkt) else 0
        elif code == 0x40:
            a = int.from_bytes(pkt[x + k : x + k + 4], "big") if x + k + 4 <= len(pkt) else -1
        elif code == 0x48:
            a = int.from_bytes(pkt[x + k : x + k + 2], "big") if x + k + 2 <= len(pkt) else -1
        elif code == 0x15:
            pc += jt if a == k else jf
        elif code == 0x45:
            pc += jt if a & k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")
        if a == -1:
            return 0  # an out-of-bounds load ends the program with "drop"


def test_tap_filter_accepts_only_the_devices_discovery_datagrams() -> None:
    prog = tap_filter(A("192.168.0.2").packed)
    for i, (code, jt, jf, _) in enumerate(prog):
        if code in (0x15, 0x45):
            assert i + 1 + max(jt, jf) < len(prog)
    d2, other = "192.168.0.2", "192.168.0.7"
    yes = [
        ipv4.build_udp(d2, "239.255.255.250", 40000, 1900, b"x"),  # NOTIFY from a high port
        ipv4.build_udp(d2, "192.168.0.3", 1900, 40000, b"x"),  # search answer
        ipv4.build_udp(d2, "224.0.0.251", 5353, 5353, b"x"),
        ipv4.build_udp(d2, "192.168.0.3", 5353, 41000, b"x"),  # legacy unicast answer
        ipv4.build_udp(d2, "192.168.0.3", 55306, 46470, LIBUPNP_RESPONSE),  # from any port
    ]
    no = [
        ipv4.build_udp(other, "239.255.255.250", 40000, 1900, b"x"),
        ipv4.build_tcp(d2, "192.168.0.3", 1900, 80),
        ipv4.build_udp(d2, "192.168.0.3", 4000, 5000, b"x"),
        ipv4.build_udp(d2, "192.168.0.3", 4000, 5000, b"HTT"),
        ipv4.build_udp(d2, "192.168.0.3", 4000, 5000, b"RTP/HTTP"),
        ipv4.fragment(ipv4.build_udp(d2, "192.168.0.3", 1900, 1, b"y" * 3000), 1500)[1],
        b"\x00\x01",
    ]
    assert [run_bpf(prog, p) for p in yes] == [0xFFFF] * len(yes)
    assert [run_bpf(prog, p) for p in no] == [0] * len(no)


def test_notify_through_vp1_names_the_alias() -> None:
    tr = Translator(Role.IMPORTER, ATT1)
    pkt = ipv4.build_udp("192.168.0.2", "239.255.255.250", 40000, 1900, NOTIFY, ttl=4)
    out, ports = datagram_alg(tr, pkt, address_maps(ATT1)[0])
    assert out is not None and ports == {8200}
    p = ipv4.parse(out)
    assert (p.src, p.dst, p.ttl) == (A("192.168.0.13"), A("239.255.255.250"), 4)
    msg = parse_ssdp(p.payload[8:])
    assert msg.head.get("LOCATION") == "http://192.168.0.13:8200/rootDesc.xml"
    pseudo = p.src.packed + p.dst.packed + struct.pack("!BBH", 0, 17, len(p.payload))
    assert checksum(pseudo + p.payload) == 0


def test_search_answer_from_any_port_names_the_alias() -> None:
    tr = Translator(Role.IMPORTER, ATT2)
    pkt = ipv4.build_udp("192.168.1.2", "192.168.0.3", 55306, 46470, LIBUPNP_RESPONSE)
    out, ports = datagram_alg(tr, pkt, address_maps(ATT2)[0])
    assert out is not None and ports == {49152}
    p = ipv4.parse(out)
    assert (str(p.src), str(p.dst)) == ("192.168.0.13", "192.168.0.3")
    assert struct.unpack_from("!HH", p.payload) == (55306, 46470)
    loc = parse_ssdp(p.payload[8:]).head.get("LOCATION")
    assert loc == "http://192.168.0.13:49152/description.xml"


def test_unparsable_ssdp_passes_with_addresses_replaced_as_text() -> None:
    tr = Translator(Role.IMPORTER, ATT1)
    pkt = ipv4.build_udp("192.168.0.2", "192.168.0.3", 1900, 4000, b"\x00garbage 192.168.0.2")
    out, _ = datagram_alg(tr, pkt, address_maps(ATT1)[0])
    assert out is not None and ipv4.parse(out).payload[8:] == b"\x00garbage 192.168.0.13"
    assert tr.counters["alg_unparsed"] == 1


def test_mdns_through_vp1() -> None:
    tr = Translator(Role.IMPORTER, ATT2)
    # A QU answer: unicast to the PN2 device, from 5353.
    pkt = ipv4.build_udp("192.168.1.2", "192.168.0.3", 5353, 5353, ZEROCONF_ANSWER, ttl=255)
    out, ports = datagram_alg(tr, pkt, address_maps(ATT2)[0])
    assert out is not None and ports == {554}
    m = dns.parse(ipv4.parse(out).payload[8:])
    assert [r.data for r in m.additionals if r.rtype == dns.TYPE_A] == [
        dns.Address(bytes([192, 168, 0, 13]))
    ]
    assert not [r for r in m.records() if r.rtype == dns.TYPE_AAAA]
    bad = ipv4.build_udp("192.168.1.2", "224.0.0.251", 5353, 5353, ZEROCONF_ANSWER[:40])
    assert datagram_alg(tr, bad, address_maps(ATT2)[0]) == (None, set())
    assert tr.counters["mdns_unparsed"] == 1


def test_address_maps_and_sniff() -> None:
    to_client, to_device = address_maps(ATT2)
    assert to_client.apply(b"192.168.1.2 192.168.1.31") == b"192.168.0.13 192.168.0.3"
    assert to_device.apply(b"192.168.0.13 192.168.0.3") == b"192.168.1.2 192.168.1.31"
    assert sniff(b"GET / HTTP/1.1\r\n") == "http"
    assert sniff(b"DESCRIBE rtsp://x/ RTSP/1.0\r\n") == "rtsp"
    assert sniff(b"GET_PARAMETER rtsp://x/ RTSP/1.0\r\n") == "rtsp"
    assert sniff(b"GET / HT") is None
    assert sniff(b"\x16\x03\x01") == "raw"  # TLS
    assert sniff(b"get / HTTP/1.1\r\n") == "raw"
