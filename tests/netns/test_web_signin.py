"""Signing in to the web, in headless Chromium (Debian's), against a real orchestrator
process (examples/demo.yaml; the node agents played over their HTTP API).

Each role signs in through the HTML page (/signin) and sees only its own data:

- the operator: the topology, every instance, the nodes;
- a provider (acme): its own instance only, where it runs as a location class, no
  node names or addresses, nothing of the other provider (globex);
- a user (alice): her own instance (her PN's vHG) and her PN, nothing of bob's.

Every fetch the page makes is one its role may make (no answer >= 400, no console
error: no broken panel). A wrong password shows the error; a page opened without a
session goes to /signin and back; next= cannot leave the origin; signing out ends
the session (its cookie is refused after). Every wait is for something in the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser import PageSession, require_chromium
from orchproc import FakeAgents, Orchestrator

T = 15_000
PASSWORD = "a web test password"
ALICE, BOB = "alice@home.example", "bob@home.example"
NODES = ("cpe1", "cpe2", "pe1")

require_chromium()


def _token(o: Orchestrator, name: str) -> dict[str, str]:
    r = httpx.post(f"{o.base}/api/v1/auth/token", json={"name": name, "password": PASSWORD})
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two providers with an instance each, two users with a PN and its vHG each."""
    o = Orchestrator(tmp_path_factory.mktemp("web"))
    agents = None
    try:
        o.start()
        agents = FakeAgents(o)
        agents.register(*NODES)
        api = f"{o.base}/api/v1"
        for name, role in (("acme", "provider"), ("globex", "provider"), (ALICE, "user"),
                           (BOB, "user")):  # fmt: skip
            r = httpx.post(f"{api}/accounts", headers=o.headers,
                           json={"name": name, "role": role, "password": PASSWORD})  # fmt: skip
            assert r.status_code == 201, r.text
        ids: dict[str, str] = {}
        for provider, host in (("acme", "laptop1"), ("globex", "laptop2")):
            r = httpx.post(f"{api}/instances", headers=_token(o, provider),
                           json={"descriptor": "counter", "serves": host,
                                 "name": f"{provider}-cache"})  # fmt: skip
            assert r.status_code == 201, r.text
            ids[provider] = r.json()["id"]
        for user, node in ((ALICE, "cpe1"), (BOB, "cpe2")):
            r = httpx.post(f"{api}/sharing/pns", headers=_token(o, user),
                           json={"email": user, "node": node, "vhg": True})  # fmt: skip
            assert r.status_code == 201, r.text
            ids[user] = r.json()["vhg_instance"]
        yield {"orch": o, "ids": ids}
    finally:
        if agents is not None:
            agents.close()
        o.stop()


class Session(PageSession):
    def __init__(self, browser: Any, base: str) -> None:
        super().__init__(browser, base, timeout_ms=T, password=PASSWORD)

    def dashboard(self, name: str, password: str = PASSWORD) -> Any:
        pg = self.open_signed_in("/", name, password)
        pg.wait_for_selector("body[data-ready='1']")
        pg.wait_for_selector("#conn[data-state='live']")
        pg.wait_for_selector(f"#session .who[data-role] b:text-is('{name}')")
        return pg


@pytest.fixture
def session(browser: Any, world: dict[str, Any]) -> Iterator[Session]:
    s = Session(browser, world["orch"].base)
    yield s
    s.close()


def _rows(pg: Any) -> set[str]:
    rows = pg.locator("#instances tbody tr")
    return set(rows.evaluate_all("els => els.map(e => e.dataset.instanceId)"))


def test_the_operator_sees_everything(session: Session, world: dict[str, Any]) -> None:
    operator = world["orch"].operator
    pg = session.dashboard(operator["name"], operator["password"])
    ids = world["ids"]
    for iid in ids.values():
        pg.wait_for_selector(f"#instances tr[data-instance-id='{iid}']", state="attached")
    assert _rows(pg) == set(ids.values())
    for n in NODES:
        pg.wait_for_selector(f"#topology g.node[data-node='{n}']", state="attached")
    assert pg.locator(".topo-card").is_visible() and pg.locator(".nodes-card").is_visible()
    acme = pg.locator(f"#instances tr[data-instance-id='{ids['acme']}'] td.node").text_content()
    assert acme == "cpe1"
    pg.wait_for_selector("#panel-sharing", state="attached")
    assert not session.errors, session.errors


def test_a_provider_sees_its_own_instances_with_abstract_locations(
    session: Session, world: dict[str, Any]
) -> None:
    pg = session.dashboard("acme")
    ids = world["ids"]
    row = pg.wait_for_selector(f"#instances tr[data-instance-id='{ids['acme']}']")
    assert _rows(pg) == {ids["acme"]}
    assert (row.text_content() or "").count("acme-cache") == 1
    where = pg.locator(f"#instances tr[data-instance-id='{ids['acme']}'] td.node").text_content()
    assert where == "cpe near laptop1"
    assert pg.locator("#inst-where").text_content() == "location"
    for card in (".topo-card", ".nodes-card", ".mig-card"):
        assert pg.locator(card).is_hidden(), card
    pg.wait_for_selector("#feed li[data-kind='InstancePlaced']", state="attached")
    body = pg.locator("main").inner_text()
    # Nothing of the other provider, of the users, or of the infrastructure.
    for absent in ("globex", ids["globex"], ALICE, BOB, ids[ALICE], ids[BOB], "cpe1", "cpe2",
                   "pe1", "192.168.", "10.10."):  # fmt: skip
        assert absent not in body, absent
    # It asked only for what a provider may read (no topology, nodes, migrations).
    assert not session.api_calls() & {"/topology", "/migrations", "/nodes", "/hosts", "/links"}
    assert pg.locator("#panel-sharing, #panel-firewall, #panel-flows").count() == 0
    assert not session.errors, session.errors


def test_a_user_sees_her_own_dashboard(session: Session, world: dict[str, Any]) -> None:
    pg = session.dashboard(ALICE)
    ids = world["ids"]
    pg.wait_for_selector(f"#instances tr[data-instance-id='{ids[ALICE]}']")
    assert _rows(pg) == {ids[ALICE]}
    pg.wait_for_function(
        "() => (document.getElementById('sharing-pn') || {}).textContent?.startsWith("
        f"'My Personal Network {ALICE}')"
    )
    assert pg.locator(".topo-card").is_hidden()
    # Her instance's details: where it runs as a location class, its transitions.
    pg.click(f"#instances tr[data-instance-id='{ids[ALICE]}']")
    pg.wait_for_selector(f"#detail-body[data-instance-id='{ids[ALICE]}'] .timeline li.tl")
    facts = pg.locator("#detail-body dl.facts").inner_text()
    assert "location" in facts and "cpe" in facts and "cpe1" not in facts
    body = pg.locator("main").inner_text()
    for absent in (BOB, ids[BOB], "acme", "globex", ids["acme"], ids["globex"]):
        assert absent not in body, absent
    assert not session.api_calls() & {"/topology", "/migrations", "/descriptors", "/nodes"}
    assert not session.errors, session.errors


def test_a_wrong_password_shows_the_error(session: Session, world: dict[str, Any]) -> None:
    pg = session.page
    pg.goto(f"{session.base}/api/v1/sharing/page")
    pg.wait_for_url("**/signin?next=*")
    session.sign_in(ALICE, "not her password")
    err = pg.wait_for_selector("#signin-error:not([hidden])")
    assert err.text_content() == "Wrong name or password."
    assert pg.get_attribute("#signin-name", "aria-invalid") == "true"
    assert pg.input_value("#signin-name") == ALICE
    assert not [c for c in session.ctx.cookies() if c["name"] == "netfate_session"]
    # The right one then goes where the page was asked for.
    session.sign_in(ALICE)
    pg.wait_for_url(f"{session.base}/api/v1/sharing/page")
    pg.wait_for_selector("#sharing-app[data-pn]", state="attached")
    assert pg.get_attribute("#sharing-app", "data-pn") == ALICE


def test_next_cannot_leave_the_origin(session: Session, world: dict[str, Any]) -> None:
    pg = session.page
    for nxt in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        pg.goto("about:blank")  # the dashboard, signed out, would go to sign in by itself
        session.ctx.clear_cookies()
        pg.goto(f"{session.base}/signin?next={nxt}")
        session.sign_in(BOB)
        pg.wait_for_url(f"{session.base}/")
        pg.wait_for_selector("body[data-ready='1']")
    outside = [u for u in session.requests if not u.startswith(session.base + "/")]
    assert not outside, outside


def test_sign_out_ends_the_session(session: Session, world: dict[str, Any]) -> None:
    pg = session.dashboard(BOB)
    cookie = next(c["value"] for c in session.ctx.cookies() if c["name"] == "netfate_session")
    me = f"{session.base}/api/v1/auth/me"
    assert httpx.get(me, cookies={"netfate_session": cookie}).status_code == 200
    pg.click("#signout")
    pg.wait_for_url(f"{session.base}/signin")
    assert httpx.get(me, cookies={"netfate_session": cookie}).status_code == 401
    assert not [c for c in session.ctx.cookies() if c["name"] == "netfate_session"]
    # Every page behind sign-in sends the browser back to the form.
    for path in ("/", "/api/v1/sharing/page", "/api/v1/firewall/me"):
        pg.goto(session.base + path)
        pg.wait_for_url("**/signin?next=*")
        pg.wait_for_selector("#signin-form")
