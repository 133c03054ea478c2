"""The bodies of `compute-recover db upgrade` and `scenario load`: the only commands that create
or change a schema, and the only way a scenario's records enter a database."""

from pathlib import Path

import click

from recovery.db import Database, DatabaseError, open_database, schema
from recovery.exits import EXIT_USAGE, fail
from recovery.scenario_seed import ScenarioError, read_db_json, seed


def db_upgrade(db_url: str | None, timeout: float) -> None:
    """Create compute-recover's tables, or bring them to this version (Alembic)."""
    db = _open(db_url, timeout, create=True)
    try:
        before, after = schema.upgrade(db)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    if before == after:
        click.echo(f"database {db.masked_url} is up to date ({', '.join(sorted(after))})")
    else:
        click.echo(f"database {db.masked_url} upgraded to {', '.join(sorted(after))}"
                   + (f" (from {', '.join(sorted(before))})" if before else " (created)"))


def scenario_load(directory: str, db_url: str | None, replace: bool, timeout: float) -> None:
    """Load a scenario's db.json into a database made by `db upgrade`."""
    source = Path(directory) / "db.json"
    try:
        data = read_db_json(source)
    except ScenarioError as error:
        fail(str(error), EXIT_USAGE)
    db = _open(db_url, timeout)
    try:
        schema.require(db, ("cell",))
        seed(db, data, str(source), replace=replace, warn=lambda text: click.echo(f"warning: {text}", err=True))
    except (DatabaseError, ScenarioError) as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    click.echo(f"loaded {source} into {db.masked_url}: {len(data.get('instances') or [])} instance(s)")


def _open(db_url: str | None, timeout: float, create: bool = False) -> Database:
    try:
        return open_database(db_url, timeout=timeout, create=create)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
