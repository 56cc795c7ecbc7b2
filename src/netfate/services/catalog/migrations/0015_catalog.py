"""catalog: published chains and their templates, subscriptions, their instances and
decisions, abstract sites, users' positions, settings (its own branch)

Revision ID: 0015_catalog
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_catalog"
down_revision = "0001_initial"
branch_labels = ("catalog",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "catalog_chains",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("user_mbps", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("availability", sa.Float(), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("published_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_catalog_chain_version"),
    )
    op.create_index("ix_catalog_chains_name", "catalog_chains", ["name"])
    op.create_index("ix_catalog_chains_provider", "catalog_chains", ["provider"])
    op.create_table(
        "catalog_blocks",
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("function", sa.String(length=64), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Float(), nullable=False),
        sa.Column("storage_mb", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["chain"], ["catalog_chains.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chain", "position"),
    )
    op.create_table(
        "catalog_talks",
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("a", sa.String(length=32), nullable=False),
        sa.Column("b", sa.String(length=32), nullable=False),
        sa.Column("mbps", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["chain"], ["catalog_chains.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chain", "position"),
    )
    op.create_table(
        "catalog_subscriptions",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("chain", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.String(length=64), nullable=False),
        sa.Column("devices", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["chain"], ["catalog_chains.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_subscriptions_user", "catalog_subscriptions", ["user"])
    op.create_index("ix_catalog_subscriptions_chain", "catalog_subscriptions", ["chain"])
    op.create_table(
        "catalog_instances",
        sa.Column("subscription", sa.String(length=16), nullable=False),
        sa.Column("block", sa.String(length=32), nullable=False),
        sa.Column("instance", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["subscription"], ["catalog_subscriptions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscription", "block"),
    )
    op.create_index("ix_catalog_instances_instance", "catalog_instances", ["instance"])
    op.create_table(
        "catalog_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription", sa.String(length=16), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("objective", sa.String(length=16), nullable=False),
        sa.Column("nodes", sa.JSON(), nullable=False),
        sa.Column("rtt_ms", sa.Float(), nullable=True),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_decisions_subscription", "catalog_decisions", ["subscription"])
    op.create_table(
        "catalog_sites",
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("node"),
        sa.UniqueConstraint("site"),
    )
    op.create_table(
        "catalog_positions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_catalog_positions_user", "catalog_positions", ["user"])
    op.create_table(
        "catalog_settings",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    for t in (
        "catalog_settings",
        "catalog_positions",
        "catalog_sites",
        "catalog_decisions",
        "catalog_instances",
        "catalog_subscriptions",
        "catalog_talks",
        "catalog_blocks",
        "catalog_chains",
    ):
        op.drop_table(t)
