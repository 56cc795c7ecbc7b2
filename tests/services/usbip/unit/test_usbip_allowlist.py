"""The HRH allow-list: which busid is exported to which client (pure model)."""

from __future__ import annotations

from netfate.vnf.usbip_host import AllowList, AllowRule


def test_deny_by_default() -> None:
    assert not AllowList().permits("1-1", address="127.0.0.1")
    assert AllowList().visible(["1-1", "1-2"], address="127.0.0.1") == []


def test_rules_by_busid_network_and_identity() -> None:
    allow = AllowList.from_mapping(
        {"1-1": ["10.0.0.0/8", "isp-fn-7"], "1-2": ["192.0.2.5"], "*": ["::1"]}
    )
    assert allow.permits("1-1", address="10.1.2.3")
    assert not allow.permits("1-1", address="192.0.2.5")
    assert allow.permits("1-1", identity="isp-fn-7")
    assert not allow.permits("1-1", identity="someone-else")
    assert allow.permits("1-2", address="192.0.2.5")
    assert allow.visible(["1-1", "1-2", "1-3"], address="::1") == ["1-1", "1-2", "1-3"]
    assert allow.visible(["1-1", "1-2", "1-3"], address="10.9.9.9") == ["1-1"]


def test_garbage_address_matches_nothing() -> None:
    rule = AllowRule.parse("*", ["127.0.0.0/8"])
    assert not rule.matches("1-1", "not-an-ip", None)
    assert not rule.matches("1-1", None, None)
    assert rule.identities == frozenset()


def test_open_to_and_wildcard_identity() -> None:
    assert AllowList.open_to("127.0.0.0/8").permits("9-9", address="127.0.0.2")
    assert AllowList.from_mapping({"1-1": ["*"]}).permits("1-1", identity="anyone")
