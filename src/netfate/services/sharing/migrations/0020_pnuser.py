"""sharing: PNs of any account, and the devices their owners chose to join them

A PN's id was its owner's email; it is now its owner's account name (an email is
one). The key column keeps its name and its values: every stored PN's id is already
the account name of the owner who made it (the identity layer lets a user name only
itself), so no row changes. A PN gets `members`, the hosts of its LAN that join it;
existing PNs get NULL, which keeps what they had: every host of the LAN.

Revision ID: 0020_pnuser
Revises: 0019_gateway
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_pnuser"
down_revision = "0019_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sharing_pns") as batch:
        batch.add_column(sa.Column("members", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sharing_pns") as batch:
        batch.drop_column("members")
