"""Databases for tests, made the way an operator makes them: `db upgrade`, then records."""

from recovery.db import Database, migrate, open_database


def migrated_database(url: str) -> Database:
    """A database as `compute-recover db upgrade` leaves it (an SQLite file is created if missing), opened."""
    db = open_database(url, create=True)
    migrate.upgrade(db)
    return db
