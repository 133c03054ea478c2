"""The bodies of `compute-recover run` and `explain <uuid>`: they open the database and libvirt."""

import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, HypervisorUnavailable, PreflightRefused
from recovery.adapters.network import NetworkHook
from recovery.cli.exits import EXIT_LOCKED, EXIT_REFUSED, EXIT_USAGE, fail
from recovery.core.defaults import DEFAULT_DB_TIMEOUT, DEFAULT_TIER_TIMEOUT
from recovery.core.facts import Options
from recovery.core.machine import shared_machine
from recovery.core.settings import DEFAULT_INSTANCES_PATH, RunSettings, default_journal_path
from recovery.db import Database, DatabaseError, open_database, schema
from recovery.db import journal as journals
from recovery.db.lock import LockTimeout
from recovery.db.scenarios import ScenarioError, read_db_json
from recovery.present.formats import Output, emit, selected_columns, stdout_console
from recovery.present.report import RUN_COLUMNS, run_json, run_rows
from recovery.run.boot import DecisionScreen, HostBoot, Refused, RunResult
from recovery.run.execute import InstanceResult

if TYPE_CHECKING:
    from recovery.run.plan_file import PlanHook

log = logging.getLogger(__name__)
T = TypeVar("T")
TABLE = Output()


def run(scenario: str | None, node: str | None, dry_run: bool, output: Output, concurrency: int,
        stop_timeout: float, lock_timeout: float, db_timeout: float, plug_vifs_command: str | None,
        network_apply_command: str | None, db_url: str | None, libvirt_uri: str, host: str | None,
        options: Options, instances_path: Path = DEFAULT_INSTANCES_PATH, journal_db_url: str | None = None,
        plan: "PlanHook | None" = None, tier_timeout: float = DEFAULT_TIER_TIMEOUT) -> None:
    """`run`: `journal_db_url` names the journal's own database; `plan` writes (`plan --out`) or applies
    (`run --plan`) a plan file."""
    columns = selected_columns(RUN_COLUMNS, output.columns)  # a bad -c is refused before anything is done
    host, libvirt_uri, node = resolve_target(scenario, node, libvirt_uri, host)
    db = open_db(db_url, read_only=dry_run, timeout=db_timeout)
    journal = None
    try:
        if not dry_run:
            journal = open_journal(journal_db_url, db, db_timeout)
        nova_cell = require_schema(db, dry_run, journal)
        hypervisor = open_hypervisor(libvirt_uri, read_only=dry_run, instances_path=instances_path)
        settings = RunSettings(host=host, node=node or hypervisor.hostname(), options=options, dry_run=dry_run,
                               concurrency=concurrency, stop_timeout=stop_timeout, lock_timeout=lock_timeout,
                               tier_timeout=tier_timeout, nova_cell=nova_cell)
        if plan is not None:
            settings = _planned(lambda: plan.settings_for(settings, libvirt_uri))
        network = NetworkHook(plug_vifs_command, network_apply_command)
        if output.for_people and sys.stdout.isatty() and not _quiet():
            from recovery.present.progress import RunProgress  # imported on use: rich is slow to load

            with RunProgress(stdout_console(), host) as progress:
                result = recover(hypervisor, db, settings, network, progress.finished, journal, plan)
        else:
            result = recover(hypervisor, db, settings, network, journal=journal, screen=plan)
    finally:
        db.close()
        if journal is not None:
            journal.close()
    if plan is not None:
        _planned(lambda: plan.finish(result))
    print_result(result, output, columns)
    sys.exit(result.exit_code)


def _planned(step: Callable[[], T]) -> T:
    """A step of writing or applying a plan file; a refusal is one line and exit 2."""
    from recovery.run.plan_file import PlanFileError

    try:
        return step()
    except PlanFileError as error:
        fail(str(error), EXIT_USAGE)


def _quiet() -> bool:
    return bool(click.get_current_context().find_root().params.get("quiet"))


def resolve_target(scenario: str | None, node: str | None, libvirt_uri: str,
                   host: str | None) -> tuple[str, str, str | None]:
    """The host, libvirt URI and node to recover: a scenario directory names all three."""
    if scenario is not None:
        directory = Path(scenario).resolve()
        try:
            data = read_db_json(directory / "db.json")
        except ScenarioError as error:
            fail(str(error), EXIT_USAGE)
        host = host or data.get("host") or socket.gethostname()
        libvirt_uri = f"test://{directory / 'libvirt.xml'}"
        node = node or _scenario_node(data, host)
    return host or socket.gethostname(), libvirt_uri, node


def recover(hypervisor: Hypervisor, db: Database, settings: RunSettings, network: NetworkHook,
            on_result: Callable[[InstanceResult], None] | None = None, journal: Database | None = None,
            screen: DecisionScreen | None = None) -> RunResult:
    """One run of the boot routine, as `run` and `agent` both start; a refusal exits with its code."""
    log.info("recovering host %s (node %s)%s", settings.host, settings.node,
             " as a dry run" if settings.dry_run else "")
    result = _boot(HostBoot(shared_machine(), hypervisor, db, settings, network, on_result, journal, screen),
                   journal or db, settings.host, settings.lock_timeout)
    if result.halted:
        log.error("run %s stopped early: %s", result.run_id, result.halted)
    log.info("run %s on host %s finished in %.2f s with exit code %d: %s", result.run_id, settings.host,
             result.seconds, result.exit_code, ", ".join(f"{k} {v}" for k, v in result.totals.items() if v))
    return result


def print_result(result: RunResult, output: Output = TABLE, columns: list[str] | None = None) -> None:
    """The run in the chosen format: the table, the whole document (json, yaml), or rows of -c columns."""
    doc = run_json(result)
    emit(output, doc, lambda: run_rows(doc), columns or list(RUN_COLUMNS), lambda: _print_table(doc))


def _print_table(doc: dict) -> None:
    from recovery.present.report_table import print_report  # imported on use: rich is slow to load

    print_report(doc, stdout_console())


def require_schema(db: Database, dry_run: bool, journal: Database | None = None) -> bool:
    """A real run writes the journal: its tables must be there (made by `db upgrade`, never by `run`),
    in `journal` when given, else in `db`, which then must not be Nova's own cell database.
    Whether `db` is Nova's cell database."""
    try:
        nova_cell = schema.is_nova_cell(db)
        if (dry_run or journal is not None) and not db.has_tables("instances", "services", "compute_nodes",
                                                                  "migrations"):
            fail(f"database {db.masked_url} has no instance records (no `instances` table): load a scenario "
                 "with `compute-recover scenario load`, or check --db", EXIT_USAGE)
        if dry_run:
            if not nova_cell and schema.current(db):  # made by `db upgrade`: its records' tables must be the newest
                schema.require(db, schema.CELL_BRANCHES)
            return nova_cell
        if journal is not None:
            schema.require(journal, schema.JOURNAL_BRANCHES)
        elif nova_cell:
            fail(f"database {db.masked_url} is Nova's own cell database: a real run keeps its journal in a database "
                 f"of its own — add --journal-db URL (bare --journal-db: {default_journal_path()}), made once by "
                 "`compute-recover db upgrade --journal-db URL`; nothing was changed", EXIT_USAGE)
        else:
            schema.require(db)
        return nova_cell
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)


def _boot(boot: HostBoot, db: Database, host: str, lock_timeout: float) -> RunResult:
    """Run the routine; every way it can refuse to start is one line and its exit code."""
    try:
        return boot.run()
    except (Refused, PreflightRefused) as error:
        fail(f"refused: {error} (nothing was changed)", EXIT_REFUSED)
    except LockTimeout:
        try:
            holder = journals.running_run(db, host)
        except DatabaseError:
            holder = None
        fail(f"another recovery of host {host} is running ({holder or 'holder not yet recorded'}); waited "
             f"{lock_timeout:g} s for it (--lock-timeout): nothing was changed", EXIT_LOCKED)
    except HypervisorError as error:
        fail(f"{error} (nothing was changed)", EXIT_REFUSED)
    except DatabaseError as error:
        fail(f"{error} — nothing was changed; check --db and the database server", EXIT_USAGE)


def _scenario_node(data: dict, host: str) -> str:
    """The test driver cannot name its node, so a scenario's is its host's compute node record, else the host."""
    names = {n.get("hypervisor_hostname") for n in data.get("compute_nodes") or [] if n.get("host", host) == host}
    names.discard(None)
    return names.pop() if len(names) == 1 else host


def open_db(db_url: str | None, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT,
            option: str = "--db") -> Database:
    try:
        return open_database(db_url, read_only=read_only, timeout=timeout)
    except DatabaseError as error:
        text = str(error)
        if option != "--db":  # the message names the option to check
            text = text.replace("COMPUTE_RECOVER_DB", "COMPUTE_RECOVER_JOURNAL_DB").replace("--db", option)
        fail(text, EXIT_USAGE)


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


def open_hypervisor(uri: str, read_only: bool, instances_path: Path = DEFAULT_INSTANCES_PATH) -> Hypervisor:
    try:
        return Hypervisor.open(uri, read_only=read_only, instances_path=instances_path)
    except HypervisorUnavailable as error:
        fail(str(error), EXIT_REFUSED)


