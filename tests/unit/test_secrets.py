"""Secrets are write-only (issue 12, section 5): RADIUS shared secrets, the
accounting server's secret, a portal's secret and a user's password, once
configured, appear in no GET response of any route and in no event; the agent
that runs the portal still gets its secret in its desired state. A configuration
read back (secrets hidden) and written again keeps them.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from full_scenario import HEADERS, QUERIES, SECRETS, fill
from netfate.model.secrets import HIDDEN, redact, restore
from netfate.orchestrator.api.roles import served

AGENTS_OWN = "/api/v1/agents/{node}/desired"  # the one read that must carry them
INGEST = "/api/v1/streaming/events/{eid}/ingest"  # the provider's own flow's stream key


def leaked(text: str) -> list[str]:
    return [k for k, v in SECRETS.items() if v in text]


def test_no_read_and_no_event_shows_a_secret(scenario: tuple[TestClient, dict[str, Any]]) -> None:
    c, ids = scenario
    gets = sorted(k.split(" ", 1)[1] for k in served(c.app.routes) if k.startswith("GET "))  # type: ignore[attr-defined]
    assert len(gets) > 30
    # The live RTMP event's stream key: its provider reads it (to paste into OBS), no
    # other read does.
    key = c.get(fill(INGEST, ids)).json()["obs"]["stream_key"]
    assert len(key) >= 32, key
    read = []
    for path in gets:
        if path == AGENTS_OWN or path == "/api/v1/events/stream":
            continue
        url = fill(path, ids) + QUERIES.get(path, "")
        r = c.get(url, headers=HEADERS.get(path))
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        assert leaked(r.text) == [], url
        assert (key in r.text) == (path == INGEST), url
        read.append(path)
    assert {"/api/v1/instances", "/api/v1/firewall/settings", "/api/v1/events"} <= set(read)
    # The event log, whole (every kind of event the scenario caused).
    events = c.get("/api/v1/events", params={"limit": 5000}).json()
    assert len(events) > 20 and leaked(json.dumps(events)) == []
    assert key not in json.dumps(events)
    data = []
    with c.stream("GET", "/api/v1/events/stream?after=0") as r:
        for line in r.iter_lines():  # every event so far, then it would wait for more
            if line.startswith("data:"):
                data.append(line)
                if len(data) == len(events):
                    break
    assert leaked("\n".join(data)) == []
    # What a reader sees instead: that one is set.
    portal = c.get(f"/api/v1/instances/{ids['portal']}").json()
    assert portal["config"]["radius"]["secret"] == HIDDEN
    acct = c.get("/api/v1/firewall/settings").json()["accounting"]
    assert acct == {"server": "10.10.0.9:1813", "secret": HIDDEN}
    # The agent of the portal's node needs it to run the portal.
    desired = c.get("/api/v1/agents/cpe2/desired").text
    assert leaked(desired) == ["portal"]


def test_a_configuration_read_back_keeps_its_secret(
    scenario: tuple[TestClient, dict[str, Any]],
) -> None:
    c, ids = scenario
    iid = ids["portal"]
    cfg = c.get(f"/api/v1/instances/{iid}").json()["config"]
    c.post("/api/v1/agents/cpe2/report", json={"instances": [{"id": iid, "status": "running"}]})
    cfg["radius"]["server"] = "10.10.0.8:1812"
    r = c.patch(f"/api/v1/instances/{iid}", json={"config": cfg})
    assert r.status_code == 202, r.text
    (spec,) = [
        i for i in c.get("/api/v1/agents/cpe2/desired").json()["instances"] if i["id"] == iid
    ]
    assert spec["config"]["radius"] == {
        "server": "10.10.0.8:1812", "acct_server": "10.10.0.9:1813", "secret": SECRETS["portal"]
    }  # fmt: skip


def test_redact_and_restore() -> None:
    stored = {"radius": {"secret": "x", "auth": "a"}, "list": [{"passphrase": "p"}],
              "password_hash": "h", "db_password": "d", "secretary": "no", "empty": ""}  # fmt: skip
    shown = redact(stored)
    assert shown == {"radius": {"secret": HIDDEN, "auth": "a"}, "list": [{"passphrase": HIDDEN}],
                     "password_hash": "h", "db_password": HIDDEN, "secretary": "no",
                     "empty": ""}  # fmt: skip
    assert restore(shown, stored) == stored
    # A new secret replaces; a hidden one with nothing stored is dropped.
    assert restore({"secret": "new"}, stored) == {"secret": "new"}
    assert restore({"secret": HIDDEN}, {}) == {}
