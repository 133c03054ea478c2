"""The bodies of `compute-recover services` (as `openstack compute service list` shows services)
and `services set` (as `openstack compute service set` changes them)."""

from datetime import datetime

import click

from recovery.cli.exits import EXIT_USAGE, fail
from recovery.cli.run import open_db
from recovery.core.printable import printable
from recovery.core.servicegroup import is_up, service_down_time
from recovery.db import DatabaseError, ServiceRow, schema
from recovery.db import services as records
from recovery.db.store import utcnow
from recovery.present.formats import Output, emit, rows_table, selected_columns, stdout_console


def service_json(service: ServiceRow, now: datetime, down_time: float) -> dict:
    """One service as the compute API lists it (zone unknown: Nova keeps zones in host aggregates),
    with the heartbeat columns behind its state."""
    return {
        "id": service.id,
        "binary": service.binary,
        "host": service.host,
        "zone": None,
        "status": "disabled" if service.disabled else "enabled",
        "disabled_reason": service.disabled_reason,
        "state": "up" if is_up(service, now, down_time) else "down",
        "forced_down": service.forced_down,
        "updated_at": _time(service.updated_at),
        "last_seen_up": _time(service.last_seen_up),
        "report_count": service.report_count,
    }


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


SERVICE_COLUMNS = {"id": "ID", "binary": "Binary", "host": "Host", "zone": "Zone", "status": "Status",
                   "state": "State", "updated_at": "Updated At", "last_seen_up": "Last Seen Up",
                   "report_count": "Reports", "disabled_reason": "Disabled Reason", "forced_down": "Forced Down"}
"""The listing's columns (for -c) and their table headers, as `openstack compute service list` orders them."""


def list_services(host: str | None, output: Output, db_url: str | None, configured_down_time: float,
                  report_interval: float) -> None:
    columns = selected_columns(list(SERVICE_COLUMNS), output.columns)
    db = open_db(db_url, read_only=True)
    try:
        if not db.has_tables("services"):
            fail(f"database {db.masked_url} has no services table: create it with `compute-recover db upgrade`, "
                 "or check --db", EXIT_USAGE)
        rows = records.list_services(db, host)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    down_time = service_down_time(configured_down_time, report_interval)
    now = utcnow()
    docs = [service_json(row, now, down_time) for row in rows]
    emit(output, docs, lambda: docs, columns,
         lambda: stdout_console().print(rows_table(docs, columns, headers=SERVICE_COLUMNS)), SERVICE_COLUMNS)


def set_service(host: str, binary: str, enable: bool | None, reason: str | None, forced_down: bool | None,
                db_url: str | None, db_timeout: float) -> None:
    if enable is None and forced_down is None:
        fail("nothing to set: give --enable or --disable, and/or --forced-down or --no-forced-down", EXIT_USAGE)
    if reason is not None and enable is not False:
        fail("--reason goes with --disable only (enabling clears the reason)", EXIT_USAGE)
    db = open_db(db_url, timeout=db_timeout)
    try:
        schema.require(db, ("cell",))
        if enable is not None:
            records.set_disabled(db, host, not enable, reason, binary)
        if forced_down is not None:
            records.set_forced_down(db, host, forced_down, binary)
        row = records.list_services(db, host, binary)[0]
    except records.ServiceNotFound as error:
        fail(f"{error}: check --host and --binary (`compute-recover services` lists them)", EXIT_USAGE)
    except DatabaseError as error:
        fail(str(error), EXIT_USAGE)
    finally:
        db.close()
    click.echo(printable(_summary(row)))


def _summary(row: ServiceRow) -> str:
    status = "disabled" + (f" ({row.disabled_reason})" if row.disabled_reason else "") if row.disabled else "enabled"
    return f"service {row.binary} on {row.host}: {status}, forced_down {str(row.forced_down).lower()}"
