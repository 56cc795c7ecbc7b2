"""The catalog's page of where each user is (/api/v1/catalog/where), in headless
Chromium (Debian's), against a real orchestrator process (examples/demo.yaml; the
node agents played over their HTTP API).

alice subscribes to acme's chain (its collector at home, its archive too big for a
CPE: at the edge), bob to a smaller one of acme's, and both log in at their homes
(UserLoggedIn, as the firewall's RADIUS server records it). Then:

- the operator's page lists both, each at their node and from which source, with a
  history timeline; alice logs in elsewhere and her row and timeline follow without
  a reload (the page polls: a switch sighting or a lease raises no event);
- alice's page lists her only (nothing of bob), and where her services run shows
  abstract sites ("edge near you") and no node's name; so does her dashboard's panel,
  and the operator's placement panel (node names) is not there;
- every request the pages make is one its role may make (no answer >= 400, no
  console error). Every wait is for something in the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser import PageSession, require_chromium
from netfate.store.db import Database
from netfate.store.events import record_event
from orchproc import FakeAgents, Orchestrator

T = 20_000
PASSWORD = "a web test password"
NODES = ("cpe1", "cpe2", "pe1")
PAGE = "/api/v1/catalog/where"
CHAIN = """
name: sensor-archive
blocks:
  - {name: collector, function: counter, cpu: 0.2}
  - {name: archive, function: forwarder, cpu: 3}
sla: {latency_ms: 5, availability: 0.9}
"""
SMALL = "name: small\nblocks: [{name: a, function: counter, cpu: 0.1}]\n"

require_chromium()


def _token(o: Orchestrator, name: str) -> dict[str, str]:
    r = httpx.post(f"{o.base}/api/v1/auth/token", json={"name": name, "password": PASSWORD})
    r.raise_for_status()
    return {"authorization": f"Bearer {r.json()['token']}"}


def _login(o: Orchestrator, user: str, node: str) -> None:
    """A RADIUS login at `node`, as the firewall's server records it."""
    db = Database(o.database_url)
    try:
        with db.session() as s:
            record_event(s, "UserLoggedIn", {"user": user, "node": node})
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path_factory.mktemp("where"))
    agents = None
    try:
        o.start()
        agents = FakeAgents(o)
        agents.register(*NODES)
        api = f"{o.base}/api/v1"
        for name, role in (("acme", "provider"), ("alice", "user"), ("bob", "user")):
            r = httpx.post(f"{api}/accounts", headers=o.headers,
                           json={"name": name, "role": role, "password": PASSWORD})  # fmt: skip
            assert r.status_code == 201, r.text
        for text in (CHAIN, SMALL):
            r = httpx.post(f"{api}/catalog/chains", headers=_token(o, "acme"),
                           json={"provider": "acme", "descriptor": text})  # fmt: skip
            assert r.status_code == 201, r.text
        for user, node, chain in (("alice", "cpe1", "sensor-archive"), ("bob", "cpe2", "small")):
            _login(o, user, node)
            r = httpx.post(f"{api}/catalog/subscriptions", headers=_token(o, user), timeout=30,
                           json={"user": user, "chain": chain, "at": node})  # fmt: skip
            assert r.status_code == 201, r.text
        yield o
    finally:
        if agents is not None:
            agents.close()
        o.stop()


class Session(PageSession):
    def __init__(self, browser: Any, base: str) -> None:
        super().__init__(browser, base, timeout_ms=T, password=PASSWORD, viewport=(1280, 900))

    def open_signed_in(self, path: str, name: str, password: str | None = None) -> Any:
        page = super().open_signed_in(path, name, password)
        page.wait_for_selector("#where-app[data-ready='1']" if path.startswith(PAGE) else
                               "body[data-ready='1']")  # fmt: skip
        return page


@pytest.fixture
def session(browser: Any, world: Orchestrator) -> Iterator[Session]:
    s = Session(browser, world.base)
    yield s
    s.close()


def _users(pg: Any) -> list[str]:
    rows = pg.locator("#where-users tbody tr.where-user")
    return sorted(rows.evaluate_all("els => els.map(e => e.dataset.user)"))


def test_the_operator_sees_every_user_and_their_timeline_live(
    session: Session, world: Orchestrator
) -> None:
    pg = session.open_signed_in(PAGE, world.operator["name"], world.operator["password"])
    pg.wait_for_selector("tr.where-user[data-user='alice'][data-node='cpe1'][data-source='login']")
    pg.wait_for_selector("tr.where-user[data-user='bob'][data-node='cpe2']")
    assert _users(pg) == ["alice", "bob"]
    assert pg.locator("#where-map .where-place[data-place='cpe1'] li").all_inner_texts() == [
        "alice"
    ]
    # the where-is loop records her history: the timeline shows it
    pg.wait_for_selector("ol.where-timeline[data-user='alice'] li.where-entry[data-node='cpe1']")
    # she logs in at cpe2: the page follows without a reload
    _login(world, "alice", "cpe2")
    pg.wait_for_selector("tr.where-user[data-user='alice'][data-node='cpe2'][data-source='login']")
    pg.wait_for_selector(
        "ol.where-timeline[data-user='alice'] li.where-entry.latest[data-node='cpe2']"
    )
    timeline = pg.locator("ol.where-timeline[data-user='alice'] li.where-entry")
    nodes = timeline.evaluate_all("els => els.map(e => e.dataset.node)")
    assert nodes[:2] == ["cpe2", "cpe1"], nodes
    assert (
        "RADIUS login" in pg.locator("tr.where-user[data-user='alice'] .where-source").inner_text()
    )
    assert not session.errors, session.errors


def test_the_operator_pages_through_the_users(session: Session, world: Orchestrator) -> None:
    pg = session.open_signed_in(PAGE + "?per=1", world.operator["name"],
                                world.operator["password"])  # fmt: skip
    pg.wait_for_selector("tr.where-user[data-user='alice']")
    assert _users(pg) == ["alice"]
    pager = pg.locator("#where-pager")
    assert "alice to alice of 2" in pager.inner_text() and pg.is_disabled("#where-prev")
    pg.click("#where-next")
    pg.wait_for_selector("tr.where-user[data-user='bob']")
    assert _users(pg) == ["bob"] and pg.is_disabled("#where-next")
    pg.click("#where-prev")
    pg.wait_for_selector("tr.where-user[data-user='alice']")
    assert _users(pg) == ["alice"] and pg.is_disabled("#where-prev")
    assert not session.errors, session.errors


def test_a_user_sees_only_herself_and_abstract_sites(session: Session, world: Orchestrator) -> None:
    pg = session.open_signed_in(PAGE, "alice")
    pg.wait_for_selector("tr.where-user[data-user='alice']")
    pg.wait_for_selector("#placements .where-block[data-block='archive']")
    assert _users(pg) == ["alice"]
    body = pg.locator("main").inner_text()
    assert "bob" not in body
    pg.wait_for_selector("#placements .where-subscription[data-at='home (where you are)']")
    pg.wait_for_selector(
        "#placements .where-block[data-block='archive'][data-label='edge near you']"
    )
    sites = pg.locator("#placements").inner_text()
    for n in NODES:
        assert n not in sites, (n, sites)
    blocks = pg.locator("#placements .where-block")
    assert all(
        s.startswith("site-") for s in blocks.evaluate_all("els => els.map(e => e.dataset.site)")
    )
    assert not session.errors, session.errors

    # her dashboard: the abstract panel, not the operator's placements
    dash = session.page
    dash.goto(session.base + "/")
    dash.wait_for_selector("body[data-ready='1']")
    dash.wait_for_selector("#panel-catalog-sites .where-block[data-block='archive']")
    dash.wait_for_selector("#panel-catalog-where tr.where-user[data-user='alice']")
    assert dash.locator("#panel-catalog").count() == 0
    dash.wait_for_selector("#panel-catalog-sites .where-block[data-label='edge near you']")
    panel = dash.locator("#panel-catalog-sites").inner_text()
    assert not [n for n in NODES if n in panel], panel
    assert "bob" not in dash.locator("#panel-catalog-where").inner_text()
    assert not session.errors, session.errors


def test_a_provider_sees_its_subscribers_at_abstract_sites(
    session: Session, world: Orchestrator
) -> None:
    pg = session.open_signed_in(PAGE, "acme")
    pg.wait_for_selector("tr.where-user[data-user='bob']")
    pg.wait_for_selector("#placements .where-block[data-block='archive']")
    assert _users(pg) == ["alice", "bob"]
    places = pg.locator("tr.where-user").evaluate_all("els => els.map(e => e.dataset.node)")
    assert all(p.startswith(("site-", "another site")) for p in places), places
    body = pg.locator("main").inner_text()
    assert not [n for n in NODES if n in body], body
    pg.wait_for_selector("#placements .where-block[data-label='edge near the user']")
    assert not session.errors, session.errors
