"""Persistence: ORM tables, sessions, Alembic migrations.

SQLite by default, PostgreSQL by URL. The schema is only ever created by Alembic
(`Database.migrate()`), never by `create_all`, so both engines get the same DDL.
"""

from netfate.store.base import Base
from netfate.store.db import Database, normalise_url, serialize

__all__ = ["Base", "Database", "normalise_url", "serialize"]
