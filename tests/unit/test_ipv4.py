"""IPv4 core: parse, builders, fragments, RFC 1624 updates against full recomputation."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netfate.proto import ipv4
from netfate.proto.ipv4.checksum import checksum, replace16, replace32, ttl_decrement

A = ipaddress.IPv4Address


def _l4_ok(p: ipv4.IPv4Packet) -> bool:
    seg = p.payload
    pseudo = p.src.packed + p.dst.packed + struct.pack("!BBH", 0, p.proto, len(seg))
    return checksum(pseudo + seg) == 0


def test_rfc1071_example() -> None:
    # RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2) & 0xFFFF


def test_parse_fields_and_padding_cut() -> None:
    raw = ipv4.build_udp("192.168.0.2", "192.168.0.31", 1000, 2000, b"hi", ttl=7, ident=9)
    p = ipv4.parse(raw + b"\0" * 10)  # Ethernet padding after Total Length
    assert (p.src, p.dst, p.ttl, p.ident, p.proto) == (
        A("192.168.0.2"),
        A("192.168.0.31"),
        7,
        9,
        ipv4.UDP,
    )
    assert p.data == raw
    assert p.ports() == (1000, 2000)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b[:19], "truncated"),
        (lambda b: b"\x65" + b[1:], "version"),
        (lambda b: b"\x44" + b[1:], "header_length"),
        (lambda b: b[:2] + b"\xff\xff" + b[4:], "total_length"),
        (lambda b: b[:10] + b"\x00\x00" + b[12:], "header_checksum"),
    ],
)
def test_parse_refuses(mutate: object, reason: str) -> None:
    raw = ipv4.build_udp("10.0.0.1", "10.0.0.2", 1, 2, b"x")
    with pytest.raises(ipv4.IPv4Error) as e:
        ipv4.parse(mutate(raw))  # type: ignore[operator]
    assert e.value.reason == reason


@pytest.mark.parametrize(
    "raw",
    [
        ipv4.build_udp("192.168.0.2", "192.168.0.31", 5000, 6000, b"payload"),
        ipv4.build_tcp("192.168.0.2", "192.168.0.31", 5000, 80, data=b"GET / HTTP/1.0\r\n"),
        ipv4.build_icmp_echo("192.168.0.2", "192.168.0.31", 7, 1, b"ping"),
    ],
)
def test_rewrite_keeps_checksums_valid(raw: bytes) -> None:
    p = ipv4.parse(raw)
    out = ipv4.parse(ipv4.rewrite(p, src=A("10.9.8.7"), dst=A("172.16.0.3"), decrement_ttl=True))
    assert (out.src, out.dst, out.ttl) == (A("10.9.8.7"), A("172.16.0.3"), 63)
    assert out.payload[8:] == p.payload[8:] if p.proto != ipv4.TCP else True
    if p.proto in (ipv4.TCP, ipv4.UDP):
        assert _l4_ok(out)
    else:
        assert checksum(out.payload) == 0  # ICMP: no pseudo-header, unchanged and valid


def test_udp_without_checksum_stays_without() -> None:
    raw = ipv4.build_udp("1.2.3.4", "5.6.7.8", 1, 2, b"abc", with_checksum=False)
    out = ipv4.rewrite(ipv4.parse(raw), dst=A("9.9.9.9"))
    assert out[26:28] == b"\0\0"
    assert ipv4.parse(out).dst == A("9.9.9.9")


def test_fragments_reassemble_and_only_first_has_l4_update() -> None:
    raw = ipv4.build_udp("192.168.0.2", "192.168.0.31", 1, 2, bytes(range(256)) * 12, ident=77)
    frags = ipv4.fragment(raw, 1500)
    assert len(frags) == 3
    parsed = [ipv4.parse(f) for f in frags]
    assert [p.more_fragments for p in parsed] == [True, True, False]
    assert all(p.frag_offset % 8 == 0 for p in parsed)
    body = b"".join(p.payload for p in parsed)
    assert body == ipv4.parse(raw).payload
    rewritten = [ipv4.parse(ipv4.rewrite(p, dst=A("10.0.0.9"))) for p in parsed]
    # Only the first fragment holds the UDP header; its update fixes the whole datagram.
    whole = b"".join(p.payload for p in rewritten)
    pseudo = A("192.168.0.2").packed + A("10.0.0.9").packed + struct.pack("!BBH", 0, 17, len(whole))
    assert checksum(pseudo + whole) == 0
    assert rewritten[1].payload == parsed[1].payload


def test_fragment_with_df_refused() -> None:
    raw = ipv4.build_udp("1.1.1.1", "2.2.2.2", 1, 2, b"x" * 2000, flags_frag=0x4000)
    with pytest.raises(ipv4.IPv4Error):
        ipv4.fragment(raw, 1500)


@given(st.binary(min_size=20, max_size=20), st.binary(min_size=4, max_size=4))
def test_replace32_equals_recompute(hdr: bytes, new: bytes) -> None:
    b = bytearray(hdr)
    b[10:12] = b"\0\0"
    b[10:12] = checksum(bytes(b)).to_bytes(2, "big")
    inc = replace32(int.from_bytes(b[10:12], "big"), bytes(b[16:20]), new)
    b[16:20] = new
    b[10:12] = b"\0\0"
    full = checksum(bytes(b))
    # Equal as one's-complement numbers (0x0000 and 0xffff are both zero).
    assert inc == full or {inc, full} == {0, 0xFFFF}


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_replace16_and_ttl_agree(check: int, old: int, new: int) -> None:
    r = replace16(check, old, new)
    assert 0 <= r <= 0xFFFF
    t = ttl_decrement(check)
    eq3 = replace16(check, 0x0100, 0)
    assert t == eq3 or {t, eq3} == {0, 0xFFFF}
