"""The schema, created and changed only by `compute-recover db upgrade` (Alembic migrations in
recovery/migrations), and the check every writing command makes before it writes.

Two branches: `cell` holds the part of Nova's cell schema compute-recover uses, for a database of
its own; `journal` holds compute-recover's own tables.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from recovery.db.engine import DatabaseError
from recovery.db.store import Database
from recovery.db.urls import masked

VERSION_TABLE = "recovery_alembic_version"
"""Our own version table: Nova's cell database has an `alembic_version` of its own."""

BRANCHES = ("cell", "journal")

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
    fix = f"run `compute-recover db upgrade --db {masked(db.url)}`"
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


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except Exception:  # alembic raises its own error types for an unknown id
        return True
