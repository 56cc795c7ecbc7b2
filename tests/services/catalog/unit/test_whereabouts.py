"""The where-is service (services/catalog/whereabouts.py) over a real SQLite database.

A DHCP lease that a function on a node reports (its dnsmasq's lease file, in its
stats, as the vHG and the CPE portal report it) places the user whose device has
the lease's MAC at that node (test_catalog_conduit.py: a move seen only through
such a lease makes the conduit re-place the user's subscription). The history is
bounded in rows and says why each position won; a lease file with hostile lines
still places the user from its good ones and reports each bad one; the loop
records users known only by their logins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from catalog_db import catalog_db
from catalog_leases import HOMES, LEASE_S, dhcp_server, lease
from netfate.services.catalog import conduit as cd
from netfate.services.catalog import whereabouts
from netfate.services.catalog.tables import CatalogPositionRow
from netfate.services.catalog.whereabouts import Whereabouts
from netfate.store.db import Database
from netfate.store.events import record_event

PHONE = "02:aa:00:00:00:01"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = catalog_db(tmp_path, HOMES)
    yield d
    d.dispose()


def test_a_lease_of_someone_elses_device_or_an_expired_one_places_nobody(db: Database) -> None:
    w = Whereabouts()
    with db.session() as s:
        t = time.time()
        old = t - 2 * LEASE_S
        dhcp_server(
            s,
            "i-1",
            "cpe2",
            lease("02:bb:00:00:00:09", "192.168.2.9", t) + lease(PHONE, "192.168.2.7", old),
        )
        assert w.where(s, {"alice": [PHONE]}) == {}
        record_event(s, "UserLoggedIn", {"user": "alice", "node": "cpe1"})
        pos = w.where(s, {"alice": [PHONE]})["alice"]
        assert (pos.node, pos.source) == ("cpe1", "login")
        assert "lease at cpe2" in pos.why and "is stale: it expired" in pos.why


def test_hostile_lease_lines_are_reported_and_the_good_ones_still_count(db: Database) -> None:
    w = Whereabouts()
    with db.session() as s:
        t = time.time()
        hostile = "garbage\n1 02:aa:00:00:00:01 10.0.0.1 <img> *\n\x00\x01\n"
        dhcp_server(s, "i-1", "cpe2", hostile + lease(PHONE, "192.168.2.5", t))
        seen = w.read(s, {"alice": [PHONE]})
        assert [(x.node, x.source) for x in seen.sightings] == [("cpe2", "lease")]
        assert [(r["instance"], r["node"], r["line"]) for r in seen.refused] == [
            ("i-1", "cpe2", 1), ("i-1", "cpe2", 2), ("i-1", "cpe2", 3)
        ]  # fmt: skip
        assert "not a DNS label" in seen.refused[1]["reason"]
        assert "control or non-printable" in seen.refused[2]["reason"]
        assert w.where(s, {"alice": [PHONE]})["alice"].node == "cpe2"


def test_the_history_is_bounded_in_rows_and_newest_first(db: Database) -> None:
    w = Whereabouts(history_rows=3)
    with db.session() as s:
        for k in range(7):
            record_event(s, "UserLoggedIn", {"user": "bob", "node": ("cpe1", "cpe2")[k % 2]})
            w.step(s)  # bob is known by his logins only
            w.step(s)  # nothing new: no new entry
        rows = w.history(s, "bob")
        n = s.scalar(select(func.count()).select_from(CatalogPositionRow))
        assert n == 3 and [r.node for r in rows] == ["cpe1", "cpe2", "cpe1"]
        assert all(r.why.startswith(f"newest: login at {r.node}") for r in rows)
        assert [r.seen_at for r in rows] == sorted((r.seen_at for r in rows), reverse=True)


def test_many_users_histories_in_one_query_match_each_users_own(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(whereabouts, "IN_CHUNK", 3)  # two IN lists for five users
    users = ["ann", "bob", "cy", "dee", "eve"]
    with db.session() as s:
        for k in range(40):
            u = users[k * 7 % 5] if k % 3 else "bob"  # uneven: bob has most
            s.add(CatalogPositionRow(user=u, node=f"cpe{k % 2 + 1}", source="login",
                                     seen_at=float(k), recorded_at=float(k), why=""))  # fmt: skip
        s.flush()
        for rows in (1, 4, 100):
            got = whereabouts.histories(s, [*users, "nobody"], rows)
            want = {u: whereabouts.history(s, u, rows) for u in users}
            assert {u: [r.id for r in v] for u, v in got.items()} == {
                u: [r.id for r in v] for u, v in want.items()
            }
            assert all(len(v) <= rows for v in got.values()) and "nobody" not in got
        assert len(whereabouts.histories(s, ["bob"], 4)["bob"]) == 4


def test_positions_are_recorded_under_the_conduits_lock() -> None:
    assert whereabouts.SERIALIZE == cd.SERIALIZE
