"""Reads never write (DESIGN.md, convention 11).

With every registered service loaded and a scenario in the database (nodes and
agents, an instance, SDN intents, a firewall user with its RADIUS client, two
Personal Networks with an active share, a USB/IP function), the reconcile loops
are stopped and every GET route the app has (the OpenAPI's and the pages) is
called: a dump of every table is the same before and after each one.

And what used to happen only when someone read now happens with nobody reading:
a share becomes active once its functions run, through the sharing service's
loop, while the test only looks at the database.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from full_scenario import HEADERS, QUERIES, dump, fill, share_state
from netfate.orchestrator.api.roles import served
from netfate.store.db import Database


def test_a_share_becomes_active_with_nobody_reading_it(
    scenario: tuple[TestClient, dict[str, Any]],
) -> None:
    # The fixture reported the VPs running and then only looked at the database.
    _c, ids = scenario
    assert share_state(ids["db"], ids["share"]) == "active"


def test_no_get_changes_the_database(scenario: tuple[TestClient, dict[str, Any]]) -> None:
    c, ids = scenario
    db: Database = ids["db"]
    c.portal.call(c.app.state.loops.stop)  # type: ignore[attr-defined]  # the loops write
    gets = sorted(k.split(" ", 1)[1] for k in served(c.app.routes) if k.startswith("GET "))  # type: ignore[attr-defined]
    assert len(gets) > 30
    # Each read's credentials are made first: making them is a write (as a sign-in is).
    urls = [(path, fill(path, ids) + QUERIES.get(path, "")) for path in gets]
    signed = {path: HEADERS.get(path) or c.auth.headers_for("GET", url) for path, url in urls}  # type: ignore[union-attr]
    before = dump(db)
    checked = []
    for path, url in urls:
        if path == "/api/v1/events/stream":  # server-sent events: read the first ones
            with c.stream("GET", url, headers=signed[path]) as r:
                assert r.status_code == 200
                next(r.iter_lines())
        else:
            r = c.get(url, headers=signed[path])
            assert r.status_code == 200, (url, r.status_code, r.text[:300])
        after = dump(db)
        changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
        assert not changed, f"GET {url} changed {sorted(changed)}"
        checked.append(path)
    assert "/api/v1/sharing/shares/{sid}" in checked and "/api/v1/sharing/pns" in checked
