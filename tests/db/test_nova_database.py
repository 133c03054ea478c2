"""compute-recover against Nova's own cell database (tests/support/nova_cell_schema.py) on SQLite,
PostgreSQL and MariaDB: `plan` reads it without a trace and decides as `decide` does, nova.conf
gives the options (flags win), a real run keeps Nova's conventions and puts its journal in a
database of its own, and a run that would put compute-recover's tables there is refused.

Real databases and libvirt's test driver; the instance facts the decisions are checked against
are read from the Nova tables here with plain SQL, independently of compute-recover's store.
"""

import hashlib
import json
import xml.etree.ElementTree as ElementTree
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from recovery.cli import cli
from recovery.cli.exits import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from tests.support.in_process import load_records
from tests.support.nova_cell_schema import (
    compute_nodes,
    create_nova_schema,
    insert_nova_scenario,
    instances,
    migrations,
    services,
)
from tests.support.nova_outage import add_soft_deleted_twins, power_outage_with_destination_node
from tests.support.paths import FIXTURES, U
from tests.support.processes import notified_agent
from tests.support.rows import rows

POWER_OUTAGE = FIXTURES / "power-outage"
HOST = "compute-1"
EVACUATION_PENDING = ("accepted", "pre-migrating", "done")


def invoke(*args: object, stdin: str | None = None, state_dir: Path | None = None) -> Any:
    env = {"COMPUTE_RECOVER_DB": None, "COMPUTE_RECOVER_STATE_DIR": str(state_dir) if state_dir else None}
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin, env=env)


@pytest.fixture
def nova_url(database_url: str) -> str:
    """A Nova cell database of each kind holding the power outage as Nova wrote it, with soft-deleted
    twins (deleted = id) of its service, compute node, evacuation and system metadata."""
    create_nova_schema(database_url)
    insert_nova_scenario(database_url, power_outage_with_destination_node())
    engine = create_engine(database_url)
    try:
        add_soft_deleted_twins(engine)
    finally:
        engine.dispose()
    return database_url


@pytest.fixture
def journal_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'state' / 'journal.sqlite'}"
    made = invoke("db", "upgrade", "--journal-db", url)
    assert made.exit_code == 0, made.output
    return url


def snapshot(url: str) -> Any:
    """What a read-only command must leave unchanged: an SQLite file's bytes and its directory's
    files; a server database's tables and every row of them."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database)
        return hashlib.sha256(path.read_bytes()).hexdigest(), sorted(p.name for p in path.parent.iterdir())
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return {t: sorted(map(repr, conn.execute(text(f"SELECT * FROM {t}")).all())) for t in tables}
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def domains() -> dict[str, int]:
    """The scenario's libvirt domains: uuid → test-driver run state."""
    ns = {"test": "http://libvirt.org/schemas/domain/test/1.0"}
    tree = ElementTree.parse(POWER_OUTAGE / "libvirt.xml")
    return {d.findtext("uuid"): int(d.findtext("test:runstate", namespaces=ns)) for d in tree.iter("domain")}


LIBVIRT_POWER = {1: "running", 2: "running", 3: "paused", 4: "shutdown", 5: "shutdown", 6: "crashed", 7: "suspended"}


def facts_from_nova_tables(url: str, uuid: str) -> dict[str, Any]:
    """A decide input record for one instance, read straight from Nova's tables (so `nova_cell`: what
    needs the cloud's other services is handed to nova-compute, docs/nova.md)."""
    [row] = rows(url, "SELECT vm_state, task_state, power_state, host, deleted FROM instances WHERE uuid = :u", u=uuid)
    meta = rows(url, "SELECT value FROM instance_system_metadata WHERE instance_uuid = :u AND deleted = 0 "
                "AND \"key\" = 'old_vm_state'".replace('"key"', "`key`" if "mysql" in url else '"key"'), u=uuid)
    evacuations = [m for m in rows(url, "SELECT CAST(migration_type AS CHAR(32)) AS kind, status, dest_compute "
                                   "FROM migrations WHERE instance_uuid = :u AND source_compute = :h AND deleted = 0",
                                   u=uuid, h=HOST)
                   if m["kind"].strip() == "evacuation" and m["status"] in EVACUATION_PENDING]
    state = domains().get(uuid)
    return {
        "uuid": uuid, "vm_state": row["vm_state"], "task_state": row["task_state"],
        "power_state": LIBVIRT_POWER[state] if state is not None else "nostate",
        "db_power_state": row["power_state"] or 0, "host": row["host"],
        "old_vm_state": meta[0]["value"] if meta else None, "domain_present": state is not None,
        "evacuation": {"status": evacuations[0]["status"], "dest_host": evacuations[0]["dest_compute"]}
        if evacuations else None,
        "deleted": row["deleted"] != 0, "nova_cell": True,
    }  # fmt: skip


def decided(records: list[dict[str, Any]], *options: str) -> dict[str, dict[str, Any]]:
    out = invoke("decide", "--host", HOST, *options, stdin="".join(json.dumps(r) + "\n" for r in records))
    assert out.exit_code == 0, out.output
    return {d["uuid"]: d for d in map(json.loads, out.stdout.splitlines())}


def plan(url: str, *options: object) -> Any:
    return invoke("plan", "--scenario", POWER_OUTAGE, "--db", url, "--json", *options)


# --- plan --------------------------------------------------------------------------------------


def test_plan_on_a_nova_database_decides_every_instance_as_decide_does_and_leaves_no_trace(nova_url):
    before = snapshot(nova_url)

    out = plan(nova_url)

    assert out.exit_code == EXIT_OK, out.output
    report = json.loads(out.stdout)
    assert snapshot(nova_url) == before
    assert report["dry_run"] and {i["outcome"] for i in report["instances"]} == {"skipped", "handed-off"}
    for item in report["instances"]:  # a plan says which instances it would hand to nova-compute, and why
        assert (item["outcome"] == "handed-off") == ("; left to nova-compute: " in item["reason"]), item["uuid"]
    assert {i["uuid"] for i in report["instances"] if i["outcome"] == "handed-off"} >= {U("10"), U("11"), U("18")}
    planned = {i["uuid"]: i for i in report["instances"]}
    live_here = {r["uuid"] for r in rows(nova_url, "SELECT uuid FROM instances WHERE host = :h AND deleted = 0",
                                         h=HOST)}
    assert live_here <= set(planned)
    assert set(domains()) <= set(planned) | {d["uuid"] for d in report["domains"]}
    expected = decided([facts_from_nova_tables(nova_url, uuid) for uuid in planned])
    for uuid, item in planned.items():
        decision = expected[uuid]
        assert item["state"] == decision["state"], uuid
        assert [s["rule"] for s in item["path"]] == [s["rule"] for s in decision["path"]], uuid
        assert [{k: v for k, v in a.items() if k not in ("outcome", "error")} for a in item["actions"]] == \
            decision["actions"], uuid
        assert item["reason"] == decision["reason"], uuid
    assert planned[U("16")]["actions"][1] == {"name": "revert_resize", "power_on": True, "outcome": "skipped",
                                              "error": None}  # old_vm_state from system metadata
    # the stale domain destroyed here; the migration left for nova-compute's _destroy_evacuated_instances
    assert [a["name"] for a in planned[U("18")]["actions"]] == ["destroy_evacuated"]


@pytest.mark.parametrize("command", ["plan", "run"])
def test_plan_and_a_real_run_refuse_a_renamed_host_on_a_nova_database_and_change_nothing(
        command, database_url, journal_url):
    document = json.loads((POWER_OUTAGE / "db.json").read_text())
    document["compute_nodes"][0]["host"] = "compute-1-old"
    create_nova_schema(database_url)
    insert_nova_scenario(database_url, document)
    before = snapshot(database_url)

    options = ["--json"] if command == "plan" else ["--journal-db", journal_url]  # plan is read-only: no journal
    out = invoke(command, "--scenario", POWER_OUTAGE, "--db", database_url, *options)

    assert out.exit_code == EXIT_REFUSED
    assert "belongs to host 'compute-1-old'" in out.stderr and "renamed" in out.stderr
    assert snapshot(database_url) == before
    assert rows(journal_url, "SELECT id FROM recovery_runs") == []


# --- nova.conf -----------------------------------------------------------------------------------


def write_conf(path: Path, url: str, resume: str) -> Path:
    path.write_text(f"[DEFAULT]\nhost = {HOST}\nresume_guests_state_on_host_boot = {resume}\n"
                    f"[database]\nconnection = {url}\n")
    return path


RESUMED = [U("01"), U("06"), U("16")]
"""Guests the database records running and libvirt has shut off (after their other recovery steps)."""


def resumed(out: Any) -> list[str]:
    assert out.exit_code == EXIT_OK, out.output
    return [i["uuid"] for i in json.loads(out.stdout)["instances"] if any(a["name"] == "resume_guest"
                                                                          for a in i["actions"])]


def test_nova_conf_gives_the_database_and_resume_guests_state_on_host_boot_and_flags_win(nova_url, tmp_path):
    on = write_conf(tmp_path / "on.conf", nova_url, "true")
    off = write_conf(tmp_path / "off.conf", nova_url, "false")
    conf_only = ("plan", "--scenario", POWER_OUTAGE, "--json")

    assert resumed(invoke(*conf_only, "--nova-conf", on)) == RESUMED
    assert resumed(invoke(*conf_only, "--nova-conf", off)) == []
    assert resumed(invoke(*conf_only, "--nova-conf", on, "--nova-conf", off)) == []  # the later file wins
    assert resumed(invoke(*conf_only, "--nova-conf", on, "--no-resume-guests-state-on-host-boot")) == []
    assert resumed(invoke(*conf_only, "--nova-conf", off, "--resume-guests-state-on-host-boot")) == RESUMED


def test_verbose_names_each_options_source_and_never_the_database_password(nova_url, tmp_path):
    conf = write_conf(tmp_path / "nova.conf", nova_url, "true")

    out = invoke("-v", "plan", "--scenario", POWER_OUTAGE, "--json", "--nova-conf", conf,
                 "--running-deleted-instance-action", "noop")

    assert out.exit_code == EXIT_OK, out.output
    prefix = "compute-recover: INFO recovery.cli.nova_options: "
    lines = [line.removeprefix(prefix) for line in out.stderr.splitlines() if line.startswith(prefix)]
    assert f"option --resume-guests-state-on-host-boot = true (nova.conf {conf})" in lines
    assert "option --running-deleted-instance-action = noop (command line)" in lines
    assert "option --destroy-after-evacuate = true (compute-recover's default)" in lines
    assert any(line.startswith("option --db = ") and f"(nova.conf {conf})" in line for line in lines)
    assert not any("option --" in line for line in invoke("plan", "--scenario", POWER_OUTAGE, "--json",
                                                            "--nova-conf", conf).stderr.splitlines())
    password = make_url(nova_url).password
    if password:
        assert password not in out.output and "***" in out.stderr


def test_running_deleted_instance_action_keeps_compute_recovers_default_unless_nova_conf_sets_it(nova_url, tmp_path):
    """Nova's default would reap the running domain of deleted instance 24; compute-recover's only logs it."""
    unset = write_conf(tmp_path / "unset.conf", nova_url, "false")
    reap = tmp_path / "reap.conf"
    reap.write_text(unset.read_text().replace("[database]", "running_deleted_instance_action = reap\n[database]"))

    def action_of_24(conf: Path) -> list[str]:
        out = invoke("plan", "--scenario", POWER_OUTAGE, "--json", "--nova-conf", conf)
        assert out.exit_code == EXIT_OK, out.output
        return [a["name"] for i in json.loads(out.stdout)["instances"] if i["uuid"] == U("24") for a in i["actions"]]

    assert action_of_24(unset) == []
    assert action_of_24(reap) == ["reap_domain"]


# --- a real run ------------------------------------------------------------------------------------


def test_a_real_run_without_a_journal_database_is_refused_on_a_nova_database(nova_url):
    before = snapshot(nova_url)

    out = invoke("run", "--scenario", POWER_OUTAGE, "--db", nova_url)
    upgrade = invoke("db", "upgrade", "--db", nova_url)

    assert out.exit_code == EXIT_USAGE and upgrade.exit_code == EXIT_USAGE
    assert len(out.stderr.strip().splitlines()) == 1 and "--journal-db" in out.stderr
    assert "--journal-db" in upgrade.stderr and "Traceback" not in out.output + upgrade.output
    assert snapshot(nova_url) == before


def test_a_real_run_on_a_nova_database_keeps_novas_conventions_and_journals_elsewhere(nova_url, journal_url):
    started = datetime.utcnow().replace(microsecond=0)
    before = {r["uuid"]: r for r in rows(nova_url, select(instances))}

    out = invoke("run", "--scenario", POWER_OUTAGE, "--db", nova_url, "--journal-db", journal_url, "--json",
                 "--stop-timeout", "1")

    assert out.exit_code == EXIT_OK, out.output
    after = {r["uuid"]: r for r in rows(nova_url, select(instances))}
    outcomes = {item["uuid"]: item["outcome"] for item in json.loads(out.stdout)["instances"]}
    # An interrupted deletion, and a deletion never completed: left to nova-compute's _init_instance, the first
    # with its domain destroyed here (its record says so: power_state nostate), the second untouched.
    assert {k: v for k, v in after[U("10")].items() if k not in ("power_state", "updated_at")} == \
        {k: v for k, v in before[U("10")].items() if k not in ("power_state", "updated_at")}
    deleting = after[U("10")]
    assert (deleting["task_state"], deleting["power_state"], deleting["deleted"]) == ("deleting", 0, 0)
    assert after[U("11")] == before[U("11")]
    assert outcomes[U("10")] == outcomes[U("11")] == "handed-off"
    changed = [uuid for uuid in after if after[uuid] != before[uuid]]
    assert len(changed) > 10
    assert all(after[uuid]["updated_at"] >= started for uuid in changed)
    [service] = rows(nova_url, select(services).where(services.c.host == HOST, services.c.deleted == 0))
    assert service["last_seen_up"] >= started and service["updated_at"] >= started and service["report_count"] == 42
    [node] = rows(nova_url, select(compute_nodes).where(compute_nodes.c.host == HOST, compute_nodes.c.deleted == 0))
    assert node["updated_at"] >= started and node["hypervisor_type"] == "QEMU"
    [live_migration] = rows(nova_url, select(migrations).where(migrations.c.instance_uuid == U("17")))
    assert live_migration["status"] == "error" and live_migration["updated_at"] >= started
    evacuation = migrations.c.instance_uuid == U("18")
    assert {m["status"] for m in rows(nova_url, select(migrations).where(evacuation))} == {"done"}  # nova-compute's
    assert outcomes[U("18")] == "handed-off" and U("18") not in domains_after(out)  # the stale domain destroyed
    assert not {t for t in tables(nova_url) if t.startswith("recovery_")}
    assert {"recovery_runs", "recovery_journal"} <= tables(journal_url)

    explained = invoke("explain", U("10"), "--db", nova_url, "--journal-db", journal_url, "--json")
    assert explained.exit_code == EXIT_OK, explained.output
    [latest] = json.loads(explained.stdout)["runs"]
    assert latest["outcome"] == "handed-off" and [a["name"] for a in latest["actions"]] == ["destroy_domain"]
    assert "; left to nova-compute: the deletion finished by _init_instance" in latest["reason"]


def domains_after(out: Any) -> set[str]:
    """The instances whose domain is there after a run, by its report."""
    return {item["uuid"] for item in json.loads(out.stdout)["instances"] if item["power_state"] != "nostate"}


def test_a_bare_journal_db_is_the_state_directorys_journal_file_made_by_db_upgrade(nova_url, tmp_path):
    state = tmp_path / "state"

    made = invoke("db", "upgrade", "--journal-db", state_dir=state)
    out = invoke("run", "--scenario", POWER_OUTAGE, "--db", nova_url, "--json", "--stop-timeout", "1",
                 "--journal-db", state_dir=state)

    assert made.exit_code == EXIT_OK and out.exit_code == EXIT_OK, made.output + out.output
    journal = state / "journal.sqlite"
    assert (state.stat().st_mode & 0o777, journal.stat().st_mode & 0o777) == (0o700, 0o600)
    assert tables(f"sqlite:///{journal}") == {"recovery_alembic_version", "recovery_runs", "recovery_journal"}
    assert len(rows(f"sqlite:///{journal}", "SELECT id FROM recovery_runs")) == 1


def test_a_real_run_does_not_create_novas_compute_node_or_service_rows(database_url, journal_url, tmp_path):
    """A new host with no guest yet: nova-compute makes these rows with what only it knows."""
    scenario = tmp_path / "new-host"
    scenario.mkdir()
    (scenario / "db.json").write_text(json.dumps({"host": HOST, "instances": []}))
    (scenario / "libvirt.xml").write_text("<node><cpu><mhz>2400</mhz><nodes>1</nodes><sockets>1</sockets><cores>4"
                                          "</cores><threads>1</threads><active>4</active><model>x86_64</model>"
                                          "</cpu><memory>8388608</memory></node>")
    create_nova_schema(database_url)

    out = invoke("run", "--scenario", scenario, "--db", database_url, "--journal-db", journal_url, "--json")

    assert out.exit_code == EXIT_OK, out.output
    warnings = json.loads(out.stdout)["warnings"]
    assert any("no compute node" in w and "nova-compute creates it" in w for w in warnings)
    assert any("no nova-compute service" in w for w in warnings)
    assert rows(database_url, "SELECT id FROM compute_nodes") == rows(database_url, "SELECT id FROM services") == []


def test_a_journal_db_naming_the_records_database_itself_keeps_the_journal_beside_the_records(tmp_path):
    """Not two connections to one file, each waiting for the other's write lock: one database, one transaction."""
    url = f"sqlite:///{tmp_path / 'own.sqlite'}"
    load_records(url, POWER_OUTAGE)

    out = invoke("run", "--scenario", POWER_OUTAGE, "--db", url, "--journal-db", url, "--json", "--stop-timeout", "1",
                 "--db-timeout", "5")

    assert out.exit_code == EXIT_OK, out.output
    assert len(rows(url, "SELECT id FROM recovery_runs")) == 1


def test_the_agent_on_a_nova_database_journals_elsewhere_and_heartbeats_novas_service(tmp_path, journal_url):
    url = f"sqlite:///{tmp_path / 'nova.sqlite'}"
    create_nova_schema(url)
    insert_nova_scenario(url, power_outage_with_destination_node())
    with notified_agent(tmp_path, "--scenario", POWER_OUTAGE, "--db", url, "--journal-db", journal_url,
                        "--stop-timeout", "1") as agent:
        agent.wait_for("READY=1")
        _out, err = agent.stop()

    assert agent.returncode == EXIT_OK, err
    assert not {t for t in tables(url) if t.startswith("recovery_")}
    assert [r["status"] for r in rows(journal_url, "SELECT status FROM recovery_runs")] == ["finished"]
    [service] = rows(url, select(services).where(services.c.host == HOST, services.c.deleted == 0))
    assert service["last_seen_up"] is not None and service["report_count"] >= 42
