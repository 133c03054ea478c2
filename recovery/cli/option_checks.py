"""Checks on option values made before anything is done: a bad value is one line and exit 2,
not a failure found out on the first instance (or a wait that never ends)."""

import math
import os
import shlex
import shutil

import click

from recovery.cli.exits import CommandError


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange, less nan and infinities (which compare false against any bound, so pass it)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return number


def resolve_command(option: str, command: str | None) -> str | None:
    """A hook command whose program is found on PATH or is an executable file, else exit 2 at once."""
    if command is None:
        return None
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise CommandError(f"{option} {command!r} cannot be split into words: {error}") from error
    if not words:
        raise CommandError(f"{option} is empty: give a command, or leave the option out")
    program = words[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            raise CommandError(f"{option}: {program} is not an executable file: check the path and its x bit")
    elif shutil.which(program) is None:
        raise CommandError(f"{option}: {program} is not found on PATH: give its absolute path or install it")
    return command


def command_option_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return resolve_command(param.opts[0], value)
