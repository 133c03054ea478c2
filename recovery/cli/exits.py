"""Exit codes of every command, and the one-line way to fail with one."""

import sys
from typing import NoReturn

import click

from recovery.core.printable import printable

EXIT_OK = 0
EXIT_FAILED = 1
"""Some instance failed, lost a race to a concurrent change or was not ready within its tier's timeout,
the run stopped because its database or hypervisor went away, some `decide` line was bad, or
`run --plan` held an instance back (its facts changed since the plan, or it is not in the plan)."""
EXIT_USAGE = 2
EXIT_REFUSED = 3
"""Refused before changing anything: libvirt unreachable or too old, or an identity check failed."""
EXIT_LOCKED = 4
"""Another recovery of the same host held the host lock for the whole --lock-timeout; nothing changed."""

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


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr (control characters from data escaped); with -f json or yaml also the
    error, exact, as one object on stdout."""
    from recovery.present.formats import error_document

    click.echo(f"compute-recover: {printable(message)}", err=True)
    document = error_document(message, code)
    if document is not None:
        click.echo(document)
    sys.exit(code)
