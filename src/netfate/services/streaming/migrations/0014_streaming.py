"""streaming: the front-end's tables, the delivery tree, its functions (own branch)

Revision ID: 0014_streaming
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_streaming"
down_revision = "0001_initial"
branch_labels = ("streaming",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "streaming_providers",
        sa.Column("name", sa.String(48), primary_key=True),
        sa.Column("title", sa.String(128), nullable=False),
        sa.Column("pe", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "streaming_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "provider",
            sa.String(48),
            sa.ForeignKey("streaming_providers.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("bitrate_kbps", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
    )
    op.create_index("ix_streaming_events_provider", "streaming_events", ["provider"])
    op.create_table(
        "streaming_contents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "event",
            sa.Integer(),
            sa.ForeignKey("streaming_events.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("provider", sa.String(48), nullable=False),
        sa.Column("pe", sa.String(64), nullable=False),
        sa.Column("ingest_port", sa.Integer(), nullable=False),
        sa.Column("tree_port", sa.Integer(), nullable=False),
        sa.Column("bitrate_bps", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
    )
    for table in ("streaming_recordings", "streaming_reservations"):
        cols: list[sa.schema.SchemaItem] = [
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("user", sa.String(254), nullable=False),
            sa.Column(
                "event",
                sa.Integer(),
                sa.ForeignKey("streaming_events.id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("created_at", sa.Float(), nullable=False),
        ]
        if table == "streaming_recordings":
            cols += [
                sa.Column("state", sa.String(16), nullable=False),
                sa.Column("stopped_at", sa.Float(), nullable=True),
            ]
        else:
            cols.append(sa.UniqueConstraint("user", "event"))
        op.create_table(table, *cols)
        op.create_index(f"ix_{table}_user", table, ["user"])
    op.create_table(
        "streaming_tree",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("criterion", sa.String(16), nullable=False),
        sa.Column("grace_s", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "streaming_functions",
        sa.Column("key", sa.String(96), primary_key=True),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "streaming_functions",
        "streaming_tree",
        "streaming_reservations",
        "streaming_recordings",
        "streaming_contents",
        "streaming_events",
        "streaming_providers",
    ):
        op.drop_table(table)
