"""`compute-recover` as real processes (the console script), as an operator or a fleet runs it, and a
run of the clean-host scenario kept busy so that another can meet its host lock."""

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.paths import CONSOLE_SCRIPT, FIXTURES
from tests.support.rows import query


def cli(*args: object, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """One command to its end, output captured."""
    return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start(*args: object) -> subprocess.Popen:
    """One command started in the background, output piped."""
    return subprocess.Popen([str(CONSOLE_SCRIPT), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def load(url: str, scenario: Path) -> None:
    """What an operator does before a first run: `db upgrade`, then `scenario load`."""
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = cli(*command, "--db", url)
        assert done.returncode == 0, done.stderr


def slow_plug(tmp_path: Path, seconds: float) -> str:
    """A VIF-plug command that takes `seconds`, to keep a run busy."""
    script = tmp_path / "slow-plug"
    script.write_text(f"#!/bin/sh\nsleep {seconds}\n")
    script.chmod(0o755)
    return str(script)


def wait_for_running_run(path: Path) -> dict:
    """The journal's row of the run once it has started (its lock is held then)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            rows = query(path, "SELECT * FROM recovery_runs WHERE status = 'running'")
        except sqlite3.Error:
            rows = []
        if rows:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the run never started")


@contextmanager
def busy_host(tmp_path: Path) -> Iterator[tuple[Path, str, dict, dict]]:
    """A clean-host run holding its host's lock (slow VIF plugs) for the block: the database path, its URL,
    the holder's run row, and (after the block) the holder's exit code and stderr."""
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "clean-host")
    first = start("run", "--scenario", FIXTURES / "clean-host", "--db", url, "--resume-guests-state-on-host-boot",
                  "--concurrency", "1", "--plug-vifs-command", slow_plug(tmp_path, 1.5), "--json")
    ended: dict = {}
    try:
        yield path, url, wait_for_running_run(path), ended
    finally:
        _out, ended["stderr"] = first.communicate(timeout=120)
        ended["returncode"] = first.returncode
