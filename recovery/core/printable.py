"""Text from data made safe to print on a terminal (pure).

Names, hosts, errors and reasons come from tenants, libvirt and databases. Printed raw, a control
character in one recolours or retitles the terminal (CSI, OSC), moves the cursor, or starts a line
of its own that reads as the program's. Every text output (tables, `value`, `csv`, `explain`, the
log on stderr, error messages) passes data through `printable`; JSON and YAML keep it exact, being
escaped by their own syntax.
"""

import re

_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f"  # C0 (ESC, newline, carriage return, tab ...), DEL, C1 (CSI, OSC as one byte)
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional controls: text that reads reordered
    "\u2028\u2029]"  # line and paragraph separators
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    return f"\\x{ord(char):02x}" if ord(char) <= 0xFF else f"\\u{ord(char):04x}"


def printable(text: str) -> str:
    """`text` with every control character written as a visible escape (ESC as `\\x1b`, a newline
    as `\\n`): one line, no terminal sequence. Idempotent; text without them is returned unchanged."""
    return _UNPRINTABLE.sub(_escape, text)
