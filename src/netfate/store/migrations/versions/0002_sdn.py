"""sdn: intents, flow-table snapshots, host sightings

Revision ID: 0002_sdn
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_sdn"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sdn_intents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sdn_intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sdn_intents_created_at"), ["created_at"], unique=False)
    op.create_table(
        "sdn_flow_snapshots",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("dpid", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("flows", sa.JSON(), nullable=False),
        sa.Column("ports", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("node"),
    )
    op.create_table(
        "sdn_host_sightings",
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("port", sa.String(length=32), nullable=False),
        sa.Column("ofport", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("mac"),
    )


def downgrade() -> None:
    op.drop_table("sdn_host_sightings")
    op.drop_table("sdn_flow_snapshots")
    with op.batch_alter_table("sdn_intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sdn_intents_created_at"))
    op.drop_table("sdn_intents")
