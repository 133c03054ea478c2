"""`compute-recover db upgrade` and `scenario load`: the only commands that create
or change a schema, and the only way a scenario's records enter a database."""

import os
from pathlib import Path

import click

from recovery.cli.exits import CommandError
from recovery.cli.open import open_db
from recovery.cli.options import config_option, database_option, db_timeout_option, journal_db_option
from recovery.core.printable import printable
from recovery.db import migrate, parse, schema
from recovery.db.scenarios import read_db_json, seed
from recovery.db.urls import sqlite_path


@click.group("db")
def db_group() -> None:
    """compute-recover's tables in a database."""


@db_group.command("upgrade")
@database_option
@journal_db_option
@db_timeout_option
@config_option
def db_upgrade(db_url: str | None, journal_db_url: str | None, db_timeout: float) -> None:
    """Create compute-recover's tables in --db, or bring them up to this version (the only command
    that changes a schema). With --journal-db: only the journal's tables, in that database (--db,
    which may be Nova's cell database, is not touched). An SQLite file is created if missing,
    readable by its owner only."""
    upgrade_tables(db_url, db_timeout, journal_db_url)


@click.group("scenario")
def scenario_group() -> None:
    """Scenarios: a libvirt test-driver document and the database records that go with it."""


@scenario_group.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--replace", is_flag=True, help="Delete the database's records (and journal) first, in the same "
              "transaction, instead of refusing a database that holds records.")
@database_option
@db_timeout_option
@config_option
def scenario_load(directory: str, replace: bool, db_url: str | None, db_timeout: float) -> None:
    """Load DIRECTORY/db.json into --db (made by `db upgrade`); refuses a database that holds records."""
    load_scenario(directory, db_url, replace, db_timeout)



def upgrade_tables(db_url: str | None, timeout: float, journal_db_url: str | None = None) -> None:
    """Create compute-recover's tables, or bring them to this version (Alembic); with a journal
    database, only the journal's tables, there (its directory is made if missing, 0700)."""
    if journal_db_url is not None:
        _make_state_dir(journal_db_url)
    db = (open_db(journal_db_url, timeout=timeout, option="--journal-db", create=True) if journal_db_url is not None
          else open_db(db_url, timeout=timeout, create=True))
    branches = schema.JOURNAL_BRANCHES if journal_db_url is not None else schema.BRANCHES
    try:
        if journal_db_url is None and schema.is_nova_cell(db):
            raise CommandError(f"database {db.masked_url} is Nova's own cell database: compute-recover makes no table "
                               "there; make a journal database of its own with `compute-recover db upgrade "
                               "--journal-db URL`")
        before, after = migrate.upgrade(db, branches)
    finally:
        db.close()
    if before == after:
        click.echo(f"database {db.masked_url} is up to date ({', '.join(sorted(after))})")
    else:
        click.echo(f"database {db.masked_url} upgraded to {', '.join(sorted(after))}"
                   + (f" (from {', '.join(sorted(before))})" if before else " (created)"))


def load_scenario(directory: str, db_url: str | None, replace: bool, timeout: float) -> None:
    """Load a scenario's db.json into a database made by `db upgrade`."""
    source = Path(directory) / "db.json"
    data = read_db_json(source)
    db = open_db(db_url, timeout=timeout)
    try:
        schema.require(db, ("cell",))
        seed(db, data, str(source), replace=replace,
             warn=lambda text: click.echo(f"warning: {printable(text)}", err=True))
    finally:
        db.close()
    click.echo(f"loaded {source} into {db.masked_url}: {len(data.get('instances') or [])} instance(s)")


def _make_state_dir(journal_db_url: str) -> None:
    """The directory of a journal SQLite file (the state directory, by default), made 0700 if missing."""
    path = sqlite_path(parse(journal_db_url))
    if path is not None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        except OSError as error:
            raise CommandError(f"cannot make the directory of journal database {path}: {error.strerror} — check "
                               "--journal-db or $COMPUTE_RECOVER_STATE_DIR") from error

