"""sharing: invitation codes (a recipient's PN named without its id)

Revision ID: 0004b_sharing_invitations
Revises: 0004_sharing
"""

import sqlalchemy as sa
from alembic import op

revision = "0004b_sharing_invitations"
down_revision = "0004_sharing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sharing_invitations",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("pn", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("used_at", sa.Float(), nullable=True),
        sa.Column("share", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["pn"], ["sharing_pns.email"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index("ix_sharing_invitations_pn", "sharing_invitations", ["pn"])


def downgrade() -> None:
    op.drop_index("ix_sharing_invitations_pn", table_name="sharing_invitations")
    op.drop_table("sharing_invitations")
