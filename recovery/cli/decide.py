"""`compute-recover decide`: JSON Lines facts in, one JSON decision line out per record, in order.

Every non-blank input line gets exactly one output line, whatever it holds. A line that
cannot be decided (longer than the limit, not UTF-8, not JSON, outside a bound of
`recovery.core.bounds`, not a valid record) gets `{"uuid": ..., "error": "line N: ..."}`
and the lines after it are still decided. Lines end at a newline (JSON Lines); a line of
ASCII whitespace only is skipped but still counted.
"""

import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

import click

from recovery.cli.exits import CommandError
from recovery.cli.options import config_option, policy_options
from recovery.cli.streams import stdin_bytes
from recovery.core.bounds import MAX_LINE_BYTES, InputError, parse_json
from recovery.core.documents import DecisionPrinter, to_json
from recovery.core.exit_codes import EXIT_FAILED
from recovery.core.facts import FactsError, Options, identified_facts, record_uuid
from recovery.core.machine import shared_machine

BATCH_LINES = 4096
"""Output lines written at once: fewer writes than one a line, bounded memory."""
SKIP_CHUNK_BYTES = 64 * 1024
"""How much of an over-long line is read at a time while skipping it."""


@click.command()
@config_option
@policy_options
def decide(host: str, options: Options) -> None:
    """Decide JSON Lines facts from stdin; one JSON decision per line on stdout.

    A line that cannot be decided gets an error line in its place and exit status 1 at the end;
    the other lines are still decided. A line may be at most 1 MiB. The input and output fields are
    described in docs/decide.md.
    """
    if sys.stdout is None:
        raise CommandError("decide writes its decisions to stdout, which is closed")
    bad = decide_stream(stdin_bytes("decide reads"), sys.stdout, host, options)
    if bad:
        click.echo(f"decide: {bad} input line(s) could not be decided; their output lines carry the error", err=True)
        sys.exit(EXIT_FAILED)


def decide_stream(stream: BinaryIO, out: TextIO, host: str, options: Options) -> int:
    """Decide every line of `stream` onto `out`; return how many lines could not be decided."""
    printer = DecisionPrinter(shared_machine())
    bad = 0
    batch: list[str] = []
    for number, line in numbered_lines(stream):
        if line is not None and not line.strip():
            continue
        decided, ok = _decide_line(number, line, printer, host, options)
        bad += not ok
        batch.append(decided)
        if len(batch) >= BATCH_LINES:
            out.write("\n".join(batch) + "\n")
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
    return bad


def numbered_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """Each line and its number, counting from 1; None for a line longer than MAX_LINE_BYTES,
    whose rest is read past in chunks so that it is never held in memory whole."""
    number = 0
    while line := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (chunk := stream.readline(SKIP_CHUNK_BYTES)) and not chunk.endswith(b"\n"):
                pass
            yield number, None
        else:
            yield number, line


def _decide_line(number: int, line: bytes | None, printer: DecisionPrinter, host: str,
                 options: Options) -> tuple[str, bool]:
    """The output line for one input line, and whether it was decided (False: an error line)."""
    if line is None:
        return _error_line(number, None, f"longer than {MAX_LINE_BYTES:,} bytes, the limit for one record"), False
    try:
        record = parse_json(line)
    except InputError as error:
        return _error_line(number, None, str(error)), False
    try:
        uuid, facts = identified_facts(record, host, options)
    except FactsError as error:
        return _error_line(number, record_uuid(record), str(error)), False
    return printer.line(uuid, facts), True


def _error_line(number: int, uuid: str | None, message: str) -> str:
    return to_json({"uuid": uuid, "error": f"line {number}: {message}"})
