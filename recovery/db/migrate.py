"""`compute-recover db upgrade`: Alembic brings a database's compute-recover schema up to date
(scripts in recovery/migrations; the check before writing is recovery.db.schema's)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from recovery.db.engine import make_sqlite_file_private
from recovery.db.schema import BRANCHES, current
from recovery.db.store import Database

_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


def config() -> Config:
    """Alembic's configuration for compute-recover's scripts (the connection is set by the caller)."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def scripts() -> ScriptDirectory:
    """The migration scripts this version ships."""
    return ScriptDirectory.from_config(config())


def upgrade(db: Database, branches: tuple[str, ...] = BRANCHES) -> tuple[set[str], set[str]]:
    """Bring `branches` to their newest revision; (revisions before, after). An SQLite file with none of
    compute-recover's tables yet is a database it makes: made 0600 before the first table is written."""
    before = current(db)
    if not before:
        make_sqlite_file_private(db.url)
    alembic_config = config()
    with db.transaction("upgrade its schema") as conn:
        alembic_config.attributes["connection"] = conn
        for branch in branches:
            command.upgrade(alembic_config, f"{branch}@head")
    return before, current(db)
