"""The personal firewall's and the captive portal's configuration schemas (issue 12,
section 4): the configurations the service, its demo and the test rigs give pass;
out of range, oversized, wrongly typed and unknown keys are refused naming the
field, at the API (422) and at the agent (before it spawns anything)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config_checks import assert_api_checks, assert_refused, assert_taken, one_node_api
from netfate.services.firewall import SERVICE as FIREWALL
from netfate.services.firewall import policy
from netfate.services.firewall.policy import DEFAULT_RULES
from portal_rig import PortalNet

FW = "netfate.vnf.firewall:Firewall"
PORTAL = "netfate.vnf.portal:Portal"

# What policy.firewall_config gives a user's firewall with the demo's rules and
# accounting settings (services/firewall/demo.py).
FIREWALL_CFG: dict[str, Any] = {
    "user": "alice",
    "user_ip": "192.168.1.2",
    "rules": {
        "default_in": "deny",
        "default_out": "allow",
        "rules": [
            {
                "action": "deny",
                "direction": "out",
                "proto": "tcp",
                "port": 8081,
                "address": "0.0.0.0/0",
            }
        ],
    },
    "rules_version": 3,
    "accounting": {"server": "10.10.0.1:1813", "secret": "demo-secret", "interval": 0.5},
}
# The demo's portal at cpe1 (services/firewall/demo.py), with a front door.
PORTAL_CFG: dict[str, Any] = {
    "node": "cpe1",
    "port": 80,
    "interim": 5.0,
    "radius": {"server": "10.10.0.1:1812", "acct_server": "10.10.0.1:1813", "secret": "s3"},
    "garden": ["10.10.0.2"],
}


def test_the_configurations_the_service_and_its_rigs_give_pass() -> None:
    rig = PortalNet.portal_config(
        types.SimpleNamespace(net="10.78"),
        "portal-secret",  # type: ignore[arg-type]
        require_message_authenticator=False,
    )
    for function, cfg in (
        (FW, FIREWALL_CFG),
        (FW, {"user": "alice", "user_ip": "10.77.0.2", "rules": DEFAULT_RULES}),
        (FW, {**FIREWALL_CFG, "tcp_loose": True, "accounting": {"server": "127.0.0.1:1813"}}),
        (
            FW,
            {
                "user_ip": "10.0.0.1",
                "rules": {
                    "rules": [
                        {
                            "action": "allow",
                            "direction": "both",
                            "proto": "udp",
                            "port": "1000-2000",
                            "address": "10.1.2.3/8",
                            "comment": "games",
                        },
                        {"action": "deny", "direction": "in", "proto": "icmp"},
                    ]
                },
            },
        ),
        (PORTAL, PORTAL_CFG),
        (PORTAL, {}),  # every default (the steering tests' portals)
        (PORTAL, rig),
        (PORTAL, {**rig, "dhcp": {"range": "10.78.0.100,10.78.0.150,1h", "router": "10.78.0.1"}}),
        (
            PORTAL,
            {
                "node": "cpe1",
                "address": "127.0.0.1",
                "nft": False,
                "dm_port": 0,
                "port": 0,
                "radius": {"server": "127.0.0.1:1812", "secret": "x"},
            },
        ),
        (
            PORTAL,
            {
                "dm_port": None,
                "dm_address": "192.168.1.254",
                "dhcp": {
                    "range": "192.168.1.100,192.168.1.150,255.255.255.0,infinite",
                    "hosts": ["02:00:00:00:00:01,192.168.1.120,tv"],
                    "interface": "eth1",
                },
            },
        ),
        # the streaming service's portals: a viewer to its streamer on a neighbour PE
        (
            PORTAL,
            {**rig, "pinholes": [{"client": "10.78.0.10", "to": "10.79.0.5", "ports": [8080]}]},
        ),
    ):
        assert_taken(function, cfg)


BIG = "x" * 100_000
HOLE_CLIENT, HOLE_TO = "10.63.0.10", "10.62.0.250"  # a case-3 viewer and its streamer


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({**FIREWALL_CFG, "user_ip": "192.168.1.256"}, ("user_ip",)),
        ({**FIREWALL_CFG, "user_ip": "fe80::1"}, ("user_ip",)),
        ({k: v for k, v in FIREWALL_CFG.items() if k != "user_ip"}, ("user_ip",)),
        ({**FIREWALL_CFG, "user": BIG}, ("user",)),
        ({**FIREWALL_CFG, "user": "a b"}, ("user",)),
        ({**FIREWALL_CFG, "rules_version": -1}, ("rules_version",)),
        ({**FIREWALL_CFG, "rules_version": 2**32}, ("rules_version",)),
        ({**FIREWALL_CFG, "rules_version": "3"}, ("rules_version",)),
        ({**FIREWALL_CFG, "tcp_loose": "yes"}, ("tcp_loose",)),
        ({**FIREWALL_CFG, "rules": {"default_in": "reject"}}, ("rules", "default_in")),
        ({**FIREWALL_CFG, "rules": {"rules": [{}] * 513}}, ("rules", "rules")),
        (
            {
                **FIREWALL_CFG,
                "rules": {"rules": [{"action": "deny", "direction": "out", "port": 25}]},
            },
            ("rules", "rules", 0),
        ),
        (
            {
                **FIREWALL_CFG,
                "rules": {
                    "rules": [{"action": "deny", "direction": "out", "proto": "tcp", "port": 70000}]
                },
            },
            ("rules", "rules", 0),
        ),
        (
            {
                **FIREWALL_CFG,
                "rules": {
                    "rules": [{"action": "deny", "direction": "out", "address": "10.0.0.0/33"}]
                },
            },
            ("rules", "rules", 0),
        ),
        (
            {**FIREWALL_CFG, "rules": {"rules": [{"action": "deny", "direction": "up"}]}},
            ("rules", "rules", 0, "direction"),
        ),
        ({**FIREWALL_CFG, "rules": {"rules": [], "extra": 1}}, ("rules", "extra")),
        (
            {**FIREWALL_CFG, "accounting": {"server": "10.10.0.1", "secret": "s"}},
            ("accounting", "server"),
        ),  # the firewall has no default port
        ({**FIREWALL_CFG, "accounting": {"server": "10.10.0.1:0"}}, ("accounting", "server")),
        ({**FIREWALL_CFG, "accounting": {"server": "a.example:1813"}}, ("accounting", "server")),
        (
            {**FIREWALL_CFG, "accounting": {"server": "10.10.0.1:1813", "secret": BIG}},
            ("accounting", "secret"),
        ),
        (
            {**FIREWALL_CFG, "accounting": {"server": "10.10.0.1:1813", "interval": 0}},
            ("accounting", "interval"),
        ),
        (
            {**FIREWALL_CFG, "accounting": {"server": "10.10.0.1:1813", "interval": float("nan")}},
            ("accounting", "interval"),
        ),
        ({**FIREWALL_CFG, "junk": 1}, ("junk",)),
    ],
)
def test_a_bad_firewall_configuration_is_refused_naming_the_field(
    config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert_refused(FW, config, loc)


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"port": 65536}, ("port",)),
        ({"port": -1}, ("port",)),
        ({"port": "80"}, ("port",)),
        ({"node": BIG}, ("node",)),
        ({"node": "cpe1;rm"}, ("node",)),
        ({"address": "portal.example"}, ("address",)),
        ({"address": None}, ("address",)),  # the portal would show "None" in its URLs
        ({"radius": {"server": "10.0.0.1:1812", "secret": BIG}}, ("radius", "secret")),
        ({"radius": {"server": "10.0.0.1:x"}}, ("radius", "server")),
        ({"radius": {"acct_server": "10.0.0.256"}}, ("radius", "acct_server")),
        ({"radius": {"auth": "10.0.0.1:1812"}}, ("radius", "auth")),
        (
            {"radius": {"require_message_authenticator": 0}},
            ("radius", "require_message_authenticator"),
        ),
        ({"dm_port": 70000}, ("dm_port",)),
        ({"dm_address": "0.0.0.0.0"}, ("dm_address",)),
        ({"interim": 0}, ("interim",)),
        ({"interim": 1e9}, ("interim",)),
        ({"dhcp": {"range": "10.0.0.150,10.0.0.100"}}, ("dhcp", "range")),
        ({"dhcp": {"range": "10.0.0.100,10.0.0.150,1h,extra,more"}}, ("dhcp", "range")),
        ({"dhcp": {"range": "10.0.0.100,10.0.0.150 --conf-file=/etc/x"}}, ("dhcp", "range")),
        (
            {"dhcp": {"range": "10.0.0.1,10.0.0.9", "hosts": ["--dhcp-script=/bin/x"]}},
            ("dhcp", "hosts", 0),
        ),
        ({"dhcp": {"range": "10.0.0.1,10.0.0.9", "hosts": ["a"] * 257}}, ("dhcp", "hosts")),
        ({"dhcp": {"range": "10.0.0.1,10.0.0.9", "interface": "eth0 x"}}, ("dhcp", "interface")),
        ({"dhcp": {}}, ("dhcp", "range")),
        ({"garden": ["the door"]}, ("garden", 0)),
        ({"garden": ["10.0.0.1"] * 65}, ("garden",)),
        ({"signin": "http://10.0.0.1/signin"}, ("signin",)),  # no garden: unreachable
        ({"garden": ["10.0.0.1"], "signin": "http://10.0.0.2/signin"}, ("signin",)),
        ({"garden": ["10.0.0.1"], "signin": "https://10.0.0.1/signin"}, ("signin",)),
        ({"garden": ["10.0.0.1"], "signin": "http://10.0.0.1/a b"}, ("signin",)),
        ({"garden": ["10.0.0.1"], "signin": "http://10.0.0.1/" + "a" * 600}, ("signin",)),
        ({"nft": "false"}, ("nft",)),
        ({"secret": "x"}, ("secret",)),
        (
            {"pinholes": [{"client": "a viewer", "to": HOLE_TO, "ports": [8080]}]},
            ("pinholes", 0, "client"),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": "10.0.0.256", "ports": [8080]}]},
            ("pinholes", 0, "to"),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": []}]},
            ("pinholes", 0, "ports"),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": [0]}]},
            ("pinholes", 0, "ports", 0),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": [65536]}]},
            ("pinholes", 0, "ports", 0),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": list(range(1, 18))}]},
            ("pinholes", 0, "ports"),
        ),
        ({"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO}]}, ("pinholes", 0, "ports")),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": [80], "udp": True}]},
            ("pinholes", 0, "udp"),
        ),
        (
            {"pinholes": [{"client": HOLE_CLIENT, "to": HOLE_TO, "ports": [80]}] * 257},
            ("pinholes",),
        ),
    ],
)
def test_a_bad_portal_configuration_is_refused_naming_the_field(
    config: dict[str, Any], loc: tuple[str | int, ...]
) -> None:
    assert_refused(PORTAL, config, loc)


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
    with one_node_api(tmp_path, FIREWALL, "192.168.1.0/24") as c:
        yield c


def test_the_api_refuses_a_bad_portal_or_firewall_configuration_with_422(
    api: TestClient,
) -> None:
    bad = [
        ("captive-portal", {**PORTAL_CFG, "interim": -1}, ["body", "config", "interim"]),
        ("captive-portal", {"radius": {"server": "10.0.0.1:1812", "secret": 7}},
         ["body", "config", "radius", "secret"]),
        ("personal-firewall", {**FIREWALL_CFG, "user_ip": "x"}, ["body", "config", "user_ip"]),
    ]  # fmt: skip
    assert_api_checks(api, bad, [("captive-portal", PORTAL_CFG),
                                 ("personal-firewall", FIREWALL_CFG)])  # fmt: skip


def test_the_accounting_setting_is_checked_as_the_firewalls_take_it(api: TestClient) -> None:
    acct = FIREWALL_CFG["accounting"]
    for bad, loc in (
        ({**acct, "server": "10.10.0.1"}, ["body", "accounting", "server"]),
        ({**acct, "interval": -1}, ["body", "accounting", "interval"]),
        ({**acct, "junk": True}, ["body", "accounting", "junk"]),
        ({"server": "10.10.0.1:1813"}, ["body", "accounting", "secret"]),  # as it always was
    ):
        r = api.put("/api/v1/firewall/settings", json={"accounting": bad})
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["errors"]] == [loc]
    assert api.get("/api/v1/firewall/settings").json()["accounting"] is None
    assert api.put("/api/v1/firewall/settings", json={"accounting": acct}).status_code == 200
    # Read (secret hidden) and written back with a new interval: the secret stays.
    shown = api.get("/api/v1/firewall/settings").json()["accounting"]
    assert shown["secret"] != acct["secret"]
    r = api.put("/api/v1/firewall/settings", json={"accounting": {**shown, "interval": 2.0}})
    assert r.status_code == 200, r.text
    db = api.app.state.db  # type: ignore[attr-defined]
    with db.session() as s:
        assert policy.setting(s, "accounting") == {**acct, "interval": 2.0}
