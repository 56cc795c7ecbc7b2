"""The DNS message codec (proto/dns): vectors from a reference peer, compression, refusals."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from alg_vectors import ZEROCONF_ANSWER, ZEROCONF_QU
from netfate.proto import dns

CAM = (b"cam", b"local")
SERVICE = (b"Front door", b"_rtsp", b"_tcp", b"local")


def test_reference_answer_parses_to_what_zeroconf_meant() -> None:
    m = dns.parse(ZEROCONF_ANSWER)
    assert m.is_response and not m.questions and not m.authorities
    ptr, srv, txt = m.answers
    assert ptr == dns.Record((b"_rtsp", b"_tcp", b"local"), dns.TYPE_PTR, 1, 4500,
                             dns.Domain(SERVICE))  # fmt: skip
    assert srv.data == dns.Srv(0, 0, 554, CAM) and srv.rclass == 0x8001
    assert txt.data == dns.Txt((b"path=/cam/main", b"url=rtsp://192.168.1.2/cam/x"))
    a, aaaa, a2, rev, nsec = m.additionals
    assert a.data == dns.Address(bytes([192, 168, 1, 2])) and a.name == CAM
    assert aaaa.data.ip == ipaddress.IPv6Address("fe80::1")  # type: ignore[union-attr]
    assert a2.data == dns.Address(bytes([10, 9, 8, 7]))
    assert dns.reverse_address(rev.name) == ipaddress.IPv4Address("192.168.1.2")
    assert rev.data == dns.Domain(CAM)
    assert isinstance(nsec.data, dns.Nsec) and nsec.data.next_name == CAM


def test_qu_question() -> None:
    m = dns.parse(ZEROCONF_QU)
    (q,) = m.questions
    assert q.name == (b"_rtsp", b"_tcp", b"local") and q.qtype == dns.TYPE_PTR
    assert q.unicast_response and q.qclass & 0x7FFF == 1
    assert dns.build(m) == ZEROCONF_QU


def test_round_trip_compresses_like_the_reference() -> None:
    m = dns.parse(ZEROCONF_ANSWER)
    out = dns.build(m)
    assert dns.parse(out) == m
    # Every repeated suffix is a pointer: no longer than zeroconf's own encoding
    # (which compresses SRV targets and NSEC names; build writes those whole).
    assert len(out) <= len(ZEROCONF_ANSWER) + 2 * len(b"\x03cam\x05local\x00")
    assert out.count(b"\x05_rtsp") == 1
    # "local" once for the compressed names, and in the two names written whole.
    assert out.count(b"\x05local") == 3 and out.count(b"\x03cam\x05local") == 2


def test_compression_pointer_targets_the_first_spelling() -> None:
    m = dns.Message(1, 0x8400, answers=[
        dns.Record(CAM, dns.TYPE_A, 1, 120, dns.Address(bytes(4))),
        dns.Record((b"www", *CAM), dns.TYPE_CNAME, 1, 120, dns.Domain(CAM)),
    ])  # fmt: skip
    out = dns.build(m)
    first = out.index(b"\x03cam")
    assert out.count(b"\x03cam") == 1
    assert struct.pack("!H", 0xC000 | first) in out
    assert dns.parse(out) == m


def test_reverse_names() -> None:
    a = ipaddress.IPv4Address("192.168.1.2")
    assert dns.reverse_name(a) == (b"2", b"1", b"168", b"192", b"in-addr", b"arpa")
    assert dns.reverse_address(dns.reverse_name(a)) == a
    for name in [(b"2", b"1", b"168", b"in-addr", b"arpa"), (b"02", b"1", b"1", b"1", b"in-addr",
                 b"arpa"), (b"256", b"1", b"1", b"1", b"in-addr", b"arpa"), CAM]:  # fmt: skip
        assert dns.reverse_address(name) is None
    assert dns.is_reverse((b"1", b"0", b"ip6", b"ARPA")) and not dns.is_reverse(CAM)


HDR = struct.pack("!HHHHHH", 0, 0x8400, 0, 1, 0, 0)
A_FIXED = struct.pack("!HHIH", 1, 1, 120, 4) + bytes(4)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00" * 11, "truncated"),
        (HDR, "counts"),
        (HDR + b"\x03cam\x00" + A_FIXED + b"x", "trailing"),
        (HDR + b"\xc0\x0c" + A_FIXED, "pointer"),  # points at itself
        (HDR + b"\x01a\xc0\x0c" + A_FIXED, "pointer"),  # into its own start: a loop
        (HDR + b"\xc0\x20" + A_FIXED + b"\x00" * 20, "pointer"),  # forwards
        (HDR + b"\x40a\x00" + A_FIXED, "label_type"),
        (HDR + b"\x03cam\x00" + struct.pack("!HHIH", 1, 1, 120, 5) + bytes(5), "rdata"),
        (HDR + b"\x03cam\x00" + struct.pack("!HHIH", 33, 1, 120, 6) + bytes(6), "rdata"),
        (HDR + b"\x03cam\x00" + struct.pack("!HHIH", 16, 1, 120, 2) + b"\x05a", "rdata"),
        (HDR + b"\x03cam\x00" + struct.pack("!HHIH", 12, 1, 120, 2) + b"\x01a\x00", "rdata"),
        (HDR + b"\x3f" + b"a" * 63 + (b"\x3f" + b"b" * 63) * 3 + b"\x00" + A_FIXED,
         "name_too_long"),
    ],
)  # fmt: skip
def test_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(dns.DnsError) as e:
        dns.parse(data)
    assert e.value.reason == reason


def test_build_refusals() -> None:
    long_label = dns.Message(questions=[dns.Question((b"x" * 64,), 1, 1)])
    with pytest.raises(dns.DnsError):
        dns.build(long_label)
    txt = dns.Message(answers=[dns.Record(CAM, dns.TYPE_TXT, 1, 1, dns.Txt((b"x" * 256,)))])
    with pytest.raises(dns.DnsError):
        dns.build(txt)
    wrong = dns.Message(answers=[dns.Record(CAM, dns.TYPE_A, 1, 1, dns.Address(bytes(16)))])
    with pytest.raises(dns.DnsError):
        dns.build(wrong)
