"""migration secret: each migration's random secret, which its two agents prove to each
other on their channel (agent/migration_auth.py)

Migrations opened before this revision have none: their agents cannot authenticate,
so such a migration ends as failed at its deadline and the instance stays where it
runs (it can be migrated again).

Revision ID: 0016_migration_secret
Revises: 0005_concurrency
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_migration_secret"
down_revision = "0005_concurrency"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("migrations", schema=None) as batch_op:
        batch_op.drop_column("secret")
