"""concurrency: the database refuses a second holder of an address and a second open
migration of an instance

Before this revision two concurrent creates could take the same address, and two
migrations of one instance could both be open. Such rows, if a database has them,
are resolved first (the index could not be created otherwise): the oldest holder
keeps the address and every later one is marked gone (its agent removes it: a copy
with another instance's address never worked); of the open migrations of one
instance the newest stays and the others fail. Each is recorded as a transition or
a migration reason, and an event.

Revision ID: 0005_concurrency
Revises: 0002_sdn
"""

import time
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_concurrency"
down_revision = "0002_sdn"
branch_labels = None
depends_on = None

HOLDS_ADDRESS = sa.text("state <> 'gone'")
OPEN_MIGRATION = sa.text("phase IN ('pending', 'preparing', 'aborting')")

instances = sa.table(
    "instances",
    sa.column("id", sa.String),
    sa.column("node", sa.String),
    sa.column("state", sa.String),
    sa.column("lan", sa.String),
    sa.column("ip", sa.String),
    sa.column("created_at", sa.Float),
    sa.column("updated_at", sa.Float),
)
migrations = sa.table(
    "migrations",
    sa.column("id", sa.Integer),
    sa.column("instance", sa.String),
    sa.column("source", sa.String),
    sa.column("target", sa.String),
    sa.column("phase", sa.String),
    sa.column("finished_at", sa.Float),
    sa.column("reason", sa.Text),
)
transitions = sa.table(
    "transitions",
    sa.column("instance", sa.String),
    sa.column("previous", sa.String),
    sa.column("state", sa.String),
    sa.column("node", sa.String),
    sa.column("at", sa.Float),
    sa.column("reason", sa.Text),
)
events = sa.table(
    "events", sa.column("at", sa.Float), sa.column("kind", sa.String), sa.column("data", sa.JSON)
)
nodes = sa.table("nodes", sa.column("name", sa.String), sa.column("revision", sa.Integer))


def _event(conn: Any, kind: str, data: dict[str, Any]) -> None:
    conn.execute(sa.insert(events).values(at=time.time(), kind=kind, data=data))


def _resolve_shared_addresses(conn: Any) -> None:
    rows = conn.execute(
        sa.select(
            instances.c.id, instances.c.node, instances.c.state, instances.c.lan, instances.c.ip
        )
        .where(HOLDS_ADDRESS, instances.c.lan.is_not(None), instances.c.ip.is_not(None))
        .order_by(instances.c.created_at, instances.c.id)
    ).all()
    holder: dict[tuple[str, str], str] = {}
    now = time.time()
    for iid, node, state, lan, ip in rows:
        first = holder.setdefault((lan, ip), iid)
        if first == iid:
            continue
        why = f"address {ip} is also held by {first} (an earlier race); removed at upgrade"
        conn.execute(
            sa.update(instances).where(instances.c.id == iid).values(state="gone", updated_at=now)
        )
        conn.execute(
            sa.insert(transitions).values(
                instance=iid, previous=state, state="gone", node=node, at=now, reason=why
            )
        )
        conn.execute(
            sa.update(nodes).where(nodes.c.name == node).values(revision=nodes.c.revision + 1)
        )
        _event(
            conn,
            "InstanceStateChanged",
            {"instance": iid, "node": node, "previous": state, "state": "gone", "reason": why},
        )


def _resolve_open_migrations(conn: Any) -> None:
    rows = conn.execute(
        sa.select(migrations.c.id, migrations.c.instance, migrations.c.source, migrations.c.target)
        .where(OPEN_MIGRATION)
        .order_by(migrations.c.id.desc())
    ).all()
    newest: dict[str, int] = {}
    for mid, iid, source, target in rows:
        keep = newest.setdefault(iid, mid)
        if keep == mid:
            continue
        why = f"superseded by migration {keep} of the same instance; failed at upgrade"
        conn.execute(
            sa.update(migrations)
            .where(migrations.c.id == mid)
            .values(phase="failed", finished_at=time.time(), reason=why)
        )
        _event(
            conn,
            "MigrationFailed",
            {"instance": iid, "source": source, "target": target, "reason": why},
        )


def upgrade() -> None:
    conn = op.get_bind()
    _resolve_shared_addresses(conn)
    _resolve_open_migrations(conn)
    op.create_index(
        "uq_instances_lan_ip",
        "instances",
        ["lan", "ip"],
        unique=True,
        sqlite_where=HOLDS_ADDRESS,
        postgresql_where=HOLDS_ADDRESS,
    )
    op.create_index(
        "uq_migrations_open",
        "migrations",
        ["instance"],
        unique=True,
        sqlite_where=OPEN_MIGRATION,
        postgresql_where=OPEN_MIGRATION,
    )


def downgrade() -> None:
    op.drop_index("uq_migrations_open", table_name="migrations")
    op.drop_index("uq_instances_lan_ip", table_name="instances")
