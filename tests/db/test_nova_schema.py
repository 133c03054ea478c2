"""Nova's own cell schema (tests/support/nova_cell_schema.py) on SQLite, PostgreSQL and MariaDB, and
compute-recover's reads against it: soft-deleted rows (deleted = id) stay out, system metadata
comes in."""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError

from recovery.db import open_database
from tests.support.nova_cell_schema import (
    NOVA_TABLES,
    compute_nodes,
    create_nova_schema,
    insert_nova_scenario,
    instance_system_metadata,
    instances,
    migrations,
    services,
)
from tests.support.nova_outage import (
    DELETED,
    EVACUATED,
    HOST,
    NODE_UUID,
    NOW,
    POWER_OUTAGE,
    RESIZING,
    add_soft_deleted_twins,
    power_outage_with_destination_node,
)

NOT_NULL = {
    "instances": {"id", "uuid"},
    "instance_system_metadata": {"id", "instance_uuid", "key"},
    "instance_metadata": {"id"},
    "migrations": {"id"},
    "compute_nodes": {"id", "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
                      "hypervisor_type", "hypervisor_version", "cpu_info"},
    "services": {"id", "report_count"},
    "instance_info_caches": {"id", "instance_uuid"},
}  # fmt: skip
"""Nova's NOT NULL columns in these tables; every other column may be null."""


@pytest.fixture
def nova_engine(database_url: str) -> Iterator[Engine]:
    """An engine on a database of each kind holding Nova's tables."""
    create_nova_schema(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def one(engine: Engine, table: Any, **where: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        query = select(table).where(*(table.c[name] == value for name, value in where.items()))
        return dict(conn.execute(query).mappings().one())


# --- The schema --------------------------------------------------------------------------------


def test_the_nova_schema_builds_with_novas_columns_nullability_and_soft_delete(nova_engine):
    schema = inspect(nova_engine)

    assert {table.name for table in NOVA_TABLES} <= set(schema.get_table_names())
    for table in NOVA_TABLES:
        columns = {column["name"]: column for column in schema.get_columns(table.name)}
        assert set(columns) == {column.name for column in table.columns}
        assert {"created_at", "updated_at", "deleted_at", "deleted"} <= set(columns)
        assert {name for name, column in columns.items() if not column["nullable"]} == NOT_NULL[table.name]
        assert all(column.get("default") is None for name, column in columns.items() if name != "id"), table.name
    assert {"compute_id", "hidden", "locked_by", "cleaned"} <= {c["name"] for c in schema.get_columns("instances")}
    assert {"uuid", "hidden", "cross_cell_move", "dest_compute_id"} <= {
        c["name"] for c in schema.get_columns("migrations")
    }
    assert {"uuid", "version", "last_seen_up", "forced_down"} <= {c["name"] for c in schema.get_columns("services")}


def test_the_nova_schema_uses_each_backends_native_types_where_nova_does(nova_engine):
    """MEDIUMTEXT and InnoDB tables in utf8 (utf8mb3) on MariaDB, INET on PostgreSQL, BIGINT compute ids."""
    backend = nova_engine.dialect.name
    node = {column["name"]: column["type"] for column in inspect(nova_engine).get_columns("compute_nodes")}
    instance = {column["name"]: column["type"] for column in inspect(nova_engine).get_columns("instances")}

    assert type(node["cpu_info"]).__name__ == ("MEDIUMTEXT" if backend == "mysql" else "TEXT")
    assert type(node["host_ip"]).__name__ == ("INET" if backend == "postgresql" else "VARCHAR")
    assert type(instance["compute_id"]).__name__ == "BIGINT"
    assert getattr(instance["uuid"], "length", None) == 36
    if backend == "mysql":
        options = inspect(nova_engine).get_table_options("instances")
        assert (options["mysql_engine"], options["mysql_default charset"]) == ("InnoDB", "utf8mb3")


def test_an_instance_uuid_is_unique_even_across_deleted_rows(nova_engine):
    with nova_engine.begin() as conn:
        conn.execute(insert(instances).values(uuid="u-1", deleted=0, created_at=NOW))
        conn.execute(update(instances).values(deleted=instances.c.id, deleted_at=NOW))
    with pytest.raises(IntegrityError), nova_engine.begin() as conn:
        conn.execute(insert(instances).values(uuid="u-1", deleted=0, created_at=NOW))


def test_a_compute_node_is_unique_per_host_name_and_deleted_so_a_deleted_twin_may_remain(nova_engine):
    node = {"host": HOST, "hypervisor_hostname": HOST, "vcpus": 1, "memory_mb": 1, "local_gb": 1, "vcpus_used": 0,
            "memory_mb_used": 0, "local_gb_used": 0, "hypervisor_type": "QEMU", "hypervisor_version": 1,
            "cpu_info": "{}", "deleted": 0}  # fmt: skip
    with nova_engine.begin() as conn:
        conn.execute(insert(compute_nodes).values({**node, "uuid": "n-1"}))
        conn.execute(update(compute_nodes).values(deleted=compute_nodes.c.id, deleted_at=NOW))
        conn.execute(insert(compute_nodes).values({**node, "uuid": "n-2"}))
    with pytest.raises(IntegrityError), nova_engine.begin() as conn:
        conn.execute(insert(compute_nodes).values({**node, "uuid": "n-3"}))


# --- A scenario written as Nova writes it --------------------------------------------------------


def test_a_scenario_is_inserted_with_novas_conventions(database_url, nova_engine):
    insert_nova_scenario(database_url, power_outage_with_destination_node(), now=NOW)

    deleted = one(nova_engine, instances, uuid=DELETED)
    assert deleted["deleted"] == deleted["id"] != 0
    assert deleted["deleted_at"] == datetime(2024, 5, 14, 2, 51, 7)
    live = one(nova_engine, instances, uuid=RESIZING)
    assert (live["deleted"], live["deleted_at"], live["created_at"]) == (0, None, NOW)
    node = one(nova_engine, compute_nodes, uuid=NODE_UUID)
    service = one(nova_engine, services, host=HOST)
    assert node["service_id"] == service["id"] and service["uuid"] and service["version"]
    assert (node["hypervisor_type"], json.loads(node["cpu_info"])["arch"]) == ("QEMU", "x86_64")
    destination = one(nova_engine, compute_nodes, host="compute-2")
    evacuated = one(nova_engine, instances, uuid=EVACUATED)
    assert (live["compute_id"], evacuated["compute_id"]) == (node["id"], destination["id"])
    evacuation = one(nova_engine, migrations, instance_uuid=EVACUATED)
    assert evacuation["dest_compute_id"] == destination["id"]
    assert (evacuation["hidden"], evacuation["cross_cell_move"], evacuation["deleted"]) == (False, False, 0)
    assert evacuation["uuid"] and evacuation["project_id"] == evacuated["project_id"]
    assert one(nova_engine, instance_system_metadata, instance_uuid=RESIZING)["value"] == "active"


def test_a_soft_deleted_instance_takes_its_system_metadata_with_it(database_url, nova_engine):
    document = {"host": HOST, "instances": [
        {"uuid": "gone", "vm_state": "deleted", "deleted": True, "system_metadata": {"old_vm_state": "active"}},
    ]}  # fmt: skip
    insert_nova_scenario(database_url, document, now=NOW)

    meta = one(nova_engine, instance_system_metadata, instance_uuid="gone")
    assert meta["deleted"] == meta["id"] != 0 and meta["deleted_at"] == NOW


# --- compute-recover's reads on a Nova database ---------------------------------------------------


def test_recovery_reads_a_nova_database_without_its_soft_deleted_rows(database_url, nova_engine):
    insert_nova_scenario(database_url, POWER_OUTAGE, now=NOW)
    add_soft_deleted_twins(nova_engine)
    live_here = [row["uuid"] for row in POWER_OUTAGE["instances"] if row["host"] == HOST and "deleted" not in row]

    db = open_database(database_url)
    try:
        snapshot = db.load_host(HOST)
        by_uuid = db.load_instances_by_uuid([DELETED, RESIZING, EVACUATED])
        renamed = db.find_compute_node_by_hypervisor_hostname(HOST)
    finally:
        db.close()

    assert [row.uuid for row in snapshot.instances] == live_here
    resizing = next(row for row in snapshot.instances if row.uuid == RESIZING)
    assert (resizing.vm_state, resizing.task_state, resizing.power_state) == ("active", "resize_migrating", 1)
    assert resizing.system_metadata == {"old_vm_state": "active"}
    assert [(m.instance_uuid, m.status) for m in snapshot.evacuations] == [(EVACUATED, "done")]
    assert [node.uuid for node in snapshot.compute_nodes] == [NODE_UUID]
    assert snapshot.service is not None and snapshot.service.report_count == 41
    assert by_uuid[DELETED].deleted and not by_uuid[RESIZING].deleted
    assert by_uuid[EVACUATED].host == "compute-2"
    assert renamed is not None and renamed.uuid == NODE_UUID


def test_every_instance_of_the_scenario_lands_in_the_nova_tables(database_url, nova_engine):
    insert_nova_scenario(database_url, POWER_OUTAGE, now=NOW)
    with nova_engine.connect() as conn:
        counts = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in NOVA_TABLES}
    assert counts == {"instances": len(POWER_OUTAGE["instances"]), "instance_system_metadata": 1,
                      "instance_metadata": 0, "migrations": 3, "compute_nodes": 1, "services": 1,
                      "instance_info_caches": len(POWER_OUTAGE["instances"])}  # fmt: skip


def test_an_interrupted_live_migration_is_failed_through_novas_migration_type_enum(database_url, nova_engine):
    insert_nova_scenario(database_url, POWER_OUTAGE, now=NOW)
    live_migrating = "6c1a0b52-0000-4000-8000-000000000017"

    db = open_database(database_url)
    try:
        failed = db.fail_live_migrations(live_migrating)
    finally:
        db.close()

    assert failed == 1
    assert one(nova_engine, migrations, instance_uuid=live_migrating)["status"] == "error"
