"""streaming: what the acquirer said of each live content's stream (recognition,
bitrate, starts and stops, refusals), kept on the content

Revision ID: 0014b_streaming_ingest
Revises: 0014_streaming
"""

import sqlalchemy as sa
from alembic import op

revision = "0014b_streaming_ingest"
down_revision = "0014_streaming"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("streaming_contents") as t:
        t.add_column(sa.Column("stream", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streaming_contents") as t:
        t.drop_column("stream")
