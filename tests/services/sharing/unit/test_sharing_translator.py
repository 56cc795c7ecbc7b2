"""The four packet rules of seed III.B on the paper's own example (Fig. 4, Table 1).

PN1 and PN2 are both 192.168.0.0/24. D2 (shared) is 192.168.0.2 in PN1; VP2's
aliases 192.168.0.31/.15/.27 stand for PN2's D4/D5/D6 = 192.168.0.3/.2/.5; VP1's
alias for D2 in PN2 is 192.168.0.13.
"""

from __future__ import annotations

import ipaddress

import pytest

from netfate.proto import ipv4
from netfate.vnf.virtual_presence import (
    ATT,
    ATTError,
    Dropped,
    Forward,
    Ignored,
    Role,
    Side,
    Translator,
    allocate_aliases,
)

A = ipaddress.IPv4Address
N = ipaddress.IPv4Network
NET = N("192.168.0.0/24")
D2 = A("192.168.0.2")
ALIAS1 = A("192.168.0.13")
TABLE1 = (
    (A("192.168.0.31"), A("192.168.0.3")),
    (A("192.168.0.15"), A("192.168.0.2")),
    (A("192.168.0.27"), A("192.168.0.5")),
)
ATT1 = ATT(NET, NET, D2, ALIAS1, TABLE1)


def vp2() -> Translator:
    return Translator(Role.EXPORTER, ATT1)


def vp1() -> Translator:
    return Translator(Role.IMPORTER, ATT1)


def fwd(v: object) -> ipv4.IPv4Packet:
    assert isinstance(v, Forward), v
    return ipv4.parse(v.packet)


def test_vp2_vi_unicast_from_d2_rewrites_dst_per_att() -> None:
    for alias, dev in TABLE1:
        v = vp2().handle(Side.VI, ipv4.build_udp(D2, alias, 1, 2, b"x"))
        assert isinstance(v, Forward) and v.out is Side.EI and not v.link_broadcast
        p = fwd(v)
        assert (p.src, p.dst, p.ttl) == (D2, dev, 63)


def test_vp2_vi_wrong_sender_dropped_and_counted() -> None:
    t = vp2()
    v = t.handle(Side.VI, ipv4.build_udp("192.168.0.7", "192.168.0.31", 1, 2, b"x"))
    assert v == Dropped("wrong_sender")
    v = t.handle(Side.VI, ipv4.build_udp("192.168.0.7", "255.255.255.255", 1, 2, b"x"))
    assert v == Dropped("wrong_sender")
    assert t.counters["dropped_wrong_sender"] == 2


def test_vp2_vi_broadcast_untouched() -> None:
    for dst in ("255.255.255.255", "192.168.0.255"):
        raw = ipv4.build_udp(D2, dst, 68, 67, b"x")
        v = vp2().handle(Side.VI, raw)
        assert v == Forward(Side.EI, raw, True)


def test_vp2_vi_other_traffic_is_not_the_vps() -> None:
    v = vp2().handle(Side.VI, ipv4.build_udp(D2, "192.168.0.1", 1, 2, b"x"))
    assert isinstance(v, Ignored)


def test_vp2_ei_src_per_att_dst_d2() -> None:
    t = vp2()
    v = t.handle(Side.EI, ipv4.build_tcp("192.168.0.5", ALIAS1, 4000, 80))
    p = fwd(v)
    assert isinstance(v, Forward) and v.out is Side.VI
    assert (p.src, p.dst) == (A("192.168.0.27"), D2)
    v = t.handle(Side.EI, ipv4.build_tcp("192.168.0.99", ALIAS1, 4000, 80))
    assert v == Dropped("unknown_sender")


def test_vp2_ei_malformed_dropped_and_counted() -> None:
    t = vp2()
    assert t.handle(Side.EI, b"\x45\x00garbage") == Dropped("malformed_truncated")
    assert t.handle(Side.EI, b"") == Dropped("malformed_truncated")
    assert t.counters["dropped_malformed_truncated"] == 2


def test_vp1_vi_encapsulates_without_translation() -> None:
    v = vp1().handle(Side.VI, ipv4.build_icmp_echo("192.168.0.3", ALIAS1, 1, 1))
    p = fwd(v)
    assert (p.src, p.dst, p.ttl) == (A("192.168.0.3"), ALIAS1, 63)
    other = vp1().handle(Side.VI, ipv4.build_icmp_echo("192.168.0.3", "192.168.0.1", 1, 1))
    assert isinstance(other, Ignored)


def test_vp1_ei_src_set_to_alias() -> None:
    v = vp1().handle(Side.EI, ipv4.build_udp(D2, "192.168.0.3", 1, 2, b"x"))
    p = fwd(v)
    assert (p.src, p.dst) == (ALIAS1, A("192.168.0.3"))
    b = vp1().handle(Side.EI, ipv4.build_udp(D2, "255.255.255.255", 1, 2, b"x"))
    assert isinstance(b, Forward) and b.link_broadcast
    assert ipv4.parse(b.packet).src == ALIAS1 and ipv4.parse(b.packet).ttl == 64


def test_round_trip_d4_to_d2_and_back() -> None:
    """D4 (192.168.0.3 in PN2) pings D2 through VP1 and VP2 and gets the answer back."""
    a, b = vp1(), vp2()
    req = fwd(a.handle(Side.VI, ipv4.build_icmp_echo("192.168.0.3", ALIAS1, 5, 1, b"hi")))
    at_d2 = fwd(b.handle(Side.EI, req.data))
    assert (at_d2.src, at_d2.dst) == (A("192.168.0.31"), D2)
    rep = ipv4.build_icmp_echo(D2, at_d2.src, 5, 1, b"hi", reply=True)
    back = fwd(b.handle(Side.VI, rep))
    at_d4 = fwd(a.handle(Side.EI, back.data))
    assert (at_d4.src, at_d4.dst) == (ALIAS1, A("192.168.0.3"))


def test_ttl_expiry_dropped() -> None:
    v = vp2().handle(Side.VI, ipv4.build_udp(D2, "192.168.0.31", 1, 2, b"x", ttl=1))
    assert v == Dropped("ttl_expired")


def test_att_validation_and_allocation() -> None:
    with pytest.raises(ATTError):
        ATT(NET, NET, D2, ALIAS1, ((D2, A("192.168.0.3")),))
    with pytest.raises(ATTError):
        ATT(NET, NET, D2, ALIAS1, ((A("192.168.0.31"), ALIAS1),))
    assert ATT.from_dict(ATT1.to_dict()) == ATT1
    got = allocate_aliases(N("10.0.0.0/29"), {A("10.0.0.6")}, 2)
    assert got == [A("10.0.0.5"), A("10.0.0.4")]
    with pytest.raises(ATTError):
        allocate_aliases(N("10.0.0.0/30"), {A("10.0.0.1")}, 2)


def test_icmp_errors_get_their_quoted_packet_translated() -> None:
    from netfate.proto.ipv4.checksum import checksum

    # D4 (PN2) sent UDP to D2's alias; it arrived at D2 from .31; D2's port is closed.
    seen_by_d2 = ipv4.build_udp("192.168.0.31", D2, 40000, 9, b"hello")
    err = ipv4.build_icmp_error(D2, "192.168.0.31", 3, 3, seen_by_d2)
    out = fwd(vp2().handle(Side.VI, err))
    assert (out.src, out.dst) == (D2, A("192.168.0.3"))
    q = ipv4.parse(out.payload[8:], verify=True)  # the quoted header's checksum is valid
    assert (q.src, q.dst) == (A("192.168.0.3"), ALIAS1)  # what D4 sent
    assert checksum(out.payload) == 0
    # ... and the UDP checksum inside the quote matches the translated addresses.
    sent_by_d4 = ipv4.build_udp("192.168.0.3", ALIAS1, 40000, 9, b"hello")
    assert q.data == sent_by_d4
    # The other way: D2 sent to .31, D4's closed port answers; D2 must see its own packet.
    seen_by_d4 = ipv4.build_udp(ALIAS1, "192.168.0.3", 40001, 9, b"x")
    err2 = ipv4.build_icmp_error("192.168.0.3", ALIAS1, 3, 3, seen_by_d4)
    back = fwd(vp2().handle(Side.EI, err2))
    assert (back.src, back.dst) == (A("192.168.0.31"), D2)
    assert ipv4.parse(back.payload[8:]).data == ipv4.build_udp(D2, "192.168.0.31", 40001, 9, b"x")


def test_truncated_icmp_error_is_dropped_not_raised() -> None:
    bad = ipv4.build_ipv4(D2, "192.168.0.31", ipv4.ICMP, bytes([3, 3, 0, 0, 0, 0, 0, 0, 0x45, 0]))
    assert vp2().handle(Side.VI, bad) == Dropped("malformed_icmp_quote")
