"""Fuzz the IPv4 core and the overlay parser: accepted, or the one exception type."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.proto import ipv4, overlay
from netfate.vnf.virtual_presence import ATT, Role, Side, Translator

A = ipaddress.IPv4Address
N = ipaddress.IPv4Network

SEEDS = [
    ipv4.build_udp("192.168.0.2", "192.168.0.31", 1900, 1900, b"M-SEARCH * HTTP/1.1\r\n"),
    ipv4.build_tcp("192.168.0.3", "192.168.0.13", 4000, 80, data=b"x" * 40),
    ipv4.build_icmp_echo("192.168.0.2", "255.255.255.255", 1, 1),
    ipv4.build_icmp_error(
        "192.168.0.2",
        "192.168.0.31",
        3,
        3,
        ipv4.build_udp("192.168.0.31", "192.168.0.2", 1, 9, b""),
    ),
    ipv4.build_icmp_error(
        "192.168.0.3", "192.168.0.13", 11, 0, ipv4.build_tcp("192.168.0.13", "192.168.0.3", 1, 9)
    ),
]
ATT0 = ATT(
    N("192.168.0.0/24"),
    N("192.168.0.0/24"),
    A("192.168.0.2"),
    A("192.168.0.13"),
    ((A("192.168.0.31"), A("192.168.0.3")),),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(base) - 1))
        base[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(base)))
    return bytes(base[:cut]) if draw(st.booleans()) else bytes(base)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=80), mutated()), st.booleans())
def test_parse_and_rewrite(data: bytes, verify: bool) -> None:
    try:
        p = ipv4.parse(data, verify=verify)
    except ipv4.IPv4Error:
        return
    try:
        out = ipv4.rewrite(p, src=A("10.0.0.1"), dst=A("10.0.0.2"), decrement_ttl=True)
    except ipv4.IPv4Error:
        return
    assert len(out) == p.total_length


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=80), mutated()))
def test_translator_never_crashes(data: bytes) -> None:
    for role in Role:
        t = Translator(role, ATT0)
        for side in Side:
            t.handle(side, data)  # any verdict is fine; an exception is not


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_overlay_decapsulate(data: bytes) -> None:
    try:
        f = overlay.decapsulate(data)
    except overlay.OverlayError:
        return
    assert f.payload == data[22:]
