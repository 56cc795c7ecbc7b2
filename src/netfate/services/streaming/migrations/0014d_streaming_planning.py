"""streaming: a reservation says the user's access PE (the back-end pre-starts a
branch there before the event)

Revision ID: 0014d_streaming_planning
Revises: 0014c_streaming_protocols
"""

import sqlalchemy as sa
from alembic import op

revision = "0014d_streaming_planning"
down_revision = "0014c_streaming_protocols"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("streaming_reservations") as t:
        t.add_column(sa.Column("pe", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streaming_reservations") as t:
        t.drop_column("pe")
