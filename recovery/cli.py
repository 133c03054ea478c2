"""The `compute-recover` command line: options and commands.

The bodies of `run` and of explaining from the journal live in
`recovery.host_commands`, imported only when used, so that `decide` (which may
be fed 100,000 records) starts without loading the database and libvirt layers.
Exit codes are in `recovery.exits`.
"""

import functools
import json
import socket
import sys
import tomllib
from pathlib import Path

import click

from recovery import graph as graphs
from recovery.exits import EXIT_FAILED, EXIT_USAGE, fail
from recovery.facts import POWER_STATES, TASK_STATES, VM_STATES, FactsError, Options, facts_from_record
from recovery.machine import shared_machine
from recovery.render import DecisionPrinter, explanation_json, explanation_text
from recovery.settings import DEFAULT_CONCURRENCY, DEFAULT_INSTANCES_PATH
from states.enums import RunningDeletedInstanceAction

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
    known = {p.name for p in ctx.command.params}
    unknown = sorted(set(config) - known)
    if unknown:
        raise click.BadParameter(f"config file {path} names unknown options: {', '.join(unknown)}")
    ctx.default_map = {**(ctx.default_map or {}), **config}
    return path


def config_option(command):
    return click.option(
        "--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True, expose_value=False,
        envvar=ENV_PREFIX + "CONFIG", help="TOML file of option values (flags and environment win).",
    )(command)


def policy_options(command):
    """The options that change decisions, shared by every command that decides."""
    options = [
        click.option("--host", default=None, envvar=ENV_PREFIX + "HOST",
                     help="This compute host's name, as the database records it [default: the scenario's host, "
                     "else the machine's hostname]."),
        click.option("--resume-guests-state-on-host-boot", is_flag=True, default=False,
                     envvar=ENV_PREFIX + "RESUME_GUESTS_STATE_ON_HOST_BOOT",
                     help="Restart guests that were running before the host went down."),
        click.option("--destroy-after-evacuate/--no-destroy-after-evacuate", default=True,
                     envvar=ENV_PREFIX + "DESTROY_AFTER_EVACUATE",
                     help="Destroy the stale local copy of an instance evacuated away."),
        click.option("--running-deleted-instance-action", default=RunningDeletedInstanceAction.LOG.value,
                     type=click.Choice([a.value for a in RunningDeletedInstanceAction]),
                     envvar=ENV_PREFIX + "RUNNING_DELETED_INSTANCE_ACTION", show_default=True,
                     help="What to do with a domain whose instance record is deleted."),
    ]

    @functools.wraps(command)
    def wrapper(*args, resume_guests_state_on_host_boot, destroy_after_evacuate,
                running_deleted_instance_action, **kwargs):
        options = Options(resume_guests_state_on_host_boot, destroy_after_evacuate,
                          running_deleted_instance_action)
        if kwargs.get("host") is None and kwargs.get("scenario") is None:
            kwargs["host"] = socket.gethostname()
        return command(*args, options=options, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Decide, execute and explain the recovery of a compute host's instances after it comes back."""


@cli.command()
@config_option
@policy_options
def decide(host: str, options: Options) -> None:
    """Decide JSON Lines facts from stdin; one JSON decision per line on stdout (SPEC §5)."""
    printer = DecisionPrinter(shared_machine())
    bad = 0
    out: list[str] = []
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            bad += 1
            out.append(json.dumps({"uuid": None, "error": f"line {number}: not valid JSON ({error})"}))
            continue
        try:
            facts = facts_from_record(record, host, options)
        except FactsError as error:
            bad += 1
            uuid = record.get("uuid") if isinstance(record, dict) else None
            out.append(json.dumps({"uuid": uuid, "error": f"line {number}: {error}"}))
            continue
        out.append(printer.line(record["uuid"], facts))
        if len(out) >= 4096:
            sys.stdout.write("\n".join(out) + "\n")
            out.clear()
    if out:
        sys.stdout.write("\n".join(out) + "\n")
    if bad:
        click.echo(f"decide: {bad} input line(s) could not be decided; their output lines carry the error", err=True)
        sys.exit(EXIT_FAILED)



def _read_facts_argument(text: str) -> dict:
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as error:
        fail(f"--facts is not valid JSON ({error})", EXIT_USAGE)


def database_option(command):
    return click.option("--db", "db_url", envvar=ENV_PREFIX + "DB", default=None,
                        help="SQLAlchemy URL of the database [default: sqlite file compute-recover.sqlite, "
                        "or COMPUTE_RECOVER_DB].")(command)


def libvirt_option(command):
    return click.option("--libvirt-uri", envvar=ENV_PREFIX + "LIBVIRT_URI", default="qemu:///system",
                        show_default=True, help="The hypervisor to recover.")(command)


@cli.command()
@click.argument("uuid", required=False)
@click.option("--facts", "facts_text", help="Explain this facts record (JSON, or - for stdin) instead of a journal.")
@click.option("--live", is_flag=True, help="Also decide now, from the database and libvirt as they are.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of text.")
@database_option
@libvirt_option
@config_option
@policy_options
def explain(uuid: str | None, facts_text: str | None, live: bool, as_json: bool, db_url: str | None,
            libvirt_uri: str, host: str, options: Options) -> None:
    """Explain why the machine decides what it does for one instance (SPEC §9).

    With UUID: the journal of past runs, newest first, and with --live what it
    would decide now. With --facts: one facts record, no database needed.
    """
    if facts_text is not None:
        record = _read_facts_argument(facts_text)
        if isinstance(record, dict):
            record.setdefault("uuid", uuid or "(facts)")
        try:
            facts = facts_from_record(record, host, options)
        except FactsError as error:
            fail(f"--facts: {error}", EXIT_USAGE)
        doc = {"uuid": record["uuid"], **explanation_json(shared_machine(), facts)}
        click.echo(json.dumps(doc, indent=2) if as_json else explanation_text(doc))
        return
    if uuid is None:
        raise click.UsageError("give an instance UUID, or --facts JSON (or -)")
    from recovery import host_commands  # imported on use: `decide` starts without the database and libvirt

    host_commands.explain_journal(uuid, live, as_json, db_url, libvirt_uri, host, options)


@cli.command()
@click.option("--scenario", type=click.Path(exists=True, file_okay=False), envvar=ENV_PREFIX + "SCENARIO",
              help="Scenario directory: seeds an empty database from its db.json and uses its libvirt.xml.")
@click.option("--node", envvar=ENV_PREFIX + "NODE", help="Hypervisor hostname of the compute node [default: "
              "the scenario's host, else libvirt's hostname].")
@click.option("--dry-run", is_flag=True, envvar=ENV_PREFIX + "DRY_RUN",
              help="Decide and report; write nothing to libvirt or the database.")
@click.option("--json", "as_json", is_flag=True, envvar=ENV_PREFIX + "JSON", help="One JSON document.")
@click.option("--concurrency", type=click.IntRange(1, 256), default=DEFAULT_CONCURRENCY, show_default=True,
              envvar=ENV_PREFIX + "CONCURRENCY", help="Instances recovered at once.")
@click.option("--stop-timeout", type=click.FloatRange(0), default=60.0, show_default=True,
              envvar=ENV_PREFIX + "STOP_TIMEOUT", help="Seconds a guest gets to shut down before it is destroyed.")
@click.option("--plug-vifs-command", envvar=ENV_PREFIX + "PLUG_VIFS_COMMAND",
              help="Command run with an instance uuid to plug its VIFs (default: nothing to plug).")
@click.option("--network-apply-command", envvar=ENV_PREFIX + "NETWORK_APPLY_COMMAND",
              help="Command run once at the end to apply deferred network rules.")
@click.option("--instances-path", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_INSTANCES_PATH, show_default=True, envvar=ENV_PREFIX + "INSTANCES_PATH",
              help="Nova's instances_path: local disks deleted with a domain lie under it, and local_gb is "
              "its filesystem's size.")
@database_option
@libvirt_option
@config_option
@policy_options
def run(scenario: str | None, node: str | None, dry_run: bool, as_json: bool, concurrency: int,
        stop_timeout: float, plug_vifs_command: str | None, network_apply_command: str | None,
        instances_path: Path, db_url: str | None, libvirt_uri: str, host: str | None, options: Options) -> None:
    """Recover this host's instances: decide, execute, journal and report (SPEC §6)."""
    from recovery import host_commands  # imported on use: `decide` starts without the database and libvirt

    host_commands.run(scenario, node, dry_run, as_json, concurrency, stop_timeout, plug_vifs_command,
                      network_apply_command, db_url, libvirt_uri, host, options, instances_path)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True)
@click.option("--vm-state", type=click.Choice(VM_STATES), help="Only transitions leaving this vm_state.")
@click.option("--task-state", type=click.Choice(TASK_STATES), help="Only transitions leaving this task_state.")
@click.option("--power-state", type=click.Choice(POWER_STATES), help="Only transitions leaving this power state.")
def graph(fmt: str, vm_state: str | None, task_state: str | None, power_state: str | None) -> None:
    """Export the compiled machine (its states and rule transitions) as a diagram."""
    edge_list = graphs.edges(shared_machine(), vm_state, task_state, power_state)
    click.echo(graphs.mermaid(edge_list) if fmt == "mermaid" else graphs.dot(edge_list))


def main() -> None:
    cli()
