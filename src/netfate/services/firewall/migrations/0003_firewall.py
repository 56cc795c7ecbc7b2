"""firewall: NFVI tables of NetFATE (users, functions, forwarding), RADIUS clients,
listeners and accounting

Revision ID: 0003_firewall
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_firewall"
down_revision = "0001_initial"
branch_labels = ("firewall",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "netfate_users",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("functions", sa.JSON(), nullable=False),
        sa.Column("host", sa.String(length=64), nullable=True),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("access_node", sa.String(length=64), nullable=True),
        sa.Column("logged_in_at", sa.Float(), nullable=True),
        sa.Column("last_packet_at", sa.Float(), nullable=True),
        sa.Column("session_timeout", sa.Integer(), nullable=False),
        sa.Column("idle_timeout", sa.Integer(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("counters", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "netfate_functions",
        sa.Column("name", sa.String(length=96), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=True),
        sa.Column("instance", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "netfate_forwarding",
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("function_mac", sa.String(length=17), nullable=True),
        sa.Column("instance", sa.String(length=32), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("steering", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("user"),
    )
    op.create_table(
        "netfate_radius_clients",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_table(
        "netfate_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "netfate_radius_listeners",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("netns", sa.String(length=128), nullable=True),
        sa.Column("advertise", sa.String(length=80), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "netfate_accounting",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nas", sa.String(length=128), nullable=False),
        sa.Column("input_octets", sa.BigInteger(), nullable=False),
        sa.Column("output_octets", sa.BigInteger(), nullable=False),
        sa.Column("session_time", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_netfate_accounting_at", "netfate_accounting", ["at"])
    op.create_index("ix_netfate_accounting_user", "netfate_accounting", ["user"])


def downgrade() -> None:
    op.drop_index("ix_netfate_accounting_user", table_name="netfate_accounting")
    op.drop_index("ix_netfate_accounting_at", table_name="netfate_accounting")
    for t in (
        "netfate_accounting",
        "netfate_radius_listeners",
        "netfate_settings",
        "netfate_radius_clients",
        "netfate_forwarding",
        "netfate_functions",
        "netfate_users",
    ):
        op.drop_table(t)
