"""The bodies of `compute-recover run` and `explain <uuid>`: they open the database and libvirt."""

import json
import socket
import sys
from pathlib import Path

import click
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from recovery.boot import HostBoot, Refused, live_record
from recovery.db import Database, DatabaseError, default_url, open_database
from recovery.exits import EXIT_REFUSED, EXIT_USAGE, fail
from recovery.facts import FactsError, Options, facts_from_record
from recovery.hypervisor import Hypervisor, HypervisorError, HypervisorUnavailable, PreflightRefused
from recovery.machine import shared_machine
from recovery.network import NetworkHook
from recovery.render import explanation_json, explanation_text, format_action, walk_lines
from recovery.report import print_run, run_json
from recovery.scenario_seed import ScenarioError, read_db_json, seed_if_empty
from recovery.settings import DEFAULT_INSTANCES_PATH, RunSettings
from states.enums import PowerState


def run(scenario: str | None, node: str | None, dry_run: bool, as_json: bool, concurrency: int,
        stop_timeout: float, plug_vifs_command: str | None, network_apply_command: str | None,
        db_url: str | None, libvirt_uri: str, host: str | None, options: Options,
        instances_path: Path = DEFAULT_INSTANCES_PATH) -> None:
    db = open_db(db_url)
    if scenario is not None:
        directory = Path(scenario).resolve()
        try:
            data = read_db_json(directory / "db.json")
            host = host or data.get("host") or socket.gethostname()
            # Setting up the scenario, not a recovery write, so a dry run seeds an empty database too.
            seed_if_empty(db, data, str(directory / "db.json"), warn=_warn)
        except ScenarioError as error:
            fail(str(error), EXIT_USAGE)
        libvirt_uri = f"test://{directory / 'libvirt.xml'}"
        node = node or _scenario_node(data, host)
    hypervisor = open_hypervisor(libvirt_uri, read_only=dry_run, instances_path=instances_path)
    settings = RunSettings(host=host, node=node or hypervisor.hostname(), options=options, dry_run=dry_run,
                           concurrency=concurrency, stop_timeout=stop_timeout)
    boot = HostBoot(shared_machine(), hypervisor, db, settings, NetworkHook(plug_vifs_command, network_apply_command))
    try:
        result = boot.run()
    except (Refused, PreflightRefused) as error:
        fail(f"refused: {error} (nothing was changed)", EXIT_REFUSED)
    except HypervisorError as error:
        fail(str(error), EXIT_REFUSED)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    except SQLAlchemyError as error:
        detail = " ".join(str(getattr(error, "orig", None) or error).split())[:300]
        fail(f"database {db.masked_url} failed during the run: {detail} — check --db and the database", EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(run_json(result), indent=2))
    else:
        print_run(result, Console(highlight=False, width=None if sys.stdout.isatty() else 200))
    sys.exit(result.exit_code)


def _scenario_node(data: dict, host: str) -> str:
    """The test driver cannot name its node, so a scenario's is its host's compute node record, else the host."""
    names = {n.get("hypervisor_hostname") for n in data.get("compute_nodes") or [] if n.get("host", host) == host}
    names.discard(None)
    return names.pop() if len(names) == 1 else host


def _warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def explain_journal(uuid: str, live: bool, as_json: bool, db_url: str | None, libvirt_uri: str, host: str,
                    options: Options) -> None:
    db = open_db(db_url)
    try:
        entries = db.journal_for(uuid)
        row = db.load_instances_by_uuid([uuid]).get(uuid)
    except SQLAlchemyError as error:
        fail(f"cannot read the journal in {db.masked_url}: {type(error).__name__} — check --db", EXIT_USAGE)
    if not entries and row is None:
        fail(f"unknown instance {uuid}: no instance record and no journal entry in {db.masked_url}; "
             "check the uuid and --db", EXIT_USAGE)
    identity = None if row is None else {
        "display_name": row.display_name, "host": row.host, "node": row.node, "deleted": row.deleted}
    live_doc = _live_explanation(db, uuid, libvirt_uri, host, options) if live else None
    doc = {"uuid": uuid, "instance": identity, "runs": [_journal_json(e) for e in entries], "live": live_doc}
    click.echo(json.dumps(doc, indent=2, default=str) if as_json else journal_text(doc))


def _journal_json(entry: dict) -> dict:
    keep = ("run_id", "run_host", "run_started_at", "dry_run", "start_state", "facts", "considered", "path",
            "actions", "final_vm_state", "final_task_state", "final_power_state", "outcome", "error", "reason")
    doc = {k: entry.get(k) for k in keep}
    doc["run_started_at"] = f"{entry['run_started_at']:%Y-%m-%d %H:%M:%S} UTC"  # stored as naive UTC, like Nova
    return doc


def _live_explanation(db: Database, uuid: str, libvirt_uri: str, host: str, options: Options) -> dict | None:
    record = live_record(db, open_hypervisor(libvirt_uri, read_only=True), uuid, host)
    if record is None:
        return None
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
                     + (" (dry run)" if run["dry_run"] else ""))
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


def open_db(db_url: str | None) -> Database:
    try:
        return open_database(db_url or default_url())
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)


def open_hypervisor(uri: str, read_only: bool, instances_path: Path = DEFAULT_INSTANCES_PATH) -> Hypervisor:
    try:
        return Hypervisor.open(uri, read_only=read_only, instances_path=instances_path)
    except HypervisorUnavailable as error:
        fail(str(error), EXIT_REFUSED)


