"""night power: a node's power switch (on, draining, off) and why

Existing nodes are on.

Revision ID: 0018_night_power
Revises: 0017_identity
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_night_power"
down_revision = "0017_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.add_column(sa.Column("power", sa.String(length=16), nullable=False, server_default="on"))
        b.add_column(
            sa.Column("power_why", sa.String(length=2000), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.drop_column("power_why")
        b.drop_column("power")
