"""firewall: the NAS sessions learnt from accounting (RFC 5176 Disconnect), kept
across orchestrator restarts

Its number was given before 0008_firewall_names (the renaming of the service's
tables) landed; it comes after it, so the firewall branch keeps one head and the
table has the service's name from the start.

Revision ID: 0007_firewall_nas_sessions
Revises: 0008_firewall_names
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_firewall_nas_sessions"
down_revision = "0008_firewall_names"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "firewall_nas_sessions",
        sa.Column("nas", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=253), nullable=False),
        sa.Column("user", sa.String(length=253), nullable=False),
        sa.Column("nas_identifier", sa.String(length=253), nullable=True),
        sa.Column("nas_port", sa.Integer(), nullable=False),
        sa.Column("listener_address", sa.String(length=64), nullable=False),
        sa.Column("listener_port", sa.Integer(), nullable=False),
        sa.Column("listener_netns", sa.String(length=128), nullable=True),
        sa.Column("framed_ip", sa.String(length=64), nullable=True),
        sa.Column("started", sa.Float(), nullable=False),
        sa.Column("seen", sa.Float(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("disconnected_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("nas", "session_id"),
    )
    op.create_index("ix_firewall_nas_sessions_user", "firewall_nas_sessions", ["user"])
    op.create_index("ix_firewall_nas_sessions_seen", "firewall_nas_sessions", ["seen"])


def downgrade() -> None:
    op.drop_index("ix_firewall_nas_sessions_seen", table_name="firewall_nas_sessions")
    op.drop_index("ix_firewall_nas_sessions_user", table_name="firewall_nas_sessions")
    op.drop_table("firewall_nas_sessions")
