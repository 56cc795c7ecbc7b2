"""Fuzz the ctnetlink entry parser (vnf/firewall/conntrack.py): any bytes give an
entry, None (not one we move) or ConntrackError, never another exception; a
message built from an entry parses back to it, and a byte changed in one gives an
entry, None or ConntrackError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from netfate.vnf.firewall.conntrack import (
    TCP_STATES,
    ConntrackError,
    Entry,
    ct_new_body,
    parse_ct_message,
)


def _parse(data: bytes) -> Entry | None:
    try:
        return parse_ct_message(data)
    except ConntrackError:
        return None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    got = _parse(data)
    assert got is None or isinstance(got, Entry)


ips = st.ip_addresses(v=4).map(str)
ports = st.integers(0, 65535)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    proto = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    sport, dport = draw(ports), draw(ports)
    if proto == "icmp":
        dport = sport
    src, dst = draw(ips), draw(ips)
    return Entry(
        proto, src, dst, sport, dport, dst, src, dport, sport,
        draw(st.sampled_from(TCP_STATES)) if proto == "tcp" else None,
        draw(st.integers(1, 5 * 86400)), draw(st.booleans()),
        draw(st.integers(0, 0xFFFFFFFF)), draw(st.booleans()),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(entries(), st.integers(0, 10_000), st.integers(0, 255))
def test_round_trip_and_one_byte_changed(e: Entry, where: int, byte: int) -> None:
    body = ct_new_body(e)
    assert parse_ct_message(body) == e
    changed = bytearray(body)
    changed[where % len(changed)] = byte
    got = _parse(bytes(changed))
    assert got is None or isinstance(got, Entry)
