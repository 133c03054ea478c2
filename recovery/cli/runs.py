"""`compute-recover runs`: the runs the journal holds, newest first, and `runs ID` (or `runs last`):
a run's report printed again, from the journal, in any format, as the run printed it."""

from datetime import datetime

import click

from recovery.cli.exits import CommandError
from recovery.cli.help_groups import GroupedCommand
from recovery.cli.host import print_report_document, run_columns
from recovery.cli.open import open_db
from recovery.cli.options import (
    FAILED_OUTCOMES,
    ReportFilter,
    config_option,
    database_option,
    db_timeout_option,
    journal_db_option,
    output_options,
    report_filter_options,
)
from recovery.db import Database
from recovery.db import journal as journals
from recovery.present.formats import Output, emit, rows_table, selected_columns, stdout_console
from recovery.present.report import filtered

RUNS_COLUMNS = {"id": "Run", "host": "Host", "status": "Status", "started_at": "Started (UTC)",
                "seconds": "Seconds", "dry_run": "Dry Run", "exit_code": "Exit", "totals": "Totals"}
"""The listing's columns (for -c) and their table headers."""


@click.command(cls=GroupedCommand)
@click.argument("run_id", metavar="[RUN_ID|last]", required=False)
@click.option("--host", help="Only this host's runs.")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N runs [default: all].")
@output_options(example="id")
@report_filter_options(detailed_exitcode=False)
@database_option
@journal_db_option
@db_timeout_option
@config_option
def runs(run_id: str | None, host: str | None, limit: int | None, output: Output, shown: ReportFilter,
         db_url: str | None, journal_db_url: str | None, db_timeout: float) -> None:
    """List the runs in the journal, newest first: id, host, start, duration, exit code and totals.

    With RUN_ID (or `last`, the newest run): that run's report printed again from the journal, in
    the format asked for (-f, -c), as the run printed it. --outcome and --failed show only the
    instances of those outcomes in a report, and in the listing only the runs that had any (--failed:
    the runs that did not exit 0). The journal is read from --journal-db when given, else from --db.
    Columns for -c: id, host, status, started_at, seconds, dry_run, exit_code, totals.
    """
    db = open_db(journal_db_url or db_url, read_only=True, timeout=db_timeout,
                 option="--journal-db" if journal_db_url else "--db")
    try:
        if not db.has_tables("recovery_runs"):
            raise CommandError(f"database {db.masked_url} has no journal (no recovery_runs table): check --db and "
                               "--journal-db")
        if run_id is None:
            _list(db, host, limit, output, shown)
        else:
            _reprint(db, run_id, output, shown)
    finally:
        db.close()


def _list(db: Database, host: str | None, limit: int | None, output: Output, shown: ReportFilter) -> None:
    columns = selected_columns(list(RUNS_COLUMNS), output.columns)
    docs = [_run_json(row) for row in journals.list_runs(db, host, limit)]
    if shown.outcomes:
        docs = [doc for doc in docs if _shown(doc, shown.outcomes)]
    rows = [{**doc, "totals": _totals_text(doc["totals"])} for doc in docs]
    emit(output, docs, lambda: rows, columns,
         lambda: stdout_console().print(rows_table(rows, columns, headers=RUNS_COLUMNS)), RUNS_COLUMNS)


def _shown(doc: dict, outcomes: frozenset[str]) -> bool:
    if outcomes >= set(FAILED_OUTCOMES) and doc["exit_code"] not in (None, 0):
        return True
    return any((doc["totals"] or {}).get(outcome) for outcome in outcomes)


def _run_json(row: dict) -> dict:
    started, finished = row["started_at"], row["finished_at"]
    return {"id": row["id"], "host": row["host"], "status": row["status"], "started_at": _time(started),
            "finished_at": _time(finished),
            "seconds": None if finished is None else round((finished - started).total_seconds(), 3),
            "dry_run": row["dry_run"], "exit_code": row["exit_code"], "totals": row["totals"]}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")


def _totals_text(totals: dict | None) -> str | None:
    if totals is None:
        return None
    return ", ".join(f"{k} {v}" for k, v in totals.items() if v or k == "instances")


def _reprint(db: Database, run_id: str, output: Output, shown: ReportFilter) -> None:
    columns = run_columns(output)
    if run_id != "last" and not run_id.isdigit():
        raise click.BadParameter(f"{run_id!r} is not a run id: give a number (as `runs` lists them) or `last`",
                                 param_hint="RUN_ID")
    found = journals.run_report(db, None if run_id == "last" else int(run_id))
    if found is None:
        raise CommandError(f"no run {run_id} in the journal of {db.masked_url}: `compute-recover runs` lists them")
    number, report = found
    if report is None:
        raise CommandError(f"run {number} journaled no report (it did not finish, or it ran before reports were "
                           f"journaled): `compute-recover explain INSTANCE` shows its instances")
    print_report_document(filtered(report, shown.outcomes), output, columns)
