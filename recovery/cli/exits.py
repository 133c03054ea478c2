"""Exit codes of every command: what each means, which error exits with which (the one table), and
the one place an error is printed (one line, and with -f json or yaml one object) before exiting.

Library code raises a `RecoveryError` and never prints or exits; the command group hands every one
that reaches it to `fail_with`."""

import sys
from typing import NoReturn

import click

from recovery.core.errors import RecoveryError
from recovery.core.exit_codes import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE
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
    EXIT_REFUSED: "Refused before changing anything: libvirt unreachable or too old, or an identity check failed.",
    EXIT_LOCKED: "Another recovery of the same host held the host lock for the whole --lock-timeout; nothing "
                 "was changed.",
}
"""What each exit code means; docs/commands.md is generated from it."""


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
        ("recovery.adapters.hypervisor:HypervisorError", EXIT_REFUSED),
        ("recovery.db.lock:LockTimeout", EXIT_LOCKED),
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
    """Its one line on stderr (with -f json or yaml also the error as one object on stdout), and exit
    with its code; an error the table does not name is a bug, re-raised with its traceback."""
    code = exit_code(error)
    if code is None:
        raise error
    click.echo(f"compute-recover: {error}", err=True)
    document = error_document(str(error), code)
    if document is not None:
        click.echo(document)
    sys.exit(code)


def usage_error_document(error: click.ClickException) -> None:
    """A usage error click prints itself: after -f json or yaml, also one error object on stdout."""
    document = error_document(error.format_message(), error.exit_code)
    if document is not None:
        click.echo(document)
