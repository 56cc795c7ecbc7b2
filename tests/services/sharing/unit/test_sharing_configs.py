"""The Virtual Presence's and the vHG's configuration schemas (issue 12, section 4):
the configurations the netns rigs and the bench give pass (the workflow's own are
checked in test_sharing_api.py); out of range, oversized, wrongly typed and unknown
keys, and an ATT the VP itself would refuse, are refused naming the field, at the
API (422) and at the agent (before it spawns anything)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config_checks import assert_api_checks, assert_refused, assert_taken, one_node_api
from netfate.services.sharing import SERVICE as SHARING
from vp_rig import ATT, ATT_SPLIT, VP_FUNCTION, vp_configs

VHG = "netfate.vnf.vhg:Vhg"
IFS = {k: f"nftab12{k}" for k in "abcdef"}
# The netns test's vHG (tests/services/sharing/netns/test_vp_vhg.py) as the workflow
# names it (workflow.start_vhg: its PN, and no gateway when the node has no LAN).
VHG_CFG: dict[str, Any] = {
    "pn": "alice@home.example",
    "subnet": "192.168.77.0/24",
    "dhcp_first": "192.168.77.100",
    "dhcp_last": "192.168.77.149",
    "upstream_gateway": "192.168.77.1",
    "ifname": "nftab12v",
    "allow": [{"proto": "udp", "port": 9001}, {"port": 80, "to": "192.168.77.5"}],
}
VP2 = vp_configs(
    IFS, {"att": ATT, "share": 3, "vi_prefixlen": 24, "underlay_mtu": 1550, "alg": True}
)["vp2"]
"""VP2 of the overlapping PNs' share (tests/services/sharing/netns/test_vp_dlna.py)."""


def test_the_configurations_the_rigs_and_the_workflow_give_pass() -> None:
    split = vp_configs(
        IFS,
        {"att": ATT_SPLIT, "share": 65535, "vi_prefixlen": 24, "underlay_mtu": 1550, "alg": True},
    )
    workflow = {
        **VP2,
        "vi": "eth0",
        "underlay_dev": "eth0",
        "http_ports": [8200],
        "icmp_tap": True,
        "link_mtu": 1550,
        "underlay_onlink": True,
    }
    for function, cfg in (
        (VHG, VHG_CFG),
        (VHG, {**VHG_CFG, "upstream_gateway": None, "allow": [], "lease_seconds": 600}),
        (VHG, {k: VHG_CFG[k] for k in ("subnet", "dhcp_first", "dhcp_last")}),
        (VHG, {**VHG_CFG, "forwards": FWD}),
        (VP_FUNCTION, VP2),
        (VP_FUNCTION, split["vp1"]),
        (VP_FUNCTION, split["vp2"]),
        (VP_FUNCTION, workflow),
        (VP_FUNCTION, {**VP2, "att": {**ATT, "entries": []}}),
    ):
        assert_taken(function, cfg)


BIG = "x" * 100_000
FWD = [
    {"proto": "tcp", "port": 8080, "to": "192.168.77.5", "to_port": 80},
    {"proto": "udp", "port": 8080, "to": "192.168.77.6"},  # another protocol: no clash
]


def _att(**kw: Any) -> dict[str, Any]:
    return {**VP2, "att": {**ATT, **kw}}


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({**VHG_CFG, "subnet": "192.168.77.1/24"}, ("subnet",)),  # host bits: the vHG refuses
        ({**VHG_CFG, "subnet": "192.168.77.0/33"}, ("subnet",)),
        ({**VHG_CFG, "subnet": BIG}, ("subnet",)),
        ({**VHG_CFG, "dhcp_first": "192.168.78.100"}, ("dhcp_first",)),
        ({**VHG_CFG, "dhcp_last": "192.168.77.99"}, ("dhcp_last",)),  # below the first
        ({**VHG_CFG, "dhcp_last": 3232255381}, ("dhcp_last",)),
        ({k: v for k, v in VHG_CFG.items() if k != "subnet"}, ("subnet",)),
        ({**VHG_CFG, "upstream_gateway": "gw"}, ("upstream_gateway",)),
        ({**VHG_CFG, "allow": [{"proto": "icmp", "port": 1}]}, ("allow", 0, "proto")),
        ({**VHG_CFG, "allow": [{"port": 0}]}, ("allow", 0, "port")),
        ({**VHG_CFG, "allow": [{"port": 80, "to": "192.168.77.5/32"}]}, ("allow", 0, "to")),
        ({**VHG_CFG, "allow": [{"port": 80, "from": "x"}]}, ("allow", 0, "from")),
        ({**VHG_CFG, "allow": [{"port": 80}] * 257}, ("allow",)),
        ({**VHG_CFG, "allow": [{"port": 80, "to": "10.0.0.5"}]}, ("forwards",)),
        ({**VHG_CFG, "forwards": [{**FWD[0], "to": "192.168.78.5"}]}, ("forwards",)),
        ({**VHG_CFG, "forwards": [{**FWD[0], "to": "192.168.77.255"}]}, ("forwards",)),
        ({**VHG_CFG, "forwards": [FWD[0], {**FWD[0], "to": "192.168.77.9"}]}, ("forwards",)),
        ({**VHG_CFG, "forwards": [{**FWD[0], "port": 65536}]}, ("forwards", 0, "port")),
        ({**VHG_CFG, "forwards": [{**FWD[0], "to_port": 0}]}, ("forwards", 0, "to_port")),
        ({**VHG_CFG, "forwards": [{**FWD[0], "proto": "sctp"}]}, ("forwards", 0, "proto")),
        ({**VHG_CFG, "forwards": [{"port": 80}]}, ("forwards", 0, "to")),
        ({**VHG_CFG, "forwards": [FWD[0]] * 257}, ("forwards",)),
        ({**VHG_CFG, "ifname": "eth0/../x"}, ("ifname",)),
        ({**VHG_CFG, "lease_seconds": 5}, ("lease_seconds",)),
        ({**VHG_CFG, "pn": BIG}, ("pn",)),
        ({**VHG_CFG, "dns": "8.8.8.8"}, ("dns",)),
    ],
)
def test_a_bad_vhg_configuration_is_refused_naming_the_field(
    config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert_refused(VHG, config, loc)


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({**VP2, "role": "vp3"}, ("role",)),
        ({**VP2, "share": -1}, ("share",)),
        ({**VP2, "share": 65536}, ("share",)),  # the VNI, marks and MACs keep 16 bits
        ({**VP2, "share": "3"}, ("share",)),
        ({**VP2, "vi": "a" * 16}, ("vi",)),
        ({**VP2, "underlay_dev": ""}, ("underlay_dev",)),
        ({**VP2, "vi_prefixlen": 33}, ("vi_prefixlen",)),
        ({**VP2, "local_underlay": "172.31.0"}, ("local_underlay",)),
        ({**VP2, "overlay_local": "10.0.0.1"}, ("overlay_local",)),  # needs its prefix
        ({**VP2, "overlay_remote": "10.0.0.2/30"}, ("overlay_remote",)),
        ({**VP2, "underlay_mtu": 100}, ("underlay_mtu",)),
        ({**VP2, "link_mtu": 65536}, ("link_mtu",)),
        ({**VP2, "http_ports": [0]}, ("http_ports", 0)),
        ({**VP2, "http_ports": list(range(1, 66))}, ("http_ports",)),
        ({**VP2, "alg": 1}, ("alg",)),
        ({**VP2, "junk": None}, ("junk",)),
        ({k: v for k, v in VP2.items() if k != "att"}, ("att",)),
        (_att(pn1="192.168.0.0/40"), ("att", "pn1")),
        (_att(shared_device="192.168.1.2"), ("att",)),  # not in PN1: the ATT refuses it
        (_att(import_alias="10.0.0.1"), ("att",)),
        (
            _att(entries=[["192.168.0.31", "192.168.0.3"], ["192.168.0.31", "192.168.0.4"]]),
            ("att",),
        ),  # an alias twice
        (_att(entries=[["192.168.0.31"]]), ("att", "entries", 0)),
        (_att(entries=[["192.168.0.31", "192.168.0.3", "192.168.0.4"]]), ("att", "entries", 0)),
        (_att(entries=[["192.168.0.1", "192.168.0.2"]] * 4097), ("att", "entries")),
        (_att(extra=1), ("att", "extra")),
    ],
)
def test_a_bad_virtual_presence_configuration_is_refused_naming_the_field(
    config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert_refused(VP_FUNCTION, config, loc)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    with one_node_api(tmp_path, SHARING, "192.168.77.0/24") as c:
        yield c


def test_the_api_refuses_a_bad_vhg_or_vp_configuration_with_422(api: TestClient) -> None:
    bad = [
        ("vhg", {**VHG_CFG, "lease_seconds": 10**12}, ["body", "config", "lease_seconds"]),
        ("virtual-presence", _att(import_alias="192.168.0.0/24"),
         ["body", "config", "att", "import_alias"]),
    ]  # fmt: skip
    assert_api_checks(api, bad, [("vhg", VHG_CFG), ("virtual-presence", VP2)])
