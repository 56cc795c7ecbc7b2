"""The owners' vHG page in headless Chromium (Debian's) against a real orchestrator process.

Alice (PN1) opens her page, sees her devices, opens the media server's details
and shares it with Bob's PN by email. Bob opens his page, sees the pending
request and accepts it; the VPs (agents played by the test, over the agents'
HTTP API) come up and the share shows active with its PN2-local address. A
second request is declined; a bad recipient shows the API's error. Alice
revokes. Each owner's browser has that owner's web session (a user account); the
page's writes carry the session's CSRF token. The page follows the other side live
(the event stream), and is behind sign-in. Every wait is for something in the
page, never a sleep.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from netfate.services.sharing import SERVICE as SHARING
from orchproc import Orchestrator

playwright_sync = pytest.importorskip("playwright.sync_api")

REPO = Path(__file__).resolve().parents[4]
ALICE, BOB = "home@hotel.example", "hotel@hotel.example"
PASSWORD = "an owner's password"
T = 15_000

require_chromium()


class Agents:
    """Heartbeats for every node, reporting the VP instances of accepted shares running
    and their ports on the node's bridge (a share is active once its paths are in)."""

    def __init__(self, orch: Orchestrator, nodes: list[str]) -> None:
        self.orch = orch
        self.api = orch.base + "/api/v1"
        self.nodes = nodes
        self.http = httpx.Client(timeout=5)
        self.stop = threading.Event()
        for n in nodes:
            self.http.post(f"{self.api}/agents/{n}/register", json={"endpoint": "127.0.0.1:1"},
                           headers=self.auth(n))  # fmt: skip
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def auth(self, node: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.orch.agent_token(node)}"}

    def report(self) -> None:
        insts = self.http.get(f"{self.api}/instances", headers=self.orch.headers).json()
        for n in self.nodes:
            live = [
                i
                for i in insts
                if i["node"] == n and i["state"] in ("requested", "starting", "running")
            ]
            mine = [{"id": i["id"], "status": "running", "pid": 1} for i in live]
            ports = [
                {"name": f"{n}-i{k}", "ofport": 30 + k, "peer": f"instance:{i['id']}"}
                for k, i in enumerate(sorted(live, key=lambda i: i["id"]))
            ]
            body = {"instances": mine, "ports": ports}
            self.http.post(f"{self.api}/agents/{n}/report", json=body, headers=self.auth(n))

    def run(self) -> None:
        while not self.stop.wait(0.3):
            with contextlib.suppress(httpx.HTTPError):
                self.report()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.http.close()


@pytest.fixture(scope="module")
def orch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path_factory.mktemp("web"), topology=SHARING.topology("hotel.yaml"))
    agents = None
    try:
        o.start()
        agents = Agents(o, ["home", "hotel", "nextdoor", "pe1"])
        for email, node in ((ALICE, "home"), (BOB, "hotel")):
            r = httpx.post(o.base + "/api/v1/sharing/pns", json={"email": email, "node": node},
                           headers=o.headers)  # fmt: skip
            assert r.status_code == 201, r.text
            r = httpx.post(o.base + "/api/v1/accounts", headers=o.headers,
                           json={"name": email, "role": "user", "password": PASSWORD})  # fmt: skip
            assert r.status_code == 201, r.text
        yield o
    finally:
        if agents is not None:
            agents.close()
        o.stop()


@pytest.fixture(scope="module")
def base(orch: Orchestrator) -> str:
    return orch.base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser: Any, base: str, who: str, errors: list[str]) -> Any:
    """`who`'s page, in a browser context signed in as `who`."""
    ctx = browser.new_context()
    r = ctx.request.post(f"{base}/api/v1/auth/session", data={"name": who, "password": PASSWORD})
    assert r.ok, r.text()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/api/v1/sharing/page?pn={who}")
    page.wait_for_selector("#devices tbody tr", timeout=T)
    return page


def test_share_accept_decline_revoke_in_the_browser(
    browser: Any, base: str, orch: Orchestrator
) -> None:
    errors: list[str] = []
    alice = open_page(browser, base, ALICE, errors)
    names = alice.locator("#devices tbody tr td:first-child").all_text_contents()
    assert set(names) == {"mediaserver", "laptop"}
    # Details, then Share with Bob.
    alice.click('#devices tr[data-device="mediaserver"]')
    assert alice.text_content('#detail-fields dd[data-field="ip"]') == "192.168.1.2"
    alice.fill("#recipient", BOB)
    alice.click("#share-button")
    alice.wait_for_selector('#outgoing tr[data-state="requested"]', timeout=T)
    # A bad recipient: the API's reason is shown, nothing is created.
    alice.fill("#recipient", "nobody@nowhere.example")
    alice.click("#share-button")
    alice.locator("#status.error", has_text="unknown PN").wait_for(timeout=T)
    assert alice.locator("#outgoing tbody tr").count() == 1

    # Bob sees the pending request and accepts it; the share becomes active.
    bob = open_page(browser, base, BOB, errors)
    bob.wait_for_selector('#incoming tr[data-state="requested"] button.accept', timeout=T)
    bob.click('#incoming tr[data-state="requested"] button.accept')
    bob.wait_for_selector('#incoming tr[data-state="active"]', timeout=T)
    addr = bob.text_content('#incoming tr[data-state="active"] td:nth-child(5)') or ""
    assert addr.startswith("192.168.2.")
    alice.wait_for_selector('#outgoing tr[data-state="active"]', timeout=T)

    # A second request (the laptop) is declined by Bob.
    alice.click('#devices tr[data-device="laptop"]')
    alice.fill("#recipient", BOB)
    alice.click("#share-button")
    bob.wait_for_selector('#incoming tr[data-state="requested"] button.decline', timeout=T)
    bob.click('#incoming tr[data-state="requested"] button.decline')
    bob.wait_for_selector('#incoming tr[data-state="declined"]', timeout=T)

    # Alice revokes the active share; both pages show it revoked.
    alice.click('#outgoing tr[data-state="active"] button.revoke')
    alice.wait_for_selector('#outgoing tr[data-state="revoked"]', timeout=T)
    bob.wait_for_selector('#incoming tr[data-state="revoked"]', timeout=T)
    history = httpx.get(f"{base}/api/v1/sharing/shares/1", headers=orch.headers).json()["history"]
    assert [h["state"] for h in history] == ["requested", "accepted", "active", "revoked"]
    assert not [e for e in errors if "409" not in e and "404" not in e], errors


def test_share_by_invitation_code_with_a_port_in_the_browser(browser: Any, base: str) -> None:
    """Bob's page gives him a code; Alice's link with it (?to=CODE) fills the Share
    form; her share goes to Bob's PN, shows the port she set, and the code is used."""
    errors: list[str] = []
    bob = open_page(browser, base, BOB, errors)
    bob.click("#invite-button")
    bob.wait_for_selector('#invitations tr[data-code] td.state:text-is("open")', timeout=T)
    code = bob.get_attribute("#invitations tr[data-code]", "data-code") or ""
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code), code
    alice = open_page(browser, base, ALICE, errors)  # signed in as herself
    alice.goto(f"{base}/api/v1/sharing/page?pn={ALICE}&to={code}")
    alice.wait_for_selector("#devices tbody tr", timeout=T)
    assert alice.input_value("#recipient") == code
    alice.click('#devices tr[data-device="mediaserver"]')
    alice.fill("#http-port", "8200")
    alice.click("#share-button")
    row = alice.locator('#outgoing tr[data-state="requested"]')
    row.wait_for(timeout=T)
    assert row.locator("td:nth-child(2)").text_content() == "mediaserver"
    assert row.locator("td:nth-child(3)").text_content() == BOB
    assert row.locator("td.ports").text_content() == "8200 (set)"
    bob.wait_for_selector(f'#invitations tr[data-code="{code}"] td.state:text-is("used")',
                          timeout=T)  # fmt: skip
    # The same code again: the API's reason is shown.
    alice.click('#devices tr[data-device="laptop"]')
    alice.fill("#recipient", code)
    alice.click("#share-button")
    alice.locator("#status.error", has_text="already used").wait_for(timeout=T)
    assert not [e for e in errors if "409" not in e], errors


def _bearer(base: str, who: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/v1/auth/token", json={"name": who, "password": PASSWORD})
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['token']}"}


def test_the_page_follows_the_other_side_live(browser: Any, base: str) -> None:
    """Alice opens her page without a session: the sign-in page, then her page (her own
    PN's). Her share is requested and Bob accepts it through the API, not a page: her
    page shows both as they happen, in its live list and in her shares, without a
    reload (the page does not poll: what changes comes by the event stream). Her
    invitations list holds her own codes only, not Bob's."""
    errors: list[str] = []
    requests: list[str] = []
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{base}/api/v1/sharing/page")
    page.wait_for_url("**/signin?next=*", timeout=T)
    page.fill("#signin-name", ALICE)
    page.fill("#signin-password", PASSWORD)
    page.click("#signin-submit")
    page.wait_for_url(f"{base}/api/v1/sharing/page", timeout=T)
    page.wait_for_selector("#live-state[data-state='live']", timeout=T)
    assert page.get_attribute("#sharing-app", "data-pn") == ALICE
    assert page.locator("#who").is_hidden()  # a user's page is her own PN's
    page.evaluate("() => { window.__notReloaded = true; }")

    alice, bob = _bearer(base, ALICE), _bearer(base, BOB)
    r = httpx.post(f"{base}/api/v1/sharing/shares", headers=alice,
                   json={"owner": ALICE, "device": "laptop", "recipient": BOB})  # fmt: skip
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    page.wait_for_selector(f'#outgoing tr[data-share="{sid}"][data-state="requested"]', timeout=T)
    r = httpx.post(f"{base}/api/v1/sharing/shares/{sid}/accept", json={"by": BOB}, headers=bob)
    assert r.status_code == 200, r.text
    page.wait_for_selector(
        f'#outgoing tr[data-share="{sid}"]:is([data-state="accepted"], [data-state="active"])',
        timeout=T,
    )
    page.locator("#live-events li[data-kind='ShareStateChanged']",
                 has_text=f"share {sid}: laptop of {ALICE} with {BOB}: requested → accepted"
                 ).wait_for(timeout=T)  # fmt: skip
    assert page.evaluate("() => window.__notReloaded === true"), "the page reloaded"
    assert any("/api/v1/events/stream" in u for u in requests)

    # Invitations: Bob's code (made through the API) is not on Alice's page; hers is.
    bobs = httpx.post(f"{base}/api/v1/sharing/invitations", json={"by": BOB}, headers=bob)
    assert bobs.status_code == 201, bobs.text
    page.click("#invite-button")
    page.wait_for_selector("#invitations tr[data-code]", timeout=T)
    shown = set(page.locator("#invitations tr[data-code]").evaluate_all(
        "els => els.map(e => e.dataset.code)"))  # fmt: skip
    hers = httpx.get(f"{base}/api/v1/sharing/invitations", params={"pn": ALICE}, headers=alice)
    assert shown == {i["code"] for i in hers.json()} and shown
    assert bobs.json()["code"] not in shown
    assert not errors, errors
    ctx.close()


def test_page_is_behind_sign_in_and_served_with_the_csp(base: str) -> None:
    url = f"{base}/api/v1/sharing/page"
    r = httpx.get(url, headers={"accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")
    assert httpx.get(url).status_code == 401  # an API client: the API's answer
    with httpx.Client() as c:
        signed = c.post(f"{base}/api/v1/auth/session", json={"name": ALICE, "password": PASSWORD})
        assert signed.status_code == 200
        r = c.get(url, headers={"accept": "text/html"})
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert "/static/sharing/panel.js" in r.text and "/static/session.js" in r.text
