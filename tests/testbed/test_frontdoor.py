"""The front door on a real testbed with the SDN controller (bridges in secure mode:
nothing passes but what the fabric's intents allow): Chromium runs inside a host's
namespace and opens the door's service address (the transit network's last, behind
the first node), which `testbed up` started; the root namespace has no route into
the emulated network.

- from a host of the first node (through its gateway) and from a host of another
  node (across the fabric), the door answers; the operator's API through it is 404
  before the orchestrator sees it, and a page that is not signed in gets 401;
- alice signs in from the page (the session API, as the pages do), sees herself,
  her own Personal Network and not bob's (404), on the owners' page her PN;
- on the firewall page she signs in as her firewall user and sees her rules, not
  bob's;
- wrong passwords from the other host are throttled for that host only: the
  orchestrator counts the real client behind the door.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from browser import call, chromium
from netfate.demo.platform import Api
from netfate.model.topology import Topology
from netfate.testbed.builder import Testbed
from sdn_rig import TWO_HOMES

ALICE, BOB = "alice@home.example", "bob@home.example"
PASSWORD = "a user's password here"
T = 30_000


@pytest.fixture(scope="module")
def tb() -> Iterator[Testbed]:
    tb = Testbed.up(Topology.from_yaml(TWO_HOMES), sdn=True, prometheus=False)
    try:
        assert tb.api_url and tb.door_url
        api = Api(tb.api_url)
        for email, node, port in ((ALICE, "cpe1", 8081), (BOB, "cpe2", 9091)):
            api("POST", "/accounts", {"name": email, "role": "user", "password": PASSWORD})
            api("POST", "/sharing/pns", {"email": email, "node": node})
            rules = {"default_in": "deny", "default_out": "allow",
                     "rules": [{"action": "deny", "direction": "out", "proto": "tcp",
                                "port": port}]}  # fmt: skip
            api("POST", "/firewall/users", {"name": email.split("@")[0], "password": PASSWORD,
                                            "rules": rules})  # fmt: skip
        yield tb
    finally:
        problems = tb.down()
        assert not problems, problems


def test_the_door_is_inside_the_network_only(tb: Testbed) -> None:
    """The door's address is in the run's transit network, and the root namespace has
    no route into it (the door's process reaches the orchestrator on loopback)."""
    assert tb.door_url == f"http://{tb.topology.door_ip}"
    assert tb.topology.door_ip in tb.topology.transit
    shown = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert str(tb.topology.transit.network_address) not in shown
    assert str(tb.topology.door_ip) not in shown


def test_a_user_signs_in_through_the_door_and_sees_only_her_own(tb: Testbed) -> None:
    base = tb.door_url
    with chromium(netns=tb.netns_of("laptop1")) as browser:
        page = browser.new_page()
        page.goto(f"{base}/api/v1/sharing/page?pn={ALICE}", timeout=T)
        # Not signed in: 401; the operator's API: refused at the door.
        assert call(page, "GET", "/api/v1/auth/me")[0] == 401
        for path in ("/api/v1/nodes", "/api/v1/accounts", "/api/v1/instances",
                     "/api/v1/sdn/intents", "/api/v1/firewall/users"):  # fmt: skip
            assert call(page, "GET", path) == (404, '{"detail":"not found"}'), path
        status, _ = call(page, "POST", "/api/v1/auth/session",
                         {"name": ALICE, "password": PASSWORD})  # fmt: skip
        assert status == 200
        status, me = call(page, "GET", "/api/v1/auth/me")
        assert status == 200 and f'"name":"{ALICE}"' in me and '"role":"user"' in me
        assert call(page, "GET", f"/api/v1/sharing/pns/{ALICE}")[0] == 200
        assert call(page, "GET", f"/api/v1/sharing/pns/{BOB}")[0] == 404
        # The owners' page, signed in: her PN.
        page.goto(f"{base}/api/v1/sharing/page?pn={ALICE}", timeout=T)
        page.get_by_text(ALICE).first.wait_for(timeout=T)
        # The firewall page: her rules, not bob's.
        page.goto(f"{base}/api/v1/firewall/me", timeout=T)
        page.fill("#user", "alice")
        page.fill("#password", PASSWORD)
        page.click("#signin button")
        page.wait_for_selector("#editor:not([hidden])", timeout=T)
        assert "Signed in as alice" in page.inner_text("#who")
        ports = page.locator("#rules tbody [name=port]").evaluate_all(
            "(els) => els.map((e) => e.value)"
        )
        assert ports == ["8081"]
        # Signed out: 401 again.
        assert call(page, "DELETE", "/api/v1/auth/session")[0] == 200
        assert call(page, "GET", "/api/v1/auth/me")[0] == 401


def test_sign_in_throttling_counts_the_host_behind_the_door(tb: Testbed) -> None:
    base = tb.door_url
    with chromium(netns=tb.netns_of("laptop2")) as browser:
        page = browser.new_page()
        page.goto(f"{base}/api/v1/sharing/page", timeout=T)
        wrong = {"name": BOB, "password": "not the password"}
        codes = [call(page, "POST", "/api/v1/auth/session", wrong)[0] for _ in range(10)]
        assert codes == [401] * 10
        right = {"name": BOB, "password": PASSWORD}
        assert call(page, "POST", "/api/v1/auth/session", right)[0] == 429  # laptop2 waits
    with chromium(netns=tb.netns_of("laptop1")) as browser:
        page = browser.new_page()
        page.goto(f"{base}/api/v1/sharing/page", timeout=T)
        assert call(page, "POST", "/api/v1/auth/session", right)[0] == 200  # laptop1 does not
