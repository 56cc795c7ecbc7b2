"""The gateway settings page in headless Chromium (Debian's) against a real orchestrator.

Alice signs in through the sign-in page and lands on her PN's gateway settings (LAN,
DHCP, port forwards, firewall). Driven by the keyboard only, she adds a port
forward: the page shows it, her live list hears GatewaySettingsChanged, and her
running vHG's desired configuration (what its agent is given, and applies in place:
tests/services/sharing/netns/test_vp_vhg.py) holds it. A forward to an address
outside her PN is refused with the API's keyed error and changes nothing. Bob changes
his own settings through the API and Alice's page hears nothing of it; the operator
changes Alice's through the API and her page shows it without a reload. She removes
the forward. Every wait is for something in the page, never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser import require_chromium
from netfate.services.sharing import SERVICE as SHARING
from orchproc import Orchestrator

ALICE, BOB = "home@hotel.example", "hotel@hotel.example"
PASSWORD = "an owner's password"
VHG = "netfate.vnf.vhg:Vhg"
T = 15_000

require_chromium()


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path_factory.mktemp("gw"), topology=SHARING.topology("hotel.yaml"))
    try:
        o.start()
        for email, node in ((ALICE, "home"), (BOB, "hotel")):
            agent = {"authorization": f"Bearer {o.agent_token(node)}"}
            r = httpx.post(f"{o.base}/api/v1/agents/{node}/register", headers=agent,
                           json={"endpoint": "127.0.0.1:1"})  # fmt: skip
            assert r.status_code == 200, r.text
            r = httpx.post(f"{o.base}/api/v1/sharing/pns", headers=o.headers,
                           json={"email": email, "node": node, "vhg": True})  # fmt: skip
            assert r.status_code == 201, r.text
            iid = r.json()["vhg_instance"]
            # its agent (played here) says the vHG runs
            running = {"instances": [{"id": iid, "status": "running", "pid": 1}], "ports": []}
            r = httpx.post(f"{o.base}/api/v1/agents/{node}/report", headers=agent, json=running)
            assert r.status_code == 200, r.text
            r = httpx.post(f"{o.base}/api/v1/accounts", headers=o.headers,
                           json={"name": email, "role": "user", "password": PASSWORD})  # fmt: skip
            assert r.status_code == 201, r.text
        yield o
    finally:
        o.stop()


def desired_vhg(o: Orchestrator, node: str) -> dict[str, Any]:
    """The vHG's configuration as its agent is given it."""
    agent = {"authorization": f"Bearer {o.agent_token(node)}"}
    r = httpx.get(f"{o.base}/api/v1/agents/{node}/desired", headers=agent)
    (spec,) = [s for s in r.json()["instances"] if s["function"] == VHG]
    return dict(spec["config"])


def test_a_forward_set_on_the_page_reaches_the_vhg(browser: Any, orch: Orchestrator) -> None:
    base, errors = orch.base, []
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/api/v1/sharing/gateway-page")
    page.wait_for_url("**/signin?next=*", timeout=T)
    page.fill("#signin-name", ALICE)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    page.wait_for_url(f"{base}/api/v1/sharing/gateway-page", timeout=T)
    page.wait_for_selector("#live-state[data-state='live']", timeout=T)
    assert page.locator("#who").is_hidden()  # a user's page is her own PN's
    assert page.text_content('#lan [data-field="subnet"]') == "192.168.1.0/24"
    assert page.input_value("#dhcp-first") == "192.168.1.100"
    assert "running" in (page.text_content('#lan [data-field="vhg"]') or "")
    page.evaluate("() => { window.__notReloaded = true; }")

    # The keyboard only: focus the form's first field, type, Tab on, Enter submits.
    page.focus("#fwd-proto")
    page.keyboard.press("Tab")
    page.keyboard.type("8080")
    page.keyboard.press("Tab")
    page.keyboard.type("192.168.1.2")
    page.keyboard.press("Tab")
    page.keyboard.type("80")
    page.keyboard.press("Enter")
    row = page.locator('#forwards tr[data-forward="tcp/8080"]')
    row.wait_for(timeout=T)
    assert row.locator("td").all_text_contents()[:4] == ["tcp", "8080", "192.168.1.2", "80"]
    page.locator(
        "#live-events li[data-kind='GatewaySettingsChanged']",
        has_text=f"gateway settings of {ALICE} changed by {ALICE}",
    ).wait_for(timeout=T)
    fwd = {"proto": "tcp", "port": 8080, "to": "192.168.1.2", "to_port": 80}
    assert desired_vhg(orch, "home")["forwards"] == [fwd]

    # Outside her PN: the API's keyed reason, and nothing changed.
    page.select_option("#fwd-proto", "udp")
    page.fill("#fwd-port", "5000")
    page.fill("#fwd-to", "192.168.2.9")
    page.focus("#fwd-add")
    page.keyboard.press("Enter")
    page.locator("#status.error", has_text="body.forwards.1.to").wait_for(timeout=T)
    assert page.locator("#forwards tbody tr").count() == 1
    assert desired_vhg(orch, "home")["forwards"] == [fwd]

    # A static lease, by the keyboard: in the table and in the vHG's configuration;
    # a second one for the same MAC is refused with its key.
    page.focus("#static-mac")
    page.keyboard.type("02:00:00:00:00:07")
    page.keyboard.press("Tab")
    page.keyboard.type("192.168.1.7")
    page.keyboard.press("Tab")
    page.keyboard.type("nas")
    page.keyboard.press("Enter")
    srow = page.locator('#static tr[data-static="02:00:00:00:00:07"]')
    srow.wait_for(timeout=T)
    assert srow.locator("td").all_text_contents()[:3] == ["02:00:00:00:00:07", "192.168.1.7", "nas"]
    lease = {"mac": "02:00:00:00:00:07", "ip": "192.168.1.7", "name": "nas"}
    assert desired_vhg(orch, "home")["static"] == [lease]
    page.fill("#static-mac", "02:00:00:00:00:07")
    page.fill("#static-ip", "192.168.1.8")
    page.focus("#static-add")
    page.keyboard.press("Enter")
    page.locator("#status.error", has_text="body.static.1.mac").wait_for(timeout=T)
    assert page.locator("#static tbody tr").count() == 1
    page.focus('#static tr[data-static="02:00:00:00:00:07"] button.remove')
    page.keyboard.press("Enter")
    page.wait_for_selector("#static tbody tr", state="detached", timeout=T)
    assert desired_vhg(orch, "home")["static"] == []

    # Bob's change is not Alice's news; the operator's change to hers shows live.
    bob = httpx.post(f"{base}/api/v1/auth/token", json={"name": BOB, "password": PASSWORD})
    r = httpx.put(f"{base}/api/v1/sharing/pns/{BOB}/gateway",
                  headers={"authorization": f"Bearer {bob.json()['token']}"},
                  json={"allow": [{"proto": "udp", "port": 9001}]})  # fmt: skip
    assert r.status_code == 200, r.text
    r = httpx.put(f"{base}/api/v1/sharing/pns/{ALICE}/gateway", headers=orch.headers,
                  json={"allow": [{"proto": "tcp", "port": 22, "to": "192.168.1.2"}]})  # fmt: skip
    assert r.status_code == 200, r.text
    page.wait_for_selector('#allow tr[data-allow="tcp/22"]', timeout=T)
    feed = page.locator("#live-events li").all_text_contents()
    assert not [t for t in feed if BOB in t], feed

    # Remove the forward, by the keyboard: gone from the page and from the vHG.
    page.focus('#forwards tr[data-forward="tcp/8080"] button.remove')
    page.keyboard.press("Enter")
    page.wait_for_selector("#forwards tbody tr", state="detached", timeout=T)
    assert desired_vhg(orch, "home")["forwards"] == []
    assert page.evaluate("() => window.__notReloaded === true"), "the page reloaded"
    assert not [e for e in errors if "422" not in e], errors
    ctx.close()


def test_the_page_is_behind_sign_in_and_served_with_the_csp(orch: Orchestrator) -> None:
    url = f"{orch.base}/api/v1/sharing/gateway-page"
    r = httpx.get(url, headers={"accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")
    assert httpx.get(url).status_code == 401
    r = httpx.get(url, headers={**orch.headers, "accept": "text/html"})
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert "/static/sharing/gateway.js" in r.text
