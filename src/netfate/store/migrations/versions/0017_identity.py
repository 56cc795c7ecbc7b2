"""identity: accounts, tokens, who owns an instance or a descriptor, who did and who
may read an event

Rows made before this revision have no owner (the platform's: operators see them)
and events no actor (the platform itself).

Revision ID: 0017_identity
Revises: 0016_migration_secret
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_identity"
down_revision = "0016_migration_secret"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=254), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_account_id"), ["account_id"], unique=False)
    op.create_table(
        "event_readers",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("reader", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("event_id", "reader"),
    )
    with op.batch_alter_table("event_readers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_readers_reader"), ["reader"], unique=False)
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=254), nullable=True))
        batch_op.create_index(batch_op.f("ix_events_actor"), ["actor"], unique=False)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=254), nullable=True))
        batch_op.create_index("ix_instances_owner", ["owner"], unique=False)
    with op.batch_alter_table("descriptors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("descriptors", schema=None) as batch_op:
        batch_op.drop_column("owner")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_owner")
        batch_op.drop_column("owner")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_actor"))
        batch_op.drop_column("actor")
    with op.batch_alter_table("event_readers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_readers_reader"))
    op.drop_table("event_readers")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_account_id"))
    op.drop_table("tokens")
    op.drop_table("accounts")
