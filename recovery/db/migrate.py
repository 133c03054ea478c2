"""`compute-recover db upgrade`: Alembic brings a database's compute-recover schema up to date
(scripts in recovery/migrations; the check before writing is recovery.db.schema's)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from recovery.db.schema import BRANCHES, current
from recovery.db.store import Database

_SCRIPTS = Path(__file__).resolve().parent.parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def scripts() -> ScriptDirectory:
    """The migration scripts this version ships."""
    return ScriptDirectory.from_config(_config())


def upgrade(db: Database, branches: tuple[str, ...] = BRANCHES) -> tuple[set[str], set[str]]:
    """Bring `branches` to their newest revision; (revisions before, after)."""
    before = current(db)
    config = _config()
    with db.transaction("upgrade its schema") as conn:
        config.attributes["connection"] = conn
        for branch in branches:
            command.upgrade(config, f"{branch}@head")
    return before, current(db)
