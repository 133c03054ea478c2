"""The database layer: tables (models), opening (engine, urls), reads and writes (store), the
run journal (journal), the host lock (lock), and the schema's migrations (schema, imported by
the commands that need it: Alembic is slow to load)."""

from recovery.core.defaults import DEFAULT_DB_TIMEOUT
from recovery.db.engine import (
    DB_ENV,
    DatabaseError,
    create_database_engine,
    default_url,
    parse,
    probe,
)
from recovery.db.models import (
    ComputeNode,
    ComputeNodeRow,
    HostSnapshot,
    Instance,
    InstanceMetadata,
    InstanceRow,
    InstanceSystemMetadata,
    Migration,
    MigrationRow,
    RecoveryJournal,
    RecoveryRun,
    Service,
    ServiceRow,
)
from recovery.db.store import Database, DatabaseFailure


def open_database(
    url: str | None = None, *, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT, create: bool = False
) -> Database:
    """Connect without creating anything (`create`: the SQLite file, for `db upgrade` only);
    `read_only` sessions cannot write even by mistake. Errors are one password-free line."""
    parsed = parse(url)
    engine = create_database_engine(parsed, read_only=read_only, timeout=timeout, create=create)
    probe(engine, parsed)
    return Database(engine, parsed, read_only=read_only, timeout=timeout)


__all__ = [
    "DB_ENV",
    "ComputeNode",
    "ComputeNodeRow",
    "Database",
    "DatabaseError",
    "DatabaseFailure",
    "HostSnapshot",
    "Instance",
    "InstanceMetadata",
    "InstanceRow",
    "InstanceSystemMetadata",
    "Migration",
    "MigrationRow",
    "RecoveryJournal",
    "RecoveryRun",
    "Service",
    "ServiceRow",
    "default_url",
    "open_database",
]
