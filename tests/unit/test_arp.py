"""proto/arp: the frames agents and Virtual Presence functions send (RFC 826, RFC 5227)."""

from __future__ import annotations

import pytest

from netfate.proto.arp import announcement, request

MAC = "02:00:00:00:00:0a"


def test_announcement_names_our_address_as_sender_and_target() -> None:
    f = announcement(MAC, "10.0.0.5")
    assert len(f) == 42
    assert f[:6] == b"\xff" * 6 and f[6:12] == bytes.fromhex("02000000000a")
    assert f[12:14] == b"\x08\x06"
    assert f[14:22] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, request
    assert f[22:28] == f[6:12] and f[28:32] == bytes([10, 0, 0, 5])  # sha, spa
    assert f[32:38] == b"\x00" * 6 and f[38:42] == bytes([10, 0, 0, 5])  # tha, tpa


def test_request_differs_from_the_announcement_only_in_its_target() -> None:
    a, r = announcement(MAC, "10.0.0.5"), request(MAC, "10.0.0.5", "10.0.0.9")
    assert r[:38] == a[:38] and r[38:] == bytes([10, 0, 0, 9])


def test_bad_addresses_are_refused() -> None:
    with pytest.raises(ValueError):
        announcement("02:00:00:00:0a", "10.0.0.5")
    with pytest.raises(ValueError):
        request(MAC, "10.0.0.5", "not an address")
