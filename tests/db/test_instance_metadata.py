"""Instance metadata (`recover:resume`) and how long the host was down, read from the database and
used by real runs: compute-recover's own tables and Nova's cell schema, on SQLite, PostgreSQL and
MariaDB; runs on libvirt's test driver; `explain` telling why a guest stayed off."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, inspect

from recovery.cli import cli
from recovery.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from recovery.core.metadata import MAX_DURATION_SECONDS, format_duration, parse_duration
from recovery.core.servicegroup import host_down_seconds
from recovery.db import InstanceMetadata, ServiceRow, migrate, open_database, schema
from recovery.db.scenarios import ScenarioError, parse_db_json, seed
from tests.support.databases import migrated_database
from tests.support.in_process import load_records
from tests.support.nova_cell_schema import create_nova_schema, insert_nova_scenario
from tests.support.paths import U
from tests.support.scenarios import write_host

HOST = "compute-1"


def guest(n: int, metadata: dict | None = None, **fields) -> dict:
    """An instance that was running when the host went down (its domain is shut off now)."""
    return {"uuid": U(n), "display_name": f"guest-{n}", "vm_state": "active", "power_state": "running",
            **({"metadata": metadata} if metadata is not None else {}), **fields}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).replace(tzinfo=None).isoformat()


def write_scenario(directory: Path, instances: list[dict], service: dict | None = None) -> Path:
    """A scenario (docs/scenarios.md) whose every instance has a shut-off domain on the test driver."""
    services = [{"host": HOST, "report_count": 3, **(service or {})}]
    return write_host(directory, {"host": HOST, "instances": instances, "services": services},
                      ((number, item["uuid"], 5) for number, item in enumerate(instances, 1)),
                      cores=8, memory_kib=16777216)


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COMPUTE_RECOVER_DB": None},
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def loaded(tmp_path: Path, instances: list[dict], service: dict | None = None) -> tuple[Path, str]:
    """`db upgrade` and `scenario load`, as an operator does before a first run."""
    scenario = write_scenario(tmp_path / "scenario", instances, service)
    url = f"sqlite:///{tmp_path / 'records.sqlite'}"
    load_records(url, scenario)
    return scenario, url


def run(scenario: Path, url: str, *options: str) -> tuple[int, dict]:
    code, out, err = invoke("run", "--scenario", scenario, "--db", url, "--json", "--stop-timeout", "1", *options)
    assert out, err
    return code, json.loads(out)


def power_states(doc: dict) -> dict[str, str]:
    return {item["uuid"]: item["power_state"] for item in doc["instances"]}


# --- Read from the database --------------------------------------------------------------------


def test_metadata_is_loaded_from_a_migrated_database_live_rows_only(database_url):
    db = migrated_database(database_url)
    try:
        seed(db, {"host": HOST, "instances": [
            guest(1, {"recover:resume": "never", "team": "db"}, system_metadata={"old_vm_state": "active"}),
            guest(2),
            guest(3, {"recover:resume": "always"}, host="compute-2"),
        ]})
        with db.transaction("add a removed key and a null value") as conn:
            conn.execute(insert(InstanceMetadata).values(instance_uuid=U(2), key="recover:resume", value="never",
                                                         deleted=1))
            conn.execute(insert(InstanceMetadata).values(instance_uuid=U(2), key="note", value=None))
        snapshot = db.load_host(HOST)
        elsewhere = db.load_instances_by_uuid([U(3)])
    finally:
        db.close()
    rows = {row.uuid: row for row in snapshot.instances}
    assert rows[U(1)].metadata == {"recover:resume": "never", "team": "db"}
    assert rows[U(1)].system_metadata == {"old_vm_state": "active"}, "system metadata stays apart"
    assert rows[U(2)].metadata == {}, "a removed key (deleted != 0) and a null value say nothing"
    assert elsewhere[U(3)].metadata == {"recover:resume": "always"}


def test_metadata_is_loaded_from_novas_cell_schema(database_url):
    create_nova_schema(database_url)
    insert_nova_scenario(database_url, {"host": HOST, "instances": [
        guest(1, {"recover:resume": "if-down-less-than:30m"}),
        guest(2, {"recover:resume": "never"}, vm_state="deleted", deleted=True),
    ]})
    db = open_database(database_url, read_only=True)
    try:
        [row] = db.load_host(HOST).instances
        deleted = db.load_instances_by_uuid([U(2)])[U(2)]
    finally:
        db.close()
    assert row.metadata == {"recover:resume": "if-down-less-than:30m"}
    assert deleted.deleted and deleted.metadata == {}, "Nova soft-deletes an instance's metadata with it"


def at_previous_cell_revision(url: str) -> None:
    """A database as `db upgrade` left it before instance_metadata: cell_0001, the journal's newest."""
    db = open_database(url, create=True)
    config = migrate.config()
    try:
        with db.transaction("migrate to the previous revision") as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "cell_0001")
            command.upgrade(config, "journal@head")
        with db.reading("list tables") as conn:
            assert "instance_metadata" not in inspect(conn).get_table_names()
    finally:
        db.close()


def test_db_upgrade_adds_the_metadata_table_to_a_database_at_the_previous_revision(database_url):
    at_previous_cell_revision(database_url)

    code, out, err = invoke("db", "upgrade", "--db", database_url)

    assert code == EXIT_OK, err
    assert schema.HEADS["cell"] in out  # the newest cell revision, which includes instance_metadata
    db = open_database(database_url)
    try:
        seed(db, {"host": HOST, "instances": [guest(1, {"recover:resume": "never"})]})
        assert db.load_host(HOST).instances[0].metadata == {"recover:resume": "never"}
    finally:
        db.close()


def test_a_plan_on_a_database_at_the_previous_revision_asks_for_db_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    at_previous_cell_revision(url)
    scenario = write_scenario(tmp_path / "scenario", [guest(1)])

    code, _out, err = invoke("plan", "--scenario", scenario, "--db", url)

    assert code == EXIT_USAGE
    assert "older compute-recover schema: run `compute-recover db upgrade --db" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


# --- Scenarios ---------------------------------------------------------------------------------


def test_a_scenario_gives_metadata_as_instance_metadata_rows():
    rows = parse_db_json({"host": HOST, "instances": [guest(1, {"recover:resume": "never"}), guest(2)]})
    assert rows.metadata == [{"instance_uuid": U(1), "key": "recover:resume", "value": "never"}]
    assert rows.system_metadata == []


@pytest.mark.parametrize(("metadata", "message"), [
    ({"recover:resume": 1}, "instances[0].metadata: expected an object of string values"),
    (["recover:resume"], "instances[0].metadata: expected an object of string values"),
    ({"recover:resume": "v" * 256}, "instances[0].metadata: key 'recover:resume': 256 characters is longer than "
                                    "Nova's String(255) column holds"),
    ({"k" * 256: "never"}, "instances[0].metadata: key "),
])
def test_a_scenario_with_bad_metadata_is_refused_by_name(metadata, message):
    with pytest.raises(ScenarioError) as refused:
        parse_db_json({"host": HOST, "instances": [guest(1, metadata)]}, "db.json")
    assert str(refused.value).startswith(f"db.json: {message}")


# --- Used by runs ------------------------------------------------------------------------------


def test_a_guest_with_recover_resume_never_stays_off_while_the_others_resume(tmp_path):
    scenario, url = loaded(tmp_path, [guest(1), guest(2, {"recover:resume": "never"}),
                                      guest(3, {"recover:resume": "always"}, power_state="shutdown")],
                           {"last_seen_up": ago(minutes=5)})

    code, doc = run(scenario, url, "--resume-guests-state-on-host-boot")

    assert code == EXIT_OK
    assert power_states(doc) == {U(1): "running", U(2): "shutdown", U(3): "running"}
    [never] = [item for item in doc["instances"] if item["uuid"] == U(2)]
    assert "recover:resume=never, so it stays off" in never["reason"]


def test_a_bad_metadata_value_fails_that_instance_in_one_line_and_the_others_recover(tmp_path):
    scenario, url = loaded(tmp_path, [guest(1), guest(2, {"recover:resume": "sometimes"})],
                           {"last_seen_up": ago(minutes=5)})

    code, doc = run(scenario, url, "--resume-guests-state-on-host-boot")

    assert code == EXIT_FAILED
    outcomes = {item["uuid"]: (item["outcome"], item["error"]) for item in doc["instances"]}
    assert outcomes[U(1)] == ("ok", None)
    assert outcomes[U(2)][0] == "failed"
    assert outcomes[U(2)][1].startswith("bad database row: recover:resume 'sometimes' is not a resume policy: use ")
    assert "\n" not in outcomes[U(2)][1]
    assert power_states(doc) == {U(1): "running", U(2): "shutdown"}


def test_after_two_hours_down_with_max_downtime_1h_nothing_resumes_and_explain_says_why(tmp_path):
    scenario, url = loaded(tmp_path, [guest(1), guest(2, {"recover:resume": "always"})],
                           {"last_seen_up": ago(hours=2), "updated_at": ago(minutes=1)})

    code, doc = run(scenario, url, "--resume-guests-state-on-host-boot", "--max-downtime", "1h")

    assert code == EXIT_OK
    assert power_states(doc) == {U(1): "shutdown", U(2): "shutdown"}
    assert 7_200 <= doc["host_down_seconds"] < 7_260, "last_seen_up wins over updated_at"
    code, out, err = invoke("explain", U(1), "--db", url)
    assert code == EXIT_OK, err
    assert re.search(r"\ndowntime: host was down 2h( 0m)?; --max-downtime 1h reached\n", out), out
    assert "  host_down_seconds = 72" in out and "  max_downtime = 3600.0" in out
    assert "the host was down longer than allowed" in out
    code, out, _err = invoke("explain", U(1), "--db", url, "-f", "json")
    [newest] = json.loads(out)["runs"]
    assert newest["facts"]["host_down_seconds"] >= 7_200


def test_a_host_down_less_than_max_downtime_resumes_and_the_run_shows_the_downtime(tmp_path):
    scenario, url = loaded(tmp_path, [guest(1), guest(2, {"recover:resume": "if-down-less-than:10m"})],
                           {"last_seen_up": None, "updated_at": ago(minutes=30)})

    code_table, table, _err = invoke("plan", "--scenario", scenario, "--db", url)
    code, doc = run(scenario, url, "--resume-guests-state-on-host-boot", "--max-downtime", "1h")

    assert code == EXIT_OK and code_table == EXIT_OK
    assert 1_800 <= doc["host_down_seconds"] < 1_860, "updated_at when last_seen_up is null"
    assert power_states(doc) == {U(1): "running", U(2): "shutdown"}, "its own 10m limit was reached"
    assert re.search(r"\nhost was down 30m( \d+s)? \(since its last heartbeat\)\n", table), table
    code, out, _err = invoke("explain", U(2), "--db", url)
    assert re.search(r"\ndowntime: host was down 30m( \d+s)?; its recover:resume=if-down-less-than duration was "
                     r"reached\n", out), out


def test_an_unknown_downtime_is_never_too_long(tmp_path):
    scenario, url = loaded(tmp_path, [guest(1)])

    code_table, table, _err = invoke("plan", "--scenario", scenario, "--db", url)
    code, doc = run(scenario, url, "--resume-guests-state-on-host-boot", "--max-downtime", "1m")

    assert code == EXIT_OK and code_table == EXIT_OK
    assert "\nhost was down: unknown (no heartbeat recorded)\n" in table
    assert doc["host_down_seconds"] is None
    assert power_states(doc) == {U(1): "running"}
    code, out, _err = invoke("explain", U(1), "--db", url)
    assert "downtime: host was down for an unknown time (no heartbeat recorded); --max-downtime 1m" in out


# --- Pure parts --------------------------------------------------------------------------------


def service(last_seen_up: datetime | None, updated_at: datetime | None) -> ServiceRow:
    return ServiceRow(1, HOST, "nova-compute", "compute", 3, False, None, False, last_seen_up, updated_at,
                      created_at=datetime(2020, 1, 1))


def test_host_down_seconds_reads_last_seen_up_then_updated_at_never_created_at():
    now = datetime(2026, 1, 1, 12, 0, 0)
    assert host_down_seconds(service(now - timedelta(hours=2), now), now) == 7_200
    assert host_down_seconds(service(None, now - timedelta(seconds=90.4)), now) == 90
    assert host_down_seconds(service(None, None), now) is None
    assert host_down_seconds(None, now) is None
    assert host_down_seconds(service(now + timedelta(seconds=5), None), now) == 0, "a clock behind the database's"


@pytest.mark.parametrize(("seconds", "spelled"), [
    (0, "0s"), (59, "59s"), (60, "1m"), (61, "1m 1s"), (3_600, "1h"), (7_207, "2h 0m"), (5_400, "1h 30m"),
    (86_400, "1d"), (90_061, "1d 1h"),
])
def test_durations_are_spelled_in_their_two_largest_units(seconds, spelled):
    assert format_duration(seconds) == spelled


@given(st.floats(min_value=1, max_value=MAX_DURATION_SECONDS))
def test_a_spelled_duration_never_overstates_and_is_short_by_less_than_its_last_unit(seconds):
    parts = format_duration(seconds).split()
    unit = {part: parse_duration("1" + part[-1], "unit") for part in parts}  # `0m` is no duration of its own
    spelled = sum(int(part[:-1]) * unit[part] for part in parts)
    assert len(parts) <= 2
    assert spelled <= seconds < spelled + unit[parts[-1]]



def test_diff_with_a_database_leaves_out_a_guest_whose_metadata_decides_it_either_way(tmp_path):
    _scenario, url = loaded(tmp_path, [guest(1), guest(2, {"recover:resume": "never"})],
                            {"last_seen_up": ago(minutes=5)})

    code, out, err = invoke("diff", "--a", "resume=off", "--b", "resume=on", "--db", url, "--host", HOST, "--json")

    assert code == EXIT_OK, err
    assert [item["name"] for item in json.loads(out)["affected"]] == ["guest-1"]
