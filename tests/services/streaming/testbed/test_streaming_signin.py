"""A new client is first sent to the front-end to sign in (the paper's front-end
redirection), on the paper's testbed (services/streaming/topologies/streaming.yaml).

The viewers' access PEs (pe2: the phone, pe3: the tablet) run the firewall
service's captive portal, started by the streaming service itself
(NETFATE_STREAMING_PORTALS names the PEs), with the run's front door as its walled
garden and the front-end's sign-in (through the door) as where captive clients go
(`signin`); the test makes each its host's gateway (what the PE's DHCP would say).
Then:

- the phone's browser (Chromium in its namespace) asks for a page of another site:
  the portal sends it to the sign-in; it signs in with its account and lands on the
  user's app, whose Discover shows the providers and their schedules;
- the tablet, not signed in, gets only the redirect: another site's page sends it to
  the sign-in, the app's page sends it to the sign-in, the app's data is refused (401).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from browser import chromium
from netfate.demo.platform import Api
from netfate.services.streaming.demo import PROVIDERS, TOPOLOGY, appears
from netfate.testbed.builder import Testbed
from testbed_procs import until

S = "/streaming"
APP = "/api/v1/streaming/app"
PASSWORD = "the sign-in test's password"
T = 60_000
"""Milliseconds the page gets for each state."""


class Scene:
    def __init__(self, tb: Testbed) -> None:
        assert tb.api_url and tb.door_url
        self.tb, self.api, self.door = tb, Api(tb.api_url), tb.door_url
        self.signin = f"{self.door}/signin?next={APP}"
        self.portals: dict[str, str] = {}
        self.sites: dict[str, str] = {}

    def portal(self, host: str) -> None:
        """The captive portal the streaming service started at ``host``'s PE, the
        host's gateway from now on (what the portal's DHCP would say; the testbed's
        hosts have static addresses)."""
        (h,) = [h for h in self.api("GET", "/hosts") if h["name"] == host]
        inst = until(
            f"the service's portal at {h['node']}", appears(self.api, f"portal-{h['node']}"), 60
        )
        assert inst["descriptor"] == "captive-portal", inst
        assert inst["config"]["garden"] == [str(self.tb.topology.door_ip)], inst
        assert inst["config"]["signin"] == self.signin, inst
        inst = self.api.wait_state(inst["id"], "running", timeout=60)
        ip = str(ipaddress.ip_interface(inst["ip"]).ip)
        self.tb.exec(host, ["ip", "route", "replace", "default", "via", ip])
        self.portals[host] = ip

    def curl(self, host: str, *args: str) -> str:
        r = self.tb.exec(host, ["curl", "-s", "-m", "10", *args], check=False)
        return str(r.stdout)


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    """A provider and its schedule; captive portals for the phone and the tablet."""
    with pytest.MonkeyPatch.context() as env:
        # The viewers' PEs (the phone's, the tablet's) whose portals the service starts.
        env.setenv("NETFATE_STREAMING_PORTALS", "pe2,pe3")
        tb = Testbed.up(TOPOLOGY)
    try:
        sc = Scene(tb)
        sc.api("POST", "/accounts", {"name": "alice", "role": "user", "password": PASSWORD})
        prov, title, pe, _cam, ev_title = PROVIDERS["lecture"]
        sc.api("POST", f"{S}/providers", {"name": prov, "title": title, "pe": pe})
        body = {"provider": prov, "title": ev_title, "description": "Room A",
                "start": time.time() + 3600, "duration_s": 900}  # fmt: skip
        sc.api("POST", f"{S}/events", body)
        for host in ("phone", "tablet"):
            sc.portal(host)
        # Another site: a camera's address (the portal answers for it; nothing leaves).
        for h in sc.api("GET", "/hosts"):
            sc.sites[h["name"]] = f"http://{ipaddress.ip_interface(h['ip']).ip}/"
        yield sc
    finally:
        problems = tb.down()
        assert not problems, problems


def test_a_new_client_signs_in_first_then_sees_providers_and_schedules(scene: Scene) -> None:
    _prov, title, _pe, _cam, ev_title = PROVIDERS["lecture"]
    with chromium(netns=scene.tb.netns_of("phone")) as browser:
        page = browser.new_page()
        page.goto(scene.sites["camera"])  # any site: the portal sends it to sign in
        page.wait_for_url(f"{scene.door}/signin?**", timeout=T)
        assert page.url == scene.signin, page.url
        page.fill("#signin-name", "alice")
        page.fill("#signin-password", PASSWORD)
        page.click("#signin-submit")
        page.wait_for_url(f"{scene.door}{APP}", timeout=T)
        # Discover: the provider and its schedule
        shown = page.locator("#providers .sapp-provider")
        shown.first.wait_for(timeout=T)
        text = page.locator("#providers").inner_text()
        assert title in text and ev_title in text and "scheduled" in text, text


def test_a_client_not_signed_in_gets_only_the_redirect(scene: Scene) -> None:
    fmt = ("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    # another site: to the front-end's sign-in (the portal)
    assert scene.curl("tablet", *fmt, scene.sites["camera"]) == f"302 {scene.signin}"
    # the app's page: to the sign-in (the front-end), nothing of the app
    page = scene.curl("tablet", *fmt, "-H", "Accept: text/html", f"{scene.door}{APP}")
    assert page == f"303 {scene.door}/signin?next={quote(APP, safe='')}", page
    # the app's data: refused
    for path in ("/providers", "/events", "/reservations"):
        got = scene.curl("tablet", "-o", "/dev/null", "-w", "%{http_code}",
                         f"{scene.door}/api/v1/streaming{path}")  # fmt: skip
        assert got == "401", (path, got)
    # the sign-in itself is reached
    assert 'id="signin-form"' in scene.curl("tablet", scene.signin)
