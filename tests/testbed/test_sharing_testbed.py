"""Device sharing on a real testbed: orchestrator, agents, OVS, VP and vHG processes.

The hotel scenario end to end (III.A steps 1-8 with real VPs, usable from the
hotel's hosts, isolation, revocation by either owner), three cameras into one
PN at once, and the vHG's DHCP + inventory as the orchestrator sees it.

The sharing scenarios run with the SDN controller (bridges in secure mode), as
`netfate demo sharing` does: that is what isolates the PNs. The negative tests
(no host of one PN reaches a host of another directly, by ping, TCP or UDP,
either way, third PN included; nothing through a share but what it is for) run
before any share, with shares up and after revocation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netfate.demo.platform import Api
from netfate.host import netns
from netfate.services.sharing import demo
from netfate.testbed.builder import Testbed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def hotel() -> Iterator[Testbed]:
    bed = Testbed.up(EXAMPLES / "hotel.yaml", sdn=True)
    try:
        yield bed
    finally:
        problems = bed.down()
        assert not problems, problems
        assert netns.list_with_prefix(bed.prefix + "-") == []


def test_hotel_demo_check(hotel: Testbed) -> None:
    said: list[str] = []
    demo.check(hotel, said.append)
    text = "\n".join(said)
    assert "tv (192.168.2.2) uses mediaserver" in text
    # The probes can tell: before any PN the LANs are routed to each other.
    assert "before PNs: " in text
    for when in ("PNs, no share", "1 shares up", "shares revoked"):
        assert f"{when}: none of 16 host pairs across PNs gets through directly" in text
    assert "laptop (not shared) cannot reach" in text
    assert "carolpc (a third PN) gets nothing" in text
    assert "carolpc (third PN) got none" in text
    assert "broadcast of mediaserver reaches tv, guestphone from" in text
    assert "MTU: 1500-byte DF pings cross tv <-> mediaserver whole" in text
    assert text.count("revoked by") == 1
    if demo.dlna_available():
        assert "DLNA: tv discovered 'home-nas'" in text


def test_bad_share_requests_on_a_live_orchestrator(hotel: Testbed) -> None:
    assert hotel.api_url
    api = Api(hotel.api_url)
    import httpx

    r = httpx.post(
        hotel.api_url + "/api/v1/sharing/shares",
        json={"owner": demo.email(hotel, "home"), "device": "tv",
              "recipient": demo.email(hotel, "hotel")},
    )  # fmt: skip
    assert r.status_code == 403 and "only its own devices" in r.json()["detail"]
    shares = api("GET", "/sharing/shares")
    assert all(s["state"] in ("revoked", "failed", "declined") for s in shares)


@pytest.mark.parametrize(
    ("example", "expect"),
    [
        ("surveillance", ["console (192.168.50.2) uses cam1", "console (192.168.50.2) uses cam2",
                          "console (192.168.50.2) uses cam3"]),
        ("classroom", ["board (192.168.10.2) uses tlaptop", "board (192.168.10.2) uses s1tablet",
                       "board (192.168.10.2) uses s2tablet"]),
    ],
)  # fmt: skip
def test_several_pns_into_one(example: str, expect: list[str]) -> None:
    """Three cameras (three LANs) into the operator's PN; teacher and students into the class."""
    bed = Testbed.up(EXAMPLES / f"{example}.yaml", sdn=True)
    try:
        said: list[str] = []
        demo.check(bed, said.append)
        text = "\n".join(said)
        for line in expect:
            assert line in text
        assert text.count("revoked by") == 3
        assert "3 shares up: none of 12 host pairs across PNs gets through directly" in text
    finally:
        problems = bed.down()
        assert not problems, problems


def test_two_devices_between_the_same_two_pns(hotel: Testbed) -> None:
    """Media server and laptop of home both shared with the hotel: distinct aliases each way."""
    assert hotel.api_url
    api = Api(hotel.api_url)
    a = demo.share_and_accept(hotel, api, "home", "mediaserver", "hotel")
    b = demo.share_and_accept(hotel, api, "home", "laptop", "hotel")
    assert a.alias != b.alias
    assert not {x for x, _ in a.att["entries"]} & {x for x, _ in b.att["entries"]}
    said: list[str] = []
    for sh in (a, b):
        demo.prove_usable(hotel, sh, said.append)
    assert any("tv (192.168.2.2) uses laptop" in s for s in said)
    demo.revoke(hotel, api, a, "home", said.append)
    demo.prove_usable(hotel, b, said.append)  # the other share is untouched
    demo.revoke(hotel, api, b, "hotel", said.append)


def test_share_again_after_revocation_reuses_the_alias(hotel: Testbed) -> None:
    """The freed alias goes to a new VP with another MAC: hosts must follow (gratuitous ARP)."""
    assert hotel.api_url
    api = Api(hotel.api_url)
    aliases = []
    for by in ("home", "hotel"):
        sh = demo.share_and_accept(hotel, api, "home", "mediaserver", "hotel")
        aliases.append(sh.alias)
        demo.prove_usable(hotel, sh, lambda _m: None)
        demo.revoke(hotel, api, sh, by, lambda _m: None)
    assert aliases[0] == aliases[1]


def test_both_directions_at_once(hotel: Testbed) -> None:
    """Home shares its media server with the hotel while the hotel shares its TV with home."""
    assert hotel.api_url
    api = Api(hotel.api_url)
    a = demo.share_and_accept(hotel, api, "home", "mediaserver", "hotel")
    b = demo.share_and_accept(hotel, api, "hotel", "tv", "home")
    said: list[str] = []
    for sh in (a, b):
        demo.prove_usable(hotel, sh, said.append)
        demo.prove_group_traffic(hotel, sh, said.append, [x for x in (a, b) if x is not sh])
        demo.prove_isolation(hotel, sh, said.append)
    # tv is shared with home, and uses home's media server: still no direct path.
    demo.prove_direct_isolation(hotel, said.append, "both ways shared")
    assert any("laptop (192.168.1.3) uses tv" in s for s in said)
    assert any("tv (192.168.2.2) uses mediaserver" in s for s in said)
    demo.revoke(hotel, api, a, "hotel", said.append)
    demo.revoke(hotel, api, b, "home", said.append)


LEASE_ONLY = """#!/bin/sh
# udhcpc event script that only records the offer: the host keeps its static address
case "$1" in bound|renew) echo "$ip $router" > "$LEASE_OUT" ;; esac
exit 0
"""


def test_vhg_of_a_pn_serves_dhcp_on_its_lan(tmp_path: Path) -> None:
    """A PN created with its vHG: the vHG instance runs on the PN's node and a host of
    the LAN gets a lease from its pool with the vHG as router."""
    import httpx

    bed = Testbed.up(EXAMPLES / "hotel.yaml")
    try:
        assert bed.api_url
        api = Api(bed.api_url)
        pn = api("POST", "/sharing/pns", {"email": "alice@home.example", "node": "home",
                                          "vhg": True})  # fmt: skip
        inst = api.wait_state(pn["vhg_instance"], "running")
        vhg_ip = inst["ip"].split("/")[0]
        script = tmp_path / "lease.sh"
        script.write_text(LEASE_ONLY)
        script.chmod(0o755)
        out = tmp_path / "lease.txt"
        netns.run_in(
            bed.netns_of("laptop"),
            ["env", f"LEASE_OUT={out}", "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f",
             "-t", "5", "-T", "1", "-s", str(script)],
            timeout=30,
        )  # fmt: skip
        ip, router = out.read_text().split()
        assert 100 <= int(ip.split(".")[-1]) <= 149 and ip.startswith("192.168.1.")
        assert router == vhg_ip
        r = httpx.get(f"{bed.api_url}/api/v1/sharing/pns/alice@home.example")
        assert r.json()["vhg_instance"] == inst["id"]
        # The lease reaches the PN's inventory by itself: the vHG's own figures travel
        # in its agent's reports (bounded wait for the next report, no timing claim).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            devs = httpx.get(f"{bed.api_url}/api/v1/sharing/pns/alice@home.example/devices")
            found = {d["ip"]: d for d in devs.json()}
            if ip in found:
                break
            time.sleep(0.5)
        assert found.get(ip, {}).get("source") == "lease", found
    finally:
        problems = bed.down()
        assert not problems, problems
