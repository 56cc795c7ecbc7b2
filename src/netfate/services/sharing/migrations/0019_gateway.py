"""sharing: a Personal Network's gateway settings (DHCP pool, forwards, allow rules)

Revision ID: 0019_gateway
Revises: 0004b_sharing_invitations
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_gateway"
down_revision = "0004b_sharing_invitations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sharing_pns") as batch:
        batch.add_column(sa.Column("gateway", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sharing_pns") as batch:
        batch.drop_column("gateway")
