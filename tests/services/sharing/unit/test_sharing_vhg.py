"""vHG pieces that need no root: dnsmasq lease parsing and the nftables document."""

from __future__ import annotations

import pytest

from netfate.vnf.vhg import firewall_ruleset
from netfate.vnf.vhg.inventory import lease_devices

LEASES = """\
0 02:00:00:00:00:01 192.168.1.100 tv *
1763712001 02:AA:00:00:00:02 192.168.1.101 * 01:02:aa:00:00:00:02
garbage line
1763712002 not-a-mac 192.168.1.102 x *
1763712003 02:00:00:00:00:04 999.1.1.1 x *
1763712004 02:00:00:00:00:05 192.168.1.105 * *
1763712005 02:00:00:00:00:06 192.168.1.106 bad;name *
"""


def test_lease_devices_keep_good_lines_in_force_only() -> None:
    got = lease_devices(LEASES, now=1763712001.5)
    assert [(d["ip"], d["mac"], d["name"]) for d in got.values()] == [
        ("192.168.1.100", "02:00:00:00:00:01", "tv"),  # expiry 0: never ends
        ("192.168.1.105", "02:00:00:00:00:05", None),
    ]
    assert all(d["source"] == "lease" for d in got.values())


def test_firewall_ruleset_masquerade_and_allow() -> None:
    doc = firewall_ruleset(
        "192.168.1.0/24", "eth0", [{"proto": "udp", "port": 9, "to": "192.168.1.5"}]
    )
    rules = [c["add"]["rule"] for c in doc["nftables"] if "add" in c and "rule" in c["add"]]
    assert any({"masquerade": None} in r["expr"] for r in rules if r["chain"] == "post")
    allow = [r for r in rules if any("counter" in e for e in r["expr"])]
    assert len(allow) == 1 and {"accept": None} in allow[0]["expr"]
    with pytest.raises(ValueError):
        firewall_ruleset("192.168.1.0/24", "eth0", [{"proto": "icmp", "port": 1}])
