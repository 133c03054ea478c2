"""`compute-recover` as real processes (the console script), as an operator, a fleet or systemd runs it,
and a run of the clean-host scenario kept busy so that another can meet its host lock."""

import contextlib
import os
import signal
import socket
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


class NotifiedAgent:
    """`compute-recover agent` as systemd runs a Type=notify unit: the notify socket is the test's, and
    what the agent says on it (READY=1, WATCHDOG=1, STATUS=…, STOPPING=1) is collected in `messages`."""

    def __init__(self, process: subprocess.Popen, notify: socket.socket):
        self.process = process
        self.notify = notify
        self.messages: list[str] = []

    def wait_for(self, text: str, times: int = 1) -> None:
        """Until `times` messages holding `text` have come (the socket's timeout bounds each wait)."""
        while sum(text in message for message in self.messages) < times:
            self.messages.append(self.notify.recv(4096).decode())

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> tuple[str, str]:
        """Signal it, wait for its end, collect what it said last; its stdout and stderr."""
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=timeout)
        self.notify.settimeout(0)
        with contextlib.suppress(BlockingIOError):
            while True:
                self.messages.append(self.notify.recv(4096).decode())
        return out, err

    @property
    def returncode(self) -> int | None:
        return self.process.returncode


@contextmanager
def notified_agent(tmp_path: Path, *args: object, env: dict | None = None,
                   wait: float = 60) -> Iterator[NotifiedAgent]:
    """The agent started with `args` under a notify socket of the test's; killed if the block leaves it running."""
    notify_path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(wait)
        process = subprocess.Popen([str(CONSOLE_SCRIPT), "agent", *map(str, args)],
                                   env=os.environ | (env or {}) | {"NOTIFY_SOCKET": str(notify_path)},
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield NotifiedAgent(process, notify)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
