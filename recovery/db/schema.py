"""What schema a database holds, and the check every writing command makes before it writes.

The schema is created and changed only by `compute-recover db upgrade` (recovery.db.migrate, with
Alembic migrations in recovery/migrations). Checking it needs no Alembic, which takes a noticeable
part of a run's start to load: the check reads the version table and compares it with `HEADS`.

Two branches: `cell` holds the part of Nova's cell schema compute-recover uses, for a database of
its own; `journal` holds compute-recover's own tables. A real Nova cell database (`is_nova_cell`)
gets neither: its tables are Nova's, and compute-recover's journal lives in a database of its own
(`--journal-db`), which gets the `journal` branch only.
"""

import re

from sqlalchemy import inspect, text

from recovery.db.engine import DatabaseError
from recovery.db.store import Database
from recovery.db.urls import masked

VERSION_TABLE = "recovery_alembic_version"
"""Our own version table: Nova's cell database has an `alembic_version` of its own."""

HEADS = {"cell": "cell_0004", "journal": "journal_0003"}
"""The newest revision of each branch this version knows. Revisions are named `<branch>_<number>`,
numbered in order; a test holds this to the migration scripts."""

BRANCHES = ("cell", "journal")
CELL_BRANCHES = ("cell",)
"""What holds the records a run reads (a dry run reads, and needs, no journal)."""
JOURNAL_BRANCHES = ("journal",)
"""What a journal database of its own holds (`--journal-db`)."""

NOVA_MARKS = {"instances": "compute_id", "services": "uuid"}
"""Columns Nova's cell schema has and compute-recover's own `cell` branch never creates."""

NOVA_VERSION_TABLE = "alembic_version"

REVISION = re.compile(r"^([a-z]+)_(\d{4})$")


class SchemaMissing(DatabaseError):
    """The database lacks compute-recover's tables, or has an older version of them."""


def current(db: Database) -> set[str]:
    """The revisions the database is at (empty when it has no compute-recover tables)."""
    with db.reading("read its schema version") as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return set()
        return {row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}


def require(db: Database, branches: tuple[str, ...] = BRANCHES) -> None:
    """Refuse to write to a database whose compute-recover tables are missing or out of date."""
    have = current(db)
    option = "--journal-db" if branches == JOURNAL_BRANCHES else "--db"
    fix = f"run `compute-recover db upgrade {option} {masked(db.url)}`"
    if not have:
        raise SchemaMissing(f"database {db.masked_url} has no compute-recover tables: {fix} first")
    unknown = {revision for revision in have if not _known(revision)}
    if unknown:
        newer = ", ".join(sorted(unknown))
        raise SchemaMissing(f"database {db.masked_url} has a newer compute-recover schema ({newer}) than this "
                            "version knows: upgrade compute-recover")
    if not {HEADS[branch] for branch in branches} <= have:
        raise SchemaMissing(f"database {db.masked_url} has an older compute-recover schema: {fix}")


def _known(revision: str) -> bool:
    """Whether this version has the revision: a branch it knows, numbered no later than its head."""
    match = REVISION.match(revision)
    head = HEADS.get(match.group(1)) if match else None
    return head is not None and int(match.group(2)) <= int(REVISION.match(head).group(2))


def is_nova_cell(db: Database) -> bool:
    """Whether `db` is Nova's own cell database (Nova's version table, or a column of Nova's
    that compute-recover's own tables lack): compute-recover's tables must never be made there."""
    with db.reading("read its tables") as conn:
        schema = inspect(conn)
        tables = set(schema.get_table_names())
        if NOVA_VERSION_TABLE in tables:
            return True
        return any(table in tables and column in {c["name"] for c in schema.get_columns(table)}
                   for table, column in NOVA_MARKS.items())
