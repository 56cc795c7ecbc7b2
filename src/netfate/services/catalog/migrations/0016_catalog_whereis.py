"""catalog: the where-is service's history says why each position won (catalog_positions.why)

Revision ID: 0016_catalog_whereis
Revises: 0015_catalog
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_catalog_whereis"
down_revision = "0015_catalog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_positions") as t:
        t.add_column(sa.Column("why", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("catalog_positions") as t:
        t.drop_column("why")
