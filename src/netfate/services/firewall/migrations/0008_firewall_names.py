"""firewall: the service's tables carry its one name (netfate_* -> firewall_*)

The service was called NetFATE (its paper), its API /netfate and its tables
netfate_*; it is the firewall service everywhere now. Rows are kept: the tables
and their indexes are renamed.

Revision ID: 0008_firewall_names
Revises: 0003_firewall
"""

from alembic import op

revision = "0008_firewall_names"
down_revision = "0003_firewall"
branch_labels = None
depends_on = None

TABLES = (
    "users",
    "functions",
    "forwarding",
    "radius_clients",
    "settings",
    "radius_listeners",
    "accounting",
)
INDEXES = (("accounting", "at"), ("accounting", "user"))


def _rename(old: str, new: str) -> None:
    for table, column in INDEXES:
        op.drop_index(f"ix_{old}_{table}_{column}", table_name=f"{old}_{table}")
    for table in TABLES:
        op.rename_table(f"{old}_{table}", f"{new}_{table}")
    for table, column in INDEXES:
        op.create_index(f"ix_{new}_{table}_{column}", f"{new}_{table}", [column])


def upgrade() -> None:
    _rename("netfate", "firewall")


def downgrade() -> None:
    _rename("firewall", "netfate")
