"""Functions push events to the orchestrator (netfate.vnf.outbox, nfv/fnevents.py):
a function's ``emit`` shows in its ``status``; the agent's report carries it; the
orchestrator hands each event once to the service owning the descriptor (the fake
service here), logs it, and a hook that fails loses only its own writes."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import authn
import fakesvc
from netfate.orchestrator.app import Settings, create_app
from netfate.orchestrator.nfv.fnevents import fresh
from netfate.vnf.counter import Counter
from netfate.vnf.runtime import Context, Runtime


@dataclass(frozen=True)
class Poked:
    by: str
    """Who."""


def box(last: int, *items: tuple[int, str]) -> dict[str, Any]:
    return {
        "events": {
            "last_seq": last,
            "dropped": 0,
            "items": [{"seq": s, "kind": k, "at": float(s)} for s, k in items],
        }
    }


def test_fresh_events_once_and_again_after_a_renumbering() -> None:
    assert [e["seq"] for e in fresh(None, box(2, (1, "A"), (2, "B")))] == [1, 2]
    assert fresh(box(2, (1, "A"), (2, "B")), box(2, (1, "A"), (2, "B"))) == []
    assert [e["seq"] for e in fresh(box(2, (1, "A"), (2, "B")), box(3, (2, "B"), (3, "C")))] == [3]
    # a restart without state: numbered anew, lower...
    assert [e["kind"] for e in fresh(box(5, (5, "E")), box(1, (1, "N")))] == ["N"]
    # ...or already past where it was (its item 5 is another event)
    new = box(6, *[(i, "N") for i in range(1, 7)])
    assert len(fresh(box(5, (5, "E")), new)) == 6
    # garbage in the stats is not an event
    assert fresh(None, {"events": {"items": [{"seq": "x"}, 3, {"kind": "K"}]}}) == []
    assert fresh(None, {"events": "nope"}) == []
    assert fresh(None, {"events": {"last_seq": "x", "items": 5}}) == []


def test_emit_shows_in_status() -> None:
    fn = Counter(Context(instance="i1"))
    rt = Runtime(fn, "/nonexistent")
    st = asyncio.run(rt.handle({"op": "status"}))
    assert "events" not in st["stats"]
    fn.emit(Poked("alice"))
    st = asyncio.run(rt.handle({"op": "status"}))
    ev = st["stats"]["events"]
    assert ev["last_seq"] == 1 and ev["items"] == [{"seq": 1, "kind": "Poked", "by": "alice"}]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(
        Settings(database_url=f"sqlite:///{tmp_path}/o.db", heartbeat_timeout_s=3600),
        services=[fakesvc.SERVICE],
    )
    topo = {
        "name": "one",
        "nodes": {"pe1": {"kind": "pe", "lan": "10.61.0.0/24"}},
        "hosts": {},
        "links": [],
    }
    with authn.client(app) as c:  # signed in per route
        assert c.put("/api/v1/topology", json=topo).status_code == 200
        r = c.post("/api/v1/agents/pe1/register", json={"endpoint": "127.0.0.1:1"})
        assert r.status_code == 200, r.text
        yield c


def report(c: TestClient, iid: str, stats: dict[str, Any]) -> None:
    inst = {"id": iid, "status": "running", "role": "active", "pid": 1, "stats": stats}
    r = c.post("/api/v1/agents/pe1/report", json={"instances": [inst]})
    assert r.status_code == 200, r.text


def test_a_reported_event_reaches_its_service_once(api: TestClient) -> None:
    r = api.post("/api/v1/instances", json={"descriptor": "fake-fn", "node": "pe1"})
    assert r.status_code in (200, 201), r.text
    iid = r.json()["id"]
    report(api, iid, box(2, (1, "Poked"), (2, "Poked")))
    report(api, iid, box(2, (1, "Poked"), (2, "Poked")))  # the same stats again
    assert api.get("/api/v1/fake/ticks").json().get("event:Poked") == 2
    report(api, iid, box(4, (2, "Poked"), (3, "Broke"), (4, "Poked")))
    ticks = api.get("/api/v1/fake/ticks").json()
    assert ticks.get("event:Poked") == 3 and "half-done" not in ticks  # its writes undone
    logged = [e for e in api.get("/api/v1/events").json() if e["kind"] == "FunctionEvent"]
    assert [e["data"]["event"]["seq"] for e in logged][-4:] == [1, 2, 3, 4]
    assert {e["data"]["instance"] for e in logged} == {iid}
