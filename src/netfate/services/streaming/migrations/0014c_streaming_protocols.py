"""streaming: the ingest protocol of each event and live content (rtp-udp, srt,
rtmp) and a live SRT/RTMP flow's secret (its passphrase or stream key)

Revision ID: 0014c_streaming_protocols
Revises: 0014b_streaming_ingest
"""

import sqlalchemy as sa
from alembic import op

revision = "0014c_streaming_protocols"
down_revision = "0014b_streaming_ingest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows from before took RTP over UDP only: that is their protocol.
    with op.batch_alter_table("streaming_events") as t:
        t.add_column(sa.Column("protocol", sa.String(8), nullable=False, server_default="rtp-udp"))
    with op.batch_alter_table("streaming_contents") as t:
        t.add_column(sa.Column("protocol", sa.String(8), nullable=False, server_default="rtp-udp"))
        t.add_column(sa.Column("ingest_secret", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("streaming_contents") as t:
        t.drop_column("ingest_secret")
        t.drop_column("protocol")
    with op.batch_alter_table("streaming_events") as t:
        t.drop_column("protocol")
