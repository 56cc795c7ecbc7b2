"""What a function running dnsmasq reports of its leases (netfate/vnf/leasefile.py):
the lease length its --dhcp-range gives, and the lease file, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from netfate.vnf import leasefile


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        ("10.0.0.100,10.0.0.150,1h", 3600),
        ("10.0.0.100,10.0.0.150,255.255.255.0,45m", 2700),
        ("10.0.0.100,10.0.0.150,120", 120),
        ("10.0.0.100,10.0.0.150,2d", 172800),
        ("10.0.0.100,10.0.0.150,infinite", None),
        ("10.0.0.100,10.0.0.150", leasefile.DEFAULT_SECONDS),
        ("10.0.0.100,10.0.0.150,255.255.255.0", leasefile.DEFAULT_SECONDS),
        ("", leasefile.DEFAULT_SECONDS),
    ],
)
def test_the_lease_length_of_a_dhcp_range(spec: str, seconds: int | None) -> None:
    assert leasefile.seconds_of(spec) == seconds


def test_the_report_is_the_file_bounded_and_nothing_before_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "leases"
    assert leasefile.report(path, 60) == {"lease_file": "", "lease_seconds": 60}
    path.write_bytes(b"1 02:00:00:00:00:01 10.0.0.9 tv *\n\xff" + b"x" * leasefile.MAX_BYTES)
    got = leasefile.report(path, None)
    assert got["lease_seconds"] is None
    text = str(got["lease_file"])
    assert text.startswith("1 02:00:00:00:00:01 10.0.0.9 tv *\n\ufffd")  # undecodable: replaced
    assert len(text.encode("utf-8")) <= leasefile.MAX_BYTES + 2  # one replacement char
