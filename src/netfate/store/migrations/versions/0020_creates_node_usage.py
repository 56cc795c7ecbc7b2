"""creates: each node's used CPU and memory, kept in its row (store/usage.py)

Filled here from the instances and open migrations, as store/usage.py recomputes
them; from then on every ORM flush keeps them.

Revision ID: 0020_creates_node_usage
Revises: 0019_standby_predeploy
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_creates_node_usage"
down_revision = "0019_standby_predeploy"
branch_labels = None
depends_on = None

LIVE = "('requested', 'starting', 'running', 'migrating')"
OPEN = "('pending', 'preparing', 'aborting')"


def _sum(column: str) -> str:
    return (
        f"COALESCE((SELECT SUM(i.{column}) FROM instances i "
        f"WHERE i.node = nodes.name AND i.state IN {LIVE}), 0) + "
        f"COALESCE((SELECT SUM(i.{column}) FROM migrations m JOIN instances i "
        f"ON i.id = m.instance WHERE m.target = nodes.name AND m.phase IN {OPEN}), 0)"
    )


def upgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.add_column(sa.Column("used_cpu", sa.Float(), nullable=False, server_default="0"))
        b.add_column(sa.Column("used_memory_mb", sa.Integer(), nullable=False, server_default="0"))
    op.execute(f"UPDATE nodes SET used_cpu = {_sum('cpu')}, used_memory_mb = {_sum('memory_mb')}")


def downgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.drop_column("used_memory_mb")
        b.drop_column("used_cpu")
