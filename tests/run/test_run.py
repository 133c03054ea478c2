"""End to end: `compute-recover run` and `explain <uuid>` over the scenarios (docs/operating.md, docs/scenarios.md).

Real libvirt test driver, real SQLite files, no mocks. What is asserted is what an operator
sees: database rows, domain states, the report, exit codes and messages.

The test driver gives every new connection a fresh copy of the scenario's XML, so domain
states after a run are read in-process through the very Hypervisor the run used
(`boot_run`); the CLI (`cli_run`) is used for exit codes, messages and database effects.
"""

import json
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery.adapters.hypervisor import Hypervisor
from recovery.adapters.network import NetworkHook
from recovery.core.facts import Options
from recovery.core.machine import shared_machine
from recovery.core.settings import RunSettings
from recovery.db import open_database
from recovery.db.scenarios import read_db_json, seed_if_empty
from recovery.present.report import run_json
from recovery.run.boot import HostBoot, Refused
from tests.support.commands import python_command
from tests.support.databases import migrated_database
from tests.support.in_process import cli_run, invoke, load_scenario
from tests.support.paths import CONSOLE_SCRIPT, FIXTURES, HOST, U, uri
from tests.support.rows import query, rows

SHUTDOWN, RUNNING, NOSTATE, SUSPENDED = 4, 1, 0, 7


# --- database views, read directly with sqlite3 ------------------------------------------------


def instances(path: Path) -> dict[str, dict]:
    return {row["uuid"]: row for row in query(path, "SELECT * FROM instances")}


def migrations(path: Path) -> dict[str, dict]:
    return {row["instance_uuid"]: row for row in query(path, "SELECT * FROM migrations")}


def dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, for before/after comparisons."""
    tables = [r["name"] for r in query(path, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
    finally:
        con.close()


def instances_without_timestamps(path: Path) -> dict[str, dict]:
    return {u: {k: v for k, v in row.items() if k != "updated_at"} for u, row in instances(path).items()}


def seeded(tmp_path: Path, scenario: str, name: str = "db.sqlite") -> tuple[Path, str]:
    """A database file seeded from the scenario, as `run --scenario` would seed it."""
    path = tmp_path / name
    url = f"sqlite:///{path}"
    db = migrated_database(url)
    try:
        assert seed_if_empty(db, read_db_json(FIXTURES / scenario / "db.json"))
    finally:
        db.close()
    return path, url


# --- running -----------------------------------------------------------------------------------


@dataclass
class Boot:
    doc: dict
    exit_code: int
    hv: Hypervisor
    path: Path
    url: str

    def item(self, nn: str) -> dict:
        return next(i for i in self.doc["instances"] if i["uuid"] == U(nn))

    def domains(self) -> dict[str, str]:
        """Domain uuid → power state label, read now over the run's own connection."""
        return {d.uuid: d.power_state.label for d in self.hv.domains()}

    def again(self, **settings) -> "Boot":
        """Another run over the same libvirt connection and database."""
        return boot_run(None, None, hv=self.hv, path=self.path, url=self.url, **settings)


def boot_run(tmp_path: Path | None, scenario: str | None, *, hv: Hypervisor | None = None,
             path: Path | None = None, url: str | None = None, resume: bool = False, destroy: bool = True,
             dry_run: bool = False, network: NetworkHook | None = None) -> Boot:
    """The routine in-process, as `run --scenario` wires it, keeping the Hypervisor to look at."""
    if path is None:
        path, url = seeded(tmp_path, scenario)
    hv = hv or Hypervisor.open(uri(scenario), read_only=dry_run)
    db = open_database(url, read_only=dry_run)
    settings = RunSettings(host=HOST, node=HOST, options=Options(resume, destroy), dry_run=dry_run, stop_timeout=1)
    try:
        result = HostBoot(shared_machine(), hv, db, settings, network).run()
    finally:
        db.close()
    return Boot(run_json(result), result.exit_code, hv, path, url)


def actions(item: dict) -> list[tuple]:
    """(name, parameters..., outcome) of each reported action."""
    return [(a["name"], *(v for k, v in a.items() if k not in ("name", "outcome", "error")), a["outcome"])
            for a in item["actions"]]


# --- 1. power-outage ---------------------------------------------------------------------------


EXPECTED_POWER_OUTAGE = {
    # nn: (vm_state, task_state, db power_state, deleted?, actions)
    "01": ("active", None, RUNNING, False, [("plug_vifs", "ok"), ("resume_guest", "ok")]),
    "02": ("active", None, RUNNING, False, [("reboot", "soft", "ok")]),
    "03": ("active", None, RUNNING, False, [("reboot", "hard", "ok")]),
    "04": ("active", None, RUNNING, False, [("reboot", "hard", "ok")]),
    "05": ("active", None, RUNNING, False, [("reboot", "hard", "ok")]),
    "06": ("active", None, RUNNING, False, [("plug_vifs", "ok"), ("resume_guest", "ok")]),
    "07": ("active", None, RUNNING, False, [("plug_vifs", "ok")]),
    "08": ("error", None, NOSTATE, False, []),
    "09": ("error", None, RUNNING, False, []),
    "10": ("deleted", None, NOSTATE, True, [("restart_deletion", "ok")]),
    "11": ("deleted", None, SHUTDOWN, True, [("complete_deletion", "ok")]),
    "12": ("stopped", None, SHUTDOWN, False, [("stop", "ok")]),
    "13": ("active", None, RUNNING, False, [("start", "ok")]),
    "14": ("active", None, RUNNING, False, [("unpause", "ok")]),
    "15": ("active", None, RUNNING, False, [("plug_vifs", "ok")]),
    "17": ("active", None, RUNNING, False, [("plug_vifs", "ok"), ("abort_live_migration", "ok")]),
    "20": ("error", None, SHUTDOWN, False, []),
    "21": ("soft-delete", None, SHUTDOWN, False, []),
    "22": ("stopped", None, SHUTDOWN, False, [("plug_vifs", "ok")]),
    "23": ("suspended", None, SUSPENDED, False, [("plug_vifs", "ok")]),
}


def test_power_outage_records_report_and_exit(tmp_path):
    path = tmp_path / "db.sqlite"
    out = cli_run(path, "power-outage", "--resume-guests-state-on-host-boot")
    assert out.exit_code == 0, out.stderr
    doc, rows = out.doc, instances(path)

    for nn, (vm, task, power, deleted, acts) in EXPECTED_POWER_OUTAGE.items():
        row, item = rows[U(nn)], out.item(nn)
        assert (row["vm_state"], row["task_state"], row["power_state"], row["deleted"] != 0) == (
            vm, task, power, deleted), nn
        assert actions(item) == acts, nn
        assert item["outcome"] == "ok" and item["error"] is None, nn
    assert rows[U("10")]["deleted_at"] is not None and rows[U("11")]["deleted_at"] is not None

    # 03: the soft reboot that left the guest off is retried hard, via reboot_pending_hard.
    assert out.item("03")["path"][0]["to"] == "active/reboot_pending_hard/shutdown"
    assert out.item("02")["path"][0]["to"] == "active/reboot_pending/running"
    # 16: revert to the original copy, powered on; task cleared.
    assert ("revert_resize", True, "ok") in actions(out.item("16"))
    assert rows[U("16")]["vm_state"] == "active" and rows[U("16")]["task_state"] is None
    assert migrations(path)[U("16")]["status"] == "migrating"  # a resize record is not touched
    # 17: live migration aborted: its record → error, task cleared.
    assert migrations(path)[U("17")]["status"] == "error"
    # 18: evacuated to compute-2: evacuation completed; its record (compute-2's) is not rewritten.
    assert migrations(path)[U("18")]["status"] == "completed"
    assert actions(out.item("18")) == [("destroy_evacuated", True, "ok"), ("complete_migration", "ok")]
    assert rows[U("18")]["host"] == "compute-2" and rows[U("18")]["updated_at"] is None
    # 19 (owned by compute-3), 20, 21 and the deleted 24 keep their records as seeded.
    for nn in ("19", "20", "21", "24"):
        assert rows[U(nn)]["updated_at"] is None, nn
    assert U("19") not in {i["uuid"] for i in doc["instances"]}

    reported = {d["uuid"]: d for d in doc["domains"]}
    assert reported[U("19")]["action"] == "none"
    assert "owned by host compute-3" in reported[U("19")]["reason"]
    assert reported[U("ff")]["action"] == "none" and "unknown domain" in reported[U("ff")]["reason"]
    assert reported[U("24")]["action"] == "none" and "deleted" in reported[U("24")]["reason"]
    assert reported[U("18")]["action"] == "destroy_evacuated, complete_migration"
    assert doc["totals"] == {"instances": 23, "ok": 23, "failed": 0, "skipped": 0, "conflict": 0,
                             "not-started": 0, "interrupted": 0, "changed": 0, "unplanned": 0, "not-ready": 0,
                             "blocked": 0, "degraded": 0, "domains_reported": 4}
    assert doc["host"] == HOST and doc["dry_run"] is False and isinstance(doc["run_id"], int)

    run = query(path, "SELECT * FROM recovery_runs")
    assert len(run) == 1 and run[0]["exit_code"] == 0 and run[0]["finished_at"] is not None
    assert json.loads(run[0]["totals"])["ok"] == 23
    journal = {r["instance_uuid"]: r for r in query(path, "SELECT * FROM recovery_journal")}
    assert len(journal) == 23
    assert json.loads(journal[U("03")]["actions"]) == [{"name": "reboot", "type": "hard", "outcome": "ok",
                                                        "error": None}]
    assert journal[U("12")]["final_vm_state"] == "stopped" and journal[U("12")]["final_power_state"] == SHUTDOWN


def test_power_outage_domains(tmp_path):
    before = {d.uuid: d.power_state.label for d in Hypervisor.open(uri("power-outage")).domains()}
    boot = boot_run(tmp_path, "power-outage", resume=True)
    assert boot.exit_code == 0
    after = boot.domains()

    for nn in ("01", "02", "03", "04", "05", "06", "13", "14", "16"):
        assert after[U(nn)] == "running", nn
    assert after[U("12")] == "shutdown"
    assert U("10") not in after and U("18") not in after  # destroyed and undefined
    # Untouched: errors and soft-deleted, another host's, the deleted record's, the unknown one.
    for nn in ("09", "19", "20", "21", "22", "23", "24", "ff"):
        assert after[U(nn)] == before[U(nn)], nn
    assert before[U("19")] == before[U("24")] == before[U("ff")] == "running"
    assert set(after) == set(before) - {U("10"), U("18")}
    # What the report says the power state is, is what libvirt says.
    for item in boot.doc["instances"]:
        assert item["power_state"] == after.get(item["uuid"], "nostate"), item["uuid"]


def test_power_outage_without_resume_leaves_guests_off(tmp_path):
    boot = boot_run(tmp_path, "power-outage", resume=False)
    assert boot.exit_code == 0
    assert actions(boot.item("01")) == [("plug_vifs", "ok")]
    assert actions(boot.item("06")) == [("plug_vifs", "ok")]
    assert boot.domains()[U("01")] == "shutdown" and boot.item("01")["power_state"] == "shutdown"
    row = instances(boot.path)[U("01")]
    assert (row["vm_state"], row["task_state"], row["power_state"]) == ("active", None, RUNNING)
    # The reboots still happen: they were asked for, not resumed.
    assert boot.domains()[U("03")] == "running"


# --- 2. return-after-evacuation ----------------------------------------------------------------


def test_return_after_evacuation_destroys_stale_copies(tmp_path):
    seed_rows = instances(seeded(tmp_path, "return-after-evacuation", "reference.sqlite")[0])
    boot = boot_run(tmp_path, "return-after-evacuation", resume=True)
    assert boot.exit_code == 0
    domains, rows, migs = boot.domains(), instances(boot.path), migrations(boot.path)
    for nn in ("31", "32", "33", "34"):
        assert U(nn) not in domains, nn
        assert migs[U(nn)]["status"] == "completed", nn
        assert actions(boot.item(nn)) == [("destroy_evacuated", True, "ok"), ("complete_migration", "ok")], nn
        assert rows[U(nn)] == seed_rows[U(nn)], nn  # compute-2's records are not ours to write
    assert rows[U("34")]["deleted"] != 0
    for nn in ("35", "36"):
        assert domains[U(nn)] == "running", nn
        assert actions(boot.item(nn)) == [("plug_vifs", "ok"), ("resume_guest", "ok")], nn
        assert (rows[U(nn)]["vm_state"], rows[U(nn)]["task_state"], rows[U(nn)]["power_state"]) == (
            "active", None, RUNNING)
    assert not [w for w in boot.doc["warnings"] if "evacuat" in w]


def test_return_after_evacuation_no_destroy_leaves_domains_and_warns(tmp_path):
    before = {d.uuid: d.power_state.label for d in Hypervisor.open(uri("return-after-evacuation")).domains()}
    seed_migrations = migrations(seeded(tmp_path, "return-after-evacuation", "reference.sqlite")[0])
    boot = boot_run(tmp_path, "return-after-evacuation", resume=True, destroy=False)
    assert boot.exit_code == 0
    domains = boot.domains()
    for nn in ("31", "32", "33", "34"):
        assert domains[U(nn)] == before[U(nn)] == "running", nn
        assert boot.item(nn)["actions"] == [], nn
        assert any(U(nn) in w and "no-destroy-after-evacuate" in w for w in boot.doc["warnings"]), nn
    assert migrations(boot.path) == seed_migrations
    assert domains[U("35")] == domains[U("36")] == "running"


def test_no_destroy_after_evacuate_warning_on_the_command_line(tmp_path):
    load_scenario(tmp_path / "x", "return-after-evacuation")
    out = invoke("run", "--scenario", FIXTURES / "return-after-evacuation", "--db", f"sqlite:///{tmp_path / 'x'}",
                 "--no-destroy-after-evacuate")
    assert out.exit_code == 0
    assert out.stdout.count("--no-destroy-after-evacuate") == 4


# --- 3. clean-host -----------------------------------------------------------------------------


@pytest.mark.parametrize("resume", [False, True])
def test_clean_host_only_plugs_and_resumes(tmp_path, resume):
    seed_rows = instances_without_timestamps(seeded(tmp_path, "clean-host", "reference.sqlite")[0])
    boot = boot_run(tmp_path, "clean-host", resume=resume)
    assert boot.exit_code == 0
    rows, domains = instances_without_timestamps(boot.path), boot.domains()
    for nn in ("41", "42", "43", "44"):
        expected = [("plug_vifs", "ok"), ("resume_guest", "ok")] if resume else [("plug_vifs", "ok")]
        assert actions(boot.item(nn)) == expected, nn
        assert domains[U(nn)] == ("running" if resume else "shutdown"), nn
        assert rows[U(nn)] == seed_rows[U(nn)], nn  # active/none/running: resuming makes it true again
    assert actions(boot.item("45")) == [("plug_vifs", "ok")] and domains[U("45")] == "shutdown"
    assert rows[U("45")] == seed_rows[U("45")]
    assert boot.doc["domains"] == []


# --- 4. identity refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("scenario, words", [
    ("host-renamed", ["compute-old", "renamed"]),
    ("new-host-with-guests", ["no service record", "wrong database"]),
])
def test_identity_refusal_changes_nothing(tmp_path, scenario, words):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    seed_if_empty(migrated_database(url), read_db_json(FIXTURES / scenario / "db.json"))
    before = dump(path)

    out = cli_run(path, scenario, "--resume-guests-state-on-host-boot")
    assert out.exit_code == 3
    message = out.stderr.strip()
    assert json.loads(out.stdout) == {"error": message.removeprefix("compute-recover: "), "exit_code": 3}
    assert "\n" not in message and message.startswith("compute-recover: refused:")
    for word in words:
        assert word in message
    assert dump(path) == before
    assert not query(path, "SELECT * FROM recovery_runs")
    if scenario == "new-host-with-guests":
        assert not query(path, "SELECT * FROM services") and not query(path, "SELECT * FROM compute_nodes")

    # In-process over one connection: the domains are exactly as before.
    hv = Hypervisor.open(uri(scenario))
    domains = hv.domains()
    with pytest.raises(Refused):
        boot_run(None, scenario, hv=hv, path=path, url=url, resume=True)
    assert hv.domains() == domains
    assert dump(path) == before


@pytest.mark.parametrize("guests_on", ["compute-1", "compute-old"])
def test_the_rename_refusals_advice_works_when_followed(tmp_path, guests_on):
    """Where the guests are recorded decides the fix: the old name given back (as Nova advises), or
    the node and service records renamed to the new one by the statements the refusal prints."""
    path = tmp_path / "db.sqlite"
    load_scenario(path, "host-renamed")
    with sqlite3.connect(path) as con:
        con.execute("UPDATE instances SET host = ?", (guests_on,))
    refused = cli_run(path, "host-renamed")
    assert refused.exit_code == 3 and "renamed" in refused.stderr
    if guests_on == "compute-old":
        assert "run with --host compute-old" in refused.stderr
        followed = cli_run(path, "host-renamed", "--host", "compute-old")
    else:
        statements = refused.stderr.split("`")[1]
        with sqlite3.connect(path) as con:
            con.executescript(statements)
        followed = cli_run(path, "host-renamed")
    assert followed.exit_code == 0, followed.stderr
    assert {item["uuid"] for item in json.loads(followed.stdout)["instances"]} == {U("51"), U("52")}


# --- 5. dry run --------------------------------------------------------------------------------


def test_dry_run_writes_nothing(tmp_path):
    path, url = seeded(tmp_path, "power-outage")
    before = dump(path)
    applied = tmp_path / "applied"
    out = cli_run(path, "power-outage", "--dry-run", "--resume-guests-state-on-host-boot",
                  "--network-apply-command", f"touch {applied}", "--plug-vifs-command", f"touch {applied}")
    assert out.exit_code == 0, out.stderr
    doc = out.doc
    assert doc["dry_run"] is True and doc["run_id"] is None
    assert {i["outcome"] for i in doc["instances"]} == {"skipped"}
    assert all(a["outcome"] == "skipped" for i in doc["instances"] for a in i["actions"])
    assert actions(out.item("03")) == [("reboot", "hard", "skipped")]
    assert dump(path) == before
    assert not applied.exists()

    hv = Hypervisor.open(uri("power-outage"), read_only=True)
    domains = hv.domains()
    boot = boot_run(None, "power-outage", hv=hv, path=path, url=url, resume=True, dry_run=True)
    assert boot.exit_code == 0 and hv.domains() == domains
    assert dump(path) == before


# --- 6. bad rows -------------------------------------------------------------------------------


def test_bad_row_fails_alone(tmp_path):
    path = tmp_path / "db.sqlite"
    out = cli_run(path, "bad-rows", "--resume-guests-state-on-host-boot")
    assert out.exit_code == 1
    bad = out.item("74")
    assert bad["outcome"] == "failed" and bad["actions"] == []
    assert "'actve'" in bad["error"] and "vm_state" in bad["error"]
    rows = instances(path)
    assert rows[U("74")]["vm_state"] == "actve" and rows[U("74")]["updated_at"] is None
    malformed = next(i for i in out.doc["instances"] if i["uuid"].endswith("zz"))
    assert malformed["outcome"] == "failed" and "uuid '6c1a0b52-0000-4000-8000-0000000000zz' is malformed" in (
        malformed["error"])
    for nn in ("71", "72", "73"):
        assert out.item(nn)["outcome"] == "ok"
        assert actions(out.item(nn)) == [("plug_vifs", "ok"), ("resume_guest", "ok")]
        assert (rows[U(nn)]["vm_state"], rows[U(nn)]["task_state"], rows[U(nn)]["power_state"]) == (
            "active", None, RUNNING)
    assert out.doc["totals"]["failed"] == 2 and out.doc["totals"]["ok"] == 3

    (tmp_path / "in-process").mkdir()
    boot = boot_run(tmp_path / "in-process", "bad-rows", resume=True)
    assert boot.exit_code == 1
    assert boot.domains()[U("74")] == "shutdown" and boot.domains()[U("71")] == "running"

    explained = invoke("explain", U("74"), "--db", f"sqlite:///{path}")
    assert explained.exit_code == 0
    assert "not decided: bad database row: unknown vm_state 'actve'" in explained.stdout


# --- 7. a second run changes nothing -----------------------------------------------------------


@pytest.mark.parametrize("scenario", ["power-outage", "return-after-evacuation", "clean-host"])
def test_second_run_in_same_connection_changes_nothing(tmp_path, scenario):
    first = boot_run(tmp_path, scenario, resume=True)
    assert first.exit_code == 0
    rows, domains = instances_without_timestamps(first.path), first.domains()
    migs = migrations(first.path)
    node = [{**n, "updated_at": None} for n in query(first.path, "SELECT * FROM compute_nodes")]

    second = first.again(resume=True)
    assert second.exit_code == 0
    assert instances_without_timestamps(second.path) == rows
    assert second.domains() == domains
    assert migrations(second.path) == migs
    assert [{**n, "updated_at": None} for n in query(second.path, "SELECT * FROM compute_nodes")] == node
    names = {a["name"] for i in second.doc["instances"] for a in i["actions"]}
    assert names <= {"plug_vifs"}
    assert {i["outcome"] for i in second.doc["instances"]} == {"ok"}
    assert all(step["from"] == step["to"] for i in second.doc["instances"] for step in i["path"])
    assert len(query(second.path, "SELECT * FROM recovery_runs")) == 2


# --- 8. compare-and-swap, VIF plug failures, deferred network apply ----------------------------


def test_concurrent_change_is_not_overwritten(tmp_path):
    path = tmp_path / "db.sqlite"
    # While 41's VIFs are plugged, someone else starts deleting it.
    plug = python_command(tmp_path, "plug.py", f"""
if sys.argv[-1] == {U("41")!r}:
    con = sqlite3.connect({str(path)!r}, timeout=30)
    con.execute("UPDATE instances SET task_state = 'deleting' WHERE uuid = ?", (sys.argv[-1],))
    con.commit()
""")
    out = cli_run(path, "clean-host", "--resume-guests-state-on-host-boot", "--plug-vifs-command", plug)
    assert out.exit_code == 1
    item = out.item("41")
    assert item["outcome"] == "conflict"
    assert "not overwritten" in item["error"]
    row = instances(path)[U("41")]
    assert (row["vm_state"], row["task_state"]) == ("active", "deleting")
    for nn in ("42", "43", "44", "45"):
        assert out.item(nn)["outcome"] == "ok", nn
    assert out.doc["totals"]["conflict"] == 1
    journal = query(path, "SELECT outcome FROM recovery_journal WHERE instance_uuid = ?", U("41"))
    assert journal == [{"outcome": "conflict"}]


def test_a_lost_claim_is_decided_again_once_from_fresh_facts(tmp_path):
    path = tmp_path / "db.sqlite"
    # While 01's VIFs are plugged (one instance at a time, in id order), someone turns 03's soft reboot into a
    # hard one: the claim of 03 (decided from active/rebooting) is lost before any of its actions ran.
    plug = python_command(tmp_path, "plug.py", f"""
if sys.argv[-1] == {U("01")!r}:
    con = sqlite3.connect({str(path)!r}, timeout=30)
    con.execute("UPDATE instances SET task_state = 'rebooting_hard' WHERE uuid = ?", ({U("03")!r},))
    con.commit()
""")
    out = cli_run(path, "power-outage", "--concurrency", "1", "--plug-vifs-command", plug)
    assert out.exit_code == 0, out.stderr
    item = out.item("03")
    assert item["outcome"] == "ok"
    assert item["state"] == "active/rebooting_hard/shutdown"  # the fresh facts, not the stale decision
    assert item["path"] == [{"rule": "retry_reboot", "from": "active/rebooting_hard/shutdown",
                             "to": "active/rebooting_hard/shutdown"}]
    assert actions(item) == [("reboot", "hard", "ok")]
    row = instances(path)[U("03")]
    assert (row["vm_state"], row["task_state"], row["power_state"]) == ("active", None, RUNNING)


def test_plug_failure_errors_that_instance_and_network_apply_runs_once(tmp_path):
    path, log = tmp_path / "db.sqlite", tmp_path / "network.log"
    plug = python_command(tmp_path, "plug.py", f"""
open({str(log)!r}, "a").write("plug " + sys.argv[-1] + "\\n")
if sys.argv[-1] == {U("42")!r}:
    sys.exit("port for " + sys.argv[-1] + " not found")
""")
    apply = python_command(tmp_path, "apply.py", f"open({str(log)!r}, 'a').write('apply\\n')\n")
    out = cli_run(path, "clean-host", "--resume-guests-state-on-host-boot", "--plug-vifs-command", plug,
                  "--network-apply-command", apply)
    assert out.exit_code == 1
    item = out.item("42")
    assert item["outcome"] == "failed"
    assert actions(item) == [("plug_vifs", "failed"), ("resume_guest", "skipped")]
    assert "plugging VIFs failed" in item["error"] and "not found" in item["error"]
    assert item["power_state"] == "shutdown"  # not resumed
    row = instances(path)[U("42")]
    assert (row["vm_state"], row["task_state"]) == ("error", None)
    for nn in ("41", "43", "44"):
        assert out.item(nn)["outcome"] == "ok" and out.item(nn)["power_state"] == "running", nn
        assert instances(path)[U(nn)]["vm_state"] == "active", nn

    lines = log.read_text().splitlines()
    assert lines.count("apply") == 1 and lines[-1] == "apply"
    assert sorted(lines[:-1]) == sorted(f"plug {U(nn)}" for nn in ("41", "42", "43", "44", "45"))


@pytest.mark.parametrize("concurrency", [1, 2])
def test_instances_are_recovered_concurrently_up_to_the_bound(tmp_path, concurrency):
    """Each plug holds a slot for a moment; the log shows how many instances were in flight at once."""
    log = tmp_path / "plugs.log"
    plug = python_command(tmp_path, "plug.py", (
        "import fcntl, time\n"
        f"def note(word):\n    with open({str(log)!r}, 'a') as f:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX); f.write(word + '\\n')\n"
        "note('start'); time.sleep(0.3); note('end')\n"))
    out = cli_run(tmp_path / "db.sqlite", "clean-host", "--concurrency", str(concurrency), "--plug-vifs-command", plug)
    assert out.exit_code == 0, out.stderr
    in_flight, most = 0, 0
    for word in log.read_text().split():
        in_flight += 1 if word == "start" else -1
        most = max(most, in_flight)
    assert most == concurrency  # five instances, never more than the bound at once, and the bound is used


def test_network_apply_runs_once_even_when_an_instance_fails(tmp_path):
    log = tmp_path / "network.log"
    apply = python_command(tmp_path, "apply.py", f"open({str(log)!r}, 'a').write('apply\\n')\n")
    out = cli_run(tmp_path / "db.sqlite", "bad-rows", "--network-apply-command", apply)
    assert out.exit_code == 1
    assert log.read_text() == "apply\n"


def test_a_failing_network_apply_is_reported_and_fails_the_run_after_everything_else(tmp_path):
    out = cli_run(tmp_path / "db.sqlite", "clean-host", "--resume-guests-state-on-host-boot",
                  "--network-apply-command", "sh -c 'echo iptables-restore: line 3 failed >&2; exit 4'")
    assert out.exit_code == 1
    assert out.doc["network_error"] == "network apply failed (exit 4): iptables-restore: line 3 failed"
    assert {i["outcome"] for i in out.doc["instances"]} == {"ok"}
    assert query(tmp_path / "db.sqlite", "SELECT report_count FROM services")[0]["report_count"] > 0


# --- 9. explain --------------------------------------------------------------------------------


def test_explain_after_two_runs(tmp_path):
    path = tmp_path / "db.sqlite"
    db = f"sqlite:///{path}"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0
    assert cli_run(path, "power-outage").exit_code == 0  # a new process: libvirt's original states again

    text = invoke("explain", U("03"), "--db", db)
    assert text.exit_code == 0, text.stderr
    out = text.stdout
    assert out.index("== newest run 2") < out.index("== earlier run 1")
    newest, earlier = out.split("== earlier run 1")
    assert "start state: active/none/shutdown" in newest and "plug_vifs: ok" in newest
    assert "start state: active/rebooting/shutdown" in earlier
    assert 'task_state = "rebooting"' in earlier and 'db_power_state = "running"' in earlier
    assert "[no   ] evacuated_away" in earlier and "evacuation_status is null" in earlier
    assert "[MATCH] retry_reboot" in earlier and "power_state is shutdown" in earlier
    assert "active/rebooting/shutdown --retry_reboot--> active/reboot_pending_hard/shutdown" in earlier
    assert 'reboot(type="hard"): ok' in earlier
    assert "outcome: ok" in earlier and "record after the run: active/none/running" in earlier
    assert "would decide now" not in out

    as_json = invoke("explain", U("03"), "--db", db, "--json")
    assert as_json.exit_code == 0
    doc = json.loads(as_json.stdout)
    assert doc["uuid"] == U("03") and doc["live"] is None
    assert [r["run_id"] for r in doc["runs"]] == [2, 1]
    first = doc["runs"][1]
    assert first["start_state"] == "active/rebooting/shutdown" and first["outcome"] == "ok"
    assert first["actions"] == [{"name": "reboot", "type": "hard", "outcome": "ok", "error": None}]
    assert first["path"][0]["rule"] == "retry_reboot"
    assert first["options"]["resume_guests_state_on_host_boot"] is True
    assert doc["runs"][0]["options"]["resume_guests_state_on_host_boot"] is False
    matched = [c["rule"] for c in first["considered"] if c["matched"]]
    assert matched == ["retry_reboot"]
    assert all(c["why"] for c in first["considered"])


def test_explain_live_and_unknown_uuid(tmp_path):
    path = tmp_path / "db.sqlite"
    db = f"sqlite:///{path}"
    assert cli_run(path, "power-outage").exit_code == 0

    live = invoke("explain", U("13"), "--db", db, "--live", "--host", HOST,
                  "--libvirt-uri", uri("power-outage"), "--json")
    assert live.exit_code == 0, live.stderr
    doc = json.loads(live.stdout)
    # The record now says stopped→active/none/running; a fresh connection shows the domain shut off.
    assert doc["live"]["state"] == "active/none/shutdown"
    assert doc["live"]["actions"] == [{"name": "plug_vifs"}]
    assert doc["runs"][0]["actions"][0]["name"] == "start"
    text = invoke("explain", U("13"), "--db", db, "--live", "--host", HOST, "--libvirt-uri", uri("power-outage"))
    assert "== what the machine would decide now (--live)" in text.stdout
    assert "start state: active/none/shutdown" in text.stdout.split("(--live)")[1]

    unknown = "6c1a0b52-0000-4000-8000-00000000dead"
    missing = invoke("explain", unknown, "--db", db)
    assert missing.exit_code == 2
    assert missing.stdout == ""
    assert unknown in missing.stderr and "no instance record and no journal entry" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_explain_an_instance_no_run_has_journaled_yet(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "clean-host", "--dry-run").exit_code == 0  # seeds, journals nothing
    db = f"sqlite:///{path}"

    text = invoke("explain", U("41"), "--db", db)
    assert text.exit_code == 0, text.stderr
    assert text.stdout.splitlines()[:4] == [
        f"instance {U('41')} (guest-41)",
        "host compute-1, node compute-1, no libvirt domain journaled",
        "start order (when a run starts it): tier 0, ready: running",
        "no run has journaled it yet; add --live to decide it now",
    ]
    live = invoke("explain", U("41"), "--db", db, "--live", "--host", HOST, "--libvirt-uri", uri("clean-host"),
                  "--json")
    doc = json.loads(live.stdout)
    assert doc["runs"] == [] and doc["instance"]["host"] == HOST
    assert [a["name"] for a in doc["live"]["actions"]] == ["plug_vifs"]


# --- 10. bad inputs ----------------------------------------------------------------------------


def test_unreachable_libvirt_is_refused(tmp_path):
    load_scenario(tmp_path / "db", "clean-host")
    before = dump(tmp_path / "db")
    out = invoke("run", "--libvirt-uri", "test:///nonexistent.xml", "--db", f"sqlite:///{tmp_path / 'db'}",
                 "--host", HOST)
    assert out.exit_code == 6  # libvirt did not answer: it may come back (issue 19: its own code, not a refusal)
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and "'test:///nonexistent.xml'" in out.stderr
    assert dump(tmp_path / "db") == before


def test_bad_database_url_is_a_config_error_with_password_masked():
    out = invoke("run", "--db", "postgresql+psycopg://user:secret@127.0.0.1:1/x", "--libvirt-uri",
                 uri("clean-host"), "--host", HOST)
    assert out.exit_code == 6  # nothing answers on port 1: the database may come back (issue 19: not a usage error)
    assert "secret" not in out.stdout + out.stderr
    assert "postgresql+psycopg://user:***@127.0.0.1:1/x" in out.stderr
    assert out.stderr.count("\n") == 1


def test_console_script_exit_codes_and_messages(tmp_path):
    """The installed `compute-recover` itself, in separate processes."""
    def run(*args):
        return subprocess.run([str(CONSOLE_SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)

    for command in (("db", "upgrade"), ("scenario", "load", FIXTURES / "power-outage")):
        assert run(*command, "--db", f"sqlite:///{tmp_path / 'a'}").returncode == 0
    done = run("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{tmp_path / 'a'}", "--json",
               "--resume-guests-state-on-host-boot")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["ok"] == 23

    load_scenario(tmp_path / "b", "host-renamed")
    done = run("run", "--scenario", FIXTURES / "host-renamed", "--db", f"sqlite:///{tmp_path / 'b'}")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith("compute-recover: refused:") and "compute-old" in done.stderr

    done = run("run", "--db", "postgresql+psycopg://user:secret@127.0.0.1:1/x", "--libvirt-uri",
               uri("clean-host"), "--host", HOST)
    assert done.returncode == 6 and "secret" not in done.stdout + done.stderr and "***" in done.stderr

    done = run("explain", "no-such-uuid", "--db", f"sqlite:///{tmp_path / 'a'}")
    assert done.returncode == 2 and "no-such-uuid" in done.stderr


def test_human_report(tmp_path):
    load_scenario(tmp_path / "db", "power-outage")
    out = invoke("run", "--scenario", FIXTURES / "power-outage", "--db", f"sqlite:///{tmp_path / 'db'}",
                 "--resume-guests-state-on-host-boot")
    assert out.exit_code == 0
    assert "compute-recover run on compute-1" in out.stdout
    assert U("03") in out.stdout and "reboot(type=\"hard\"): ok" in out.stdout
    assert "owned by host compute-3" in out.stdout
    assert "instances 23, ok 23, failed 0" in out.stdout


# --- 11. compute node and service records ------------------------------------------------------


def test_compute_node_and_service_after_a_run(tmp_path):
    path = tmp_path / "db.sqlite"
    assert cli_run(path, "power-outage", "--resume-guests-state-on-host-boot").exit_code == 0
    capacity = Hypervisor.open(uri("power-outage")).capacity()
    assert (capacity.vcpus, capacity.memory_mb) == (16, 65536)  # the test driver node document

    [node] = query(path, "SELECT * FROM compute_nodes")
    assert (node["host"], node["hypervisor_hostname"]) == (HOST, HOST)
    assert (node["vcpus"], node["memory_mb"], node["local_gb"]) == (
        capacity.vcpus, capacity.memory_mb, capacity.local_gb)
    live = [r for r in instances(path).values()
            if r["host"] == HOST and r["deleted"] == 0 and r["vm_state"] not in ("deleted", "shelved_offloaded")]
    assert U("10") not in {r["uuid"] for r in live} and U("24") not in {r["uuid"] for r in live}
    assert node["vcpus_used"] == sum(r["vcpus"] for r in live) == 44
    assert node["memory_mb_used"] == sum(r["memory_mb"] for r in live)
    assert node["local_gb_used"] == sum(r["root_gb"] for r in live)
    assert node["running_vms"] == len(live)  # Nova's num_instances: tracked instances, whatever their power
    assert node["running_vms"] != 23  # the seeded, stale value

    [service] = query(path, "SELECT * FROM services")
    assert service["report_count"] == 42 and service["updated_at"] is not None


def test_missing_compute_node_is_created(tmp_path):
    path, url = seeded(tmp_path, "clean-host")
    rows(url, "DELETE FROM compute_nodes")
    out = cli_run(path, "clean-host")
    assert out.exit_code == 0, out.stderr
    [node] = query(path, "SELECT * FROM compute_nodes")
    assert (node["host"], node["hypervisor_hostname"], node["vcpus"]) == (HOST, HOST, 16)
    assert node["vcpus_used"] == sum(r["vcpus"] for r in instances(path).values())
    assert node["uuid"]


# --- 12. the compute node is found by its hypervisor hostname ------------------------------------


def test_a_scenario_whose_node_has_a_fully_qualified_name_updates_that_node(tmp_path):
    scenario = tmp_path / "fqdn-node"
    shutil.copytree(FIXTURES / "clean-host", scenario)
    data = json.loads((scenario / "db.json").read_text())
    [node] = data["compute_nodes"]
    node["hypervisor_hostname"] = "compute-1.example.org"
    (scenario / "db.json").write_text(json.dumps(data))
    path = tmp_path / "db.sqlite"
    for command in (("db", "upgrade"), ("scenario", "load", scenario)):
        assert invoke(*command, "--db", f"sqlite:///{path}").exit_code == 0

    result = invoke("run", "--scenario", scenario, "--db", f"sqlite:///{path}", "--json")

    assert result.exit_code == 0, result.stderr
    [updated] = query(path, "SELECT * FROM compute_nodes")
    assert (updated["host"], updated["hypervisor_hostname"]) == (HOST, "compute-1.example.org")
    assert updated["running_vms"] == 5


# --- 13. running_deleted_instance_action ------------------------------------------------------------


@pytest.mark.parametrize(("action", "domain_after", "reported"), [
    ("reap", None, "reap_domain"), ("shutdown", "shutdown", "shutdown_domain"), ("log", "running", "none"),
    ("noop", "running", "none"),
])
def test_a_deleted_records_domain_follows_running_deleted_instance_action(tmp_path, action, domain_after, reported):
    path, url = seeded(tmp_path, "power-outage")
    hv = Hypervisor.open(uri("power-outage"))
    options = Options(running_deleted_instance_action=action)
    db = open_database(url)
    try:
        result = HostBoot(shared_machine(), hv, db, RunSettings(host=HOST, node=HOST, options=options)).run()
    finally:
        db.close()
    domains = {d.uuid: d.power_state.label for d in hv.domains()}
    assert domains.get(U("24")) == domain_after
    assert domains[U("ff")] == "running"  # an unknown domain is never touched, whatever the option
    [report] = [d for d in run_json(result)["domains"] if d["uuid"] == U("24")]
    assert report["action"] == reported
    assert instances(path)[U("24")]["updated_at"] is None  # the deleted record itself is not rewritten
