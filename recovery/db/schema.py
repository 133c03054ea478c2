"""The schema, created and changed only by `compute-recover db upgrade` (Alembic migrations in
recovery/migrations), and the check every writing command makes before it writes.

Two branches: `cell` holds the part of Nova's cell schema compute-recover uses, for a database of
its own; `journal` holds compute-recover's own tables. A real Nova cell database (`is_nova_cell`)
gets neither: its tables are Nova's, and compute-recover's journal lives in a database of its own
(`--journal-db`), which gets the `journal` branch only.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from recovery.db.engine import DatabaseError
from recovery.db.store import Database
from recovery.db.urls import masked

VERSION_TABLE = "recovery_alembic_version"
"""Our own version table: Nova's cell database has an `alembic_version` of its own."""

BRANCHES = ("cell", "journal")
CELL_BRANCHES = ("cell",)
"""What holds the records a run reads (a dry run reads, and needs, no journal)."""
JOURNAL_BRANCHES = ("journal",)
"""What a journal database of its own holds (`--journal-db`)."""

NOVA_MARKS = {"instances": "compute_id", "services": "uuid"}
"""Columns Nova's cell schema has and compute-recover's own `cell` branch never creates."""

NOVA_VERSION_TABLE = "alembic_version"

_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


class SchemaMissing(DatabaseError):
    """The database lacks compute-recover's tables, or has an older version of them."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def heads(branches: tuple[str, ...] = BRANCHES) -> set[str]:
    """The newest revision of each branch this compute-recover knows."""
    script = ScriptDirectory.from_config(_config())
    return {script.get_revision(f"{branch}@head").revision for branch in branches}


def current(db: Database) -> set[str]:
    """The revisions the database is at (empty when it has no compute-recover tables)."""
    with db.reading("read its schema version") as conn:
        return set(MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_heads())


def upgrade(db: Database, branches: tuple[str, ...] = BRANCHES) -> tuple[set[str], set[str]]:
    """Bring `branches` to their newest revision; (revisions before, after)."""
    before = current(db)
    config = _config()
    with db.transaction("upgrade its schema") as conn:
        config.attributes["connection"] = conn
        for branch in branches:
            command.upgrade(config, f"{branch}@head")
    return before, current(db)


def require(db: Database, branches: tuple[str, ...] = BRANCHES) -> None:
    """Refuse to write to a database whose compute-recover tables are missing or out of date."""
    have, want = current(db), heads(branches)
    option = "--journal-db" if branches == JOURNAL_BRANCHES else "--db"
    fix = f"run `compute-recover db upgrade {option} {masked(db.url)}`"
    if not have:
        raise SchemaMissing(f"database {db.masked_url} has no compute-recover tables: {fix} first")
    script = ScriptDirectory.from_config(_config())
    unknown = {rev for rev in have if _unknown(script, rev)}
    if unknown:
        newer = ", ".join(sorted(unknown))
        raise SchemaMissing(f"database {db.masked_url} has a newer compute-recover schema ({newer}) than this "
                            "version knows: upgrade compute-recover")
    if not want <= have:
        raise SchemaMissing(f"database {db.masked_url} has an older compute-recover schema: {fix}")


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


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except Exception:  # alembic raises its own error types for an unknown id
        return True
