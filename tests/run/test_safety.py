"""Safe to run for real: one recovery per host, claim before act, the journal as it goes, no write
where none is promised, no secret printed, hostile rows refused before any action.

Real `compute-recover` processes on real SQLite files and a real PostgreSQL server, with libvirt's
test driver. Each process gets its own copy of a test-driver document, so "an action ran" is read
from the processes' reports and the database rows, never from a shared hypervisor.
"""

import hashlib
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from recovery.cli.exits import EXIT_FAILED, EXIT_LOCKED, EXIT_OK, EXIT_USAGE
from recovery.db import open_database
from recovery.db.lock import LockTimeout, host_lock
from tests.conftest import SERVER_DATABASE_FIXTURES
from tests.support.databases import migrated_database
from tests.support.paths import FIXTURES, HOST, U
from tests.support.processes import busy_host, cli, load, slow_plug, start, wait_for_running_run
from tests.support.rows import query, rows
from tests.support.scenarios import INTERRUPTED_HARD_REBOOTS, write_scenario


def write_reboots(directory: Path, count: int) -> Path:
    """`count` guests whose hard reboot was interrupted (shut off, task rebooting_hard), on a host
    whose compute node record does not exist yet."""
    return write_scenario(directory, count, host=HOST, mix=INTERRUPTED_HARD_REBOOTS)


def actions_named(report: dict, name: str) -> list[str]:
    return [i["uuid"] for i in report["instances"] for a in i["actions"] if a["name"] == name and a["outcome"] == "ok"]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- one recovery per host ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", *SERVER_DATABASE_FIXTURES])
def test_two_concurrent_runs_of_one_host_execute_every_action_exactly_once(tmp_path, backend, request):
    """Two processes contend for the host lock on every backend: PostgreSQL's advisory lock, MariaDB's
    GET_LOCK, SQLite's file lock."""
    url = (f"sqlite:///{tmp_path / 'db.sqlite'}" if backend == "sqlite"
           else request.getfixturevalue(SERVER_DATABASE_FIXTURES[backend]))
    scenario = write_reboots(tmp_path / "reboots", 200)
    load(url, scenario)

    runs = [start("run", "--scenario", scenario, "--db", url, "--json") for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]

    assert [run.returncode for run in runs] == [EXIT_OK, EXIT_OK], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    rebooted = [uuid for report in reports for uuid in actions_named(report, "reboot")]
    assert len(rebooted) == 200 and len(set(rebooted)) == 200  # 200 interrupted reboots → 200 reboots
    assert sorted(len(actions_named(report, "reboot")) for report in reports) == [0, 200]
    assert all(i["outcome"] == "ok" for report in reports for i in report["instances"])


def test_a_second_run_of_a_busy_host_gives_up_after_the_lock_timeout_naming_the_holder(tmp_path):
    with busy_host(tmp_path) as (path, url, holder, first):
        waited = time.monotonic()
        second = cli("run", "--scenario", FIXTURES / "clean-host", "--db", url, "--lock-timeout", "0.5")
        waited = time.monotonic() - waited
    assert second.returncode == EXIT_LOCKED and second.stdout == ""
    message = second.stderr.strip()
    assert "\n" not in message and "another recovery of host compute-1 is running" in message
    assert f"pid {holder['pid']}" in message and "--lock-timeout" in message and "nothing was changed" in message
    assert 0.5 <= waited < 30
    assert first["returncode"] == EXIT_OK, first["stderr"]
    assert len(query(path, "SELECT * FROM recovery_runs")) == 1  # the refused run left no row


def test_the_host_lock_holds_across_sessions_and_runs_for_different_hosts_never_wait(database_url):
    """On every backend: while one session holds a host, another cannot take it but takes any other host,
    and the host is free again once its holder leaves."""
    migrated_database(database_url).close()
    one, two = open_database(database_url), open_database(database_url)
    try:
        with host_lock(one, "compute-1", timeout=0):
            with host_lock(two, "compute-2", timeout=0):
                pass
            with pytest.raises(LockTimeout), host_lock(two, "compute-1", timeout=0.3):
                pass
        with host_lock(two, "compute-1", timeout=0):  # released on leaving
            pass
    finally:
        one.close()
        two.close()


def test_concurrent_first_boots_on_postgresql_make_one_compute_node(tmp_path, pg_database_url):
    scenario = write_reboots(tmp_path / "first-boot", 20)
    load(pg_database_url, scenario)

    runs = [start("run", "--scenario", scenario, "--db", pg_database_url, "--json") for _ in range(4)]
    for run in runs:
        run.communicate(timeout=120)

    assert [run.returncode for run in runs] == [EXIT_OK] * 4
    engine = create_engine(pg_database_url)
    try:
        with engine.connect() as conn:
            nodes = conn.execute(text("SELECT host, hypervisor_hostname FROM compute_nodes")).all()
            reboots = conn.execute(text("SELECT count(*) FROM recovery_journal WHERE actions LIKE '%reboot%'"
                                        " AND outcome = 'ok'")).scalar()
    finally:
        engine.dispose()
    assert nodes == [(HOST, HOST)]
    assert reboots == 20


# --- the journal as it goes ----------------------------------------------------------------------


def wait_for_outcomes(path: Path, count: int) -> None:
    """Until the run has journaled its decisions and finished `count` instances with actions."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            journaled = query(path, "SELECT count(*) AS n FROM recovery_journal")[0]["n"]
            done = query(path, "SELECT count(*) AS n FROM recovery_journal WHERE outcome NOT IN ('pending', 'ok') "
                               "OR (outcome = 'ok' AND actions != '[]')")[0]["n"]
        except sqlite3.Error:
            journaled = done = 0
        if journaled and done >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} instances finished")


@pytest.mark.parametrize("finished_before_kill", [0, 3, 8])
def test_after_kill_9_the_next_run_marks_the_run_interrupted_and_explain_tells_what_it_did(
        tmp_path, finished_before_kill):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "power-outage")
    killed = start("run", "--scenario", FIXTURES / "power-outage", "--db", url, "--resume-guests-state-on-host-boot",
                   "--concurrency", "1", "--plug-vifs-command", slow_plug(tmp_path, 0.3))
    wait_for_running_run(path)
    wait_for_outcomes(path, finished_before_kill)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)

    [run] = query(path, "SELECT * FROM recovery_runs")
    assert run["status"] == "running" and run["finished_at"] is None
    entries = query(path, f"SELECT * FROM recovery_journal WHERE run_id = {run['id']}")
    assert len(entries) == 23  # every decision was journaled before the first action
    done = [e for e in entries if e["outcome"] != "pending" and json.loads(e["actions"])]
    assert len(done) >= finished_before_kill

    again = cli("run", "--scenario", FIXTURES / "power-outage", "--db", url, "--resume-guests-state-on-host-boot",
                "--json")
    assert again.returncode == EXIT_OK, again.stderr
    statuses = [r["status"] for r in query(path, "SELECT * FROM recovery_runs ORDER BY id")]
    assert statuses == ["interrupted", "finished"]

    # 04: active/reboot_started_hard/shutdown → reboot(hard). The killed run journaled the decision first.
    explained = cli("explain", U("04"), "--db", url, "--json")
    assert explained.returncode == 0, explained.stderr
    runs = json.loads(explained.stdout)["runs"]
    killed_view = next(r for r in runs if r["run_id"] == run["id"])
    assert killed_view["run_status"] == "interrupted"
    assert [s["rule"] for s in killed_view["path"]] == ["retry_reboot"]
    assert [a["name"] for a in killed_view["actions"]] == ["reboot"]
    text_view = cli("explain", U("04"), "--db", url).stdout
    assert f"run {run['id']}" in text_view and "interrupted" in text_view
    completed = {e["instance_uuid"] for e in done}
    for entry in done:  # what it completed is what explain shows
        view = json.loads(cli("explain", entry["instance_uuid"], "--db", url, "--json").stdout)
        mine = next(r for r in view["runs"] if r["run_id"] == run["id"])
        assert all(a["outcome"] != "pending" for a in mine["actions"])
    assert len(completed) == len(done)


# --- no write where none is promised ------------------------------------------------------------


def test_dry_run_explain_and_refusals_leave_the_database_byte_identical(tmp_path):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "power-outage")
    assert cli("run", "--scenario", FIXTURES / "power-outage", "--db", url).returncode == EXIT_OK
    before, names = sha(path), files(tmp_path)

    dry = cli("run", "--scenario", FIXTURES / "power-outage", "--db", url, "--dry-run", "--json")
    assert dry.returncode == EXIT_OK and json.loads(dry.stdout)["dry_run"] is True
    assert cli("explain", U("03"), "--db", url).returncode == 0
    assert cli("explain", U("03"), "--db", url, "--live", "--libvirt-uri",
               f"test://{FIXTURES / 'power-outage' / 'libvirt.xml'}", "--host", HOST).returncode == 0
    assert cli("run", "--libvirt-uri", "test:///nonexistent.xml", "--db", url, "--host", HOST).returncode == 6
    renamed = cli("run", "--scenario", FIXTURES / "power-outage", "--db", url, "--host", "compute-9", "--node", HOST)
    assert renamed.returncode == 3 and "renamed" in renamed.stderr

    assert sha(path) == before and files(tmp_path) == names


def test_explain_and_dry_run_of_a_missing_sqlite_file_create_nothing(tmp_path):
    missing = tmp_path / "missing.sqlite"
    for args in (("explain", U("03")), ("run", "--dry-run", "--scenario", FIXTURES / "clean-host"),
                 ("run", "--scenario", FIXTURES / "clean-host"), ("scenario", "load", FIXTURES / "clean-host")):
        done = cli(*args, "--db", f"sqlite:///{missing}")
        assert done.returncode == EXIT_USAGE, args
        assert "compute-recover db upgrade" in done.stderr and done.stderr.count("\n") == 1
    assert files(tmp_path) == []


def test_run_on_a_database_without_compute_recovers_tables_names_the_command_and_creates_none(tmp_path):
    path = tmp_path / "foreign.sqlite"
    sqlite3.connect(path).close()
    before = sha(path)
    done = cli("run", "--scenario", FIXTURES / "clean-host", "--db", f"sqlite:///{path}")
    assert done.returncode == EXIT_USAGE
    assert "no compute-recover tables" in done.stderr and "compute-recover db upgrade --db" in done.stderr
    assert sha(path) == before and files(tmp_path) == ["foreign.sqlite"]


def test_db_upgrade_creates_an_owner_only_file_and_is_idempotent(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    first, second = cli("db", "upgrade", "--db", url), cli("db", "upgrade", "--db", url)
    assert first.returncode == second.returncode == 0
    assert "(created)" in first.stdout and "up to date" in second.stdout
    assert (tmp_path / "new.sqlite").stat().st_mode & 0o777 == 0o600
    assert files(tmp_path) == ["new.sqlite"]


def test_scenario_load_refuses_a_database_with_records_unless_told_to_replace_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    load(url, FIXTURES / "power-outage")
    before = sha(tmp_path / "db.sqlite")
    refused = cli("scenario", "load", FIXTURES / "clean-host", "--db", url)
    assert refused.returncode == EXIT_USAGE and "--replace" in refused.stderr
    assert sha(tmp_path / "db.sqlite") == before
    replaced = cli("scenario", "load", FIXTURES / "clean-host", "--db", url, "--replace")
    assert replaced.returncode == 0, replaced.stderr
    uuids = {r["uuid"] for r in query(tmp_path / "db.sqlite", "SELECT uuid FROM instances")}
    assert uuids == {U(nn) for nn in ("41", "42", "43", "44", "45")}


# --- secrets -------------------------------------------------------------------------------------

SECRET = "Zq7@xK:w9/pL?m"
"""A password with every character URL syntax misreads: it must never be printed, in part or whole."""


def leaked(text: str) -> list[str]:
    return [SECRET[i:i + 4] for i in range(len(SECRET) - 3) if SECRET[i:i + 4] in text]


@pytest.fixture
def secret_role(pg_url: str, pg_database_url: str) -> dict:
    server = make_url(pg_url)
    with psycopg.connect(host=server.host, port=server.port, user=server.username, password=server.password,
                         dbname=server.database, autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS nova_secret")
        admin.execute(psycopg.sql.SQL("CREATE ROLE nova_secret LOGIN SUPERUSER PASSWORD {}").format(
            psycopg.sql.Literal(SECRET)))
    return {"host": server.host, "port": server.port, "db": make_url(pg_database_url).database}


def password_forms(role: dict, password: str) -> list[str]:
    host, port, db = role["host"], role["port"], role["db"]
    quoted = password.replace("%", "%25").replace("@", "%40").replace(":", "%3A").replace("/", "%2F").replace(
        "?", "%3F")
    return [
        f"postgresql+psycopg://nova_secret:{quoted}@{host}:{port}/{db}",
        f"postgresql+psycopg://nova_secret:{password}@{host}:{port}/{db}",  # unescaped @ : / ?
        f"postgresql+psycopg://nova_secret@{host}:{port}/{db}?password={quoted}",
        f"host={host} port={port} dbname={db} user=nova_secret password='{password}'",
    ]


def test_no_password_form_is_ever_printed(tmp_path, secret_role):
    url = f"postgresql+psycopg://nova_secret:{SECRET.replace('@', '%40').replace(':', '%3A').replace('/', '%2F').replace('?', '%3F')}@{secret_role['host']}:{secret_role['port']}/{secret_role['db']}"  # noqa: E501
    load(url, FIXTURES / "power-outage")
    outputs = []
    for form in password_forms(secret_role, SECRET) + password_forms(secret_role, SECRET[::-1]):  # right, wrong
        for args in (("run", "--scenario", FIXTURES / "power-outage", "--json"),
                     ("run", "--scenario", FIXTURES / "power-outage", "--dry-run"),
                     ("explain", U("03")), ("db", "upgrade"), ("scenario", "load", FIXTURES / "clean-host")):
            done = cli(*args, "--db", form, "--db-timeout", "5")
            outputs.append((form, args, done.returncode, done.stdout + done.stderr))
    for _form, args, code, output in outputs:
        assert not leaked(output), (args, code, output)
        assert not leaked(output[::-1]), (args, code, output)
        assert "Traceback" not in output, output
    right = [code for form, args, code, _ in outputs if args[0] == "explain"][:4]
    assert right == [0, 0, 0, 0], [o for f, a, c, o in outputs if a[0] == "explain"]  # every right form connects
    wrong = [code for form, args, code, _ in outputs if args[0] == "explain"][4:]
    assert wrong == [EXIT_USAGE] * 4

    engine = create_engine(url.replace("nova_secret:", "nova_secret:", 1))
    with engine.connect() as conn:
        journal = " ".join(str(v) for row in conn.execute(text("SELECT * FROM recovery_journal")) for v in row)
        runs = " ".join(str(v) for row in conn.execute(text("SELECT * FROM recovery_runs")) for v in row)
    engine.dispose()
    assert not leaked(journal + runs)


# --- hostile rows --------------------------------------------------------------------------------


def test_absurd_sizes_are_refused_before_any_action_and_the_rest_recover(tmp_path):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "power-outage")
    rows(url, f"UPDATE instances SET memory_mb = {2**62} WHERE uuid IN ('{U('01')}', '{U('03')}')")

    done = cli("run", "--scenario", FIXTURES / "power-outage", "--db", url, "--resume-guests-state-on-host-boot",
               "--json")

    assert done.returncode == EXIT_FAILED, done.stderr
    report = json.loads(done.stdout)
    bad = {i["uuid"]: i for i in report["instances"] if i["outcome"] == "failed"}
    assert set(bad) == {U("01"), U("03")}
    assert all("memory_mb" in i["error"] and "Integer range" in i["error"] and i["actions"] == [] for i in bad.values())
    assert report["totals"]["ok"] == 21
    [node] = query(path, "SELECT * FROM compute_nodes")
    assert 0 < node["memory_mb_used"] < 2**31  # the absurd sizes were not summed
    [run] = query(path, "SELECT * FROM recovery_runs")
    assert run["status"] == "finished" and run["exit_code"] == EXIT_FAILED


def test_an_upper_case_uuid_in_the_database_is_its_domains_record(tmp_path):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "clean-host")
    [shut_off] = [row["uuid"] for row in rows(url, "SELECT uuid FROM instances WHERE uuid = :uuid", uuid=U("43"))]
    # An interrupted power-on, so that its recovery has a change to write (a row whose recovery changes nothing
    # in it is not written: no updated_at without a change).
    rows(url, "UPDATE instances SET uuid = upper(uuid), task_state = 'powering-on' WHERE uuid = :uuid", uuid=shut_off)

    done = cli("run", "--scenario", FIXTURES / "clean-host", "--db", url, "--resume-guests-state-on-host-boot",
               "--json")

    assert done.returncode == EXIT_OK, done.stderr
    report = json.loads(done.stdout)
    assert not [d for d in report["domains"] if d["uuid"].lower() == shut_off]  # not an "unknown domain"
    [item] = [i for i in report["instances"] if i["uuid"] == shut_off]
    assert item["outcome"] == "ok"
    [row] = query(path, f"SELECT * FROM instances WHERE uuid = '{shut_off.upper()}'")
    assert row["updated_at"] is not None  # its record was claimed and written, by its stored uuid
    assert (row["vm_state"], row["task_state"], row["power_state"]) == ("active", None, 1)


def test_a_claim_lost_to_a_concurrent_writer_is_decided_again_from_that_row_alone(tmp_path):
    """A writer changes one row between the run's read and its claim: the run decides that one
    instance again from its own row and domain, and acts on the new decision only."""
    from recovery.adapters.hypervisor import Hypervisor
    from recovery.adapters.network import NetworkHook
    from recovery.core.facts import Options
    from recovery.core.machine import shared_machine
    from recovery.core.settings import RunSettings
    from recovery.run.boot import HostBoot

    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    load(url, FIXTURES / "power-outage")
    db = open_database(url)
    deleted_meanwhile = threading.Event()

    class RacingNetwork(NetworkHook):
        """Plays the concurrent writer: nova-api starts deleting 06 while the run plugs an earlier guest."""

        def plug_vifs(self, uuid: str) -> None:
            if not deleted_meanwhile.is_set():
                con = sqlite3.connect(path, timeout=30)
                con.execute("UPDATE instances SET task_state = 'deleting', updated_at = '2030-01-01 00:00:00.000000' "
                            "WHERE uuid = ?", (U("06"),))
                con.commit()
                con.close()
                deleted_meanwhile.set()

    settings = RunSettings(host=HOST, node=HOST, options=Options(True), concurrency=1)
    hv = Hypervisor.open(f"test://{FIXTURES / 'power-outage' / 'libvirt.xml'}")
    with db.count_statements() as statements:
        result = HostBoot(shared_machine(), hv, db, settings, RacingNetwork()).run()
    db.close()

    [item] = [r for r in result.instances if r.uuid == U("06")]
    assert [a.action.name for a in item.actions] == ["restart_deletion"]  # decided again: deleting, not resume
    assert item.decision.start_state == "active/deleting/shutdown"
    [row] = query(path, f"SELECT * FROM instances WHERE uuid = '{U('06')}'")
    assert row["deleted"] != 0
    assert statements.count < 400  # no reload of the whole host per lost claim
