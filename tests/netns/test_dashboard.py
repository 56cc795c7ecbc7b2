"""The dashboard in headless Chromium (Debian's), against a real orchestrator process.

The orchestrator runs on 127.0.0.1 with a temporary SQLite database and
examples/demo.yaml; the test plays the node agents over the same HTTP API real
agents use (register, report, each with its node's token), so the page sees
exactly what it would see in the testbed. The browser has the operator's web
session. Every wait is for a selector or a condition in the page, never a sleep.

Screenshots land in the test's tmp dir (pytest prints its path on failure).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import require_chromium
from orchproc import FakeAgents, Orchestrator

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "examples" / "demo.yaml"
PAYLOAD = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 15_000

require_chromium()


# ---------------------------------------------------------------- orchestrator


@pytest.fixture
def orchestrator(orch: Orchestrator) -> str:
    return orch.base


@pytest.fixture
def agents(orch: Orchestrator) -> Iterator[FakeAgents]:
    a = FakeAgents(orch)
    yield a
    a.close()
    assert not a.errors, a.errors


# ---------------------------------------------------------------- browser


class Page:
    """A page plus what it did: console errors, page errors, requests, dialogs."""

    def __init__(self, browser: Any, orch: Orchestrator) -> None:
        self.base = orch.base
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
        orch.sign_in_browser(self.ctx)  # the operator's session cookie
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on(
            "console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}")
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(d: Any) -> None:
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)

    def open(self) -> Any:
        self.page.goto(self.base + "/")
        self.page.wait_for_selector("body[data-ready='1']")
        self.page.wait_for_selector("#conn[data-state='live']")
        # Set a marker: if the page reloaded, it would be gone.
        self.page.evaluate("() => { window.__notReloaded = true; }")
        return self.page

    def wait(self, selector: str) -> Any:
        return self.page.wait_for_selector(selector, state="attached")

    def shot(self, path: Path) -> None:
        self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)

    def check_clean(self) -> None:
        assert self.page.evaluate("() => window.__notReloaded === true"), "the page reloaded"
        assert not self.errors, self.errors
        assert not self.dialogs, f"script ran from data: {self.dialogs}"
        outside = [u for u in self.requests if not u.startswith(self.base + "/")]
        assert not outside, f"requests outside the orchestrator: {outside}"

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def page(browser: Any, orch: Orchestrator) -> Iterator[Page]:
    p = Page(browser, orch)
    yield p
    p.close()


def _chip_inside_node(page: Any, iid: str, node: str) -> None:
    """Wait until the instance's chip is drawn within the node's box (after its move)."""
    page.wait_for_function(
        """([iid, node]) => {
            const chip = document.querySelector(`g.inst[data-instance-id="${iid}"]`);
            const box = document.querySelector(`g.node[data-node="${node}"] rect.box`);
            if (!chip || !box) return false;
            const c = chip.getBoundingClientRect(), b = box.getBoundingClientRect();
            return c.left >= b.left && c.right <= b.right && c.top >= b.top && c.bottom <= b.bottom;
        }""",
        arg=[iid, node],
    )


# ---------------------------------------------------------------- tests


def test_topology_instances_and_live_events(
    page: Page, agents: FakeAgents, orch: Orchestrator, tmp_path: Path
) -> None:
    api = f"{orch.base}/api/v1"
    pg = page.open()

    # The demo topology is drawn: three nodes, two links, two hosts on their CPEs.
    for n, kind in (("cpe1", "cpe"), ("cpe2", "cpe"), ("pe1", "pe")):
        page.wait(f"#topology g.node[data-node='{n}'][data-kind='{kind}'][data-status='unknown']")
    assert pg.locator("#topology g.link").count() == 2
    assert pg.locator("#topology g.link .link-label text").first.text_content() == (
        "100 Mbit/s · 5 ms"
    )
    for host, node in (("laptop1", "cpe1"), ("laptop2", "cpe2")):
        page.wait(f"#topology g.host[data-host='{host}'][data-node='{node}']")
    assert "192.168.1.2" in (pg.locator("g.host[data-host='laptop1']").text_content() or "")
    assert pg.locator("#nodes .node-card").count() == 3
    page.shot(tmp_path / "1-topology.png")

    # Agents register: the nodes turn up live, and the events show in the feed.
    agents.register("cpe1", "cpe2", "pe1")
    for n in ("cpe1", "cpe2", "pe1"):
        page.wait(f"#topology g.node[data-node='{n}'][data-status='up']")
        page.wait(f"#feed li[data-kind='NodeRegistered'][data-node='{n}']")
    page.wait(".node-card[data-node='cpe1'][data-status='up']")

    # An instance for laptop1 is placed on cpe1 (nearest), then runs there.
    r = httpx.post(f"{api}/instances", json={"descriptor": "counter", "serves": "laptop1"},
                   headers=orch.headers)  # fmt: skip
    assert r.status_code == 201, r.text
    inst = r.json()
    iid, name = inst["id"], inst["name"]
    assert inst["node"] == "cpe1"
    page.wait(f"#feed li[data-kind='InstancePlaced'][data-instance='{iid}']")
    page.wait(f"g.inst[data-instance-id='{iid}'][data-node='cpe1'][data-state='requested']")
    agents.set("cpe1", instances=[{"id": iid, "status": "running"}])
    page.wait(f"g.inst[data-instance-id='{iid}'][data-node='cpe1'][data-state='running']")
    _chip_inside_node(pg, iid, "cpe1")
    feed = page.wait(
        f"#feed li[data-kind='InstanceStateChanged'][data-instance='{iid}'].to-running"
    )
    assert name in (feed.text_content() or "")
    page.wait(f"#instances tr[data-instance-id='{iid}'][data-state='running'] .badge")
    assert pg.locator(f"#instances tr[data-instance-id='{iid}'] td.node").text_content() == "cpe1"
    page.shot(tmp_path / "2-running.png")

    # Migrate to pe1: drawn as migrating with an arrow, then on pe1.
    r = httpx.post(f"{api}/instances/{iid}/migrate", json={"node": "pe1"}, headers=orch.headers)
    assert r.status_code == 202, r.text
    mid = r.json()["id"]
    page.wait(f"g.inst[data-instance-id='{iid}'][data-node='cpe1'][data-state='migrating']")
    page.wait(f"g.migration[data-instance='{iid}'][data-source='cpe1'][data-target='pe1']")
    page.shot(tmp_path / "3-migrating.png")
    agents.set(
        "pe1",
        instances=[{"id": iid, "status": "running", "role": "standby"}],
        migrations=[
            {"id": mid, "instance": iid, "status": "done", "downtime_ms": 4.2, "state_bytes": 321}
        ],
    )
    agents.set("cpe1", instances=[])
    page.wait(f"g.inst[data-instance-id='{iid}'][data-node='pe1'][data-state='running']")
    agents.set("pe1", instances=[{"id": iid, "status": "running"}])
    _chip_inside_node(pg, iid, "pe1")
    pg.wait_for_selector(f"g.migration[data-instance='{iid}']", state="detached")
    migrated = page.wait(f"#feed li[data-kind='InstanceMigrated'][data-instance='{iid}']")
    assert "cpe1 → pe1" in (migrated.text_content() or "")
    assert "4.20 ms" in (migrated.text_content() or "")
    page.wait(f"#migrations tr[data-migration='{mid}'][data-phase='done']")

    # The detail view: transitions with timestamps, the migration with its downtime.
    pg.click(f"#instances tr[data-instance-id='{iid}']")
    page.wait(f"#detail-body[data-instance-id='{iid}'] .timeline li.tl[data-state='running']")
    pg.wait_for_function(
        "() => document.querySelectorAll('#detail-body .timeline li.tl').length >= 5"
    )
    states = pg.locator("#detail-body .timeline li.tl").evaluate_all(
        "els => els.map(e => e.dataset.state)"
    )
    # The page shows the transitions the orchestrator recorded, in order. Under load a
    # fake agent's report can come late: its node looks silent and the instance goes
    # back through starting, which the timeline must show too (CI saw it).
    recorded = httpx.get(f"{api}/instances/{iid}", headers=orch.headers).json()["transitions"]
    assert states == [t["state"] for t in recorded][: len(states)]
    assert states[:3] == ["requested", "starting", "running"], states
    after = iter(states[states.index("migrating") :])
    assert all(w in after for w in ("migrating", "running")), states
    times = pg.locator("#detail-body .timeline time").all_text_contents()
    assert all(len(t) == len("12:34:56.789") and t[2] == ":" for t in times), times
    mig_row = pg.locator(f"#detail-body tr[data-migration='{mid}']").text_content() or ""
    assert "4.20 ms" in mig_row and "done" in mig_row
    # Selecting the instance highlights the host it serves.
    page.wait("g.host.served[data-host='laptop1']")
    page.shot(tmp_path / "4-migrated-detail.png")

    # A node whose agent goes silent turns unreachable, live.
    agents.silence("cpe2")
    page.wait("#topology g.node[data-node='cpe2'][data-status='unreachable']")
    page.wait("#feed li[data-kind='NodeUnreachable'][data-node='cpe2']")

    # Destroy: the chip leaves the drawing.
    assert httpx.delete(f"{api}/instances/{iid}", headers=orch.headers).status_code == 202
    page.wait(f"g.inst[data-instance-id='{iid}'][data-state='stopping']")
    agents.set("pe1", instances=[])
    pg.wait_for_selector(f"g.inst[data-instance-id='{iid}']", state="detached")
    page.wait(f"#feed li[data-kind='InstanceStateChanged'][data-instance='{iid}'].to-gone")
    page.shot(tmp_path / "5-after.png")
    page.check_clean()


def test_panels_and_events_of_kinds_the_page_does_not_know(
    page: Page, agents: FakeAgents, orchestrator: str, tmp_path: Path
) -> None:
    """A service's panel mounts and refreshes; its events reach the feed.

    The stream names each event (`event: <Kind>`) and EventSource only delivers
    names it listens for, so a new service's kind arrives through the page's
    catch-up read. The event is written straight into the database, as a service
    in the orchestrator would record it.
    """
    from sqlalchemy import create_engine, insert

    from netfate.store.tables import EventRow

    pg = page.open()
    pg.evaluate(
        """netfate.registerPanel({id: "probe", title: "Probe",
             mount(el, ctx) { el.append(ctx.h("p", {id: "probe-text"}, "mounted")); },
             onRefresh(st) { document.getElementById("probe-text").textContent =
                             "nodes: " + st.topo.nodes.length; },
             draw(layer, layout, ctx) { const p = layout.pos.get("pe1");
                 layer.append(ctx.s("circle", {id: "probe-dot", cx: p.cx, cy: p.y, r: 6})); }});
           netfate.describeEvent("ProbeDescribed", (d) => "described: " + d.what);"""
    )
    page.wait("#panel-probe #probe-text")
    page.wait("#topology g.layer-panel[data-panel='probe'] circle#probe-dot")
    pg.wait_for_function("() => document.getElementById('probe-text').textContent === 'nodes: 3'")

    engine = create_engine(f"sqlite:///{tmp_path}/o.db")
    with engine.begin() as c:
        c.execute(
            insert(EventRow).values(at=time.time(), kind="ProbeHappened", data={"what": PAYLOAD})
        )
        c.execute(
            insert(EventRow).values(at=time.time(), kind="ProbeDescribed", data={"what": "it"})
        )
    engine.dispose()
    agents.register("cpe1")  # a known kind right after: the page sees the gap
    page.wait("#feed li[data-kind='NodeRegistered'][data-node='cpe1']")
    unknown = page.wait("#feed li[data-kind='ProbeHappened']")
    assert PAYLOAD in (unknown.text_content() or "")
    described = page.wait("#feed li[data-kind='ProbeDescribed']")
    assert "described: it" in (described.text_content() or "")
    assert pg.locator("img").count() == 0
    page.check_clean()


def test_markup_from_the_api_renders_as_text(
    page: Page, agents: FakeAgents, orch: Orchestrator, tmp_path: Path
) -> None:
    api = f"{orch.base}/api/v1"
    # User-supplied text in a descriptor and in an agent's failure detail (configurations
    # are typed now: the counter's takes no free text, and markup in one is a 422).
    r = httpx.post(
        f"{api}/descriptors",
        json={
            "name": "evil",
            "function": "counter",
            "cpu": 0.1,
            "memory_mb": 16,
            "description": PAYLOAD,
        },
        headers=orch.headers,
    )
    assert r.status_code == 201, r.text
    pg = page.open()
    agents.register("cpe1", "cpe2", "pe1")
    r = httpx.post(
        f"{api}/instances",
        json={"descriptor": "evil", "serves": "laptop1"},
        headers=orch.headers,
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    agents.set("cpe1", instances=[{"id": iid, "status": "failed", "detail": PAYLOAD}])
    page.wait(f"g.inst[data-instance-id='{iid}'][data-state='failed']")
    failed = page.wait(
        f"#feed li[data-kind='InstanceStateChanged'][data-instance='{iid}'].to-failed"
    )
    assert PAYLOAD in (failed.text_content() or "")
    pg.click(f"#instances tr[data-instance-id='{iid}']")
    page.wait(f"#detail-body[data-instance-id='{iid}'] .timeline li.tl[data-state='failed']")
    detail = pg.locator("#detail-body").text_content() or ""
    assert detail.count(PAYLOAD) >= 3  # description, detail, transition reason
    row = pg.locator(f"#instances tr[data-instance-id='{iid}']").text_content() or ""
    assert PAYLOAD in row
    assert pg.locator("img").count() == 0
    assert pg.locator("[onerror]").count() == 0
    page.shot(tmp_path / "injection.png")
    page.check_clean()


def test_page_survives_an_orchestrator_without_topology(browser: Any, tmp_path: Path) -> None:
    """An orchestrator started without --topology shows an empty state, not an error."""
    o = Orchestrator(tmp_path, topology=None)
    try:
        o.start()
        p = Page(browser, o)
        try:
            pg = p.open()
            p.wait("#topo-empty:not([hidden])")
            assert pg.locator("#topology g.node").count() == 0
            assert pg.locator("#inst-empty").is_visible()
            p.check_clean()
        finally:
            p.close()
    finally:
        o.stop()


def test_page_reconnects_after_the_orchestrator_is_killed(
    page: Page, orch: Orchestrator, tmp_path: Path
) -> None:
    """kill -9 the orchestrator: the page says so, then picks up again by itself."""
    page.open()
    orch.kill()
    page.wait("#conn[data-state='down']")
    orch.start()
    page.wait("#conn[data-state='live']")
    # Events recorded after the restart arrive live, in the same page.
    agents = FakeAgents(orch)
    try:
        agents.register("cpe2")
        page.wait("#feed li[data-kind='NodeRegistered'][data-node='cpe2']")
        page.wait("#topology g.node[data-node='cpe2'][data-status='up']")
    finally:
        agents.close()
    page.shot(tmp_path / "reconnected.png")
    # While the server was away the browser logged failed requests; nothing else.
    page.errors = [
        e for e in page.errors if not e.startswith("console: Failed to load resource: net::ERR_")
    ]
    page.check_clean()
