"""An existing database upgrades cleanly to the services' own Alembic folders.

Collected twice, like api_cases: by tests/unit/test_migrations.py (SQLite) and by
tests/netns/test_migrations_postgres.py (a real PostgreSQL server). Each defines
the `db_url` fixture (an empty database).

Until issue 11 every revision lived in store/migrations/versions; the firewall's
(0003_firewall) and the sharing service's (0004_sharing) now live in their
folders, with the same revision ids, and the firewall's tables were renamed
(0008_firewall_names). A database an orchestrator of the earlier layout made,
with rows in it, must come out with the rows under the new names. The core's
0005_concurrency resolves what the earlier concurrent writes could leave, before
its unique indexes.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from sqlalchemy import exc, insert, inspect, select, text

import authn
from concurrency_cases import _instance, _seed
from netfate.orchestrator.app import Settings, create_app
from netfate.services import registered
from netfate.store.db import Database, alembic_config
from netfate.store.tables import EventRow, InstanceRow, MigrationRow, NodeRow, TransitionRow

EARLIER_HEADS = ("0002_sdn", "0003_firewall", "0004_sharing")
"""The heads of a database migrated before the services had their folders."""
NEW_USBIP = "0009_usbip_tunnels"
"""The USB/IP service's branch, new: an earlier database gets it on its upgrade."""
FIREWALL_HEAD = "0007_firewall_nas_sessions"
"""The firewall branch's newest revision (its NAS sessions, after the renaming)."""
NEW_STREAMING = "0014e_streaming_portals"
"""The streaming service's branch (its newest revision: where the viewers' portals are
kept), new as well."""
NEW_CATALOG = "0016_catalog_whereis"
"""The catalog's branch, new like the USB/IP one (its newest revision: the where-is
service's `why` of each recorded position)."""
CORE_HEAD = "0020_creates_node_usage"
"""The core's newest revision (each node's kept CPU and memory use; after
0019_standby_predeploy, a node's pre-deploy budget; after 0018_night_power, a node's
power switch; after 0017_identity, accounts
and tokens, owners, events' actors; and 0016_migration_secret, each migration's secret)."""
SHARING_HEAD = "0020_pnuser"
"""The sharing branch's newest revision (the devices that join a PN, after its gateway
settings and invitation codes)."""
HEADS = {CORE_HEAD, FIREWALL_HEAD, SHARING_HEAD, NEW_USBIP, NEW_STREAMING, NEW_CATALOG}
"""Every branch's newest revision."""


def _earlier(db: Database) -> None:
    """The schema as the earlier layout left it (the same revision files, moved)."""
    cfg = alembic_config([s.migrations for s in registered() if s.migrations])
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        for head in EARLIER_HEADS:
            command.upgrade(cfg, head)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO netfate_users (name, password_hash, functions, status, "
                "session_timeout, idle_timeout, rules, rules_version, counters) VALUES "
                "('alice', 'x', '[\"firewall\"]', 'offline', 3600, 60, '{}', 1, '{}')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO netfate_accounting (at, "user", session_id, status, nas, '
                "input_octets, output_octets, session_time) VALUES "
                "(1.5, 'alice', 's1', 'start', 'cpe1', 0, 0, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO sharing_pns (email, name, node, subnet, created_at) VALUES "
                "('a@example.org', 'home', 'cpe1', '192.168.1.0/24', 1.0)"
            )
        )


def _versions(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))}


def test_an_earlier_database_upgrades_and_keeps_its_rows(db_url: str) -> None:
    db = Database(db_url)
    try:
        _earlier(db)
        assert _versions(db) == set(EARLIER_HEADS)
        db.migrate([s.migrations for s in registered() if s.migrations])
        assert _versions(db) == HEADS
        tables = set(inspect(db.engine).get_table_names())
        assert not {t for t in tables if t.startswith("netfate_")}, tables
        assert {"firewall_users", "firewall_accounting", "sharing_pns"} <= tables
        assert {"accounts", "tokens", "event_readers"} <= tables
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("firewall_accounting")}
        assert indexes == {"ix_firewall_accounting_at", "ix_firewall_accounting_user"}
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM firewall_users")).scalars().all() == [
                "alice"
            ]
            n = conn.execute(text("SELECT count(*) FROM firewall_accounting")).scalar()
            assert n == 1
        db.migrate([s.migrations for s in registered() if s.migrations])  # idempotent
        assert _versions(db) == HEADS
    finally:
        db.dispose()
    # The orchestrator serves the rows through the services' APIs.
    app = create_app(Settings(database_url=db_url, heartbeat_timeout_s=3600), services=registered())
    with authn.client(app) as c:
        users: list[dict[str, Any]] = c.get("/api/v1/firewall/users").json()
        assert [u["name"] for u in users] == ["alice"]
        acct = c.get("/api/v1/firewall/accounting?user=alice").json()
        assert [a["session_id"] for a in acct] == ["s1"]
        assert [p["email"] for p in c.get("/api/v1/sharing/pns").json()] == ["a@example.org"]


def test_the_races_an_earlier_database_kept_are_resolved(db_url: str) -> None:
    """0005_concurrency: what the earlier races could leave (an address held twice,
    two open migrations of one instance) is resolved, then the database refuses it."""
    db = Database(db_url)
    try:
        _earlier(db)
        _seed(db)
        with db.session() as s:
            s.execute(
                insert(InstanceRow),
                [
                    _instance("i-old", "10.1.0.9/24", at=1.0),
                    _instance("i-new", "10.1.0.9/24", "starting", at=2.0),
                    _instance("i-gone", "10.1.0.9/24", "gone", at=0.5),
                    _instance("i-other", "10.1.0.7/24", "migrating", at=1.5),
                ],
            )
            mig = {"instance": "i-other", "source": "n1", "target": "n1", "reason": ""}
            s.execute(
                insert(MigrationRow),
                [
                    {"phase": "pending", "started_at": 1.0, **mig},
                    {"phase": "preparing", "started_at": 2.0, **mig},
                ],
            )
        db.migrate([s.migrations for s in registered() if s.migrations])
        assert _versions(db) == HEADS
        with db.session(write=False) as s:
            states = {i: st for i, st in s.execute(select(InstanceRow.id, InstanceRow.state))}
            assert states == {
                "i-old": "running",
                "i-new": "gone",
                "i-gone": "gone",
                "i-other": "migrating",
            }
            (t,) = s.scalars(select(TransitionRow).where(TransitionRow.instance == "i-new"))
            assert (t.previous, t.state) == ("starting", "gone") and "i-old" in t.reason
            phases = [m.phase for m in s.scalars(select(MigrationRow).order_by(MigrationRow.id))]
            assert phases == ["failed", "preparing"]
            kinds = [e.kind for e in s.scalars(select(EventRow))]
            assert sorted(kinds) == ["InstanceStateChanged", "MigrationFailed"]
            node = s.get(NodeRow, "n1")
            assert node is not None and node.revision == 1  # its agent drops i-new
        with pytest.raises(exc.IntegrityError), db.session() as s:
            s.execute(insert(InstanceRow), [_instance("i-5", "10.1.0.9/24")])
    finally:
        db.dispose()


def test_the_firewall_rename_goes_back_down(db_url: str) -> None:
    db = Database(db_url)
    try:
        versions = [s.migrations for s in registered() if s.migrations]
        db.migrate(versions)
        cfg = alembic_config(versions)
        with db.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003_firewall")
        tables = set(inspect(db.engine).get_table_names())
        assert "netfate_users" in tables and "firewall_users" not in tables
    finally:
        db.dispose()


@pytest.fixture(autouse=True)
def _no_radius_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETFATE_RADIUS_LISTEN", "")
