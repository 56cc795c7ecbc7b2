"""Fuzz the discovery ALG parsers: accepted, or AlgError; never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.proto.ssdp import AlgError, parse_head, rewrite_a_records, rewrite_ssdp

SEEDS = [
    b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nLOCATION: http://192.168.1.2:8200/"
    b"rootDesc.xml\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nST: ssdp:all\r\nLOCATION: http://192.168.1.2:8200/x\r\n\r\n",
    b"\x00\x00\x84\x00\x00\x00\x00\x01\x00\x00\x00\x00\x05local\x00\x00\x01\x80\x01\x00\x00"
    b"\x00x\x00\x04\xc0\xa8\x01\x02",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    b = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
    return bytes(b[: draw(st.integers(0, len(b)))])


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), mutated()))
def test_alg_parsers(data: bytes) -> None:
    for fn in (
        lambda: rewrite_ssdp(data, "192.168.1.2", "192.168.2.4"),
        lambda: parse_head(data),
        lambda: rewrite_a_records(data, "192.168.1.2", "192.168.2.4"),
    ):
        try:
            out = fn()
        except AlgError:
            continue
        assert out is None or isinstance(out, (bytes, tuple))
