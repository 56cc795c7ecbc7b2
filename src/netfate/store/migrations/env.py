"""Alembic environment: always run with a connection handed in by Database.migrate()."""

from __future__ import annotations

from alembic import context

import netfate.store.tables  # noqa: F401  (registers the tables on Base.metadata)
from netfate.store.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
