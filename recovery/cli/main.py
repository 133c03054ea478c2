"""The `compute-recover` command group: its global options (logging), and where each command lives.

Each command family is a module of its own, its click declaration beside its body, imported only
when the command is used: `decide` (which may be fed 100,000 records) starts without loading the
database, libvirt and rich layers. Shared options are in `recovery.cli.options`; exit codes and the
printing of errors in `recovery.cli.exits`; the bounds on untrusted input in `recovery.core.bounds`.
"""

import importlib
import inspect

import click

from recovery.cli import logs
from recovery.cli.exits import UsageProblem, exit_status_text, fail_with, usage_error_document
from recovery.cli.options import ENV_PREFIX
from recovery.core.errors import RecoveryError

COMMANDS = {
    "decide": "recovery.cli.decide:decide",
    "explain": "recovery.cli.explain:explain",
    "run": "recovery.cli.run:run",
    "plan": "recovery.cli.plan:plan",
    "runs": "recovery.cli.runs:runs",
    "agent": "recovery.cli.agent:agent",
    "services": "recovery.cli.services:services",
    "db": "recovery.cli.admin:db_group",
    "scenario": "recovery.cli.admin:scenario_group",
    "graph": "recovery.cli.proofs:graph",
    "verify": "recovery.cli.proofs:verify",
    "diff": "recovery.cli.proofs:diff",
}
"""Command name → the module and name of its click command, in the order docs/commands.md lists them."""


class CommandGroup(click.Group):
    """Click's group, loading a command's module when the command is used; a usage error after -f json
    or yaml is also one error object on stdout, and an expected error (`RecoveryError`) that reaches it
    is one line and its exit code (`recovery.cli.exits`); click's usage errors are one line too."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, name = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            _config_first(command)
            _exit_status_epilog(command, cmd_name)
            _whole_summaries(command)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def all_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Every command, loaded, in the order of COMMANDS (for the generated reference pages); the group's
        own `commands` put in that order too, whichever were loaded first (click-man lists them so)."""
        loaded = {name: self.get_command(ctx, name) for name in COMMANDS}
        self.commands = {name: self.commands[name] for name in loaded}
        return loaded

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # a bad global option, an unknown command
            raise UsageProblem(error) from None

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            problem = error if isinstance(error, UsageProblem) else UsageProblem(error)
            usage_error_document(problem)
            raise problem from None
        except click.ClickException as error:
            usage_error_document(error)
            raise
        except RecoveryError as error:
            fail_with(error)


def _config_first(command: click.Command) -> None:
    """--config is processed before every other option, however it is given (flag, environment or the
    default path): the values it gives, -f among them, must be there when the others are read."""
    command.params.sort(key=lambda param: param.name != "config")
    for sub in getattr(command, "commands", {}).values():
        _config_first(sub)


def _whole_summaries(command: click.Command) -> None:
    """The command (and its subcommands) listed in its group's --help by its first sentence whole, wrapped
    there, where click would cut it at 45 characters mid-sentence with '...'."""
    if command.short_help is None and command.help:
        paragraph = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
        end = paragraph.find(". ")
        command.short_help = paragraph if end < 0 else paragraph[:end + 1]
    for sub in getattr(command, "commands", {}).values():
        _whole_summaries(sub)


def _exit_status_epilog(command: click.Command, path: str) -> None:
    """Each command's --help ends with its exit codes (recovery.cli.exits.COMMAND_EXIT_CODES)."""
    text = exit_status_text(path)
    if text is not None:
        command.epilog = "\b\n" + text if command.epilog is None else f"{command.epilog}\n\n{text}"
    for name, sub in getattr(command, "commands", {}).items():
        _exit_status_epilog(sub, f"{path} {name}")


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Reference: docs/commands.md (commands, options, exit codes), docs/policy.md (the rules), "
             "docs/operating.md (logging, output formats, shell completion).")
@click.version_option(None, "-V", "--version", package_name="compute-recover",
                      prog_name="compute-recover")  # looked up only when asked
@click.option("-v", "--verbose", count=True, help="More log: -v what each run does, -vv every action.")
@click.option("-q", "--quiet", is_flag=True, help="Log errors only, and draw no progress bar.")
@click.option("--log-to", type=click.Choice(logs.TARGETS), default="stderr", show_default=True,
              envvar=ENV_PREFIX + "LOG_TO", help="Where log records go: stderr, syslog, or the systemd journal.")
@click.option("--syslog-address", default=logs.SYSLOG_SOCKET, show_default=True, envvar=ENV_PREFIX + "SYSLOG_ADDRESS",
              help="With --log-to syslog: the syslog socket, or HOST:PORT (UDP).")
def cli(verbose: int, quiet: bool, log_to: str, syslog_address: str) -> None:
    """Decide, execute and explain the recovery of a compute host's instances after it comes back."""
    logs.configure(logs.level_for(verbose, quiet), log_to, syslog_address)


def main() -> None:
    cli()
