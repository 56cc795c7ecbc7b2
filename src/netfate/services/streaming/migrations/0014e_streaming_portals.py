"""streaming: the PEs where the service keeps the viewers' captive portals, a stored
operator setting (PUT /portals) beside the tree's criterion and grace period

Revision ID: 0014e_streaming_portals
Revises: 0014d_streaming_planning
"""

import sqlalchemy as sa
from alembic import op

revision = "0014e_streaming_portals"
down_revision = "0014d_streaming_planning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("streaming_tree") as t:
        t.add_column(sa.Column("portals", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streaming_tree") as t:
        t.drop_column("portals")
