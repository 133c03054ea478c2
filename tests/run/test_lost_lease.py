"""A run whose host lock is taken from it stops acting before its next instance; two runs never overlap.

Real `compute-recover run` processes on the real PostgreSQL cluster the suite starts and the libvirt
test driver; each VIF plug is a real command that logs when it starts and ends, tagged with its run.
Mid-run, the lock's session is ended with `pg_terminate_backend`, while a second run of the same host
waits for the lock: the first stops starting actions (at most the instances already claimed go on),
reports and journals why, and exits 1; the second takes the lock and recovers the rest, and not one of
its plugs overlaps one of the first's.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.support.paths import CONSOLE_SCRIPT
from tests.support.scenarios import write_scenario

HOST = "compute-1"
INSTANCES = 120
CONCURRENCY = 4
STRIKE_AFTER_PLUGS = 12


def plugs(log: Path) -> list[tuple[str, str, float]]:
    """(run, start|end, time) of every plug so far."""
    if not log.exists():
        return []
    return [(run, what, float(at)) for run, what, at in (line.split() for line in log.read_text().splitlines())]


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_a_run_whose_lock_session_is_terminated_stops_and_a_second_run_never_overlaps_it(tmp_path, pg_database_url):
    scenario = write_scenario(tmp_path / "scenario", INSTANCES, host=HOST)
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        done = subprocess.run([CONSOLE_SCRIPT, *map(str, command), "--db", pg_database_url], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
    log, plug = tmp_path / "plugs.log", tmp_path / "slow-plug"
    plug.write_text(f'#!/bin/sh\necho "$RUN_TAG start $(date +%s.%N)" >> {log}\nsleep 0.1\n'
                    f'echo "$RUN_TAG end $(date +%s.%N)" >> {log}\n')
    plug.chmod(0o755)
    command = [CONSOLE_SCRIPT, "-v", "run", "--scenario", scenario, "--db", pg_database_url, "--json",
               "--resume-guests-state-on-host-boot", "--plug-vifs-command", plug, "--stop-timeout", "1",
               "--concurrency", str(CONCURRENCY)]
    errors = {tag: open(tmp_path / f"{tag}.err", "w") for tag in ("first", "second")}  # noqa: SIM115
    first = subprocess.Popen([*command, "--lock-timeout", "0"], env=os.environ | {"RUN_TAG": "first"},
                             stdout=subprocess.PIPE, stderr=errors["first"], text=True)
    wait_for(lambda: sum(what == "start" for _, what, _ in plugs(log)) >= STRIKE_AFTER_PLUGS, "the first run's plugs")
    second = subprocess.Popen([*command, "--lock-timeout", "120"], env=os.environ | {"RUN_TAG": "second"},
                              stdout=subprocess.PIPE, stderr=errors["second"], text=True)
    wait_for(lambda: "holds its lock" in (tmp_path / "second.err").read_text(), "the second run to wait for the lock")

    server = make_url(pg_database_url)
    with psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                         dbname=server.database, autocommit=True) as admin:
        ended = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND granted").fetchall()
    struck = time.time()
    assert ended == [(True,)]

    first_out, _ = first.communicate(timeout=300)
    second_out, _ = second.communicate(timeout=300)
    for stream in errors.values():
        stream.close()
    first_err, second_err = ((tmp_path / f"{tag}.err").read_text() for tag in ("first", "second"))

    assert first.returncode == 1, first_err
    report = json.loads(first_out)
    assert report["halted"].startswith(f"lost the lock of host {HOST}: its session on ")
    stopped = [item for item in report["instances"] if item["outcome"] == "not-started"]
    assert stopped and all(item["error"].startswith("the run stopped: lost the lock of host") for item in stopped)
    assert "Traceback" not in first_err + second_err

    log_lines = plugs(log)
    first_starts = [at for run, what, at in log_lines if run == "first" and what == "start"]
    first_ends = [at for run, what, at in log_lines if run == "first" and what == "end"]
    second_starts = [at for run, what, at in log_lines if run == "second" and what == "start"]
    late = [at for at in first_starts if at > struck]
    print(f"\nfirst run: {len(first_starts)} plugs, {len(late)} begun after the strike; second run: "
          f"{len(second_starts)} plugs, the first {min(second_starts) - max(first_ends):.3f} s after the first "
          "run's last")
    assert len(late) <= CONCURRENCY  # only instances claimed before the strike went on
    assert len(first_starts) < INSTANCES
    assert max(first_ends) < min(second_starts)  # never both acting
    assert second.returncode in (0, 1), second_err
    assert json.loads(second_out)["halted"] is None  # the second run held its lock to the end
    assert len(first_starts) + len(second_starts) >= len({i["uuid"] for i in report["instances"]}) - len(stopped)

    explain = subprocess.run([CONSOLE_SCRIPT, "explain", stopped[0]["uuid"], "--db", pg_database_url, "--json"],
                             capture_output=True, text=True)
    journaled = json.loads(explain.stdout)["runs"]
    assert any((run["error"] or "").startswith("the run stopped: lost the lock of host") for run in journaled)
