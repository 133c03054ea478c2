"""Bounds on untrusted input, in one place: how big, how deep and how wide a value may be.

Every path that reads a record someone else wrote (`decide` lines, `explain --facts`, a
scenario's db.json) parses JSON here, so a hostile document is refused with one line
saying which bound it broke, before it can exhaust the stack or memory or reach a column
that cannot hold it. Limits are Nova's own where Nova has one (its column types).
"""

import json
import math
import reprlib
from typing import Any, BinaryIO

from recovery.core.errors import RecoveryError

MAX_LINE_BYTES = 1024 * 1024
"""One `decide` record or `explain --facts` document: 1 MiB (a real record is a few hundred bytes)."""
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""One scenario db.json: 64 MiB, room for some 200,000 instances."""
MAX_DEPTH = 32
"""Nesting of arrays and objects; a record needs 3 (db.json: instance in a list in the document)."""
MAX_INTEGER_LENGTH = 20
"""Longest integer literal parsed at all, sign included: every signed 64-bit value fits, so a value
too big for its column is refused by that field's own check, which names the field."""
NOVA_INTEGER_MIN, NOVA_INTEGER_MAX = -(2**31), 2**31 - 1
"""Nova's Integer columns (power_state, vcpus, memory_mb, root_gb, ids) are signed 32-bit."""
NOVA_STRING_LENGTH = 255
"""Nova's String(255) columns: host, node, vm_state, task_state, migration status."""
UUID_LENGTH = 36
"""Nova's String(36) uuid columns."""


class InputError(RecoveryError, ValueError):
    """Input outside a bound, or not JSON at all; the message says which and is one line."""


_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 3


def shown(value: Any) -> str:
    """A bad value as an error message quotes it: its repr, cut short (a bad field may be 1 MiB)."""
    return _SHORT.repr(value)


def _refuse_constant(name: str) -> None:
    raise InputError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def _integer(literal: str) -> int:
    if len(literal) > MAX_INTEGER_LENGTH:
        raise InputError(f"integer {literal[:MAX_INTEGER_LENGTH]}... ({len(literal):,} characters) is larger than any "
                         "Nova column holds")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise InputError(f"number {shown(literal)} is too large for a double (it would be infinite)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_integer, parse_float=_finite_float)


def parse_json(data: bytes | str) -> Any:
    """One JSON document within the bounds above (the caller bounds its size when reading)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InputError(f"not valid UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        value = _DECODER.decode(data)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON ({error})") from None
    except RecursionError:  # the C decoder's own guard, far beyond MAX_DEPTH
        raise _too_deep() from None
    if data.count("[") + data.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise _too_deep()
    return value


def _too_deep() -> InputError:
    return InputError(f"arrays and objects nested deeper than {MAX_DEPTH} levels")


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed value, walked without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level <= MAX_DEPTH:
            pending.extend((child, level + 1) for child in children)
    return deepest


def read_limited(stream: BinaryIO, limit: int, what: str) -> bytes:
    """All of a stream, refusing one longer than `limit` bytes after reading no more than that."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InputError(f"{what} is larger than {limit:,} bytes, the limit")
    return data


def canonical_uuid(value: Any) -> str:
    """A uuid as it is compared and reported everywhere: lower case, as Nova and libvirt write it.

    Nova's column is any string of up to 36 characters; printable ASCII keeps lower-casing
    length-preserving and keeps control characters out of reports."""
    if type(value) is str and 0 < len(value) <= UUID_LENGTH and value.isascii() and value.isprintable():
        return value.lower()
    raise InputError(f"uuid must be 1 to {UUID_LENGTH} printable ASCII characters (Nova's String({UUID_LENGTH}) "
                     f"column), not {shown(value)}")


def bounded_string(value: Any, field: str, limit: int = NOVA_STRING_LENGTH) -> str:
    """A string field that fits its String(limit) column."""
    if type(value) is not str:
        raise InputError(f"{field} must be a string, not {shown(value)}")
    if len(value) > limit:
        raise InputError(f"{field} is {len(value):,} characters long; Nova's column holds at most {limit} "
                         f"({shown(value)})")
    return value
