"""Exit codes of every command: what each means, which error exits with which (the one table), and
the one place an error is printed (one line, and with -f json or yaml one object) before exiting.

Library code raises a `RecoveryError` and never prints or exits; the command group hands every one
that reaches it to `fail_with`."""

import sys
import textwrap
from typing import NoReturn

import click

from recovery.cli.config import value_source
from recovery.core.errors import RecoveryError
from recovery.core.exit_codes import (
    EXIT_CHANGES_PENDING,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TERMINATED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from recovery.core.printable import printable
from recovery.present.formats import error_document

MEANINGS: dict[int, str] = {
    EXIT_OK: "Every instance recovered (or every input line decided).",
    EXIT_FAILED: "Some instance failed, lost a race to a concurrent change or was not ready within its tier's "
                 "timeout (--tier-timeout), the run stopped because its database or hypervisor went away, some "
                 "`decide` line was bad, or `run --plan` held an instance back (changed since the plan, or not "
                 "in it).",
    EXIT_USAGE: "Usage or configuration error: a bad option, database URL, scenario, or an unknown uuid; a plan "
                "file that is unreadable, damaged or edited, of another version, for another host, or made with "
                "other decision options (nothing was done); a plan that cannot be written.",
    EXIT_REFUSED: "Refused before changing anything: libvirt too old, or an identity check failed.",
    EXIT_LOCKED: "Another recovery of the same host held the host lock for the whole --lock-timeout; nothing "
                 "was changed.",
    EXIT_CHANGES_PENDING: "Only with --detailed-exitcode (`plan`, `run --dry-run`): the plan would change something "
                          "(0 then means there is nothing to do), as `terraform plan -detailed-exitcode` says it.",
    EXIT_UNAVAILABLE: "The database or libvirt did not answer at start (refused, timed out, not running); nothing "
                      "was changed. They may come back: try again; the agent waits for them first (--start-wait) "
                      "and its systemd unit restarts it on this code.",
    EXIT_INTERRUPTED: "Interrupted by SIGINT (Ctrl-C) during `run` or `plan`: no instance was started after it, the "
                      "actions under way finished, the partial report was printed, the run is journaled "
                      "`interrupted`, and `plan --out` wrote no file. A second signal ends the process at once.",
    EXIT_TERMINATED: "Terminated by SIGTERM during `run` or `plan`: as for SIGINT.",
}
"""What each exit code means; docs/commands.md is generated from it."""

_USAGE = "usage or configuration error (nothing was done)"
_REFUSED = "refused before changing anything (libvirt unreachable or too old, an identity check failed)"
_STOPPED = {EXIT_UNAVAILABLE: "the database or libvirt did not answer", EXIT_INTERRUPTED: "stopped by SIGINT",
            EXIT_TERMINATED: "stopped by SIGTERM"}
"""What `run` and `plan` share beyond their own codes."""

COMMAND_EXIT_CODES: dict[str, dict[int, str]] = {
    "decide": {EXIT_OK: "every line decided", EXIT_FAILED: "some line could not be decided", EXIT_USAGE: _USAGE},
    "explain": {EXIT_OK: "explained", EXIT_USAGE: _USAGE + ", or an unknown instance", EXIT_REFUSED: _REFUSED},
    "run": {EXIT_OK: "every instance recovered (a dry run: every instance decided)",
            EXIT_FAILED: "some instance failed, lost a race, was not ready in time or was held back by --plan, "
                         "or the run stopped (database or libvirt gone)",
            EXIT_USAGE: _USAGE, EXIT_REFUSED: _REFUSED, EXIT_LOCKED: "another recovery held the host lock",
            EXIT_CHANGES_PENDING: "--dry-run --detailed-exitcode: the plan would change something",
            **_STOPPED},
    "plan": {EXIT_OK: "planned (with --detailed-exitcode: nothing to do)",
             EXIT_FAILED: "some instance could not be decided (a bad record)", EXIT_USAGE: _USAGE,
             EXIT_REFUSED: _REFUSED, EXIT_CHANGES_PENDING: "--detailed-exitcode: the plan would change something",
             **_STOPPED},
    "runs": {EXIT_OK: "listed or printed", EXIT_USAGE: _USAGE + ", or no such run"},
    "agent": {EXIT_OK: "stopped by SIGTERM or SIGINT after finishing the work in hand", EXIT_USAGE: _USAGE,
              EXIT_REFUSED: _REFUSED, EXIT_LOCKED: "another recovery held the host lock",
              EXIT_UNAVAILABLE: "the database or libvirt did not answer within --start-wait"},
    "services": {EXIT_OK: "listed", EXIT_USAGE: _USAGE},
    "services set": {EXIT_OK: "changed", EXIT_USAGE: _USAGE + ", or no such service"},
    "db upgrade": {EXIT_OK: "the tables are up to date", EXIT_USAGE: _USAGE},
    "scenario load": {EXIT_OK: "loaded", EXIT_USAGE: _USAGE + ", or a bad scenario"},
    "graph": {EXIT_OK: "drawn", EXIT_USAGE: _USAGE},
    "verify": {EXIT_OK: "every invariant holds", EXIT_FAILED: "an invariant fails (a counterexample is printed)",
               EXIT_USAGE: _USAGE},
    "diff": {EXIT_OK: "compared", EXIT_USAGE: _USAGE},
}
"""Each command's exit codes in a few words: its --help, docs/commands.md and its man page say them."""


EXIT_STATUS_WIDTH = 76
"""The exit codes' lines in --help: click indents an epilog by 2 within its 78 columns."""


def exit_status_text(command_path: str) -> str | None:
    """The exit codes of a command (`run`, `services set`) as its --help ends with them: one code a line,
    its meaning wrapped under itself."""
    codes = COMMAND_EXIT_CODES.get(command_path)
    if codes is None:
        return None
    column = max(len(str(code)) for code in codes) + 4
    lines = ["Exit status:"]
    for code, meaning in codes.items():
        lines += textwrap.wrap(meaning, EXIT_STATUS_WIDTH, initial_indent=f"  {code:<{column - 2}}",
                               subsequent_indent=" " * column, break_on_hyphens=False)
    return "\n".join(lines)


class CommandError(RecoveryError):
    """An error a command finds itself (a bad combination of options, a name that matches nothing), or
    a library error told in the command's words; it exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _exit_codes() -> tuple[tuple[str, int], ...]:
    """Error class (module:name, looked up only once an error is raised, so that a command loads no
    layer it does not use) → exit code; the first class the error is an instance of wins."""
    return (
        ("recovery.run.boot:Refused", EXIT_REFUSED),
        ("recovery.adapters.hypervisor:HypervisorUnavailable", EXIT_UNAVAILABLE),
        ("recovery.adapters.hypervisor:HypervisorError", EXIT_REFUSED),
        ("recovery.db.lock:LockTimeout", EXIT_LOCKED),
        ("recovery.db.engine:DatabaseUnreachable", EXIT_UNAVAILABLE),
        ("recovery.db.engine:DatabaseError", EXIT_USAGE),
        ("recovery.db.scenarios:ScenarioError", EXIT_USAGE),
        ("recovery.db.services:ServiceNotFound", EXIT_USAGE),
        ("recovery.run.plan_file:PlanFileError", EXIT_USAGE),
        ("recovery.adapters.novaconf:NovaConfError", EXIT_USAGE),
        ("recovery.proofs.policy_source:PolicySourceError", EXIT_USAGE),
        ("recovery.proofs.diff:DiffSettingError", EXIT_USAGE),
        ("recovery.core.bounds:InputError", EXIT_USAGE),
        ("recovery.core.facts:FactsError", EXIT_USAGE),
        ("recovery.core.metadata:PolicyValueError", EXIT_USAGE),
    )


def exit_code(error: RecoveryError) -> int | None:
    """The exit code of an expected error; None for one no command expects to reach it (a bug)."""
    if isinstance(error, CommandError):
        return error.code
    for name, code in _exit_codes():
        module, _, cls = name.partition(":")
        loaded = sys.modules.get(module)  # an error of a module never imported cannot have been raised
        if loaded is not None and isinstance(error, getattr(loaded, cls)):
            return code
    return None


def fail_with(error: RecoveryError) -> NoReturn:
    """Its one line on stderr, control characters from data escaped (with -f json or yaml also the
    error, exact, as one object on stdout), and exit with its code; an error the table does not name
    is a bug, re-raised with its traceback."""
    code = exit_code(error)
    if code is None:
        raise error
    click.echo(f"compute-recover: {printable(str(error))}", err=True)
    document = error_document(str(error), code)
    if document is not None:
        click.echo(document)
    sys.exit(code)


class UsageProblem(click.UsageError):
    """A usage error click finds (a bad flag, a value of the wrong type) told as the tool tells its own:
    one line, blaming a bad value on where it came from (flag, environment variable, config file and
    key), with a hint where help is."""

    def __init__(self, error: click.UsageError):
        super().__init__(_blamed_message(error), error.ctx)
        self.exit_code = error.exit_code

    def show(self, file=None) -> None:
        path = " ".join(["compute-recover", *self.ctx.command_path.split()[1:]]) if self.ctx else "compute-recover"
        hint = f" (see `{path} --help`)"
        click.echo(f"compute-recover: {self.format_message()}{hint}", file=file, err=file is None)


def _blamed_message(error: click.UsageError) -> str:
    if isinstance(error, click.BadParameter) and error.param is not None and error.ctx is not None:
        source = value_source(error.ctx, error.param.name)
        if source is not None and source != "command line":
            hint = error.param_hint if error.param_hint is not None else error.param.get_error_hint(error.ctx)
            return f"Invalid value for {hint} (from {source}): {error.message}"
    return error.format_message()


def usage_error_document(error: click.ClickException) -> None:
    """A usage error click prints itself: after -f json or yaml, also one error object on stdout."""
    document = error_document(error.format_message(), error.exit_code)
    if document is not None:
        click.echo(document)
