"""The bodies of `compute-recover db upgrade` and `scenario load`: the only commands that create
or change a schema, and the only way a scenario's records enter a database."""

import os
from pathlib import Path

import click

from recovery.cli.exits import EXIT_USAGE, fail
from recovery.core.printable import printable
from recovery.db import Database, DatabaseError, migrate, open_database, parse, schema
from recovery.db.scenarios import ScenarioError, read_db_json, seed
from recovery.db.urls import sqlite_path


def db_upgrade(db_url: str | None, timeout: float, journal_db_url: str | None = None) -> None:
    """Create compute-recover's tables, or bring them to this version (Alembic); with a journal
    database, only the journal's tables, there (its directory is made if missing, 0700)."""
    if journal_db_url is not None:
        _make_state_dir(journal_db_url)
    db = _open(journal_db_url or db_url, timeout, create=True)
    branches = schema.JOURNAL_BRANCHES if journal_db_url is not None else schema.BRANCHES
    try:
        if journal_db_url is None and schema.is_nova_cell(db):
            fail(f"database {db.masked_url} is Nova's own cell database: compute-recover makes no table there; "
                 "make a journal database of its own with `compute-recover db upgrade --journal-db URL`", EXIT_USAGE)
        before, after = migrate.upgrade(db, branches)
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
        seed(db, data, str(source), replace=replace,
             warn=lambda text: click.echo(f"warning: {printable(text)}", err=True))
    except (DatabaseError, ScenarioError) as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    click.echo(f"loaded {source} into {db.masked_url}: {len(data.get('instances') or [])} instance(s)")


def _make_state_dir(journal_db_url: str) -> None:
    """The directory of a journal SQLite file (the state directory, by default), made 0700 if missing."""
    try:
        path = sqlite_path(parse(journal_db_url))
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    if path is not None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        except OSError as error:
            fail(f"cannot make the directory of journal database {path}: {error.strerror} — check --journal-db "
                 "or $COMPUTE_RECOVER_STATE_DIR", EXIT_USAGE)


def _open(db_url: str | None, timeout: float, create: bool = False) -> Database:
    try:
        return open_database(db_url, timeout=timeout, create=create)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
