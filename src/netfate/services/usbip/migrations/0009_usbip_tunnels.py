"""usbip: the tunnels the service keeps open (its own branch from the core's first revision)

Revision ID: 0009_usbip_tunnels
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_usbip_tunnels"
down_revision = "0001_initial"
branch_labels = ("usbip",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usbip_tunnels",
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("a", sa.String(length=128), nullable=False),
        sa.Column("b", sa.String(length=128), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("usbip_tunnels")
