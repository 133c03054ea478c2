"""The database layer against real databases: SQLite files, a throwaway PostgreSQL cluster and a
throwaway MariaDB server."""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.engine import make_url

from recovery.db import (
    DB_ENV,
    Database,
    DatabaseError,
    Instance,
    InstanceSystemMetadata,
    RecoveryRun,
    Service,
    open_database,
)
from recovery.db import journal as journals
from recovery.db.engine import DEFAULT_DB_PATH
from recovery.db.scenarios import ScenarioError, parse_db_json, read_db_json, seed, seed_if_empty
from recovery.db.urls import scrub
from states.enums import PowerState, VmState
from tests.support.databases import migrated_database

HOST = "compute-1"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = migrated_database(database_url)
    yield database
    database.close()


def instance(uuid: str, **columns: Any) -> dict[str, Any]:
    return {"uuid": uuid, "vm_state": "active", **columns}


def evacuation(uuid: str, status: str = "done", **columns: Any) -> dict[str, Any]:
    return {
        "instance_uuid": uuid,
        "source_compute": HOST,
        "dest_compute": "compute-2",
        "migration_type": "evacuation",
        "status": status,
        **columns,
    }


def raw_instance(db: Database, uuid: str) -> dict[str, Any]:
    with db.engine.connect() as conn:
        return dict(conn.execute(select(Instance.__table__).where(Instance.uuid == uuid)).mappings().one())


def cas(db: Database, uuid: str, expect_vm_state: Any, expect_task_state: Any, /, **changes: Any) -> bool:
    """A compare-and-swap as the executor makes one: from the row's updated_at as it reads now."""
    rows = db.load_instances_by_uuid([uuid])
    updated_at = rows[uuid].updated_at if uuid in rows else None
    with db.transaction("test") as conn:
        expect = (expect_vm_state, expect_task_state, updated_at)
        return db.compare_and_swap(conn, uuid, expect, db.next_stamp(updated_at), **changes)


def count_rows(db: Database, model: Any) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


# --- Opening ---------------------------------------------------------------------------------


def test_default_database_is_the_sqlite_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "from-env.sqlite"
    monkeypatch.setenv(DB_ENV, str(path))
    with pytest.raises(DatabaseError, match="compute-recover db upgrade"):
        open_database(None)
    assert not path.exists()  # opening creates nothing
    db = migrated_database(None)
    assert db.masked_url == f"sqlite:///{path}"
    assert {"instances", "migrations", "recovery_runs", "recovery_journal"} <= set(inspect(db.engine).get_table_names())
    db.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_without_environment_the_database_is_default_db_path_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(DB_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    migrated_database(None).close()
    assert (tmp_path / DEFAULT_DB_PATH).exists()


def test_sqlite_writes_in_wal_mode_and_leaves_it_when_the_last_writer_closes(tmp_path):
    path = tmp_path / "x.sqlite"
    migrated_database(f"sqlite:///{path}").close()
    db = open_database(f"sqlite:///{path}", timeout=7)
    db.prepare_for_writes()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 7000
    db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]  # no -wal / -shm left for readers to trip on
    reader = open_database(f"sqlite:///{path}", read_only=True)
    reader.load_host(HOST)
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]


def test_unreachable_postgres_names_the_masked_url_and_the_fix_on_one_line():
    with pytest.raises(DatabaseError) as raised:
        open_database("postgresql+psycopg://nova:hunter2@127.0.0.1:1/nova")
    message = str(raised.value)
    assert "postgresql+psycopg://nova:***@127.0.0.1:1/nova" in message
    assert "refused" in message.lower()
    assert f"check --db / {DB_ENV}" in message
    assert "hunter2" not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("host=db password=hunter2 port=notaport", "port is not a number"),
        ("postgresql+psycopg://nova:hunter2@db:notaport/nova", "cannot be parsed"),
        ("nosuchdialect://nova:hunter2@db/nova", "nosuchdialect"),
        (f"sqlite:///{Path('/nonexistent/dir/x.sqlite')}", "no database file /nonexistent/dir/x.sqlite"),
    ],
)
def test_bad_urls_fail_with_one_password_free_line(url, says):
    with pytest.raises(DatabaseError) as raised:
        open_database(url)
    message = str(raised.value)
    assert says in message
    assert f"check --db / {DB_ENV}" in message
    assert "hunter2" not in message
    assert "\n" not in message


LIVE_SERVERS = {
    "pg_url": ("password authentication failed", '"***-missing" does not exist'),
    "mariadb_url": ("Access denied for user", "Unknown database '***-missing'"),
}
"""Each live server's session fixture, with what its driver says for a wrong password and for a
missing database."""


@pytest.fixture(params=sorted(LIVE_SERVERS))
def live_server(request: pytest.FixtureRequest) -> tuple[str, str, str]:
    """A live server's URL with the driver's words for a wrong password and a missing database."""
    return request.getfixturevalue(request.param), *LIVE_SERVERS[request.param]


def test_wrong_password_on_a_live_server_hides_both_passwords(live_server):
    url, wrong_password_says, _ = live_server
    real = make_url(url).password
    wrong = make_url(url).set(password="not-the-password").render_as_string(hide_password=False)
    with pytest.raises(DatabaseError) as raised:
        open_database(wrong)
    message = str(raised.value)
    assert wrong_password_says in message
    assert f"{make_url(url).username}:***@" in message
    assert "not-the-password" not in message
    assert real not in message


def test_a_driver_message_that_quotes_the_password_is_scrubbed(live_server):
    url, _, missing_database_says = live_server
    password = make_url(url).password
    quoting = make_url(url).set(database=f"{password}-missing").render_as_string(hide_password=False)
    with pytest.raises(DatabaseError) as raised:
        open_database(quoting)
    message = str(raised.value)
    assert missing_database_says in message
    assert password and password not in message


@pytest.mark.parametrize(("password", "message", "scrubbed"), [
    ("p", "postgres://u:p@h/db: password for p refused",
     "postgres://u:***@h/db: password for *** refused"),
    ("s3cr3t-long-password", "auth failed (s3cr3t-long-password) for u@s3cr3t-long-passwordX",
     "auth failed (***) for u@***X"),
], ids=["short, masked where it stands alone", "long, masked everywhere"])
def test_a_message_is_scrubbed_of_the_password_without_garbling_it(password, message, scrubbed):
    url = make_url("postgresql+psycopg://u@h/db").set(password=password)
    assert scrub(message, url) == scrubbed


@pytest.mark.parametrize(
    ("fresh_database", "masked_start"),
    [("pg_database_url", "postgresql+psycopg://postgres:***@127.0.0.1:"),
     ("mariadb_database_url", "mysql+pymysql://compute_recover:***@127.0.0.1:")],
    ids=["postgresql", "mariadb"],
)
def test_masked_url_of_a_live_server_hides_the_password(request, fresh_database, masked_start):
    url = request.getfixturevalue(fresh_database)
    db = open_database(url)
    password = make_url(url).password
    assert password and password not in db.masked_url
    assert db.masked_url.startswith(masked_start)
    db.close()


# --- Seeding -------------------------------------------------------------------------------------


def test_seed_fills_defaults_and_reads_power_state_by_name_or_integer(db):
    seed(
        db,
        {
            "host": HOST,
            "instances": [
                instance("a", power_state="Running", launched_at="2024-01-01T12:00:00+02:00"),
                instance("b", power_state=4, host="compute-2", vcpus=4, system_metadata={"old_vm_state": "stopped"}),
                instance("c"),
                instance("gone", vm_state="deleted", deleted=True),
            ],
            "compute_nodes": [{"vcpus": 8}],
            "services": [{}],
        },
    )
    rows = db.load_instances_by_uuid(["a", "b", "c", "gone"])
    assert (rows["a"].power_state, rows["b"].power_state, rows["c"].power_state) == (1, 4, 0)
    assert (rows["c"].host, rows["c"].node, rows["b"].node) == (HOST, HOST, "compute-2")
    assert (rows["c"].vcpus, rows["c"].memory_mb, rows["c"].root_gb, rows["b"].vcpus) == (1, 512, 1, 4)
    assert rows["b"].system_metadata == {"old_vm_state": "stopped"}
    assert raw_instance(db, "a")["launched_at"] == datetime(2024, 1, 1, 10, 0)
    gone = raw_instance(db, "gone")
    assert rows["gone"].deleted and gone["deleted"] == gone["id"] and gone["deleted_at"] is not None
    snapshot = db.load_host(HOST)
    assert [node.hypervisor_hostname for node in snapshot.compute_nodes] == [HOST]
    assert snapshot.service is not None and (snapshot.service.binary, snapshot.service.topic) == (
        "nova-compute",
        "compute",
    )


def test_seed_if_empty_seeds_once_and_seed_refuses_a_database_with_records(db):
    data = {"host": HOST, "instances": [instance("a")], "services": [{}]}
    assert seed_if_empty(db, data) is True
    assert seed_if_empty(db, data) is False
    with pytest.raises(ScenarioError) as raised:
        seed(db, data, "scenarios/boot/db.json")
    assert "scenarios/boot/db.json" in str(raised.value) and "already holds records" in str(raised.value)
    assert (count_rows(db, Instance), count_rows(db, Service)) == (1, 1)


def test_seeding_ignores_columns_it_does_not_use_and_says_which(db):
    data = {"host": HOST, "instances": [instance("a", user_id="u-1", project_id="p-1")], "comment": "outage"}
    said: list[str] = []
    assert seed_if_empty(db, data, "s/db.json", warn=said.append) is True
    assert said == ["s/db.json: ignored fields compute-recover does not use: comment, instances.user_id"]
    assert [(row.uuid, row.project_id) for row in db.load_host(HOST).instances] == [("a", "p-1")]  # used: tiers


def test_a_bad_scenario_writes_nothing(db):
    bad = {"host": HOST, "instances": [instance("a"), instance("b", power_state="warm")]}
    with pytest.raises(ScenarioError):
        seed(db, bad)
    assert count_rows(db, Instance) == 0
    assert seed_if_empty(db, {"host": HOST, "instances": [instance("a")]})


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (
            {"host": HOST, "instances": [instance("a", power_state="warm")]},
            "instances[0].power_state: unknown power state",
        ),
        ({"host": HOST, "instances": [instance("a", power_state=2)]}, "instances[0].power_state: unknown power state"),
        ({"host": HOST, "instances": [{"uuid": "a"}]}, "instances[0].vm_state: required field missing"),
        ({"host": HOST, "instances": [{"uuid": "a", "vm_sate": "x"}]}, "instances[0].vm_state: required field missing"),
        ({"host": HOST, "instances": [instance("a"), instance("a")]}, "instances[1].uuid: duplicate uuid"),
        ({"host": HOST, "instances": {"a": {}}}, "instances: expected a list"),
        ({"host": HOST, "instances": [instance("a", system_metadata={"x": 1})]}, "instances[0].system_metadata"),
        ({"host": HOST, "instances": [instance("a", launched_at="yesterday")]}, "instances[0].launched_at: expected"),
        ({"host": HOST, "migrations": [{**evacuation("a"), "status": None}]}, "migrations[0].status"),
        ({"host": HOST, "migrations": [{"instance_uuid": "a"}]}, "migrations[0].source_compute: required"),
        ({"host": HOST, "services": [{"disabled": "no"}]}, "services[0].disabled: expected true or false"),
        ({"instances": []}, "host: required field missing"),
        ([], "top level: expected an object"),
    ],
)
def test_scenario_errors_are_one_line_naming_file_and_field(document, names):
    with pytest.raises(ScenarioError) as raised:
        parse_db_json(document, "/scenarios/x/db.json")
    message = str(raised.value)
    assert message.startswith("/scenarios/x/db.json: ")
    assert names in message
    assert "\n" not in message


def test_read_db_json_names_the_file_when_it_is_not_json_or_missing(tmp_path):
    path = tmp_path / "db.json"
    path.write_text('{"host": "h", "instances": [')
    with pytest.raises(ScenarioError, match=r"db\.json: not valid JSON"):
        read_db_json(path)
    with pytest.raises(ScenarioError, match=r"nope\.json: cannot read"):
        read_db_json(tmp_path / "nope.json")
    path.write_text(json.dumps({"host": "h"}))
    assert read_db_json(path) == {"host": "h"}


# --- Reads ---------------------------------------------------------------------------------------


def test_load_host_returns_live_instances_with_metadata_pending_evacuations_nodes_and_service(db):
    seed(
        db,
        {
            "host": HOST,
            "instances": [
                instance("mine", task_state="rebooting", power_state="shutdown", system_metadata={"old_vm_state": "x"}),
                instance("deleted", deleted=True),
                instance("elsewhere", host="compute-2"),
                instance("evacuated", host="compute-2"),
            ],
            "migrations": [
                evacuation("evacuated", "done"),
                evacuation("evacuated", "accepted"),
                evacuation("evacuated", "pre-migrating"),
                evacuation("evacuated", "completed"),
                evacuation("evacuated", "error"),
                {**evacuation("mine"), "migration_type": "migration"},
                {**evacuation("elsewhere"), "source_compute": "compute-3"},
            ],
            "compute_nodes": [{"hypervisor_hostname": "hv-1"}, {"host": "compute-2"}],
            "services": [{"binary": "nova-conductor"}, {}, {"host": "compute-2"}],
        },
    )
    with db.engine.begin() as conn:  # a soft-deleted metadata row must not show
        conn.execute(InstanceSystemMetadata.__table__.insert().values(instance_uuid="mine", key="gone", deleted=1))

    snapshot = db.load_host(HOST)

    assert snapshot.host == HOST
    assert [row.uuid for row in snapshot.instances] == ["mine"]
    mine = snapshot.instances[0]
    assert (mine.vm_state, mine.task_state, mine.power_state, mine.deleted) == ("active", "rebooting", 4, False)
    assert mine.system_metadata == {"old_vm_state": "x"}
    assert sorted(m.status for m in snapshot.evacuations) == ["accepted", "done", "pre-migrating"]
    assert {(m.instance_uuid, m.source_compute, m.dest_compute) for m in snapshot.evacuations} == {
        ("evacuated", HOST, "compute-2")
    }
    assert [(n.host, n.hypervisor_hostname) for n in snapshot.compute_nodes] == [(HOST, "hv-1")]
    assert snapshot.service is not None and (snapshot.service.host, snapshot.service.binary) == (HOST, "nova-compute")


def test_load_host_issues_the_same_number_of_statements_for_10_and_200_instances(db):
    def fleet(host: str, count: int) -> tuple[list[dict], list[dict]]:
        uuids = [f"{host}-{index:04d}" for index in range(count)]
        instances = [instance(u, host=host, system_metadata={"old_vm_state": "active", "k": u},
                              metadata={"recover:resume": "never", "k": u}) for u in uuids]
        return instances, [{**evacuation(u), "source_compute": host} for u in uuids]

    small, small_migrations = fleet("small", 10)
    big, big_migrations = fleet("big", 200)
    seed(db, {"host": HOST, "instances": small + big, "migrations": small_migrations + big_migrations})

    with db.count_statements() as small_reads:
        small_snapshot = db.load_host("small")
    with db.count_statements() as big_reads:
        big_snapshot = db.load_host("big")

    assert (len(small_snapshot.instances), len(big_snapshot.instances)) == (10, 200)
    assert (len(small_snapshot.evacuations), len(big_snapshot.evacuations)) == (10, 200)
    assert all(row.system_metadata["k"] == row.uuid for row in big_snapshot.instances)
    assert all(row.metadata["k"] == row.uuid for row in big_snapshot.instances)
    assert 0 < small_reads.count == big_reads.count <= 5


def test_load_instances_by_uuid_includes_deleted_and_foreign_records_in_chunked_queries(db):
    many = [instance(f"bulk-{index:04d}") for index in range(1200)]
    seed(
        db,
        {
            "host": HOST,
            "instances": [instance("deleted", deleted=True), instance("foreign", host="compute-2"), *many],
        },
    )
    wanted = ["deleted", "foreign", "unknown", *(row["uuid"] for row in many)]

    with db.count_statements() as reads:
        found = db.load_instances_by_uuid(wanted)

    assert found.keys() == set(wanted) - {"unknown"}
    assert found["deleted"].deleted and not found["foreign"].deleted
    assert found["foreign"].host == "compute-2"
    assert reads.count == 2 * 3  # instances + metadata, per chunk of 500 uuids


# --- Compare-and-swap ------------------------------------------------------------------------------


def test_compare_and_swap_writes_when_the_record_still_holds_the_decided_state(db):
    seed(db, {"host": HOST, "instances": [instance("a", task_state="rebooting", power_state="shutdown")]})
    before = raw_instance(db, "a")

    changed = cas(db, "a", VmState.ACTIVE, "rebooting", vm_state=VmState.ACTIVE, task_state=None,
                  power_state=PowerState.RUNNING)

    assert changed is True
    after = raw_instance(db, "a")
    assert (after["vm_state"], after["task_state"], after["power_state"]) == ("active", None, 1)
    assert type(after["power_state"]) is int
    assert before["updated_at"] is None and after["updated_at"] is not None


def test_compare_and_swap_loses_a_race_and_leaves_the_row_untouched(db):
    seed(db, {"host": HOST, "instances": [instance("a", task_state="rebooting", power_state="shutdown")]})
    decided_from = db.load_host(HOST).instances[0]
    with db.engine.begin() as conn:  # another process gets there between our read and our write
        conn.execute(update(Instance).where(Instance.uuid == "a").values(task_state="deleting"))
    raced = raw_instance(db, "a")

    with db.transaction("test") as conn:
        expect = (decided_from.vm_state, decided_from.task_state, decided_from.updated_at)
        changed = db.compare_and_swap(conn, "a", expect, db.next_stamp(None), task_state="reboot_pending_hard",
                                      vm_state="error")

    assert changed is False
    assert raw_instance(db, "a") == raced


def test_a_claim_is_lost_to_a_writer_that_only_touched_updated_at(db):
    """Nova stamps updated_at on every save: a row saved since it was read is not ours to claim,
    even when its states look the same, and a claim that writes nothing else still changes the row."""
    seed(db, {"host": HOST, "instances": [instance("a", power_state="shutdown")]})
    decided_from = db.load_host(HOST).instances[0]
    expect = (decided_from.vm_state, decided_from.task_state, decided_from.updated_at)
    with db.transaction("claim") as conn:
        assert db.compare_and_swap(conn, "a", expect, db.next_stamp(decided_from.updated_at)) is True
    claimed = raw_instance(db, "a")
    assert claimed["updated_at"] != decided_from.updated_at  # the claim really changed the row

    with db.transaction("second claim from the same read") as conn:
        assert db.compare_and_swap(conn, "a", expect, db.next_stamp(decided_from.updated_at)) is False
    assert raw_instance(db, "a") == claimed


def test_next_stamp_is_strictly_later_than_the_one_it_replaces(db):
    future = datetime(2999, 1, 1, 0, 0, 0, 999_999)
    assert db.next_stamp(future) > future
    assert db.next_stamp(None) <= datetime.now(UTC).replace(tzinfo=None)


def test_compare_and_swap_matches_a_null_task_state_and_never_touches_deleted_records(db):
    seed(db, {"host": HOST, "instances": [instance("idle"), instance("gone", vm_state="deleted", deleted=True)]})

    assert cas(db, "idle", "active", "rebooting", task_state=None) is False
    assert cas(db, "idle", "active", None, task_state="powering-off") is True
    assert cas(db, "idle", "active", None, task_state=None) is False
    assert raw_instance(db, "idle")["task_state"] == "powering-off"
    assert cas(db, "gone", "deleted", None, task_state="deleting") is False
    assert raw_instance(db, "gone")["task_state"] is None


def test_compare_and_swap_can_mark_the_record_deleted_the_way_nova_does(db):
    seed(db, {"host": HOST, "instances": [instance("a", vm_state="deleted", task_state="deleting")]})

    assert cas(db, "a", "deleted", "deleting", task_state=None, mark_deleted=True) is True

    row = raw_instance(db, "a")
    assert row["deleted"] == row["id"] and row["deleted_at"] is not None and row["task_state"] is None
    assert db.load_host(HOST).instances == ()
    assert db.load_instances_by_uuid(["a"])["a"].deleted is True


def test_compare_and_swap_rejects_an_unknown_change_without_writing(db):
    seed(db, {"host": HOST, "instances": [instance("a")]})
    before = raw_instance(db, "a")
    with pytest.raises(TypeError, match="host"):
        cas(db, "a", "active", None, host="compute-2")
    assert raw_instance(db, "a") == before


def test_a_thread_pool_can_compare_and_swap_concurrently(db):
    uuids = [f"i-{index}" for index in range(40)]
    seed(db, {"host": HOST, "instances": [instance(u, task_state="powering-on") for u in uuids]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda u: cas(db, u, "active", "powering-on", task_state=None), uuids))

    assert results == [True] * len(uuids)
    assert all(row.task_state is None for row in db.load_host(HOST).instances)


# --- Migrations, compute node, service -------------------------------------------------------------


def test_set_migration_status_completes_an_evacuation(db):
    seed(db, {"host": HOST, "instances": [instance("a", host="compute-2")], "migrations": [evacuation("a")]})
    pending = db.load_host(HOST).evacuations[0]

    assert db.set_migration_status(pending.id, "completed") is True

    assert db.load_host(HOST).evacuations == ()
    assert db.set_migration_status(pending.id + 1000, "completed") is False


def test_upsert_compute_node_sums_the_live_instances_usage_in_sql(db):
    seed(
        db,
        {
            "host": HOST,
            "instances": [
                instance("run", vcpus=2, memory_mb=2048, root_gb=20, power_state="running"),
                instance("off", vcpus=4, memory_mb=4096, root_gb=40, power_state="shutdown"),
                instance("deleted", vcpus=1, memory_mb=512, root_gb=1, power_state="running", deleted=True),
                instance("offloaded", vm_state="shelved_offloaded", vcpus=8, memory_mb=8192, root_gb=80),
                instance("foreign", host="compute-2", vcpus=16, memory_mb=16384, root_gb=160, power_state="running"),
            ],
        },
    )

    created = db.upsert_compute_node(HOST, "hv-1", vcpus=32, memory_mb=65536, local_gb=500)

    assert (created.host, created.hypervisor_hostname) == (HOST, "hv-1")
    assert (created.vcpus, created.memory_mb, created.local_gb) == (32, 65536, 500)
    # running_vms is Nova's num_instances: every tracked instance, running or not
    assert (created.vcpus_used, created.memory_mb_used, created.local_gb_used, created.running_vms) == (6, 6144, 60, 2)

    assert cas(db, "off", "active", None, vm_state="shelved_offloaded")
    updated = db.upsert_compute_node(HOST, "hv-1", vcpus=48, memory_mb=65536, local_gb=500)

    assert (updated.id, updated.uuid) == (created.id, created.uuid)
    assert (updated.vcpus, updated.vcpus_used, updated.running_vms) == (48, 2, 1)
    assert db.load_host(HOST).compute_nodes == (updated,)


def test_upsert_compute_node_on_an_empty_host_uses_nothing(db):
    node = db.upsert_compute_node(HOST, HOST, vcpus=4, memory_mb=8192, local_gb=100)
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used, node.running_vms) == (0, 0, 0, 0)


def test_find_compute_node_by_hypervisor_hostname_reveals_a_renamed_host(db):
    db.upsert_compute_node("old-name", "hv-1", vcpus=4, memory_mb=8192, local_gb=100)

    found = db.find_compute_node_by_hypervisor_hostname("hv-1")

    assert found is not None and found.host == "old-name"
    assert db.find_compute_node_by_hypervisor_hostname("hv-2") is None


def test_heartbeat_creates_the_nova_compute_record_then_counts_reports(db):
    seed(db, {"host": HOST, "services": [{"binary": "nova-conductor"}, {"host": "compute-2", "report_count": 41}]})
    assert db.service_exists(HOST) is False

    db.heartbeat(HOST)
    first = db.load_host(HOST).service
    db.heartbeat(HOST)
    second = db.load_host(HOST).service
    db.heartbeat("compute-2")

    assert db.service_exists(HOST) is True
    assert first is not None and second is not None
    assert (first.binary, first.topic, first.report_count, second.report_count) == ("nova-compute", "compute", 1, 2)
    assert second.id == first.id and second.updated_at >= first.updated_at and second.last_seen_up is not None
    assert db.load_host("compute-2").service.report_count == 42
    assert count_rows(db, Service) == 3


# --- Runs and journal ------------------------------------------------------------------------------


def test_journal_as_it_goes_newest_run_first(db):
    entry = {
        "instance_uuid": "a",
        "start_state": "active/rebooting/shutdown",
        "facts": {"host": HOST, "domain_present": True, "db_power_state": "running"},
        "path": [
            {"rule": "reboot_retry", "from": "active/rebooting/shutdown", "to": "active/reboot_pending_hard/shutdown"}
        ],
        "considered": [{"rule": "evacuated_away", "matched": False, "why": "no evacuation record"}],
        "actions": [{"name": "reboot", "type": "hard", "outcome": "pending", "error": None}],
        "outcome": "pending",
        "reason": "The reboot never finished; retrying it as a hard reboot.",
    }
    first_run = journals.start_run(db, HOST, options={"concurrency": 4})
    ids = journals.insert_entries(db, first_run, [entry, {**entry, "instance_uuid": "b"}])
    done = {"actions": [{"name": "reboot", "type": "hard", "outcome": "failed", "error": "boom"}],
            "final_vm_state": VmState.ACTIVE, "final_task_state": None, "final_power_state": PowerState.SHUTDOWN,
            "outcome": "failed", "error": "boom"}
    with db.transaction("test") as conn:
        journals.update_entry(conn, ids["a"], done)
    journals.finish_run(db, first_run, 1, {"failed": 2})
    second_run = journals.start_run(db, HOST, options={})
    with db.count_statements() as writes:
        journals.insert_entries(db, second_run, [{"instance_uuid": f"i-{n}", "outcome": "ok"} for n in range(2500)])
    journals.insert_entries(db, second_run, [entry])

    history = journals.journal_for(db, "a")

    assert writes.count == 3 + 1  # three bulk batches of 1,000, then one read of the ids
    assert [(e["run_id"], e["run_status"], e["outcome"]) for e in history] == [
        (second_run, "running", "pending"),
        (first_run, "finished", "failed"),
    ]
    oldest = history[-1]
    for key in ("facts", "path", "considered", "start_state", "reason"):
        assert oldest[key] == entry[key]
    assert oldest["actions"] == done["actions"] and oldest["error"] == "boom"
    assert (oldest["final_vm_state"], oldest["final_power_state"]) == ("active", 4)
    assert oldest["run_host"] == HOST and oldest["run_started_at"] <= history[0]["run_started_at"]
    assert journals.journal_for(db, "unknown") == []
    with db.engine.connect() as conn:
        run = conn.execute(select(RecoveryRun.__table__).where(RecoveryRun.id == first_run)).mappings().one()
    assert (run["exit_code"], json.loads(run["totals"]), json.loads(run["options"])) == (
        1,
        {"failed": 2},
        {"concurrency": 4},
    )
    assert run["finished_at"] is not None


def test_a_run_that_never_finished_is_marked_interrupted_by_the_hosts_next_run(db):
    killed = journals.start_run(db, HOST, options={})
    other_host = journals.start_run(db, "compute-2", options={})
    holder = journals.running_run(db, HOST)
    assert holder is not None and holder.run_id == killed and holder.pid is not None

    journals.start_run(db, HOST, options={})

    with db.engine.connect() as conn:
        status = dict(conn.execute(select(RecoveryRun.id, RecoveryRun.status)).all())
    assert status[killed] == "interrupted"
    assert status[other_host] == "running"  # another host's run is not this host's to judge


def test_journal_rejects_unknown_fields_and_writes_nothing(db):
    run = journals.start_run(db, HOST, options={})
    with pytest.raises(ValueError, match="outcom"):
        journals.insert_entries(db, run, [{"instance_uuid": "a", "outcome": "ok"},
                                          {"instance_uuid": "b", "outcom": "ok"}])
    assert journals.journal_for(db, "a") == []
