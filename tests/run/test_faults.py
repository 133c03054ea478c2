"""Fail fast when the database goes: real `compute-recover run` processes, real servers, real files.

Each run recovers a generated 200-instance outage through a slow VIF-plug command (0.1 s a
plug), so the fault lands mid-run: a PostgreSQL cluster of the test's own is stopped or frozen
(SIGSTOP), an SQLite file's tmpfs fills up, or the database refuses writes from the start. What
is asserted is what an operator sees: the exit code, the report (table or JSON), the rows, the
journal through `explain`, and that no traceback and no password is ever printed.
"""

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.in_process import Cli
from tests.support.parts import missing
from tests.support.paths import CONSOLE_SCRIPT
from tests.support.pg_cluster import PG_PASSWORD, PostgresCluster
from tests.support.processes import load
from tests.support.rows import rows
from tests.support.scenarios import write_scenario

HOST = "compute-1"
INSTANCES = 200
FAULT_AFTER_PLUGS = 20
"""Plugs done before the fault: about a tenth of the run."""
CONCURRENCY = 4
"""`run`'s default: at most this many actions are under way when the database goes."""


def outcomes(run: Cli) -> dict[str, str]:
    return {item["uuid"]: item["outcome"] for item in run.doc["instances"]}


def compute_recover(*args: object, timeout: float = 120) -> Cli:
    done = subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return Cli(done.returncode, done.stdout, done.stderr)


def assert_operator_safe(*outputs: Cli) -> None:
    """No traceback and not a character of the password, in any output."""
    for output in outputs:
        for stream in (output.stdout, output.stderr):
            assert "Traceback" not in stream
            assert PG_PASSWORD not in stream


class SlowRun:
    """`compute-recover run` in the background, its VIF plugs slowed and counted, so a test can
    strike once a given number of plugs is done. `fill` names a file the plug command fills
    its file system with once FAULT_AFTER_PLUGS plugs are done (a disk filling up mid-run)."""

    def __init__(self, workdir: Path, url: str, *options: str, fill: Path | None = None) -> None:
        self.plugs = workdir / "plugs.log"
        plug = workdir / "slow-plug"
        filler = (f'[ "$(wc -l < {self.plugs})" -ge {FAULT_AFTER_PLUGS} ] && [ ! -e {fill} ] && '
                  f"dd if=/dev/zero of={fill} bs=64k 2>/dev/null\n") if fill else ""
        plug.write_text(f'#!/bin/sh\necho "$1" >> {self.plugs}\n{filler}sleep 0.1\nexit 0\n')
        plug.chmod(0o755)
        command = [str(CONSOLE_SCRIPT), "run", "--scenario", str(workdir / "scenario"), "--db", url,
                   "--resume-guests-state-on-host-boot", "--plug-vifs-command", str(plug), *options]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def plugged(self) -> int:
        return len(self.plugs.read_text().split()) if self.plugs.exists() else 0

    def wait_for_plugs(self, count: int = FAULT_AFTER_PLUGS) -> None:
        deadline = time.monotonic() + 60
        while self.plugged() < count:
            assert self.process.poll() is None, f"the run ended before {count} plugs: {self.process.communicate()}"
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.01)

    def finish(self, timeout: float = 120) -> Cli:
        try:
            stdout, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        return Cli(self.process.returncode, stdout, stderr)


def scenario_in(workdir: Path) -> Path:
    write_scenario(workdir / "scenario", INSTANCES, host=HOST)
    return workdir / "scenario"


def instances(url: str) -> dict[str, dict]:
    return {row["uuid"]: row for row in rows(url, "SELECT * FROM instances")}


def record_states(url: str) -> dict[str, tuple]:
    """What recovery decides about each instance record, timestamps aside."""
    return {uuid: (row["vm_state"], row["task_state"], row["power_state"], row["deleted"] != 0)
            for uuid, row in instances(url).items()}


def assert_report_matches_rows(doc: dict, before: dict[str, dict], after: dict[str, dict]) -> None:
    """Every instance the report says was not started is exactly as it was; every other holds
    the state the report says was written: nothing lost, nothing half-written."""
    for item in doc["instances"]:
        uuid = item["uuid"]
        if item["outcome"] == "not-started":
            assert after[uuid] == before[uuid]
            assert {a["outcome"] for a in item["actions"]} <= {"not-started"}
        else:
            assert (after[uuid]["vm_state"], after[uuid]["task_state"]) == (item["vm_state"], item["task_state"])


def assert_halted_on_the_database(run: Cli, url: str) -> None:
    """Exit 1 (the run failed), the reason names the database (masked), and most of the host
    was never reached: the run stopped starting actions when the database went."""
    assert run.exit_code == 1, run.stderr
    doc = run.doc
    assert doc["halted"].startswith(f"database {make_url(url).render_as_string(hide_password=True)} failed to ")
    totals = doc["totals"]
    assert totals["instances"] == INSTANCES
    assert totals["not-started"] > INSTANCES / 2, totals
    assert totals["ok"] >= FAULT_AFTER_PLUGS // 2
    assert totals["ok"] + totals["not-started"] + totals["interrupted"] == INSTANCES
    for item in doc["instances"]:  # interrupted: an action was under way; else nothing was started
        if item["outcome"] == "interrupted":
            assert {a["outcome"] for a in item["actions"]} - {"not-started"}, item
    assert_operator_safe(run)


# --- a. PostgreSQL stopped mid-run ---------------------------------------------------------------


def stopped_mid_run(tmp_path: Path, cluster: PostgresCluster, *options: str) -> tuple[str, Path, dict, Cli]:
    """A slow run whose PostgreSQL server is stopped mid-run, to its end: the URL, the scenario, the
    records before it, and the run. Only plugs already under way when the server stopped finish."""
    url, scenario = cluster.url(), scenario_in(tmp_path)
    load(url, scenario)
    before = instances(url)
    run = SlowRun(tmp_path, url, *options)
    run.wait_for_plugs()
    cluster.stop()
    plugged_when_stopped = run.plugged()
    finished = run.finish()
    assert run.plugged() - plugged_when_stopped <= CONCURRENCY
    return url, scenario, before, finished


def reported_halted_in_json(run: Cli, url: str) -> None:
    """The JSON document says the run halted on the database and that its journal is unfinished."""
    assert_halted_on_the_database(run, url)
    assert "journal could not be finished" in " ".join(run.doc["warnings"])


def reported_halted_in_the_table(run: Cli, url: str) -> None:
    """The table a person reads says as much: the unfinished journal, the halt (URL masked), the totals."""
    assert run.exit_code == 1, run.stderr
    assert "warning: the run's journal could not be finished" in run.stdout
    assert f"compute-recover run on {HOST}" in run.stdout
    assert "not-started" in run.stdout
    masked = make_url(url).render_as_string(hide_password=True)
    assert f"run stopped early: database {masked} failed to " in " ".join(run.stdout.split())
    assert f"instances {INSTANCES}, ok " in run.stdout
    assert_operator_safe(run)


@pytest.mark.parametrize(("options", "reported_halted"), [(("--json",), reported_halted_in_json),
                                                          ((), reported_halted_in_the_table)], ids=["json", "table"])
def test_postgresql_stopped_mid_run_halts_and_says_so_in_either_format(tmp_path, private_pg_cluster, options,
                                                                        reported_halted):
    url, _scenario, _before, finished = stopped_mid_run(tmp_path, private_pg_cluster, *options)
    reported_halted(finished, url)


def test_after_postgresql_stopped_mid_run_the_records_match_the_report_and_the_next_run_converges(
        tmp_path, private_pg_cluster):
    cluster = private_pg_cluster
    url, scenario, before, first = stopped_mid_run(tmp_path, cluster, "--json")

    cluster.start()
    assert_report_matches_rows(first.doc, before, instances(url))
    [killed] = rows(url, "SELECT id, status, exit_code FROM recovery_runs")
    assert (killed["id"], killed["status"]) == (first.doc["run_id"], "running")

    second = compute_recover("run", "--scenario", scenario, "--db", url, "--resume-guests-state-on-host-boot",
                             "--json")
    assert second.exit_code == 0, second.stderr
    assert set(outcomes(second).values()) == {"ok"}
    runs = {row["id"]: row for row in rows(url, "SELECT id, status, exit_code FROM recovery_runs")}
    assert (runs[first.doc["run_id"]]["status"], runs[first.doc["run_id"]]["exit_code"]) == ("interrupted", None)
    assert (runs[second.doc["run_id"]]["status"], runs[second.doc["run_id"]]["exit_code"]) == ("finished", 0)

    # The killed run's story: what it completed, and what it meant to do but never started.
    first_outcomes = outcomes(first)
    done = next(u for u, o in first_outcomes.items() if o == "ok" and _plugs(first, u))
    never = next(u for u, o in first_outcomes.items() if o == "not-started" and _plugs(first, u))
    for uuid, action_line in ((done, "plug_vifs: ok"), (never, "plug_vifs: pending")):
        explained = compute_recover("explain", uuid, "--db", url)
        assert explained.exit_code == 0, explained.stderr
        earlier = explained.stdout.split(f"== earlier run {first.doc['run_id']} ")[1]
        assert earlier.startswith(f"on host {HOST}")
        assert "(interrupted: the run never finished" in earlier.splitlines()[0]
        assert action_line in earlier
        assert_operator_safe(explained)

    # Converged: the records are what one undisturbed run of the same outage leaves.
    with psycopg.connect(cluster.url().replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute('CREATE DATABASE "undisturbed"')
    reference = cluster.url("undisturbed")
    load(reference, scenario)
    undisturbed = compute_recover("run", "--scenario", scenario, "--db", reference,
                                  "--resume-guests-state-on-host-boot", "--json")
    assert undisturbed.exit_code == 0
    assert record_states(url) == record_states(reference)
    assert_operator_safe(second, undisturbed)


def _plugs(run: Cli, uuid: str) -> bool:
    """Whether the instance's first action is plug_vifs."""
    item = next(i for i in run.doc["instances"] if i["uuid"] == uuid)
    return [a["name"] for a in item["actions"]][:1] == ["plug_vifs"]


# --- b. a frozen server ----------------------------------------------------------------------------


def test_a_frozen_postgresql_cannot_hang_the_run(tmp_path, private_pg_cluster):
    cluster = private_pg_cluster
    url = cluster.url()
    load(url, scenario_in(tmp_path))
    before = instances(url)
    run = SlowRun(tmp_path, url, "--json", "--db-timeout", "2")
    run.wait_for_plugs()
    cluster.freeze()
    frozen_at = time.monotonic()
    try:
        finished = run.finish(timeout=60)
        waited = time.monotonic() - frozen_at
    finally:
        cluster.thaw()
    assert waited < 20, f"the run took {waited:.0f} s to give up on a frozen server with --db-timeout 2"
    assert_halted_on_the_database(finished, url)
    assert_report_matches_rows(finished.doc, before, instances(url))


# --- c. a full disk ----------------------------------------------------------------------------------


@contextmanager
def mounted(*mount_args: object, target: Path) -> Iterator[Path]:
    """A mount of the test's own (root only), unmounted afterwards."""
    target.mkdir(exist_ok=True)
    done = subprocess.run(["mount", *map(str, mount_args), str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        missing(f"cannot mount here (root needed): {done.stderr.strip()}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_a_full_disk_halts_the_run_with_every_written_row_intact(tmp_path):
    scenario = scenario_in(tmp_path)
    with mounted("-t", "tmpfs", "-o", "size=16m", "tmpfs", target=tmp_path / "small") as disk:
        url = f"sqlite:///{disk / 'db.sqlite'}"
        load(url, scenario)
        before = instances(url)
        run = SlowRun(tmp_path, url, "--json", fill=disk / "filler")
        finished = run.finish()
        assert (disk / "filler").exists()
        assert_halted_on_the_database(finished, url)
        assert "database or disk is full" in finished.doc["halted"]

        (disk / "filler").unlink()
        [[integrity]] = [list(row.values()) for row in rows(url, "PRAGMA integrity_check")]
        assert integrity == "ok"
        assert_report_matches_rows(finished.doc, before, instances(url))
        journal = {row["instance_uuid"]: row["outcome"] for row in rows(url, "SELECT * FROM recovery_journal")}
        for uuid, outcome in outcomes(finished).items():
            assert journal[uuid] == ("ok" if outcome == "ok" else "pending"), uuid


# --- d. a read-only database ------------------------------------------------------------------------


def assert_refused_read_only(run: Cli, url: str) -> None:
    """A one-line error naming the database, exit 2 (check --db)."""
    assert run.exit_code == 2
    assert run.stdout == ""
    [line] = run.stderr.splitlines()
    masked = make_url(url).render_as_string(hide_password=True)
    assert line.startswith(f"compute-recover: database {masked} failed to ")
    assert line.endswith("nothing was changed; check --db and the database server")
    assert_operator_safe(run)


def test_a_read_only_postgresql_database_is_refused_with_nothing_written(tmp_path, pg_database_url):
    load(pg_database_url, scenario_in(tmp_path))
    before = instances(pg_database_url)
    name = make_url(pg_database_url).database
    with psycopg.connect(make_url(pg_database_url).set(drivername="postgresql").render_as_string(False),
                         autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    run = SlowRun(tmp_path, pg_database_url).finish()
    assert_refused_read_only(run, pg_database_url)
    assert "read-only transaction" in run.stderr
    assert instances(pg_database_url) == before
    assert rows(pg_database_url, "SELECT * FROM recovery_runs") == []


def test_an_sqlite_file_on_a_read_only_mount_is_refused_with_nothing_written(tmp_path):
    scenario, data = scenario_in(tmp_path), tmp_path / "data"
    data.mkdir()
    writable = f"sqlite:///{data / 'db.sqlite'}"
    load(writable, scenario)
    before, files = instances(writable), sorted(os.listdir(data))
    with mounted("--bind", data, target=tmp_path / "read-only") as view:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        url = f"sqlite:///{view / 'db.sqlite'}"
        run = SlowRun(tmp_path, url).finish()
    assert_refused_read_only(run, url)
    assert "Read-only file system" in run.stderr
    assert instances(writable) == before
    assert sorted(os.listdir(data)) == files
    assert rows(writable, "SELECT * FROM recovery_runs") == []
