"""Checks on option values made before anything is done: a bad value is one line and exit 2,
not a failure found out on the first instance (or a wait that never ends)."""

import math
import os
import shlex
import shutil

import click

from recovery.cli.exits import EXIT_USAGE, fail


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
        fail(f"{option} {command!r} cannot be split into words: {error}", EXIT_USAGE)
    if not words:
        fail(f"{option} is empty: give a command, or leave the option out", EXIT_USAGE)
    program = words[0]
    if os.sep in program:
        if not (os.path.isfile(program) and os.access(program, os.X_OK)):
            fail(f"{option}: {program} is not an executable file: check the path and its x bit", EXIT_USAGE)
    elif shutil.which(program) is None:
        fail(f"{option}: {program} is not found on PATH: give its absolute path or install it", EXIT_USAGE)
    return command


def command_option_callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return resolve_command(param.opts[0], value)
