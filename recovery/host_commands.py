"""The bodies of `compute-recover run` and `explain <uuid>`: they open the database and libvirt."""

import socket
import sys
from pathlib import Path

import click
from rich.console import Console

from recovery.boot import HostBoot, Refused, RunResult, live_record
from recovery.db import DEFAULT_DB_TIMEOUT_S, Database, DatabaseError, open_database, schema
from recovery.db import journal as journals
from recovery.db.lock import LockTimeout
from recovery.db.models import RUN_INTERRUPTED, RUN_RUNNING
from recovery.exits import EXIT_LOCKED, EXIT_REFUSED, EXIT_USAGE, fail
from recovery.facts import FactsError, Options, facts_from_record
from recovery.hypervisor import Hypervisor, HypervisorError, HypervisorUnavailable, PreflightRefused
from recovery.machine import shared_machine
from recovery.network import NetworkHook
from recovery.render import explanation_json, explanation_text, format_action, to_json, walk_lines
from recovery.report import print_run, run_json
from recovery.scenario_seed import ScenarioError, read_db_json
from recovery.settings import DEFAULT_INSTANCES_PATH, RunSettings, default_journal_path
from states.enums import PowerState


def run(scenario: str | None, node: str | None, dry_run: bool, as_json: bool, concurrency: int,
        stop_timeout: float, lock_timeout: float, db_timeout: float, plug_vifs_command: str | None,
        network_apply_command: str | None, db_url: str | None, libvirt_uri: str, host: str | None,
        options: Options, instances_path: Path = DEFAULT_INSTANCES_PATH, journal_db_url: str | None = None) -> None:
    """`run` (and `plan`, which is a dry run): `journal_db_url` names the journal's own database."""
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
                               nova_cell=nova_cell)
        result = recover(hypervisor, db, settings, NetworkHook(plug_vifs_command, network_apply_command), journal)
    finally:
        db.close()
        if journal is not None:
            journal.close()
    print_result(result, as_json)
    sys.exit(result.exit_code)


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
            journal: Database | None = None) -> RunResult:
    """One run of the boot routine, as `run` and `agent` both start; a refusal exits with its code."""
    return _boot(HostBoot(shared_machine(), hypervisor, db, settings, network, journal), journal or db,
                 settings.host, settings.lock_timeout)


def print_result(result: RunResult, as_json: bool) -> None:
    if as_json:
        click.echo(to_json(run_json(result), indent=2))
    else:
        print_run(result, Console(highlight=False, width=None if sys.stdout.isatty() else 200))


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


def _warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def explain_journal(uuid: str, live: bool, as_json: bool, db_url: str | None, db_timeout: float, libvirt_uri: str,
                    host: str, options: Options, journal_db_url: str | None = None) -> None:
    """The journal is read from `journal_db_url` when given (runs made against a Nova database), else from --db."""
    db = open_db(db_url, read_only=True, timeout=db_timeout)
    journal = db if journal_db_url is None else open_db(journal_db_url, read_only=True, timeout=db_timeout,
                                                        option="--journal-db")
    try:
        has_journal = journal.has_tables("recovery_journal", "recovery_runs")
        entries = journals.journal_for(journal, uuid) if has_journal else []
        row = db.load_instances_by_uuid([uuid]).get(uuid.lower()) if db.has_tables("instances") else None
        if not entries and row is None:
            where = db.masked_url if journal is db else f"{db.masked_url} or {journal.masked_url}"
            fail(f"unknown instance {uuid}: no instance record and no journal entry in {where}; "
                 "check the uuid, --db and --journal-db", EXIT_USAGE)
        identity = None if row is None else {
            "display_name": row.display_name, "host": row.host, "node": row.node, "deleted": row.deleted}
        live_doc = _live_explanation(db, uuid, libvirt_uri, host, options) if live else None
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
        if journal is not db:
            journal.close()
    doc = {"uuid": uuid.lower(), "instance": identity, "runs": [_journal_json(e) for e in entries], "live": live_doc}
    click.echo(to_json(doc, indent=2) if as_json else journal_text(doc))


def _journal_json(entry: dict) -> dict:
    keep = ("run_id", "run_host", "run_started_at", "run_status", "dry_run", "start_state", "facts", "considered",
            "path", "actions", "final_vm_state", "final_task_state", "final_power_state", "outcome", "error", "reason")
    doc = {k: entry.get(k) for k in keep}
    doc["run_started_at"] = f"{entry['run_started_at']:%Y-%m-%d %H:%M:%S} UTC"  # stored as naive UTC, like Nova
    return doc


def _live_explanation(db: Database, uuid: str, libvirt_uri: str, host: str, options: Options) -> dict | None:
    found = live_record(db, open_hypervisor(libvirt_uri, read_only=True), uuid, host)
    if found is None:
        return None
    record, _row = found
    try:
        facts = facts_from_record(record, host, options)
    except FactsError as error:
        return {"error": f"bad database row: {error}"}
    return explanation_json(shared_machine(), facts)


def journal_text(doc: dict) -> str:
    identity = doc["instance"]
    if identity is None:
        lines = [f"instance {doc['uuid']}: its record is gone from the database; journal only"]
    else:
        lines = [f"instance {doc['uuid']} ({identity['display_name'] or 'no name'}): host {identity['host']}, "
                 f"node {identity['node']}" + (", record deleted" if identity["deleted"] else "")]
    if not doc["runs"]:
        lines.append("no run has journaled it yet" + ("" if doc["live"] else "; add --live to decide it now"))
    for number, run in enumerate(doc["runs"]):
        label = "newest run" if number == 0 else "earlier run"
        lines.append("")
        lines.append(f"== {label} {run['run_id']} on host {run['run_host']} at {run['run_started_at']}"
                     + (" (dry run)" if run["dry_run"] else "") + _status_note(run))
        if run["facts"] is None:
            lines.append(f"not decided: {run['error']}")
            continue
        lines += walk_lines({**run, "state": run["start_state"]})
        lines.append(f"why: {run['reason']}")
        lines.append("actions:")
        for action in run["actions"] or []:
            lines.append(f"  {format_action(action)}: {action['outcome']}"
                         + (f" — {action['error']}" if action.get("error") else ""))
        if not run["actions"]:
            lines.append("  none")
        power = PowerState(run["final_power_state"]).label if run["final_power_state"] is not None else "?"
        lines.append(f"outcome: {run['outcome']}" + (f" — {run['error']}" if run["error"] else ""))
        lines.append(f"record after the run: {run['final_vm_state']}/{run['final_task_state'] or 'none'}/{power}")
    if doc["live"] is not None:
        lines += ["", "== what the machine would decide now (--live)"]
        live = doc["live"]
        lines.append(live["error"] if "error" in live else explanation_text(live))
    return "\n".join(lines)


def _status_note(run: dict) -> str:
    if run.get("run_status") == RUN_INTERRUPTED:
        return " (interrupted: the run never finished; what it intended and what it completed are below)"
    if run.get("run_status") == RUN_RUNNING:
        return " (still running, or killed and not yet marked interrupted by the host's next run)"
    return ""


def open_db(db_url: str | None, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT_S,
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


