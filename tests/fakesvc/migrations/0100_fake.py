"""fake: the fake service's table (its own branch from the core's first revision)

Revision ID: 0100_fake
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0100_fake"
down_revision = "0001_initial"
branch_labels = ("fake",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fake_ticks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("fake_ticks")
