"""The options several commands share: the database, the journal, libvirt, the output format, the
decision policy, a recovery's settings, and the --config file that may give any of them (recovery.cli.config)."""

import functools
import socket
from dataclasses import dataclass
from pathlib import Path

import click

from recovery.cli.config import ENV_PREFIX, config_option
from recovery.cli.option_checks import FiniteFloatRange, command_option_callback
from recovery.core.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DB_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_PROBE_NETWORKS,
    DEFAULT_READINESS_BUDGET,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_TIER_TIMEOUT,
    MAX_TIER_TIMEOUT,
)
from recovery.core.exit_codes import EXIT_CHANGES_PENDING
from recovery.core.facts import Options
from recovery.core.metadata import PolicyValueError, format_duration, parse_duration, parse_resume
from recovery.core.outcomes import RUN_OUTCOMES, Outcome
from recovery.core.probe_targets import IPNetwork, ProbeNetworksError, probe_networks
from recovery.core.settings import (
    DEFAULT_INSTANCES_PATH,
    DEFAULT_STATE_DIR,
    JOURNAL_FILE,
    RunSettings,
    RunTuning,
    default_journal_path,
)
from recovery.present.formats import FORMATS, chosen_output, remember_format
from states.enums import OnDegraded, ResumePolicy, RunningDeletedInstanceAction

DEFAULT_LIBVIRT_URI = "qemu:///system"


def _checked(parse):
    """A click callback refusing a value `parse` (of recovery.core.metadata) rejects, with its message."""

    def callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value, f"--{param.name.replace('_', '-')}")
            except PolicyValueError as error:
                raise click.BadParameter(str(error)) from None
        return value

    return callback


def duration_seconds(at_most: float):
    """A click callback turning a duration (`90s`, `5m`, or seconds) into seconds, refusing one parse_duration
    (of recovery.core.metadata) rejects, with its message."""

    def callback(_ctx: click.Context, param: click.Parameter, value: str) -> float:
        try:
            return parse_duration(value, f"--{param.name.replace('_', '-')}", at_most)
        except PolicyValueError as error:
            raise click.BadParameter(str(error)) from None

    return callback


def _networks(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[IPNetwork, ...]:
    try:
        return probe_networks(text for text in value.split(",") if text.strip())
    except ProbeNetworksError as error:
        raise click.BadParameter(str(error)) from None


def policy_options(command):
    """The options that change decisions, shared by every command that decides."""
    options = [
        click.option("--host", default=None, envvar=ENV_PREFIX + "HOST",
                     help="This compute host's name, as the database records it [default: the scenario's host, "
                     "else the machine's hostname]."),
        click.option("--resume-guests-state-on-host-boot/--no-resume-guests-state-on-host-boot", default=False,
                     envvar=ENV_PREFIX + "RESUME_GUESTS_STATE_ON_HOST_BOOT",
                     help="Restart guests that were running before the host went down."),
        click.option("--destroy-after-evacuate/--no-destroy-after-evacuate", default=True,
                     envvar=ENV_PREFIX + "DESTROY_AFTER_EVACUATE",
                     help="Destroy the stale local copy of an instance evacuated away."),
        click.option("--running-deleted-instance-action", default=RunningDeletedInstanceAction.LOG.value,
                     type=click.Choice([a.value for a in RunningDeletedInstanceAction]),
                     envvar=ENV_PREFIX + "RUNNING_DELETED_INSTANCE_ACTION", show_default=True,
                     help="What to do with a domain whose instance record is deleted."),
        click.option("--resume-policy", default=ResumePolicy.IF_WAS_RUNNING.value, show_default=True,
                     callback=_checked(parse_resume), envvar=ENV_PREFIX + "RESUME_POLICY",
                     help="Resume policy of instances without recover:resume metadata: always, never, "
                     "if-was-running (Nova's rule) or if-down-less-than:<duration> (docs/recovery-policy.md)."),
        click.option("--max-downtime", default=None, callback=_checked(parse_duration),
                     envvar=ENV_PREFIX + "MAX_DOWNTIME", help="Resume no guest when the host was down this long or "
                     "longer (e.g. 1h, 30m) [default: no limit]."),
    ]

    @functools.wraps(command)
    def wrapper(*args, resume_guests_state_on_host_boot, destroy_after_evacuate,
                running_deleted_instance_action, resume_policy, max_downtime, **kwargs):
        options = Options(resume_guests_state_on_host_boot, destroy_after_evacuate,
                          running_deleted_instance_action, resume_policy,
                          None if max_downtime is None else parse_duration(max_downtime, "--max-downtime"))
        if kwargs.get("host") is None and kwargs.get("scenario") is None:
            kwargs["host"] = socket.gethostname()
        return command(*args, options=options, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def output_options(command=None, *, example: str = "uuid"):
    """-f/--format, --json (short for -f json) and -c/--column, as the openstack CLI has them; `example`:
    the column `-c`'s help names (`@output_options(example="host")` for a listing without uuids)."""
    if command is None:
        return functools.partial(output_options, example=example)
    options = [
        click.option("-f", "--format", "output_format", type=click.Choice(FORMATS), default="table",
                     show_default=True, is_eager=True, callback=remember_format, envvar=ENV_PREFIX + "FORMAT",
                     help="Output format: a table for people; json, value, csv or yaml for programs."),
        click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember_format,
                     envvar=ENV_PREFIX + "JSON", help="Short for -f json."),
        click.option("-c", "--column", "columns", multiple=True,
                     help=f"Only this column (repeat for more); -f value -c {example} prints bare {example}s."),
    ]

    @functools.wraps(command)
    def wrapper(*args, output_format: str, as_json: bool, columns: tuple[str, ...], **kwargs):
        return command(*args, output=chosen_output(output_format, as_json, columns), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@dataclass(frozen=True)
class ReportFilter:
    """Which instances a run's report shows (--outcome, --failed), and whether a dry run's exit code
    tells a plan with changes from one without (--detailed-exitcode)."""

    outcomes: frozenset[str] = frozenset()
    detailed_exitcode: bool = False
    changes: bool = False
    """Only the instances a dry run would change (--changes)."""


FAILED_OUTCOMES = tuple(o.value for o in RUN_OUTCOMES if o not in (Outcome.OK, Outcome.SKIPPED))
"""What --failed shows: every outcome that makes a run exit 1."""


def report_filter_options(detailed_exitcode: bool):
    """--outcome and --failed (run, plan, runs); with `detailed_exitcode` (what makes plans), --detailed-exitcode
    and --changes too."""

    def decorate(command):
        options = [
            click.option("--outcome", "outcomes", multiple=True, type=click.Choice([o.value for o in RUN_OUTCOMES]),
                         metavar="OUTCOME", help="Show only the instances of this outcome (repeat for more): "
                         f"{', '.join(o.value for o in RUN_OUTCOMES)}; the totals stay the run's."),
            click.option("--failed", is_flag=True, help="Show only the instances that did not recover (every "
                         "outcome but ok and skipped)."),
        ]
        if detailed_exitcode:
            options.append(click.option(
                "--detailed-exitcode", is_flag=True, envvar=ENV_PREFIX + "DETAILED_EXITCODE",
                help=f"Exit {EXIT_CHANGES_PENDING} when the plan would change something, 0 when there is nothing to "
                "do (a dry run; as terraform plan -detailed-exitcode)."))
            options.append(click.option(
                "--changes", is_flag=True, help="Show only the instances the plan would change (a dry run); the "
                "totals stay the plan's."))

        @functools.wraps(command)
        def wrapper(*args, outcomes: tuple[str, ...], failed: bool, detailed_exitcode: bool = False,
                    changes: bool = False, **kwargs):
            chosen = frozenset(outcomes) | (frozenset(FAILED_OUTCOMES) if failed else frozenset())
            return command(*args, shown=ReportFilter(chosen, detailed_exitcode, changes), **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def database_option(command):
    return click.option("--db", "db_url", envvar=ENV_PREFIX + "DB", default=None,
                        help="SQLAlchemy URL of the database [default: sqlite file compute-recover.sqlite, "
                        "or COMPUTE_RECOVER_DB].")(command)


def db_timeout_option(command):
    return click.option("--db-timeout", type=FiniteFloatRange(0.1, 3_600), default=DEFAULT_DB_TIMEOUT,
                        show_default=True, envvar=ENV_PREFIX + "DB_TIMEOUT",
                        help="Seconds one database call may take before the database counts as failed.")(command)


def _journal_default(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A bare --journal-db names the state directory's journal file (looked up when the command runs)."""
    return default_journal_path() if value == "" else value


def journal_db_option(command):
    return click.option("--journal-db", "journal_db_url", envvar=ENV_PREFIX + "JOURNAL_DB", default=None,
                        is_flag=False, flag_value="", callback=_journal_default,
                        help="A database of its own for the journal (URL or SQLite path; alone: "
                        f"$COMPUTE_RECOVER_STATE_DIR/{JOURNAL_FILE}, else {DEFAULT_STATE_DIR}/{JOURNAL_FILE}), "
                        "needed when --db is Nova's cell database (docs/nova.md) [default: in --db].")(command)


def metrics_textfile_option(help_text: str):
    """--metrics-textfile, for node-exporter's textfile collector: `agent` keeps it current, `run` writes its run's."""
    return click.option("--metrics-textfile", type=click.Path(dir_okay=False), envvar=ENV_PREFIX + "METRICS_TEXTFILE",
                        help=help_text)


def libvirt_option(command):
    return click.option("--libvirt-uri", envvar=ENV_PREFIX + "LIBVIRT_URI", default=DEFAULT_LIBVIRT_URI,
                        show_default=True, help="The hypervisor to recover.")(command)


def given(ctx: click.Context, name: str) -> bool:
    """Whether an option was set (flag, environment or config file) rather than left at its default."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


TARGET_OPTIONS = (
    click.option("--scenario", type=click.Path(exists=True, file_okay=False), envvar=ENV_PREFIX + "SCENARIO",
                 help="Scenario directory: recover its libvirt.xml (test driver) as its db.json's host; load "
                 "its records first with `compute-recover scenario load`."),
    click.option("--node", envvar=ENV_PREFIX + "NODE", help="Hypervisor hostname of the compute node "
                 "[default: the scenario's host, else libvirt's hostname]."),
)
"""Which host and node: shared by `run`, `agent` and `plan`."""


def recovery_options(command):
    """The options of a recovery, shared by `run` and `agent` (which recovers as `run` does)."""
    options = [
        *TARGET_OPTIONS,
        click.option("--concurrency", type=click.IntRange(1, 256), default=DEFAULT_CONCURRENCY, show_default=True,
                     envvar=ENV_PREFIX + "CONCURRENCY", help="Instances recovered at once."),
        click.option("--stop-timeout", type=FiniteFloatRange(0, 86_400), default=DEFAULT_STOP_TIMEOUT,
                     show_default=True, envvar=ENV_PREFIX + "STOP_TIMEOUT",
                     help="Seconds a guest gets to shut down before it is destroyed."),
        click.option("--lock-timeout", type=FiniteFloatRange(0, 86_400), default=DEFAULT_LOCK_TIMEOUT,
                     show_default=True, envvar=ENV_PREFIX + "LOCK_TIMEOUT",
                     help="Seconds to wait while another recovery of this host runs; then exit 4, having changed "
                     "nothing."),
        click.option("--tier-timeout", default=format_duration(DEFAULT_TIER_TIMEOUT), show_default=True,
                     metavar="DURATION", callback=duration_seconds(MAX_TIER_TIMEOUT),
                     envvar=ENV_PREFIX + "TIER_TIMEOUT",
                     help="How long each tier of an ordered restart waits for its guests to be ready before the "
                     "next starts: 90s, 5m, 1h or seconds, at most 1d (docs/recovery-policy.md)."),
        click.option("--readiness-budget", default=format_duration(DEFAULT_READINESS_BUDGET), show_default=True,
                     metavar="DURATION", callback=duration_seconds(MAX_TIER_TIMEOUT),
                     envvar=ENV_PREFIX + "READINESS_BUDGET",
                     help="How long one run waits for readiness in all its tiers together, whatever the metadata "
                     "says; at most 1d."),
        click.option("--probe-networks", default=",".join(DEFAULT_PROBE_NETWORKS), show_default=True,
                     metavar="CIDR,...", callback=_networks, envvar=ENV_PREFIX + "PROBE_NETWORKS",
                     help="Networks a recover:ready tcp check may connect to, and then only to the guest's own "
                     "addresses (docs/recovery-policy.md)."),
        click.option("--on-degraded", type=click.Choice([o.value for o in OnDegraded]), default=OnDegraded.KEEP.value,
                     show_default=True, envvar=ENV_PREFIX + "ON_DEGRADED",
                     help="Keep or stop a started guest that lacks a device its definition asks for; it is "
                     "reported degraded either way (docs/devices.md)."),
        db_timeout_option,
        click.option("--plug-vifs-command", envvar=ENV_PREFIX + "PLUG_VIFS_COMMAND", callback=command_option_callback,
                     help="Command run with an instance uuid to plug its VIFs (default: nothing to plug)."),
        click.option("--network-apply-command", envvar=ENV_PREFIX + "NETWORK_APPLY_COMMAND",
                     callback=command_option_callback,
                     help="Command run once at the end to apply deferred network rules."),
        click.option("--instances-path", type=click.Path(file_okay=False, path_type=Path),
                     default=DEFAULT_INSTANCES_PATH, show_default=True, envvar=ENV_PREFIX + "INSTANCES_PATH",
                     help="Nova's instances_path: local disks deleted with a domain lie under it, and local_gb is "
                     "its filesystem's size."),
        database_option,
        libvirt_option,
        config_option,
        policy_options,
    ]
    for option in reversed(options):
        command = option(command)
    return command


@dataclass(frozen=True, kw_only=True)
class RecoveryOptions(RunTuning):
    """What `run`, `plan` and `agent` recover and how, built from their shared options (`plan` gives only
    the target, the database and the policy: it stops no guest, so the tuning keeps its defaults)."""

    host: str | None
    options: Options
    scenario: str | None = None
    node: str | None = None
    db_url: str | None = None
    journal_db_url: str | None = None
    db_timeout: float = DEFAULT_DB_TIMEOUT
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    plug_vifs_command: str | None = None
    network_apply_command: str | None = None
    instances_path: Path = DEFAULT_INSTANCES_PATH

    def settings(self, node: str, dry_run: bool, nova_cell: bool) -> RunSettings:
        """The boot routine's settings once the target is resolved (`node`) and the database known."""
        return RunSettings(host=self.host, node=node, options=self.options, dry_run=dry_run, nova_cell=nova_cell,
                           **self.tuning())
