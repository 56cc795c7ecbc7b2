"""standby: a node's pre-deploy budget (storage for function images, warm standbys)

Existing nodes get none: nothing is pre-deployed until the operator says so.

Revision ID: 0019_standby_predeploy
Revises: 0018_night_power
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_standby_predeploy"
down_revision = "0018_night_power"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.add_column(sa.Column("predeploy", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as b:
        b.drop_column("predeploy")
