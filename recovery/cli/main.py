"""The `compute-recover` command line: options and commands.

The body of `decide` lives in `recovery.cli.decide`. The bodies of `run` and
of explaining from the journal live in `recovery.cli.run`, imported only
when used, so that `decide` (which may be fed 100,000 records) starts without
loading the database and libvirt layers. Exit codes are in `recovery.cli.exits`;
the bounds on untrusted input in `recovery.core.bounds`.
"""

import functools
import socket
import sys
import tomllib
from pathlib import Path
from typing import Any, BinaryIO

import click

from recovery.cli import logs
from recovery.cli.decide import decide_stream
from recovery.cli.exits import EXIT_FAILED, EXIT_USAGE, fail
from recovery.cli.nova_options import nova_conf_options
from recovery.cli.option_checks import FiniteFloatRange, command_option_callback
from recovery.core.bounds import MAX_LINE_BYTES, InputError, canonical_uuid, parse_json, read_limited
from recovery.core.defaults import (
    DEFAULT_CONCURRENCY,
    DEFAULT_DB_TIMEOUT,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_REPORT_INTERVAL,
    DEFAULT_SERVICE_DOWN_TIME,
    DEFAULT_STOP_TIMEOUT,
    DEFAULT_SYNC_POWER_STATE_INTERVAL,
    DEFAULT_TIER_TIMEOUT,
    DEFAULT_UPDATE_RESOURCES_INTERVAL,
    MAX_TIER_TIMEOUT,
)
from recovery.core.documents import explanation_json, explanation_text, format_action
from recovery.core.facts import (
    POWER_STATES,
    TASK_STATES,
    VM_STATES,
    FactsError,
    Options,
    facts_from_record,
    record_uuid,
)
from recovery.core.machine import shared_machine
from recovery.core.metadata import PolicyValueError, format_duration, parse_duration, parse_resume
from recovery.core.settings import DEFAULT_INSTANCES_PATH, DEFAULT_STATE_DIR, JOURNAL_FILE, default_journal_path
from recovery.present import graph as graphs
from recovery.present.formats import (
    FORMATS,
    Output,
    chosen_output,
    emit,
    error_document,
    remember_format,
    selected_columns,
)
from states.enums import ResumePolicy, RunningDeletedInstanceAction
from states.power_sync import LIFECYCLE_DELAY

ENV_PREFIX = "COMPUTE_RECOVER_"


def _load_config(ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
    """A TOML file of option names (underscores) and values; flags and environment win over it."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except OSError as error:
        raise click.BadParameter(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise click.BadParameter(f"config file {path} is not valid TOML: {error}") from error
    keys = config_keys(ctx.command)
    unknown = sorted(set(config) - keys.keys())
    if unknown:
        raise click.BadParameter(f"config file {path} names unknown options: {', '.join(unknown)}; the keys "
                                 f"of `{ctx.info_name}` are {', '.join(sorted(keys))}")
    ctx.default_map = {**(ctx.default_map or {}), **{keys[key]: value for key, value in config.items()}}
    return path


def config_keys(command: click.Command) -> dict[str, str]:
    """Config file key → parameter name: a key is the option's long name with underscores
    (`db` for --db, `json` for --json), as the flags and environment variables spell it."""
    keys = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name not in ("config", "help"):
            long_name = max(param.opts, key=len).lstrip("-")
            keys[long_name.replace("-", "_")] = param.name
    return keys


def config_option(command):
    return click.option(
        "--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True, expose_value=False,
        envvar=ENV_PREFIX + "CONFIG", help="TOML file of option values (flags and environment win).",
    )(command)


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


def _duration_seconds(at_most: float):
    """A click callback turning a duration (`90s`, `5m`, or seconds) into seconds, refusing one parse_duration
    (of recovery.core.metadata) rejects, with its message."""

    def callback(_ctx: click.Context, param: click.Parameter, value: str) -> float:
        try:
            return parse_duration(value, f"--{param.name.replace('_', '-')}", at_most)
        except PolicyValueError as error:
            raise click.BadParameter(str(error)) from None

    return callback


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


class CommandGroup(click.Group):
    """Click's group, but a usage error after -f json or yaml is also one error object on stdout."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            document = error_document(error.format_message(), error.exit_code)
            if document is not None:
                click.echo(document)
            raise


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Reference: docs/commands.md (commands, options, exit codes), docs/policy.md (the rules), "
             "docs/operating.md (logging, output formats, shell completion).")
@click.version_option(package_name="compute-recover", prog_name="compute-recover")  # looked up only when asked
@click.option("-v", "--verbose", count=True, help="More log: -v what each run does, -vv every action.")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only, and draw no progress bar.")
@click.option("--log-to", type=click.Choice(logs.TARGETS), default="stderr", show_default=True,
              envvar=ENV_PREFIX + "LOG_TO", help="Where log records go: stderr, syslog, or the systemd journal.")
@click.option("--syslog-address", default=logs.SYSLOG_SOCKET, show_default=True, envvar=ENV_PREFIX + "SYSLOG_ADDRESS",
              help="With --log-to syslog: the syslog socket, or HOST:PORT (UDP).")
def cli(verbose: int, quiet: bool, log_to: str, syslog_address: str) -> None:
    """Decide, execute and explain the recovery of a compute host's instances after it comes back."""
    logs.configure(logs.level_for(verbose, quiet), log_to, syslog_address)


def output_options(command):
    """-f/--format, --json (short for -f json) and -c/--column, as the openstack CLI has them."""
    options = [
        click.option("-f", "--format", "output_format", type=click.Choice(FORMATS), default="table",
                     show_default=True, is_eager=True, callback=remember_format, envvar=ENV_PREFIX + "FORMAT",
                     help="Output format: a table for people; json, value, csv or yaml for programs."),
        click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember_format,
                     envvar=ENV_PREFIX + "JSON", help="Short for -f json."),
        click.option("-c", "--column", "columns", multiple=True,
                     help="Only this column (repeat for more); -f value -c uuid prints bare uuids."),
    ]

    @functools.wraps(command)
    def wrapper(*args, output_format: str, as_json: bool, columns: tuple[str, ...], **kwargs):
        return command(*args, output=chosen_output(output_format, as_json, columns), **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@cli.command()
@config_option
@policy_options
def decide(host: str, options: Options) -> None:
    """Decide JSON Lines facts from stdin; one JSON decision per line on stdout.

    A line that cannot be decided gets an error line in its place and exit status 1 at the end;
    the other lines are still decided. A line may be at most 1 MiB. The input and output fields are
    described in docs/decide.md.
    """
    if sys.stdout is None:
        fail("decide writes its decisions to stdout, which is closed", EXIT_USAGE)
    bad = decide_stream(_stdin_bytes("decide reads"), sys.stdout, host, options)
    if bad:
        click.echo(f"decide: {bad} input line(s) could not be decided; their output lines carry the error", err=True)
        sys.exit(EXIT_FAILED)


def _stdin_bytes(reader: str) -> BinaryIO:
    """Standard input as bytes, so that bad UTF-8 is one input's error; a closed stdin is a usage error."""
    if sys.stdin is None:
        fail(f"{reader} stdin, which is closed", EXIT_USAGE)
    return sys.stdin.buffer


def _read_facts_argument(text: str) -> Any:
    """The --facts document, from the argument (bounded by the OS) or at most 1 MiB of stdin."""
    try:
        if text == "-":
            return parse_json(read_limited(_stdin_bytes("--facts - reads"), MAX_LINE_BYTES, "stdin"))
        return parse_json(text)
    except InputError as error:
        fail(f"--facts: {error}", EXIT_USAGE)


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
                        help="SQLAlchemy URL (or SQLite path) of a database of its own for compute-recover's "
                        f"journal, made by `db upgrade --journal-db`; given alone: {JOURNAL_FILE} in "
                        f"$COMPUTE_RECOVER_STATE_DIR, else in {DEFAULT_STATE_DIR}. Needed when --db is Nova's cell "
                        "database, which then gets no table or row of compute-recover's "
                        "[default: the journal is in --db].")(command)


def libvirt_option(command):
    return click.option("--libvirt-uri", envvar=ENV_PREFIX + "LIBVIRT_URI", default="qemu:///system",
                        show_default=True, help="The hypervisor to recover.")(command)


@cli.command()
@click.argument("instance", required=False)
@click.option("--facts", "facts_text", help="Explain this facts record (JSON, or - for stdin) instead of a journal.")
@click.option("--live", is_flag=True, help="Also decide now, from the database and libvirt as they are, as the "
              "instance's last run would (its host and options; flags given win).")
@click.option("--limit", type=click.IntRange(1), help="Only the newest N runs of the journal [default: all].")
@output_options
@database_option
@journal_db_option
@db_timeout_option
@libvirt_option
@nova_conf_options()
@config_option
@policy_options
@click.pass_context
def explain(ctx: click.Context, instance: str | None, facts_text: str | None, live: bool, limit: int | None,
            output: Output, db_url: str | None, journal_db_url: str | None, db_timeout: float, libvirt_uri: str,
            host: str, options: Options) -> None:
    """Explain why the machine decides what it does for one instance.

    INSTANCE is a uuid, an instance's name, or its libvirt domain's name: the journal of past runs,
    newest first, and with --live what it would decide now. With --facts: one facts record, no
    database needed. Facts print in the spelling `decide` and --facts read, so they can be fed back.
    Columns for -c: run_id, run_host, run_started_at, run_status, dry_run, start_state, path,
    actions, outcome, error, final_state, reason (with --facts: uuid, state, path, actions, vm_state,
    task_state, reason).
    """
    if facts_text is not None:
        _explain_facts(instance, facts_text, host, options, output)
        return
    if instance is None:
        raise click.UsageError("give an instance (uuid, name or domain name), or --facts JSON (or -)")
    from recovery.cli import (
        explain as explain_command,  # imported on use: `decide` starts without the database and libvirt
    )

    given = frozenset(name for name in Options.__dataclass_fields__ if _given(ctx, name))
    request = explain_command.LiveRequest(libvirt_uri, host if _given(ctx, "host") else None, options, given)
    explain_command.explain_journal(instance, request if live else None, output, limit, db_url, db_timeout,
                                    libvirt_uri, journal_db_url)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether an option was set (flag, environment or config file) rather than left at its default."""
    return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)


FACTS_COLUMNS = ("uuid", "state", "path", "actions", "vm_state", "task_state", "reason")


def _explain_facts(instance: str | None, facts_text: str, host: str, options: Options, output: Output) -> None:
    columns = selected_columns(FACTS_COLUMNS, output.columns)
    uuid = None
    if instance is not None:
        try:
            uuid = canonical_uuid(instance)
        except InputError as error:
            fail(str(error), EXIT_USAGE)
    record = _read_facts_argument(facts_text)
    if isinstance(record, dict):
        record.setdefault("uuid", uuid or "(facts)")
    try:
        facts = facts_from_record(record, host, options)
    except FactsError as error:
        fail(f"--facts: {error}", EXIT_USAGE)
    doc = {"uuid": record_uuid(record), **explanation_json(shared_machine(), facts, record)}
    row = {**doc, "path": " → ".join(step["rule"] for step in doc["path"]),
           "actions": ", ".join(format_action(a) for a in doc["actions"])}
    emit(output, doc, lambda: [row], columns, lambda: click.echo(explanation_text(doc)))


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
                     metavar="DURATION", callback=_duration_seconds(MAX_TIER_TIMEOUT),
                     envvar=ENV_PREFIX + "TIER_TIMEOUT",
                     help="How long each tier of ordered restart (recover:priority) waits for its guests to be ready "
                     "(recover:ready) before the next tier starts: a duration (90s, 5m, 1h) or seconds, at most 1d "
                     "(docs/recovery-policy.md)."),
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


@cli.command()
@click.option("--dry-run", is_flag=True, envvar=ENV_PREFIX + "DRY_RUN",
              help="Decide and report; write nothing to libvirt or the database.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Apply this plan file (written by `plan --out`): execute exactly its decisions, holding back each "
              "instance whose facts changed since; the plan's decision options are used (docs/plan.md).")
@output_options
@journal_db_option
@nova_conf_options()
@recovery_options
def run(scenario: str | None, node: str | None, dry_run: bool, plan_path: Path | None, output: Output,
        concurrency: int, stop_timeout: float, lock_timeout: float, db_timeout: float, plug_vifs_command: str | None,
        network_apply_command: str | None, instances_path: Path, db_url: str | None, libvirt_uri: str,
        host: str | None, options: Options, journal_db_url: str | None, tier_timeout: float) -> None:
    """Recover this host's instances: decide, execute, journal and report.

    One recovery per host at a time (a lock in the database); each instance is claimed before
    anything is done to it; the journal is written as the run goes. On a terminal, a run that takes
    more than a couple of seconds shows a progress bar until its table. Guests it starts go in
    tiers by recover:priority, each tier waiting for its guests to be ready (docs/recovery-policy.md).
    Columns for -c: uuid, start_state, path, actions, outcome, error, vm_state, task_state,
    power_state, tier, ready, reason. The rules are in docs/policy.md; running it on a host is in
    docs/operating.md.
    """
    from recovery.cli import run as host_commands  # imported on use: `decide` starts without the database and libvirt

    applied = None
    if plan_path is not None:
        from recovery.run import plan_file

        context = click.get_current_context()
        given = frozenset(name for name in Options.__dataclass_fields__ if _given(context, name))
        applied = plan_file.load_for_run(plan_path, options, given)
    host_commands.run(scenario, node, dry_run, output, concurrency, stop_timeout, lock_timeout, db_timeout,
                      plug_vifs_command, network_apply_command, db_url, libvirt_uri, host, options, instances_path,
                      journal_db_url, applied, tier_timeout=tier_timeout)


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the plan to this file (JSON, readable by its owner only) for `run --plan` to apply.")
@output_options
@TARGET_OPTIONS[0]
@TARGET_OPTIONS[1]
@db_timeout_option
@database_option
@libvirt_option
@nova_conf_options()
@config_option
@policy_options
def plan(out: Path | None, output: Output, scenario: str | None, node: str | None, db_timeout: float,
         db_url: str | None, libvirt_uri: str, host: str | None, options: Options) -> None:
    """What nova-compute's start would do on this host, and why: read only.

    Every instance and domain of the host through the same decisions as `run`, reported in the
    same table (or -f json, --json, ...) as a dry run. The database is read in a read-only transaction (Nova's
    cell database included: no table, row or file is made) and libvirt through a read-only
    connection. Against Nova: docs/nova.md. With --out, the plan is also written to a file that
    `run --plan` applies (docs/plan.md).
    """
    from recovery.cli import plan as plan_command

    plan_command.plan(scenario, node, output, db_timeout, db_url, libvirt_uri, host, options, out)


def _positive(name: str, default: float, help_text: str):
    return click.option(f"--{name}", type=FiniteFloatRange(0.1, 86_400), default=default, show_default=True,
                        envvar=ENV_PREFIX + name.upper().replace("-", "_"), help=help_text)


@cli.command()
@_positive("report-interval", DEFAULT_REPORT_INTERVAL, "Seconds between heartbeats to the service record.")
@_positive("sync-power-state-interval", DEFAULT_SYNC_POWER_STATE_INTERVAL,
           "Seconds between full power-state syncs of every instance.")
@_positive("update-resources-interval", DEFAULT_UPDATE_RESOURCES_INTERVAL,
           "Seconds between updates of the compute node record.")
@_positive("lifecycle-event-delay", LIFECYCLE_DELAY,
           "Seconds a STOPPED event waits; a later event of the guest (a reboot) drops it.")
@click.option("--metrics-port", type=click.IntRange(0, 65_535), envvar=ENV_PREFIX + "METRICS_PORT",
              help="Serve Prometheus metrics over HTTP on this port [default: not served].")
@click.option("--metrics-address", default="0.0.0.0", show_default=True, envvar=ENV_PREFIX + "METRICS_ADDRESS",
              help="Address the metrics port listens on.")
@click.option("--metrics-textfile", type=click.Path(dir_okay=False), envvar=ENV_PREFIX + "METRICS_TEXTFILE",
              help="Also write the metrics to this file (node-exporter's textfile collector; name it *.prom).")
@journal_db_option
@nova_conf_options()
@recovery_options
def agent(scenario: str | None, node: str | None, concurrency: int, stop_timeout: float, lock_timeout: float,
          db_timeout: float, plug_vifs_command: str | None, network_apply_command: str | None, instances_path: Path,
          db_url: str | None, libvirt_uri: str, host: str | None, options: Options, report_interval: float,
          sync_power_state_interval: float, update_resources_interval: float, lifecycle_event_delay: float,
          metrics_port: int | None, metrics_address: str, metrics_textfile: str | None,
          journal_db_url: str | None, tier_timeout: float) -> None:
    """Recover this host as `run` does, then stay and keep its records true.

    Heartbeats the service record, syncs power states from libvirt's lifecycle events and
    periodically, updates the compute node record, disables the service while libvirt is lost.
    SIGTERM or SIGINT: finish the work in hand and exit 0. Under systemd (Type=notify): READY=1
    once the host is recovered, and watchdog pings.
    """
    from recovery.cli import agent as agent_command
    from recovery.core.settings import AgentSettings

    settings = AgentSettings(report_interval=report_interval, sync_power_state_interval=sync_power_state_interval,
                             update_resources_interval=update_resources_interval,
                             lifecycle_event_delay=lifecycle_event_delay, metrics_textfile=metrics_textfile)
    agent_command.agent(scenario, node, concurrency, stop_timeout, lock_timeout, db_timeout, plug_vifs_command,
                        network_apply_command, db_url, libvirt_uri, host, options, settings, metrics_port,
                        metrics_address, instances_path, journal_db_url, tier_timeout=tier_timeout)


@cli.group(invoke_without_command=True)
@click.option("--host", help="Only this host's services.")
@output_options
@click.option("--service-down-time", type=FiniteFloatRange(0), default=DEFAULT_SERVICE_DOWN_TIME, show_default=True,
              envvar=ENV_PREFIX + "SERVICE_DOWN_TIME",
              help="Seconds without a heartbeat after which a service is down (Nova's service_down_time).")
@click.option("--report-interval", type=FiniteFloatRange(0), default=DEFAULT_REPORT_INTERVAL, show_default=True,
              envvar=ENV_PREFIX + "REPORT_INTERVAL",
              help="The services' heartbeat interval: a down time not above it is raised to 2.5 intervals.")
@database_option
@click.pass_context
def services(ctx: click.Context, host: str | None, output: Output, service_down_time: float, report_interval: float,
             db_url: str | None) -> None:
    """List the service records as `openstack compute service list` does: status, and state up or down
    by Nova's rule (not forced down, and a heartbeat within the service down time). Columns for -c:
    id, binary, host, zone, status, state, updated_at, last_seen_up, report_count, disabled_reason,
    forced_down."""
    if ctx.invoked_subcommand is None:
        from recovery.cli import services as service_commands

        service_commands.list_services(host, output, db_url, service_down_time, report_interval)


@services.command("set")
@click.option("--host", required=True, help="The service's host.")
@click.option("--binary", default="nova-compute", show_default=True, help="The service's binary.")
@click.option("--enable/--disable", "enable", default=None, help="Enable the service, or disable it.")
@click.option("--reason", help="Why it is disabled (with --disable).")
@click.option("--forced-down/--no-forced-down", "forced_down", default=None,
              help="Mark the service down at once (as `openstack compute service set --down`), or lift the mark.")
@database_option
@db_timeout_option
def services_set(host: str, binary: str, enable: bool | None, reason: str | None, forced_down: bool | None,
                 db_url: str | None, db_timeout: float) -> None:
    """Change a service record as `openstack compute service set` does."""
    from recovery.cli import services as service_commands

    service_commands.set_service(host, binary, enable, reason, forced_down, db_url, db_timeout)


@cli.group("db")
def db_group() -> None:
    """compute-recover's tables in a database."""


@db_group.command("upgrade")
@database_option
@journal_db_option
@db_timeout_option
def db_upgrade(db_url: str | None, journal_db_url: str | None, db_timeout: float) -> None:
    """Create compute-recover's tables in --db, or bring them up to this version (the only command
    that changes a schema). With --journal-db: only the journal's tables, in that database (--db,
    which may be Nova's cell database, is not touched). An SQLite file is created if missing,
    readable by its owner only."""
    from recovery.cli import admin as admin_commands

    admin_commands.db_upgrade(db_url, db_timeout, journal_db_url)


@cli.group("scenario")
def scenario_group() -> None:
    """Scenarios: a libvirt test-driver document and the database records that go with it."""


@scenario_group.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--replace", is_flag=True, help="Delete the database's records (and journal) first, in the same "
              "transaction, instead of refusing a database that holds records.")
@database_option
@db_timeout_option
def scenario_load(directory: str, replace: bool, db_url: str | None, db_timeout: float) -> None:
    """Load DIRECTORY/db.json into --db (made by `db upgrade`); refuses a database that holds records."""
    from recovery.cli import admin as admin_commands

    admin_commands.scenario_load(directory, db_url, replace, db_timeout)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True,
              help="Mermaid (rendered by GitHub, GitLab, mermaid.live) or Graphviz dot.")
@click.option("--vm-state", type=click.Choice(VM_STATES), help="Only transitions leaving this vm_state.")
@click.option("--task-state", type=click.Choice(TASK_STATES), help="Only transitions leaving this task_state.")
@click.option("--power-state", type=click.Choice(POWER_STATES), help="Only transitions leaving this power state.")
@click.option("--full", is_flag=True, help="Every vm_state/task_state/power_state transition, even unfiltered "
              "(about 13,000 edges: too many for Mermaid's default limits).")
def graph(fmt: str, vm_state: str | None, task_state: str | None, power_state: str | None, full: bool) -> None:
    """Export the compiled machine as a diagram.

    Without a filter or --full, a summary: one node per vm_state, one edge per pair of vm_states
    labelled with the rules between them and how many full states take each. It renders within
    Mermaid's default limits. With a filter (or --full): every state triple and rule transition.
    """
    edge_list = graphs.edges(shared_machine(), vm_state, task_state, power_state)
    if not (full or vm_state or task_state or power_state):
        edge_list = graphs.summary(edge_list)
    click.echo(graphs.mermaid(edge_list) if fmt == "mermaid" else graphs.dot(edge_list))


def policy_source_options(command):
    """Which policy table a command judges: a copy in a file, states/ at a git revision, or the installed one."""
    command = click.option("--rev", "revision", help="The policy of states/policy.py at this git revision "
                           "(e.g. HEAD~3), read with git show.")(command)
    return click.option("--policy-module", type=click.Path(dir_okay=False),
                        help="A copy of states/policy.py to judge instead of the installed policy.")(command)


@cli.command()
@policy_source_options
def verify(policy_module: str | None, revision: str | None) -> None:
    """Prove the policy's invariants over every state and every class of facts.

    Totality, determinism, the decision cache, safety (no domain destroyed without evidence),
    convergence within 3 runs, and agreement of the walk with the machine's own triggers, each
    checked exhaustively (docs/verify.md). Exit 1 with a counterexample when one fails.
    """
    from recovery.cli import proofs as proof_commands

    proof_commands.verify_command(policy_module, revision)


@cli.command()
@click.option("--a", "a_settings", multiple=True, metavar="NAME=VALUE",
              help="A decision option of side a (repeatable): resume=off, destroy_after_evacuate=on, "
              "running_deleted_instance_action=reap; unset options take their defaults.")
@click.option("--b", "b_settings", multiple=True, metavar="NAME=VALUE", help="A decision option of side b.")
@click.option("--a-rev", help="Side a's policy: states/policy.py at this git revision (e.g. HEAD~3).")
@click.option("--b-rev", help="Side b's policy: states/policy.py at this git revision.")
@click.option("--a-policy-module", type=click.Path(dir_okay=False), help="Side a's policy: a copy of states/policy.py.")
@click.option("--b-policy-module", type=click.Path(dir_okay=False), help="Side b's policy: a copy of states/policy.py.")
@click.option("--host", help="With --db: the host whose instances it would affect.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@database_option
@db_timeout_option
def diff(a_settings: tuple[str, ...], b_settings: tuple[str, ...], a_rev: str | None, b_rev: str | None,
         a_policy_module: str | None, b_policy_module: str | None, host: str | None, as_json: bool,
         db_url: str | None, db_timeout: float) -> None:
    """List every state and class of facts whose decision differs between two sides.

    A side is a policy table (the installed one, a copy, or a git revision) with decision options.
    A decision differs when it starts other actions or leaves the record in another state. With
    --db and --host, also the instances of that host it would affect (read-only). docs/diff.md.
    """
    from recovery.cli import proofs as proof_commands

    proof_commands.diff_command(a_settings, b_settings, (a_policy_module, a_rev), (b_policy_module, b_rev), db_url,
                                host, db_timeout, as_json)


def main() -> None:
    cli()
