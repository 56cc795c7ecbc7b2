"""Fuzz the discovery ALG's parsers: accepted, or their one error type; never another
exception. SSDP and HTTP heads, mDNS rewriting and the DNS codec, HTTP/RTSP framing
and rewriting (same output however the bytes are split)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alg_vectors import LIBUPNP_RESPONSE, NOTIFY, RESPONSE, ZEROCONF_ANSWER, ZEROCONF_QU
from netfate.proto import dns
from netfate.proto.ssdp import (
    AddressMap,
    AlgError,
    MessageReader,
    MessageRewriter,
    decode,
    parse_head,
    rewrite_mdns,
    rewrite_ssdp,
)

AMAP = AddressMap([("192.168.1.2", "192.168.0.13"), ("192.168.1.31", "192.168.0.3")])
SEEDS = [
    NOTIFY,
    RESPONSE,
    LIBUPNP_RESPONSE,
    ZEROCONF_ANSWER,
    ZEROCONF_QU,
    b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\x05local\x00\x00\x01\x80\x01\x00\x00"
    b"\x00x\x00\x04\xc0\xa8\x01\x02",
]
STREAMS = [
    b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\n<a>19\r\na;x=1\r\n2.168.1.2<\r\n0\r\nT: 1\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 4\r\n\r\nabcd"
    b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\nhttp://192.168.1.2:80/",
    b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp\r\nContent-Length: 30\r\n"
    b"\r\nv=0\r\nc=IN IP4 192.168.1.2\r\n\r\n$\x00\x00\x03abc"
    b"GET_PARAMETER rtsp://192.168.1.2/ RTSP/1.0\r\nCSeq: 3\r\n\r\n",
]


def mutate(draw: st.DrawFn, seed: bytes) -> bytes:
    b = bytearray(seed)
    for _ in range(draw(st.integers(0, 8))):
        if b:
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b[: draw(st.integers(0, len(b)))])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    return mutate(draw, draw(st.sampled_from(SEEDS)))


@st.composite
def mutated_stream(draw: st.DrawFn) -> bytes:
    return mutate(draw, draw(st.sampled_from(STREAMS)))


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.binary(max_size=300), mutated()))
def test_datagram_parsers(data: bytes) -> None:
    for fn in (
        lambda: rewrite_ssdp(data, AMAP, "192.168.1.2"),
        lambda: parse_head(data),
        lambda: rewrite_mdns(data, AMAP, "192.168.1.2"),
    ):
        try:
            fn()
        except AlgError:
            continue
    try:
        msg = dns.parse(data)
    except dns.DnsError:
        return
    # Whatever parses builds, and reads back as the same message.
    assert dns.parse(dns.build(msg)) == msg


def run_stream(protocol: str, pieces: list[bytes]) -> tuple[bytes, set[int]] | None:
    """Frame and rewrite one direction fed in `pieces`: (bytes out, ports learned), or
    None when it is refused (AlgError, the only exception allowed)."""
    reader = MessageReader(protocol)
    for _ in range(4):
        reader.expect("GET")
    rw = MessageRewriter(AMAP, device="192.168.1.2", max_text=4096)
    out = b""
    try:
        for p in pieces:
            out += rw.feed(reader.feed(p))
        out += rw.feed(reader.feed_eof())
    except AlgError:
        return None
    return out, rw.learned


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["http", "rtsp"]),
    st.one_of(st.binary(max_size=300), mutated_stream()),
    st.lists(st.integers(1, 64), max_size=20),
)
def test_stream_framing_and_rewrite(protocol: str, data: bytes, cuts: list[int]) -> None:
    pieces, i = [], 0
    for c in cuts:
        pieces.append(data[i : i + c])
        i += c
    pieces.append(data[i:])
    # Framing does not depend on how the bytes arrive (a refusal may come earlier or
    # later, but never only one way).
    assert run_stream(protocol, [data]) == run_stream(protocol, pieces)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["gzip", "deflate", "x-gzip", "br", ""]), st.binary(max_size=200))
def test_decode(coding: str, data: bytes) -> None:
    try:
        out = decode(data, coding, 1000)
    except AlgError:
        return
    assert len(out) <= 1000
