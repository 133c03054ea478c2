"""Recovering a host as `run`, `plan` and `agent` start it: the host boot routine (recovery.run.boot)
on the opened database and libvirt, its refusals as one line and their exit code, and its report."""

import gc
import logging
import sys
from typing import TYPE_CHECKING

import click

from recovery.adapters.hypervisor import Hypervisor, HypervisorError, PreflightRefused
from recovery.adapters.network import NetworkHook
from recovery.cli.exits import CommandError, exit_code
from recovery.cli.interrupts import Interruption
from recovery.cli.open import open_db, open_journal, require_schema, resolve_target
from recovery.cli.options import RecoveryOptions, ReportFilter
from recovery.core.exit_codes import EXIT_CHANGES_PENDING, EXIT_OK
from recovery.core.machine import shared_machine
from recovery.core.settings import RunSettings
from recovery.db import Database, DatabaseError
from recovery.db import journal as journals
from recovery.db.lock import LockTimeout
from recovery.present.formats import Output, emit, selected_columns, stdout_console
from recovery.present.report import ALL_RUN_COLUMNS, RUN_COLUMNS, filtered, run_json, run_rows
from recovery.run.boot import DecisionScreen, HostBoot, Refused, RunResult, node_name
from recovery.run.execution import RunWatch

if TYPE_CHECKING:
    from recovery.run.plan_file import PlanHook

log = logging.getLogger(__name__)
TABLE = Output()


def run_host(recovery: RecoveryOptions, dry_run: bool, output: Output, interruption: Interruption,
             plan: "PlanHook | None" = None, shown: ReportFilter | None = None,
             metrics_textfile: str | None = None) -> None:
    """`run` (and `plan`, a dry run): `plan` writes (`plan --out`) or applies (`run --plan`) a plan file;
    `metrics_textfile`: the run's metrics written there, as the agent writes its own.
    With `shown.detailed_exitcode`, a dry run that would change something exits EXIT_CHANGES_PENDING.
    A signal (`interruption`) stops the run as recovery/cli/interrupts.py says."""
    columns = run_columns(output)  # a bad -c is refused before anything is done
    shown = shown or ReportFilter()
    recovery = resolve_target(recovery)
    db = open_db(recovery.db_url, read_only=dry_run, timeout=recovery.db_timeout)
    journal = None
    try:
        if not dry_run:
            journal = open_journal(recovery.journal_db_url, db, recovery.db_timeout)
        nova_cell = require_schema(db, dry_run, journal)
        hypervisor = Hypervisor.open(recovery.libvirt_uri, read_only=dry_run, instances_path=recovery.instances_path)
        settings = recovery.settings(node_name(db, recovery.host, recovery.node, hypervisor), dry_run, nova_cell)
        if plan is not None:
            settings = plan.settings_for(settings, recovery.libvirt_uri)
        network = NetworkHook(recovery.plug_vifs_command, recovery.network_apply_command)
        gc.freeze()  # what is here now (modules, connections) lives as long as this one run: out of its collections
        if output.for_people and sys.stdout.isatty() and not _quiet():
            from recovery.present.progress import RunProgress  # imported on use: rich is slow to load

            with RunProgress(stdout_console(), recovery.host) as progress:
                result = recover(hypervisor, db, settings, network, progress, journal, plan, interruption)
        else:
            result = recover(hypervisor, db, settings, network, journal=journal, screen=plan,
                             interruption=interruption)
        doc = journaled_report(result, journal or db)
    finally:
        db.close()
        if journal is not None:
            journal.close()
    if plan is not None and interruption.signal is None:  # an interrupted plan is no plan to apply
        plan.finish(result)
    if metrics_textfile:
        write_run_metrics(result, metrics_textfile)
    print_report_document(filtered(doc, shown.outcomes, shown.changes), output, columns)
    pending = dry_run and shown.detailed_exitcode and result.exit_code == EXIT_OK and doc["would_change"]
    sys.exit(interruption.exit_code(EXIT_CHANGES_PENDING if pending else result.exit_code))


def write_run_metrics(result: RunResult, path: str) -> None:
    """A oneshot run's metrics for node-exporter's textfile collector; a file not written is a warning,
    not the run's failure."""
    from recovery.agent.metrics import Metrics  # prometheus-client: imported on use

    metrics = Metrics()
    metrics.record_run(result)
    if result.halted is None:
        metrics.beat()  # the run's closing heartbeat
    try:
        metrics.write_textfile(path)
    except OSError as error:
        log.warning("metrics file %s not written: %s", path, error)


def run_columns(output: Output) -> list[str]:
    """The -c columns of a run's rows (the default ones without -c)."""
    return selected_columns(ALL_RUN_COLUMNS, output.columns) if output.columns else list(RUN_COLUMNS)


def _quiet() -> bool:
    return bool(click.get_current_context().find_root().params.get("quiet"))


def recover(hypervisor: Hypervisor, db: Database, settings: RunSettings, network: NetworkHook,
            watch: RunWatch | None = None, journal: Database | None = None,
            screen: DecisionScreen | None = None, interruption: Interruption | None = None) -> RunResult:
    """One run of the boot routine, as `run` and `agent` both start; a refusal is an error with its exit code."""
    log.info("recovering host %s (node %s)%s", settings.host, settings.node,
             " as a dry run" if settings.dry_run else "")
    boot = HostBoot(shared_machine(), hypervisor, db, settings, network, watch, journal, screen)
    if interruption is not None:
        interruption.attach(boot.ports.halt)
    result = _boot(boot, journal or db, settings.host, settings.lock_timeout)
    if result.halted:
        log.error("run %s stopped early: %s", result.run_id, result.halted)
    log.info("run %s on host %s finished in %.2f s with exit code %d: %s", result.run_id, settings.host,
             result.seconds, result.exit_code, ", ".join(f"{k} {v}" for k, v in result.totals.items() if v))
    return result


def journaled_report(result: RunResult, journal: Database) -> dict:
    """The run's report document, also kept in the journal of a real run (`runs ID` prints it again);
    a journal that cannot take it costs the reprint only, never the run's report."""
    doc = run_json(result)
    if result.run_id is not None:
        try:
            journals.save_report(journal, result.run_id, doc)
        except DatabaseError as error:
            log.warning("run %s: its report was not journaled (`runs %s` cannot print it): %s", result.run_id,
                        result.run_id, error)
    return doc


def print_report_document(doc: dict, output: Output = TABLE, columns: list[str] | None = None) -> None:
    """A run's report document (made now, or journaled) in the chosen format."""
    emit(output, doc, lambda: run_rows(doc), columns or list(RUN_COLUMNS), lambda: _print_table(doc))


def _print_table(doc: dict) -> None:
    from recovery.present.report_table import print_report  # imported on use: rich is slow to load

    print_report(doc, stdout_console())


def _boot(boot: HostBoot, db: Database, host: str, lock_timeout: float) -> RunResult:
    """Run the routine; every way it can refuse to start is told in one line, saying nothing was changed."""
    try:
        return boot.run()
    except (Refused, PreflightRefused) as error:
        raise CommandError(f"refused: {error} (nothing was changed)", exit_code(error)) from error
    except LockTimeout as error:
        try:
            holder = journals.running_run(db, host)
        except DatabaseError:
            holder = None
        raise CommandError(f"another recovery of host {host} is running ({holder or 'holder not yet recorded'}); "
                           f"waited {lock_timeout:g} s for it (--lock-timeout): nothing was changed",
                           exit_code(error)) from error
    except HypervisorError as error:
        raise CommandError(f"{error} (nothing was changed)", exit_code(error)) from error
    except DatabaseError as error:
        raise CommandError(f"{error} — nothing was changed; check --db and the database server",
                           exit_code(error)) from error
