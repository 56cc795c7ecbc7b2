"""The shared API cases against a real PostgreSQL server (root tier: the server runs
as the postgres user; `db_url` comes from tests/shared_fixtures.py)."""

from api_cases import *  # noqa: F403
