"""A new client is first sent to the front-end to sign in (the paper's front-end
redirection), on the paper's testbed (services/streaming/topologies/streaming.yaml).

The operator stores where the viewers' captive portals are kept (PUT
/streaming/portals: pe2, the phone's PE, and pe3, the tablet's); the streaming
service starts the firewall service's captive portal there itself, with the run's
front door as its walled garden, the front-end's sign-in (through the door) as
where captive clients go (`signin`), and its own dnsmasq as the PE's DHCP server,
naming itself the router. The phone and the tablet lose their static addresses and
run a DHCP client (dhclient, as a person's device would): each gets its address
and its default route, the portal of its own PE, from DHCP (the other PE's portal
does not answer it). Then:

- the phone's browser (Chromium in its namespace) asks for a page of another site:
  the portal sends it to the sign-in; it signs in with its account and lands on the
  user's app, whose Discover shows the providers and their schedules;
- the tablet, not signed in, gets only the redirect: another site's page sends it to
  the sign-in, the app's page sends it to the sign-in, the app's data is refused (401).
"""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from browser import chromium
from netfate.demo.platform import Api
from netfate.host import netns
from netfate.services.streaming.demo import PROVIDERS, TOPOLOGY, appears
from netfate.testbed.builder import Testbed
from testbed_procs import until

S = "/streaming"
APP = "/api/v1/streaming/app"
PASSWORD = "the sign-in test's password"
T = 60_000
"""Milliseconds the page gets for each state."""


DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient's script: what dhclient-script does with an address and a router, and
# nothing else (never the machine's resolv.conf: the namespaces share /etc)
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    for r in $new_routers; do ip -4 route replace default via "$r" dev "$interface"; break; done
    ;;
esac
exit 0
"""


class Scene:
    def __init__(self, tb: Testbed, work: Path) -> None:
        assert tb.api_url and tb.door_url
        self.tb, self.api, self.door, self.work = tb, Api(tb.api_url), tb.door_url, work
        self.signin = f"{self.door}/signin?next={APP}"
        self.portals: dict[str, str] = {}
        self.sites: dict[str, str] = {}
        self.dhclients: list[subprocess.Popen[bytes]] = []
        self.script = work / "dhclient-script"
        self.script.write_text(DHCLIENT_SCRIPT)
        self.script.chmod(0o755)

    def portal(self, node: str) -> None:
        """The captive portal the streaming service started at ``node``, running, its
        DHCP naming itself the router."""
        inst = until(f"the service's portal at {node}", appears(self.api, f"portal-{node}"), 60)
        assert inst["descriptor"] == "captive-portal", inst
        assert inst["config"]["garden"] == [str(self.tb.topology.door_ip)], inst
        assert inst["config"]["signin"] == self.signin, inst
        inst = self.api.wait_state(inst["id"], "running", timeout=60)
        ip = str(ipaddress.ip_interface(inst["ip"]).ip)
        assert inst["config"]["dhcp"]["router"] == ip, inst
        self.portals[node] = ip

    def dhcp(self, host: str) -> tuple[str, str]:
        """The host forgets its static address and runs a DHCP client on its LAN, as
        a person's device would; returns (its address, its default router) once the
        lease is taken."""
        self.tb.exec(host, ["ip", "-4", "addr", "flush", "dev", "eth0"])
        assert self.route(host) == "", "the host still has a default route"
        log = (self.work / f"dhclient-{host}.log").open("wb")
        self.dhclients.append(
            netns.popen_in(
                self.tb.netns_of(host),
                ["dhclient", "-d", "-4", "-sf", str(self.script),
                 "-pf", str(self.work / f"dhclient-{host}.pid"),
                 "-lf", str(self.work / f"dhclient-{host}.leases"), "eth0"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        log.close()
        until(f"{host}'s DHCP lease", lambda: self.route(host), 90)
        addr = self.tb.exec(host, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        return addr.split()[3].split("/")[0], self.route(host)

    def route(self, host: str) -> str:
        """The host's default router ('' when it has none)."""
        out = self.tb.exec(host, ["ip", "-4", "route", "show", "default"]).stdout.split()
        return out[2] if out[:2] == ["default", "via"] else ""

    def stop_dhclients(self) -> None:
        for p in self.dhclients:  # ours, by their pid (ip netns exec execs dhclient)
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)

    def curl(self, host: str, *args: str) -> str:
        r = self.tb.exec(host, ["curl", "-s", "-m", "10", *args], check=False)
        return str(r.stdout)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    """A provider and its schedule; captive portals at the phone's and the tablet's
    PEs, stored by the operator; both hosts on DHCP."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv("NETFATE_STREAMING_PORTALS", raising=False)  # the stored setting only
        tb = Testbed.up(TOPOLOGY)
    sc = Scene(tb, tmp_path_factory.mktemp("signin"))
    try:
        sc.api("POST", "/accounts", {"name": "alice", "role": "user", "password": PASSWORD})
        prov, title, pe, _cam, ev_title = PROVIDERS["lecture"]
        sc.api("POST", f"{S}/providers", {"name": prov, "title": title, "pe": pe})
        body = {"provider": prov, "title": ev_title, "description": "Room A",
                "start": time.time() + 3600, "duration_s": 900}  # fmt: skip
        sc.api("POST", f"{S}/events", body)
        hosts = {h["name"]: h for h in sc.api("GET", "/hosts")}
        stored = sc.api("PUT", f"{S}/portals", {"pes": ["pe2", "pe3"]})
        assert (stored["source"], stored["pes_now"]) == ("stored", ["pe2", "pe3"]), stored
        for node in ("pe2", "pe3"):
            sc.portal(node)
        for host in ("phone", "tablet"):
            node = hosts[host]["node"]
            addr, router = sc.dhcp(host)
            # its own PE's portal is its gateway; its address the one the platform knows
            assert router == sc.portals[node], (host, router, sc.portals)
            assert addr == str(ipaddress.ip_interface(hosts[host]["ip"]).ip), (host, addr)
        # Another site: a camera's address (the portal answers for it; nothing leaves).
        for h in hosts.values():
            sc.sites[h["name"]] = f"http://{ipaddress.ip_interface(h['ip']).ip}/"
        yield sc
    finally:
        sc.stop_dhclients()
        problems = tb.down()
        assert not problems, problems


def test_the_portals_dnsmasq_leased_to_its_own_pes_host(scene: Scene) -> None:
    """The lease each host took is in its own PE's portal's dnsmasq lease file (what
    the portal reports in its stats), not in the other's."""
    hosts = {h["name"]: h for h in scene.api("GET", "/hosts")}

    def leases(node: str) -> str:
        inst = appears(scene.api, f"portal-{node}")()
        assert inst is not None
        return str((inst.get("stats") or {}).get("dhcp", {}).get("lease_file", ""))

    for host, node, other in (("phone", "pe2", "pe3"), ("tablet", "pe3", "pe2")):
        mac = hosts[host]["mac"]
        until(
            f"{host}'s lease in {node}'s portal's stats", lambda m=mac, n=node: m in leases(n), 30
        )
        assert mac not in leases(other), leases(other)


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
