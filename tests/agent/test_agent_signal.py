"""SIGTERM to the agent while it recovers the host: the recovery stops taking instances, as `run`'s
does, so the agent ends within its unit's stop timeout instead of finishing the whole recovery.

A real agent process on the libvirt test driver and a real SQLite file; a 400-instance outage whose
VIF plugs (0.2 s each, 4 at a time) would take some 20 s.
"""

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.paths import CONSOLE_SCRIPT
from tests.support.scenarios import write_scenario

HOST = "compute-1"
INSTANCES = 400
CONCURRENCY = 4


def plug_starts(log: Path) -> list[float]:
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def test_sigterm_during_the_recovery_stops_it_and_the_agent_exits_0(tmp_path: Path) -> None:
    scenario = write_scenario(tmp_path / "scenario", INSTANCES, host=HOST)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    log, plug = tmp_path / "plugs.log", tmp_path / "slow-plug"
    plug.write_text(f"#!/bin/sh\ndate +%s.%N >> {log}\nsleep 0.2\n")
    plug.chmod(0o755)
    agent = subprocess.Popen([CONSOLE_SCRIPT, "agent", "--scenario", scenario, "--db", url, "--stop-timeout", "1",
                              "--resume-guests-state-on-host-boot", "--plug-vifs-command", plug,
                              "--concurrency", str(CONCURRENCY)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(plug_starts(log)) < 8:
        assert agent.poll() is None, agent.communicate()
        assert time.monotonic() < deadline, "the recovery never got going"
        time.sleep(0.01)
    agent.send_signal(signal.SIGTERM)
    signalled, at = time.monotonic(), time.time()
    out, err = agent.communicate(timeout=120)
    took = time.monotonic() - signalled

    assert agent.returncode == 0, err
    assert took < 10, f"the agent took {took:.1f} s to stop"  # the whole recovery would take some 20 s more
    assert len([started for started in plug_starts(log) if started > at]) <= CONCURRENCY
    assert "run stopped early: interrupted by SIGTERM" in " ".join(out.split())
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT status, exit_code FROM recovery_runs").fetchall() == [("interrupted", 143)]
