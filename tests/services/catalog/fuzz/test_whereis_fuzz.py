"""Fuzz the where-is core's reading of dnsmasq's lease file (services/catalog/whereis.py):
the text comes from a function on a node, so it is untrusted. Any text gives leases
and refusals, never another exception; every line is a lease, a refusal (with its
line number and a reason) or a DHCPv6 "duid" line; each lease is as dnsmasq would
write it (a lower-case Ethernet MAC, an IPv4 address, a DNS label or none).

Hypothesis here; coverage-guided (atheris) in test_whereis_atheris.py.
"""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netfate.proto import dnsmasq
from netfate.services.catalog import whereis as core

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def check(text: str) -> None:
    """The invariants, for this feed and atheris's."""
    leases, refused = dnsmasq.parse_lease_file(text)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    duids = sum(line.startswith("duid ") for line in lines[: dnsmasq.MAX_LINES])
    if len(lines) <= dnsmasq.MAX_LINES:
        assert len(leases) + len(refused) + duids == len(lines)
    for le in leases:
        assert MAC.match(le.mac) and ipaddress.IPv4Address(le.ip)
        assert 0 <= le.expires < dnsmasq.MAX_EXPIRY
        assert le.hostname is None or (le.hostname.isascii() and le.hostname.isprintable())
    for r in refused:
        assert 1 <= r.line <= len(lines) and r.reason
        assert r.text.isascii() and r.text.isprintable() and len(r.text) <= dnsmasq.SHOWN
    sightings = core.lease_sightings(leases, {le.mac: "u" for le in leases}, "n", 60, "f", 1.0)
    assert len(sightings) == len(leases)
    core.locate(sightings, now=1.0)


@FUZZ
@given(st.text(max_size=600))
def test_any_text(text: str) -> None:
    check(text)


@FUZZ
@given(st.binary(max_size=600))
def test_any_bytes_as_the_function_reports_them(raw: bytes) -> None:
    check(raw.decode("utf-8", "replace"))  # vnf/leasefile.py reads them so


field = st.one_of(
    st.sampled_from(["*", "0", "1763712000", "02:00:00:00:00:01", "192.168.1.9", "tv", "01:02"]),
    st.text(max_size=20),
    st.integers(-(2**70), 2**70).map(str),
)


@FUZZ
@given(st.lists(st.lists(field, min_size=1, max_size=7).map(" ".join), max_size=20))
def test_lines_made_of_lease_fields(lines: list[str]) -> None:
    check("\n".join(lines))
