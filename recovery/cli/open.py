"""Opening what a command works on: the database and the journal's, libvirt, the host a scenario
names; and checking the schema a command needs. A failure is an error naming the option to check."""

import os
import socket
from dataclasses import replace
from pathlib import Path

import click

from recovery.cli.config import DEFAULT_CONFIG_PATH, ENV_PREFIX, value_source
from recovery.cli.exits import CommandError, exit_code
from recovery.cli.options import RecoveryOptions
from recovery.core.defaults import DEFAULT_DB_TIMEOUT
from recovery.core.settings import default_journal_path
from recovery.db import DB_ENV, Database, DatabaseError, open_database, schema
from recovery.db.engine import DEFAULT_DB_PATH, FIX
from recovery.db.scenarios import read_db_json


def resolve_target(recovery: RecoveryOptions) -> RecoveryOptions:
    """The host, libvirt URI and node to recover: a scenario directory names all three."""
    host, libvirt_uri, node = recovery.host, recovery.libvirt_uri, recovery.node
    if recovery.scenario is not None:
        directory = Path(recovery.scenario).resolve()
        data = read_db_json(directory / "db.json")
        host = host or data.get("host") or socket.gethostname()
        libvirt_uri = f"test://{directory / 'libvirt.xml'}"
        node = node or _scenario_node(data, host)
    return replace(recovery, host=host or socket.gethostname(), libvirt_uri=libvirt_uri, node=node)


def _scenario_node(data: dict, host: str) -> str:
    """The test driver cannot name its node, so a scenario's is its host's compute node record, else the host."""
    names = {n.get("hypervisor_hostname") for n in data.get("compute_nodes") or [] if n.get("host", host) == host}
    names.discard(None)
    return names.pop() if len(names) == 1 else host


def require_schema(db: Database, dry_run: bool, journal: Database | None = None) -> bool:
    """A real run writes the journal: its tables must be there (made by `db upgrade`, never by `run`),
    in `journal` when given, else in `db`, which then must not be Nova's own cell database.
    Whether `db` is Nova's cell database."""
    nova_cell = schema.is_nova_cell(db)
    if (dry_run or journal is not None) and not db.has_tables("instances", "services", "compute_nodes",
                                                              "migrations"):
        raise CommandError(f"database {db.masked_url} has no instance records (no `instances` table): load a "
                           "scenario with `compute-recover scenario load`, or check --db")
    if dry_run:
        if not nova_cell and schema.current(db):  # made by `db upgrade`: its records' tables must be the newest
            schema.require(db, schema.CELL_BRANCHES)
        return nova_cell
    if journal is not None:
        schema.require(journal, schema.JOURNAL_BRANCHES)
    elif nova_cell:
        raise CommandError(f"database {db.masked_url} is Nova's own cell database: a real run keeps its journal in "
                           f"a database of its own — add --journal-db URL (bare --journal-db: "
                           f"{default_journal_path()}), made once by `compute-recover db upgrade --journal-db URL`; "
                           "nothing was changed")
    else:
        schema.require(db)
    return nova_cell


def open_db(db_url: str | None, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT,
            option: str = "--db", create: bool = False) -> Database:
    """Open a database named by `option`; an error says what to check: where the URL came from (the
    flag, its environment variable, the config file and key), or, when none was given, how to name it."""
    if db_url is None and option == "--db" and not create and DB_ENV not in os.environ \
            and not os.path.exists(DEFAULT_DB_PATH):
        raise CommandError(f"no database given: name it with --db, ${DB_ENV} or `db` in the config file "
                           f"({DEFAULT_CONFIG_PATH}); the trial default, ./{DEFAULT_DB_PATH}, does not exist "
                           f"(`compute-recover db upgrade --db sqlite:///{DEFAULT_DB_PATH}` makes it)")
    try:
        return open_database(db_url, read_only=read_only, timeout=timeout, create=create)
    except DatabaseError as error:
        ctx = click.get_current_context(silent=True)
        source = None if ctx is None else value_source(ctx, _PARAMETERS[option])
        if source is None or source == "command line":
            if option == "--db":
                raise
            fix = f"check {option} / {ENV_PREFIX}{option.lstrip('-').replace('-', '_').upper()}"
        else:
            fix = f"check {option}, given by {source}"
        raise CommandError(str(error).replace(FIX, fix), exit_code(error)) from error


_PARAMETERS = {"--db": "db_url", "--journal-db": "journal_db_url"}


def open_journal(journal_db_url: str | None, records: Database, timeout: float) -> Database | None:
    """The journal's own database, if one is named and it is not the records' database itself
    (then the journal stays beside the records, written in the same transactions)."""
    if journal_db_url is None:
        return None
    journal = open_db(journal_db_url, timeout=timeout, option="--journal-db")
    if journal.url == records.url:
        journal.close()
        return None
    return journal

