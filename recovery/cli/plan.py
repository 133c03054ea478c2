"""`compute-recover plan`: the read-only view of what nova-compute's start would do.

It is the dry-run path of the host boot routine (recovery.run.boot.HostBoot), nothing of its own: a
read-only database session (no DDL, no row, no file, whatever the database is), a read-only
libvirt connection, the same decisions and the same report as `run --dry-run`. With --out it
also writes the plan to a file, for `run --plan` (recovery.run.plan_file).
"""

from pathlib import Path

import click

from recovery.cli.help_groups import GroupedCommand
from recovery.cli.host import run_host
from recovery.cli.interrupts import Interruption
from recovery.cli.nova_options import nova_conf_options
from recovery.cli.options import (
    TARGET_OPTIONS,
    RecoveryOptions,
    ReportFilter,
    config_option,
    database_option,
    db_timeout_option,
    libvirt_option,
    output_options,
    policy_options,
    report_filter_options,
)
from recovery.present.formats import Output


@click.command(cls=GroupedCommand)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the plan to this file (JSON, readable by its owner only) for `run --plan` to apply.")
@output_options
@report_filter_options(detailed_exitcode=True)
@TARGET_OPTIONS[0]
@TARGET_OPTIONS[1]
@db_timeout_option
@database_option
@libvirt_option
@nova_conf_options()
@config_option
@policy_options
def plan(out: Path | None, output: Output, shown: ReportFilter, **recovery) -> None:
    """What nova-compute's start would do on this host, and why: read only.

    Every instance and domain of the host through the same decisions as `run`, reported in the
    same table (or -f json, --json, ...) as a dry run. The database is read in a read-only transaction (Nova's
    cell database included: no table, row or file is made) and libvirt through a read-only
    connection. Against Nova: docs/nova.md. With --out, the plan is also written to a file that
    `run --plan` applies (docs/plan.md).
    """
    with Interruption() as interruption:  # from before the temporary file is made, so it is always removed
        writer = None
        if out is not None:
            from recovery.run.plan_file import PlanWriter

            writer = PlanWriter(out)
        try:
            run_host(RecoveryOptions(**recovery), True, output, interruption, writer, shown)
        finally:
            if writer is not None:
                writer.discard()
