"""`compute-recover explain INSTANCE`: an instance's journal, newest run first, and with
--live what the machine would decide now, as the instance's last run would have (its host and
options, unless flags say otherwise); or with --facts, one facts record without a database. Facts are
shown in the spelling `decide` reads."""

import logging
import shutil
import socket
import textwrap
from dataclasses import dataclass, replace
from typing import Any

import click

from recovery.adapters.hypervisor import Hypervisor, HypervisorError
from recovery.cli.exits import CommandError
from recovery.cli.help_groups import GroupedCommand
from recovery.cli.instance_names import resolve_instance
from recovery.cli.nova_options import nova_conf_options
from recovery.cli.open import open_db
from recovery.cli.options import (
    config_option,
    database_option,
    db_timeout_option,
    given,
    journal_db_option,
    libvirt_option,
    output_options,
    policy_options,
)
from recovery.cli.streams import stdin_bytes
from recovery.core.bounds import MAX_LINE_BYTES, InputError, canonical_uuid, parse_json, read_limited
from recovery.core.documents import (
    device_proof_json,
    device_proof_lines,
    explanation_json,
    explanation_text,
    format_action,
    walk_lines,
)
from recovery.core.facts import Facts, FactsError, Options, decide_record, facts_from_record, options_of, record_uuid
from recovery.core.machine import RecoveryMachine, shared_machine
from recovery.core.metadata import PolicyValueError, format_duration, start_order
from recovery.core.printable import printable
from recovery.db import Database, schema
from recovery.db import journal as journals
from recovery.db.models import RUN_INTERRUPTED, RUN_RUNNING
from recovery.present.formats import Output, emit, selected_columns
from recovery.run.devices import boots_definition, prove_guests
from recovery.run.gather import gather
from states.enums import PowerState, ResumePolicy

log = logging.getLogger(__name__)

JOURNAL_COLUMNS = ("run_id", "run_host", "run_started_at", "run_status", "dry_run", "start_state", "path", "actions",
               "outcome", "error", "final_state", "reason")
"""The columns of `explain -f value|csv` (one row a journaled run, newest first) and of -c."""
EXTRA_JOURNAL_COLUMNS = ("uuid", "name", "domain")
"""Columns there are only when -c names them: the instance's uuid and display name, on every row, and the
libvirt domain that row's run found for it."""


@dataclass(frozen=True)
class LiveRequest:
    """What --live decides with: the flags given (None: not given, so the last run's value)."""

    libvirt_uri: str
    host: str | None
    options: Options
    given_options: frozenset[str]



@dataclass(frozen=True)
class JournalRequest:
    """`explain INSTANCE` without --facts: which instance, where its journal is, and how to show it."""

    instance: str
    live: LiveRequest | None
    brief: bool
    output: Output
    limit: int | None
    db_url: str | None
    journal_db_url: str | None
    db_timeout: float
    libvirt_uri: str


@click.command(cls=GroupedCommand)
@click.argument("instance", required=False)
@click.option("--facts", "facts_text", help="Explain this facts record (JSON, or - for stdin) instead of a journal.")
@click.option("--live", is_flag=True, help="Also decide now, from the database and libvirt as they are, as the "
              "instance's last run would (its host and options; flags given win).")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N runs of the journal [default: all].")
@click.option("--brief", is_flag=True, help="Leave out the facts, the options and every rule considered: each run's "
              "start state, path (the rules that matched), actions, outcome and why, lines wrapped to the terminal.")
@output_options
@database_option
@journal_db_option
@db_timeout_option
@libvirt_option
@nova_conf_options()
@config_option
@policy_options
@click.pass_context
def explain(ctx: click.Context, instance: str | None, facts_text: str | None, live: bool, brief: bool, host: str,
            options: Options, **request) -> None:
    """Explain why the machine decides what it does for one instance.

    INSTANCE is a uuid, an instance's name, or its libvirt domain's name: the journal of past runs,
    newest first, and with --live what it would decide now. With --facts: one facts record, no
    database needed. Facts print in the spelling `decide` and --facts read, so they can be fed back.
    Columns for -c: run_id, run_host, run_started_at, run_status, dry_run, start_state, path,
    actions, outcome, error, final_state, reason, and when named: uuid, name, domain (with --facts: uuid,
    state, path, actions, vm_state, task_state, reason).
    """
    if facts_text is not None:
        _explain_facts(instance, facts_text, host, options, request["output"], brief)
        return
    if instance is None:
        raise click.UsageError("give an instance (uuid, name or domain name), or --facts JSON (or -)")
    chosen = frozenset(name for name in Options.__dataclass_fields__ if given(ctx, name))
    live_request = LiveRequest(request["libvirt_uri"], host if given(ctx, "host") else None, options, chosen)
    explain_journal(JournalRequest(instance, live_request if live else None, brief, **request))


FACTS_COLUMNS = ("uuid", "state", "path", "actions", "vm_state", "task_state", "reason")


def _explain_facts(instance: str | None, facts_text: str, host: str, options: Options, output: Output,
                   brief: bool) -> None:
    columns = selected_columns(FACTS_COLUMNS, output.columns)
    uuid = None if instance is None else canonical_uuid(instance)
    record = _read_facts_argument(facts_text)
    if isinstance(record, dict):
        record.setdefault("uuid", uuid or "(facts)")
    try:
        facts = facts_from_record(record, host, options)
    except FactsError as error:
        raise CommandError(f"--facts: {error}") from error
    doc = {"uuid": record_uuid(record), **explanation_json(shared_machine(), facts, record)}
    row = {**doc, "path": " → ".join(step["rule"] for step in doc["path"]),
           "actions": ", ".join(format_action(a) for a in doc["actions"])}
    emit(output, doc, lambda: [row], columns, lambda: click.echo(_wrapped(explanation_text(doc, brief), brief)))


def _read_facts_argument(text: str) -> Any:
    """The --facts document, from the argument (bounded by the OS) or at most 1 MiB of stdin."""
    try:
        if text == "-":
            return parse_json(read_limited(stdin_bytes("--facts - reads"), MAX_LINE_BYTES, "stdin"))
        return parse_json(text)
    except InputError as error:
        raise CommandError(f"--facts: {error}") from error


def explain_journal(request: JournalRequest) -> None:
    """The journal is read from `journal_db_url` when given (runs made against a Nova database), else from --db."""
    columns = selected_columns(JOURNAL_COLUMNS + EXTRA_JOURNAL_COLUMNS, request.output.columns) \
        if request.output.columns else list(JOURNAL_COLUMNS)
    db = open_db(request.db_url, read_only=True, timeout=request.db_timeout)
    journal = db if request.journal_db_url is None else open_db(request.journal_db_url, read_only=True,
                                                                timeout=request.db_timeout, option="--journal-db")
    try:
        uuid = resolve_instance(db, request.instance, request.libvirt_uri)
        has_journal = journal.has_tables("recovery_journal", "recovery_runs")
        entries = journals.journal_for(journal, uuid, request.limit) if has_journal else []
        row = db.load_instances_by_uuid([uuid]).get(uuid) if db.has_tables("instances") else None
        if not entries and row is None:
            where = db.masked_url if journal is db else f"{db.masked_url} or {journal.masked_url}"
            raise CommandError(f"unknown instance {uuid}: no instance record and no journal entry in {where}; "
                               "check the uuid, --db and --journal-db")
        identity = None if row is None else {
            "display_name": row.display_name, "host": row.host, "node": row.node, "deleted": row.deleted}
        live = request.live
        live_doc = _live_explanation(db, uuid, live, entries[0] if entries else None) if live else None
    finally:
        db.close()
        if journal is not db:
            journal.close()
    owner = identity["host"] if identity else None
    domain = next((e["domain_name"] for e in entries if e["domain_name"] is not None), None)
    doc = {"uuid": uuid, "instance": identity, "domain": domain,
           "start_order": None if row is None else _start_order_json(row.metadata),
           "runs": [_journal_json(e, owner) for e in entries], "live": live_doc}
    name = identity["display_name"] if identity else None
    emit(request.output, doc, lambda: [_run_row(run) | {"uuid": uuid, "name": name} for run in doc["runs"]], columns,
         lambda: click.echo(_wrapped(journal_text(doc, request.brief), request.brief)))

def _start_order_json(metadata: dict[str, str]) -> dict:
    """The tier and readiness check its metadata gives, used whenever a run starts its guest."""
    try:
        order = start_order(metadata)
    except PolicyValueError as error:
        return {"error": str(error)}
    return {"tier": order.priority, "ready": order.describe()}


def _journal_json(entry: dict, owner: str | None) -> dict:
    keep = ("run_id", "run_host", "run_started_at", "run_status", "dry_run", "domain_name", "start_state", "facts",
            "considered",
            "path", "actions", "final_vm_state", "final_task_state", "final_power_state", "outcome", "error", "reason")
    doc = {k: entry.get(k) for k in keep}
    doc["run_started_at"] = f"{entry['run_started_at']:%Y-%m-%d %H:%M:%S} UTC"  # stored as naive UTC, like Nova
    doc["plan"] = (entry.get("run_options") or {}).get("plan")
    if entry.get("facts") is not None:
        facts = Facts(**entry["facts"])
        host = entry["run_host"] if facts.owned else owner or f"(not {entry['run_host']})"
        doc["facts"] = decide_record(facts, host)
        doc["options"] = options_of(facts)
        run_options = entry.get("run_options") or {}
        if "host_down_seconds" in run_options:  # journaled by runs that read the downtime
            doc["facts"]["host_down_seconds"] = run_options["host_down_seconds"]
            doc["options"]["max_downtime"] = run_options.get("max_downtime")
            doc["downtime"] = _downtime_note(facts, run_options["host_down_seconds"], run_options.get("max_downtime"))
    return doc


def _downtime_note(facts: Facts, down: float | None, max_downtime: float | None) -> str:
    """How long the host was down, against the limit the decision compared it with."""
    said = "host was down " + ("for an unknown time (no heartbeat recorded)" if down is None else format_duration(down))
    if facts.resume_policy == ResumePolicy.IF_DOWN_LESS_THAN.value:
        return f"{said}; its recover:resume=if-down-less-than duration" + (" was reached" if facts.down_too_long else
                                                                          " was not reached")
    if max_downtime is not None:
        return f"{said}; --max-downtime {format_duration(max_downtime)}" + (" reached" if facts.down_too_long else "")
    return said


def _run_row(run: dict) -> dict:
    final = f"{run['final_vm_state']}/{run['final_task_state'] or 'none'}/{_power_label(run['final_power_state'])}"
    return {**{c: run.get(c) for c in JOURNAL_COLUMNS}, "final_state": final, "domain": run["domain_name"],
            "path": " → ".join(step["rule"] for step in run["path"] or []),
            "actions": ", ".join(f"{format_action(a)}: {a['outcome']}" for a in run["actions"] or [])}


def _power_label(value: int | None) -> str:
    return PowerState(value).label if value is not None else "?"


def _live_settings(live: LiveRequest, last_run: dict | None) -> tuple[str, Options, str]:
    """The host and options of the instance's last run, with the flags given winning; and where they came from."""
    if last_run is None:
        return live.host or socket.gethostname(), live.options, "no run has journaled it, so with the flags' options"
    recorded = last_run.get("run_options") or {}
    kept = {name: recorded[name] for name in Options.__dataclass_fields__
            if name in recorded and name not in live.given_options}
    source = f"as run {last_run['run_id']} on host {last_run['run_host']} decided it"
    if live.host or live.given_options:
        source += ", except where flags say otherwise"
    return live.host or last_run["run_host"], replace(live.options, **kept), source


def _live_explanation(db: Database, uuid: str, live: LiveRequest, last_run: dict | None) -> dict | None:
    host, options, source = _live_settings(live, last_run)
    log.info("deciding %s now as host %s with %s (%s)", uuid, host, options, source)
    hypervisor = Hypervisor.open(live.libvirt_uri, read_only=True)
    gathered = gather(db, hypervisor, host, only=[uuid], nova_cell=schema.is_nova_cell(db))
    row = gathered.row(uuid.lower())
    if row is None:
        return None
    record = gathered.record(row)
    try:
        facts = facts_from_record(record, host, options)
    except FactsError as error:
        return {"host": host, "decided": source, "error": f"bad database row: {error}"}
    machine = shared_machine()
    facts, proof = _live_proof(hypervisor, uuid, facts, machine)
    return {"host": host, "decided": source, **explanation_json(machine, facts, record), "devices": proof}


def _live_proof(hypervisor: Hypervisor, uuid: str, facts: Facts, machine: RecoveryMachine) -> tuple[Facts, dict | None]:
    """The guest's devices proved as a run would before starting it (one guest's inventory): the facts with its
    readiness, and the proof shown; None when the decision does not start it or it has no domain to prove."""
    decision = machine.decide(facts)
    if not boots_definition(decision):
        return facts, None
    uuid = uuid.lower()
    try:
        proof = prove_guests(hypervisor, [uuid])[1].get(uuid)
    except HypervisorError as error:
        return facts, {"error": str(error)}
    if proof is None:
        return facts, None
    return facts._replace(devices=proof.readiness.value), device_proof_json(proof)


def journal_text(doc: dict, brief: bool = False) -> str:
    """The journal document for people; `brief`: without facts, options and the rules considered."""
    identity = doc["instance"]
    domain = f"libvirt domain {doc['domain']}" if doc["domain"] else "no libvirt domain journaled"
    if identity is None:
        lines = [f"instance {doc['uuid']}", f"its record is gone from the database (journal only), {domain}"]
    else:
        lines = [f"instance {doc['uuid']} ({identity['display_name'] or 'no name'})",
                 f"host {identity['host']}, node {identity['node']}"
                 + (", record deleted" if identity["deleted"] else "") + f", {domain}"]
        order = doc["start_order"]
        told = order.get("error") or f"tier {order['tier']}, ready: {order['ready']}"
        lines.append(f"start order (when a run starts it): {told}")
    if not doc["runs"]:
        lines.append("no run has journaled it yet" + ("" if doc["live"] else "; add --live to decide it now"))
    for number, run in enumerate(doc["runs"]):
        label = "newest run" if number == 0 else "earlier run"
        lines.append("")
        lines.append(f"== {label} {run['run_id']} on host {run['run_host']} at {run['run_started_at']}"
                     + (" (dry run)" if run["dry_run"] else "") + _status_note(run))
        if run["plan"]:
            plan = run["plan"]
            lines.append(f"applied plan {plan['file']} (sha256 {plan['sha256']}, made at {plan['made_at']})")
        if run["facts"] is None:
            lines.append(f"not decided: {run['error']}")
            continue
        lines += walk_lines({**run, "state": run["start_state"]}, brief)
        if run.get("downtime"):
            lines.append(f"downtime: {run['downtime']}")
        lines.append(f"why: {run['reason']}")
        done = [f"{format_action(action)}: {action['outcome']}"
                + (f" — {action['error']}" if action.get("error") else "") for action in run["actions"] or []]
        done = done or ["none"]
        lines += ["actions: " + ", ".join(done)] if brief else ["actions:", *(f"  {action}" for action in done)]
        lines.append(f"outcome: {run['outcome']}" + (f" — {run['error']}" if run["error"] else ""))
        lines.append(f"record after the run: {run['final_vm_state']}/{run['final_task_state'] or 'none'}/"
                     f"{_power_label(run['final_power_state'])}")
    if doc["live"] is not None:
        live = doc["live"]
        lines += ["", f"== what the machine would decide now (--live) as host {live['host']}, {live['decided']}"]
        lines += [live["error"]] if "error" in live else explanation_text(live, brief).splitlines()
        if live.get("devices") is not None:
            lines += device_proof_lines(live["devices"])
    return "\n".join(printable(line) for line in lines)


def _status_note(run: dict) -> str:
    if run.get("run_status") == RUN_INTERRUPTED:
        return " (interrupted: the run never finished; what it intended and what it completed are below)"
    if run.get("run_status") == RUN_RUNNING:
        return " (still running, or killed and not yet marked interrupted by the host's next run)"
    return ""


def _wrapped(text: str, brief: bool) -> str:
    """A --brief explanation's lines wrapped to the terminal's width, each continuation indented two spaces
    past its line's own indent (so a wrapped reason stays under its label)."""
    if not brief:
        return text
    width = shutil.get_terminal_size().columns
    lines = []
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip(" ")) + 2)
        lines += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
    return "\n".join(lines)
