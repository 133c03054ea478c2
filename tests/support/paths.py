"""Where the tests find the repository's files and the installed console script, in one place."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
TEST_DATA = ROOT / "tests" / "data"
CONSOLE_SCRIPT = Path(sys.executable).parent / "compute-recover"
"""`compute-recover` as pip installed it beside the interpreter running the tests; the processes run exactly it."""


def U(nn: str | int) -> str:
    """The scenarios' instance uuid for its number, "07" or 7 alike (fixtures/*/db.json: 6c1a0b52-…-0000000000NN)."""
    return f"6c1a0b52-0000-4000-8000-{nn!s:0>12}"


HOST = "compute-1"
"""The host of the scenarios in fixtures/."""


def uri(scenario: str) -> str:
    """The libvirt test-driver URI of a scenario in fixtures/."""
    return f"test://{FIXTURES / scenario / 'libvirt.xml'}"
