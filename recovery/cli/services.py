"""`compute-recover services` (as `openstack compute service list` shows services)
and `services set` (as `openstack compute service set` changes them)."""

from datetime import datetime

import click

from recovery.cli.exits import CommandError
from recovery.cli.open import open_db
from recovery.cli.option_checks import FiniteFloatRange
from recovery.cli.options import ENV_PREFIX, config_option, database_option, db_timeout_option, output_options
from recovery.core.defaults import DEFAULT_REPORT_INTERVAL, DEFAULT_SERVICE_DOWN_TIME
from recovery.core.printable import printable
from recovery.core.servicegroup import is_up, service_down_time
from recovery.db import ServiceRow, schema
from recovery.db import services as records
from recovery.db.store import utcnow
from recovery.present.formats import Output, emit, rows_table, selected_columns, stdout_console


@click.group(invoke_without_command=True)
@click.option("--host", help="Only this host's services.")
@output_options(example="host")
@click.option("--service-down-time", type=FiniteFloatRange(0), default=DEFAULT_SERVICE_DOWN_TIME, show_default=True,
              envvar=ENV_PREFIX + "SERVICE_DOWN_TIME",
              help="Seconds without a heartbeat after which a service is down (Nova's service_down_time).")
@click.option("--report-interval", type=FiniteFloatRange(0), default=DEFAULT_REPORT_INTERVAL, show_default=True,
              envvar=ENV_PREFIX + "REPORT_INTERVAL",
              help="The services' heartbeat interval: a down time not above it is raised to 2.5 intervals.")
@database_option
@config_option
@click.pass_context
def services(ctx: click.Context, host: str | None, output: Output, service_down_time: float, report_interval: float,
             db_url: str | None) -> None:
    """List the service records as `openstack compute service list` does: status, and state up or down
    by Nova's rule (not forced down, and a heartbeat within the service down time). Columns for -c:
    id, binary, host, zone, status, state, updated_at, last_seen_up, report_count, disabled_reason,
    forced_down."""
    if ctx.invoked_subcommand is None:
        list_services(host, output, db_url, service_down_time, report_interval)


@services.command("set")
@click.option("--host", required=True, help="The service's host.")
@click.option("--binary", default="nova-compute", show_default=True, help="The service's binary.")
@click.option("--enable/--disable", "enable", default=None, help="Enable the service, or disable it.")
@click.option("--reason", help="Why it is disabled (with --disable).")
@click.option("--forced-down/--no-forced-down", "forced_down", default=None,
              help="Mark the service down at once (as `openstack compute service set --down`), or lift the mark.")
@database_option
@db_timeout_option
@config_option
def services_set(host: str, binary: str, enable: bool | None, reason: str | None, forced_down: bool | None,
                 db_url: str | None, db_timeout: float) -> None:
    """Change a service record as `openstack compute service set` does."""
    set_service(host, binary, enable, reason, forced_down, db_url, db_timeout)



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
            raise CommandError(f"database {db.masked_url} has no services table: create it with "
                               "`compute-recover db upgrade`, or check --db")
        rows = records.list_services(db, host)
    finally:
        db.close()
    down_time = service_down_time(configured_down_time, report_interval)
    now = utcnow()
    docs = [service_json(row, now, down_time) for row in rows]
    emit(output, docs, lambda: docs, columns, lambda: _print_table(docs, columns), SERVICE_COLUMNS)


NARROW_COLUMNS = ("id", "binary", "host", "status", "state", "last_seen_up")
"""What the table keeps below WIDE_MIN_WIDTH columns (unless -c chooses): never a host name split over lines."""
WIDE_MIN_WIDTH = 160


def _print_table(docs: list[dict], columns: list[str]) -> None:
    console = stdout_console()
    if console.width < WIDE_MIN_WIDTH and columns == list(SERVICE_COLUMNS):
        columns = list(NARROW_COLUMNS)
    console.print(rows_table(docs, columns, headers=SERVICE_COLUMNS, no_wrap=("binary", "host", "last_seen_up"),
                             width=console.width))


def set_service(host: str, binary: str, enable: bool | None, reason: str | None, forced_down: bool | None,
                db_url: str | None, db_timeout: float) -> None:
    if enable is None and forced_down is None:
        raise CommandError("nothing to set: give --enable or --disable, and/or --forced-down or --no-forced-down")
    if reason is not None and enable is not False:
        raise CommandError("--reason goes with --disable only (enabling clears the reason)")
    db = open_db(db_url, timeout=db_timeout)
    try:
        schema.require(db, ("cell",))
        if enable is not None:
            records.set_disabled(db, host, not enable, reason, binary)
        if forced_down is not None:
            records.set_forced_down(db, host, forced_down, binary)
        row = records.list_services(db, host, binary)[0]
    except records.ServiceNotFound as error:
        raise CommandError(f"{error}: check --host and --binary (`compute-recover services` lists them)") from error
    finally:
        db.close()
    click.echo(printable(_summary(row)))


def _summary(row: ServiceRow) -> str:
    status = "disabled" + (f" ({row.disabled_reason})" if row.disabled_reason else "") if row.disabled else "enabled"
    return f"service {row.binary} on {row.host}: {status}, forced_down {str(row.forced_down).lower()}"
