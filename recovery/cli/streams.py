"""Standard input as `decide` and `explain --facts -` read it: bytes, so that bad UTF-8 is one input's
error; a closed stdin is a usage error."""

import sys
from typing import BinaryIO

from recovery.cli.exits import CommandError


def stdin_bytes(reader: str) -> BinaryIO:
    if sys.stdin is None:
        raise CommandError(f"{reader} stdin, which is closed")
    return sys.stdin.buffer
