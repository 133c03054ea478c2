"""SIGINT and SIGTERM stop a run as a failing database does: real processes, real signals.

A generated 600-instance outage on the libvirt test driver and a real SQLite file, each VIF plug a
real command (0.05 s) that logs when it starts, so the signal lands mid-run. After it: at most the
instances already under way start a plug, the partial report is printed, the run is journaled
`interrupted`, and the exit code is 130 (SIGINT) or 143 (SIGTERM); no `Aborted!`, no traceback.
`plan --out` signalled while it works leaves no plan and no temporary file.
"""

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.paths import CONSOLE_SCRIPT
from tests.support.scenarios import write_scenario

HOST = "compute-1"
INSTANCES = 600
CONCURRENCY = 4
SIGNAL_AFTER_PLUGS = 20


def loaded(tmp_path: Path, instances: int = INSTANCES) -> tuple[Path, str]:
    scenario = write_scenario(tmp_path / "scenario", instances, host=HOST)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", url], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return scenario, url


def plug_starts(log: Path) -> list[float]:
    return [float(line) for line in log.read_text().split()] if log.exists() else []


@pytest.mark.parametrize(("number", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_run_stops_taking_instances_reports_and_is_journaled_interrupted(tmp_path, number, exit_code):
    scenario, url = loaded(tmp_path)
    log, plug = tmp_path / "plugs.log", tmp_path / "slow-plug"
    plug.write_text(f"#!/bin/sh\ndate +%s.%N >> {log}\nsleep 0.05\n")
    plug.chmod(0o755)
    run = subprocess.Popen([CONSOLE_SCRIPT, "run", "--scenario", scenario, "--db", url, "--json",
                            "--resume-guests-state-on-host-boot", "--plug-vifs-command", plug, "--stop-timeout", "1",
                            "--concurrency", str(CONCURRENCY)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(plug_starts(log)) < SIGNAL_AFTER_PLUGS:
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.01)
    run.send_signal(number)
    signalled = time.time()
    out, err = run.communicate(timeout=120)

    assert run.returncode == exit_code, err
    assert "Traceback" not in err and "Aborted" not in err
    assert f"{signal.Signals(number).name}: stopping" in err
    report = json.loads(out)
    assert report["halted"] == f"interrupted by {signal.Signals(number).name}"
    outcomes = [item["outcome"] for item in report["instances"]]
    assert outcomes.count("not-started") > INSTANCES // 2  # most of the run was never begun
    late = [at for at in plug_starts(log) if at > signalled]
    print(f"\n{signal.Signals(number).name} after {SIGNAL_AFTER_PLUGS} plugs: {len(plug_starts(log))} plugs in all, "
          f"{len(late)} begun after the signal, {outcomes.count('not-started')} instances not started")
    assert len(late) <= CONCURRENCY  # only what was under way
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("SELECT status, exit_code FROM recovery_runs").fetchall() == [("interrupted", exit_code)]
        pending = conn.execute("SELECT count(*) FROM recovery_journal WHERE outcome = 'pending'").fetchone()[0]
    assert pending == 0  # every instance journaled with what happened to it


def test_a_signalled_plan_out_writes_no_plan_and_leaves_no_temporary_file(tmp_path):
    scenario, url = loaded(tmp_path, 3000)
    out = tmp_path / "plans" / "host.plan"
    out.parent.mkdir()
    plan = subprocess.Popen([CONSOLE_SCRIPT, "plan", "--scenario", scenario, "--db", url, "--out", out, "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.parent.iterdir()):  # its temporary file: made before anything is read
        assert plan.poll() is None, plan.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    plan.send_signal(signal.SIGTERM)
    _out, err = plan.communicate(timeout=120)
    assert plan.returncode == 143, err
    assert "Traceback" not in err
    assert list(out.parent.iterdir()) == []
