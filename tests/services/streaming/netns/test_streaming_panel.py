"""The dashboard's streaming panel (services/streaming/static/panel.js) in headless
Chromium (Debian's), against a real orchestrator process on the paper's testbed
(services/streaming/topologies/streaming.yaml; the node agents played over their
HTTP API, the SDN controller's flow-table reports written as it writes them).

The lecture (pe1) is watched at pe2 and pe5, so its tree branches at c1:

- every switch is the controller's: the panel draws c1 as a switch copy (a group
  ALL: `data-copies="switch"`, its badge), no forwarder anywhere;
- the controller stops programming pe5: the content's copies are made by functions
  again, and the panel, without a reload, draws c1 as a forwarder function
  (`data-copies="forwarder"`), the other badge;
- the page made no request its role may not make (no answer >= 400, no console
  error). Every wait is for something in the page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from browser import PageSession, require_chromium
from netfate.orchestrator.sdn.tables import SdnFlowSnapshotRow
from netfate.services.streaming.demo import TOPOLOGY
from netfate.store.db import Database
from orchproc import FakeAgents, Orchestrator

T = 20_000
NODES = ("pe1", "pe2", "pe3", "pe4", "pe5", "c1", "c2")
S = "/streaming"

require_chromium()


def programs(o: Orchestrator, *nodes: str) -> None:
    """The controller's flow-table report of each node (it programs their switches)."""
    db = Database(o.database_url)
    try:
        with db.session() as s:
            for i, n in enumerate(nodes):
                s.merge(SdnFlowSnapshotRow(node=n, dpid=f"{i + 1:016x}", at=time.time(),
                                           flows=[], ports=[]))  # fmt: skip
            s.commit()
    finally:
        db.dispose()


def forgets(o: Orchestrator, node: str) -> None:
    """The controller no longer programs ``node`` (its flow table unreported)."""
    db = Database(o.database_url)
    try:
        with db.session() as s:
            s.execute(delete(SdnFlowSnapshotRow).where(SdnFlowSnapshotRow.node == node))
            s.commit()
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    o = Orchestrator(tmp_path_factory.mktemp("panel"), topology=TOPOLOGY)
    agents = None
    try:
        o.start()
        agents = FakeAgents(o)
        agents.register(*NODES)
        programs(o, *NODES)
        api = httpx.Client(base_url=f"{o.base}/api/v1", headers=o.headers, timeout=30)

        def ok(r: httpx.Response) -> Any:
            assert r.status_code < 300, r.text
            return r.json()

        ok(api.post(f"{S}/providers", json={"name": "uni", "title": "U", "pe": "pe1"}))
        ev = ok(api.post(f"{S}/events", json={
            "provider": "uni", "title": "Lecture", "description": "", "start": time.time(),
            "duration_s": 900, "bitrate_kbps": 1500}))  # fmt: skip
        cid = ok(api.post(f"{S}/events/{ev['id']}/start"))["content"]["id"]
        for user, pe in (("alice", "pe2"), ("erin", "pe5")):
            a = ok(api.post(f"{S}/contents/{cid}/viewers", json={"user": user, "pe": pe}))
            assert (a["case"], a["node"]) == (4, pe), a
        assert ok(api.get(f"{S}/tree"))["desired"]["switched"] == {cid: ["c1"]}
        yield o
    finally:
        if agents is not None:
            agents.close()
        o.stop()


def test_the_panel_draws_switch_copies_apart_from_forwarders(
    browser: Any, world: Orchestrator
) -> None:
    op = world.operator
    session = PageSession(browser, world.base, timeout_ms=T, password=op["password"])
    try:
        pg = session.open_signed_in("/", op["name"])
        pg.wait_for_selector("body[data-ready='1']")
        tree = "#panel-streaming .streaming-tree[data-content='ev1']"
        c1 = pg.wait_for_selector(f"{tree} li.streaming-node[data-node='c1'][data-copies='switch']")
        assert "group ALL" in c1.inner_text()
        assert "copies in the switches at c1" in pg.locator(tree).inner_text()
        assert pg.locator(f"{tree} [data-copies='forwarder']").count() == 0
        assert pg.locator(f"{tree} li[data-node='pe1'][data-role='acquirer']").count() == 1
        # pe5's switch is no longer the controller's: forwarders again, drawn as such
        forgets(world, "pe5")
        c1 = pg.wait_for_selector(
            f"{tree} li.streaming-node[data-node='c1'][data-copies='forwarder']"
        )
        assert "forwarder function" in c1.inner_text()
        assert "group ALL" not in pg.locator(tree).inner_text()
        assert pg.locator(f"{tree} [data-copies='switch']").count() == 0
        assert not session.errors, session.errors
    finally:
        session.close()
