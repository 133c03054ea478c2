"""`compute-recover run`: recover this host's instances (recovery.cli.host), or apply a plan file."""

from pathlib import Path

import click

from recovery.cli.help_groups import GroupedCommand
from recovery.cli.host import run_host
from recovery.cli.interrupts import Interruption
from recovery.cli.nova_options import nova_conf_options, set_explicitly
from recovery.cli.options import (
    ENV_PREFIX,
    RecoveryOptions,
    ReportFilter,
    given,
    journal_db_option,
    metrics_textfile_option,
    output_options,
    recovery_options,
    report_filter_options,
)
from recovery.core.facts import Options
from recovery.present.formats import Output


@click.command(cls=GroupedCommand)
@click.option("--dry-run", is_flag=True, envvar=ENV_PREFIX + "DRY_RUN",
              help="Decide and report; write nothing to libvirt or the database.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Apply this plan file (written by `plan --out`): execute exactly its decisions, holding back each "
              "instance whose facts changed since; the plan's decision options and libvirt URI are used "
              "(docs/plan.md).")
@metrics_textfile_option("Write the run's metrics to this file when it ends, as `agent` does (node-exporter's "
                         "textfile collector; name it *.prom); not with --dry-run.")
@output_options
@report_filter_options(detailed_exitcode=True)
@journal_db_option
@nova_conf_options()
@recovery_options
def run(dry_run: bool, plan_path: Path | None, metrics_textfile: str | None, output: Output, shown: ReportFilter,
        **recovery) -> None:
    """Recover this host's instances: decide, execute, journal and report.

    One recovery per host at a time (a lock in the database); each instance is claimed before
    anything is done to it; the journal is written as the run goes. On a terminal, a run that takes
    more than a couple of seconds shows a progress bar until its table. Guests it starts go in
    tiers by recover:priority, each tier waiting for its guests to be ready (docs/recovery-policy.md).
    Columns for -c: uuid, start_state, path, actions, outcome, error, vm_state, task_state,
    power_state, tier, ready, reason. The rules are in docs/policy.md; running it on a host is in
    docs/operating.md.
    """
    with Interruption() as interruption:
        applied = None
        if plan_path is not None:
            from recovery.run import plan_file

            context = click.get_current_context()
            chosen = frozenset(name for name in Options.__dataclass_fields__ if given(context, name))
            applied = plan_file.load_for_run(plan_path, recovery["options"], chosen)
            if not set_explicitly(context, "--libvirt-uri"):  # the hypervisor the plan was made on
                recovery["libvirt_uri"] = applied.plan.libvirt_uri
        if shown.detailed_exitcode and not dry_run:
            raise click.UsageError("--detailed-exitcode goes with --dry-run (or `plan`): a real run's exit code "
                                   "says how it went")
        if shown.changes and not dry_run:
            raise click.UsageError("--changes goes with --dry-run (or `plan`): a real run changes, it does not plan")
        if metrics_textfile and dry_run:
            raise click.UsageError("--metrics-textfile goes with a real run: a dry run is not one")
        run_host(RecoveryOptions(**recovery), dry_run, output, interruption, applied, shown, metrics_textfile)
