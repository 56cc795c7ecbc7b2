"""sharing: personal networks, devices, share requests and their history

Revision ID: 0004_sharing
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sharing"
down_revision = "0001_initial"
branch_labels = ("sharing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharing_pns",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("subnet", sa.String(length=64), nullable=False),
        sa.Column("vhg_instance", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("email"),
    )
    op.create_table(
        "sharing_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pn", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["pn"], ["sharing_pns.email"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pn", "name"),
    )
    op.create_table(
        "sharing_shares",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=254), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("device_ip", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("att", sa.JSON(), nullable=True),
        sa.Column("vp2_instance", sa.String(length=32), nullable=True),
        sa.Column("vp1_instance", sa.String(length=32), nullable=True),
        sa.Column("tunnel_intent", sa.String(length=64), nullable=True),
        sa.Column("options", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("accepted_at", sa.Float(), nullable=True),
        sa.Column("active_at", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["owner"], ["sharing_pns.email"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recipient"], ["sharing_pns.email"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "sharing_share_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("previous", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["share"], ["sharing_shares.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_sharing_share_history_share", "sharing_share_history", ["share"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_sharing_share_history_share", table_name="sharing_share_history")
    op.drop_table("sharing_share_history")
    op.drop_table("sharing_shares")
    op.drop_table("sharing_devices")
    op.drop_table("sharing_pns")
