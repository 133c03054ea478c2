"""Command lines the tests hand to compute-recover's hooks (VIF plug, network apply): small Python scripts."""

import shlex
import sys
from pathlib import Path


def python_command(tmp_path: Path, name: str, body: str) -> str:
    """A command line running a small Python script (sqlite3 and sys imported) with this interpreter."""
    file = tmp_path / name
    file.write_text("import sqlite3, sys\n" + body)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(file))}"
