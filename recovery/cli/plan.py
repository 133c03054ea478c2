"""The body of `compute-recover plan`: the read-only view of what nova-compute's start would do.

It is the dry-run path of the host boot routine (recovery.run.boot.HostBoot), nothing of its own: a
read-only database session (no DDL, no row, no file, whatever the database is), a read-only
libvirt connection, the same decisions and the same report as `run --dry-run`. With --out it
also writes the plan to a file, for `run --plan` (recovery.run.plan_file).
"""

from pathlib import Path

from recovery.cli import run as host_commands
from recovery.cli.exits import EXIT_USAGE, fail
from recovery.core.defaults import DEFAULT_CONCURRENCY, DEFAULT_LOCK_TIMEOUT, DEFAULT_STOP_TIMEOUT
from recovery.core.facts import Options
from recovery.present.formats import Output


def plan(scenario: str | None, node: str | None, output: Output, db_timeout: float, db_url: str | None,
         libvirt_uri: str, host: str | None, options: Options, out: Path | None = None) -> None:
    writer = None
    if out is not None:
        from recovery.run.plan_file import PlanFileError, PlanWriter

        try:
            writer = PlanWriter(out)
        except PlanFileError as error:
            fail(str(error), EXIT_USAGE)
    try:
        host_commands.run(scenario, node, True, output, DEFAULT_CONCURRENCY, DEFAULT_STOP_TIMEOUT,
                          DEFAULT_LOCK_TIMEOUT, db_timeout, None, None, db_url, libvirt_uri, host, options, plan=writer)
    finally:
        if writer is not None:
            writer.discard()
