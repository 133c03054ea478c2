"""The run journal, written as the run goes: the run row first, each instance's decision before
its first action, each action's outcome as it completes, the run's end last.

So a run killed at any point leaves an account of itself: the host's next run marks it
`interrupted`, and `explain` shows what it intended and what it completed. Entries are inserted
in bulk batches and updated one instance step at a time, each in the same transaction as the
record write it accounts for.
"""

import functools
import itertools
import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Update, bindparam, insert, inspect, null, select, update

from recovery.db.models import (
    JOURNAL_FIELDS,
    JOURNAL_JSON_FIELDS,
    RUN_FINISHED,
    RUN_INTERRUPTED,
    RUN_RUNNING,
    RecoveryJournal,
    RecoveryRun,
)
from recovery.db.store import Database, utcnow

JOURNAL_BATCH = 1_000
"""Journal rows per bulk insert: a 100,000-instance run never holds them all serialized."""


@dataclass(frozen=True)
class RunHolder:
    """Who is running a recovery of a host: named when another run has to wait for it."""

    run_id: int
    machine: str | None
    pid: int | None
    started_at: datetime

    def __str__(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.machine}, started {self.started_at:%Y-%m-%d %H:%M:%S} UTC)"


def start_run(db: Database, host: str, options: Mapping[str, Any]) -> int:
    """Under the host lock: mark the host's runs that never finished as interrupted, and open this one."""
    now = utcnow()
    row = {"host": host, "status": RUN_RUNNING, "pid": os.getpid(), "machine": socket.gethostname(),
           "started_at": now, "dry_run": False, "options": json.dumps(options, sort_keys=True)}
    abandoned = (RecoveryRun.host == host) & (RecoveryRun.status == RUN_RUNNING)
    with db.transaction(f"open a run for {host}") as conn:
        conn.execute(update(RecoveryRun).where(abandoned).values(status=RUN_INTERRUPTED))
        return conn.execute(insert(RecoveryRun).values(row)).inserted_primary_key[0]


def running_run(db: Database, host: str) -> RunHolder | None:
    """The newest unfinished run of `host`: the lock holder, when one holds it."""
    statement = (select(RecoveryRun.id, RecoveryRun.machine, RecoveryRun.pid, RecoveryRun.started_at)
                 .where(RecoveryRun.host == host, RecoveryRun.status == RUN_RUNNING)
                 .order_by(RecoveryRun.id.desc()).limit(1))
    with db.reading(f"find the running recovery of {host}") as conn:
        found = conn.execute(statement).first()
    return RunHolder(*found) if found else None


def insert_entries(db: Database, run_id: int, entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Record decisions in bulk before anything is executed; the entry id of each instance uuid."""
    now, encoded = utcnow(), {}
    rows = (_row(run_id, entry, now, encoded) for entry in entries)
    with db.transaction("journal the decisions") as conn:
        while batch := list(itertools.islice(rows, JOURNAL_BATCH)):
            conn.execute(insert(RecoveryJournal), batch)
        ids = conn.execute(select(RecoveryJournal.id, RecoveryJournal.instance_uuid)
                           .where(RecoveryJournal.run_id == run_id))
        return {uuid: entry_id for entry_id, uuid in ids}


def update_entry(conn: Connection, entry_id: int, changes: Mapping[str, Any]) -> None:
    """Within the caller's transaction (usually with the record write it accounts for)."""
    unknown = changes.keys() - JOURNAL_FIELDS
    if unknown:
        raise ValueError(f"journal entry has unknown field(s) {sorted(unknown)}")
    values = {f"v_{k}": (json.dumps(v) if k in JOURNAL_JSON_FIELDS else v) for k, v in changes.items()}
    conn.execute(_update_statement(frozenset(changes)), values | {"b_id": entry_id, "b_now": utcnow()})


@functools.cache
def _update_statement(fields: frozenset[str]) -> Update:
    """One prepared UPDATE per set of fields: a run's thousands of updates compile a handful."""
    values = {name: bindparam(f"v_{name}") for name in fields} | {"updated_at": bindparam("b_now")}
    return update(RecoveryJournal).where(RecoveryJournal.id == bindparam("b_id")).values(values)


def finish_run(db: Database, run_id: int, exit_code: int, totals: Mapping[str, Any],
               interrupted: bool = False) -> None:
    """The run's end: `interrupted` when a signal stopped it (its instances not reached were left as
    they were)."""
    values = {"status": RUN_INTERRUPTED if interrupted else RUN_FINISHED, "finished_at": utcnow(),
              "exit_code": exit_code, "totals": json.dumps(totals)}
    with db.transaction(f"finish run {run_id}") as conn:
        conn.execute(update(RecoveryRun).where(RecoveryRun.id == run_id).values(values))


def save_report(db: Database, run_id: int, report: Mapping[str, Any]) -> None:
    """The report a finished run printed, kept so that it can be printed again as it was."""
    with db.transaction(f"journal the report of run {run_id}") as conn:
        conn.execute(update(RecoveryRun).where(RecoveryRun.id == run_id).values(report=json.dumps(report)))


def list_runs(db: Database, host: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The runs, newest first (totals parsed; no report)."""
    columns = [c for c in RecoveryRun.__table__.columns if c.name not in ("report", "options")]
    statement = select(*columns).order_by(RecoveryRun.id.desc()).limit(limit)
    if host is not None:
        statement = statement.where(RecoveryRun.host == host)
    with db.reading("list the runs") as conn:
        rows = conn.execute(statement).mappings().all()
    return [{**row, "totals": json.loads(row["totals"]) if row["totals"] else None} for row in rows]


def run_report(db: Database, run_id: int | None) -> tuple[int, dict[str, Any] | None] | None:
    """A run's journaled report (None: the run journaled none), the newest run's when `run_id` is None;
    None when there is no such run."""
    statement = select(RecoveryRun.id, RecoveryRun.report)
    statement = (statement.order_by(RecoveryRun.id.desc()).limit(1) if run_id is None
                 else statement.where(RecoveryRun.id == run_id))
    with db.reading("read a run's report") as conn:
        found = conn.execute(statement).first()
    if found is None:
        return None
    return found.id, json.loads(found.report) if found.report else None


def journal_for(db: Database, uuid: str, limit: int | None = None) -> list[dict[str, Any]]:
    """An instance's journal entries, newest run first, each with its run's host, started_at,
    dry_run, status and options (as `run_host`, `run_started_at`, `dry_run`, `run_status`, `run_options`).
    A journal not yet upgraded to keep each entry's domain name (journal_0003) is read as it is: None."""
    with db.reading("read the journal's columns") as conn:
        present = {column["name"] for column in inspect(conn).get_columns(RecoveryJournal.__tablename__)}
    columns = [column if column.name in present else null().label(column.name)
               for column in RecoveryJournal.__table__.columns]
    statement = (
        select(
            *columns,
            RecoveryRun.host.label("run_host"),
            RecoveryRun.started_at.label("run_started_at"),
            RecoveryRun.dry_run,
            RecoveryRun.status.label("run_status"),
            RecoveryRun.options.label("run_options"),
        )
        .join(RecoveryRun, RecoveryRun.id == RecoveryJournal.run_id)
        .where(RecoveryJournal.instance_uuid == uuid.lower())
        .order_by(RecoveryRun.started_at.desc(), RecoveryRun.id.desc(), RecoveryJournal.id)
        .limit(limit)
    )
    with db.reading("read the journal") as conn:
        rows = conn.execute(statement).mappings().all()
    json_fields = (*JOURNAL_JSON_FIELDS, "run_options")
    return [{**row, **{name: json.loads(row[name]) for name in json_fields}} for row in rows]


def _row(run_id: int, entry: Mapping[str, Any], now: datetime, encoded: dict[int, tuple[Any, str]]) -> dict[str, Any]:
    """`encoded`: JSON text already made for a value by its id (the value is held there, so that its
    id is not reused): entries sharing a decision's values are encoded once."""
    unknown = entry.keys() - JOURNAL_FIELDS
    if unknown:
        raise ValueError(f"journal entry has unknown field(s) {sorted(unknown)}")
    row = {name: entry.get(name) for name in JOURNAL_FIELDS}
    for name in JOURNAL_JSON_FIELDS:
        value = entry.get(name)
        known = encoded.get(id(value))
        if known is None:
            known = encoded[id(value)] = (value, json.dumps(value))
        row[name] = known[1]
    return row | {"run_id": run_id, "created_at": now, "updated_at": now}
