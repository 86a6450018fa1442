"""The integration tests run on SQLite and PostgreSQL: the ``database_url`` fixture (see tests/backends.py)."""

from tests.backends import database_url  # noqa: F401
