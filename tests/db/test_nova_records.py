"""The records a run leaves as nova-compute expects them (issue 18, item 2), at the store: evacuations
read as Nova reads them, the compute node's free and used columns written together from the same
figures, and no write (so no new updated_at) where nothing changes. Real databases of each kind."""

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, update

from recovery.db import ComputeNode, Database, Instance, Migration
from recovery.db.scenarios import seed
from tests.support.databases import migrated_database

HOST = "compute-1"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = migrated_database(database_url)
    yield database
    database.close()


def evacuation(uuid: str, status: str = "done") -> dict[str, Any]:
    return {"instance_uuid": uuid, "source_compute": HOST, "dest_compute": "compute-2", "source_node": HOST,
            "migration_type": "evacuation", "status": status}


def soft_delete_migrations(db: Database, uuid: str) -> None:
    """As Nova's instance.destroy() leaves an evacuated instance's migrations: deleted = id."""
    with db.engine.begin() as conn:
        conn.execute(update(Migration).where(Migration.instance_uuid == uuid).values(deleted=Migration.id))


def test_a_soft_deleted_evacuation_of_a_deleted_instance_is_read_as_nova_reads_it(db):
    seed(db, {"host": HOST, "instances": [{"uuid": "gone", "host": "compute-2", "vm_state": "deleted",
                                           "deleted": True},
                                          {"uuid": "moved", "host": "compute-2", "vm_state": "active"}],
              "migrations": [evacuation("gone"), evacuation("moved", "accepted"), evacuation("gone", "completed")]})
    soft_delete_migrations(db, "gone")
    evacuations = db.load_host(HOST).evacuations
    assert [(m.instance_uuid, m.status) for m in evacuations] == [("gone", "done"), ("moved", "accepted")]
    again = db.evacuation_of(HOST, "gone")
    assert again is not None and again.status == "done"


def test_a_soft_deleted_twin_of_a_live_evacuation_is_not_read_beside_it(db):
    seed(db, {"host": HOST, "instances": [{"uuid": "moved", "host": "compute-2", "vm_state": "active"}],
              "migrations": [evacuation("moved"), evacuation("moved")]})
    with db.engine.begin() as conn:
        first = conn.execute(select(Migration.id).order_by(Migration.id)).scalars().first()
        conn.execute(update(Migration).where(Migration.id == first).values(deleted=Migration.id))
    assert [m.id for m in db.load_host(HOST).evacuations] == [first + 1]


def node_row(db: Database) -> dict[str, Any]:
    with db.engine.connect() as conn:
        return dict(conn.execute(select(ComputeNode.__table__)).mappings().one())


def test_the_compute_node_is_written_whole_free_from_the_same_figures_as_used(db):
    seed(db, {"host": HOST, "instances": [
        {"uuid": "a", "vm_state": "active", "vcpus": 2, "memory_mb": 2048, "root_gb": 20},
        {"uuid": "b", "vm_state": "stopped", "vcpus": 1, "memory_mb": 512, "root_gb": 10},
        {"uuid": "c", "vm_state": "shelved_offloaded", "vcpus": 8, "memory_mb": 8192, "root_gb": 80}]})
    db.upsert_compute_node(HOST, HOST, vcpus=16, memory_mb=32768, local_gb=500)
    node = node_row(db)
    assert (node["vcpus_used"], node["memory_mb_used"], node["local_gb_used"], node["running_vms"]) == (3, 2560, 30, 2)
    assert node["free_ram_mb"] == 32768 - 2560 == node["memory_mb"] - node["memory_mb_used"]
    assert node["free_disk_gb"] == 500 - 30 == node["local_gb"] - node["local_gb_used"]
    assert node["disk_available_least"] == node["free_disk_gb"]


def test_a_compute_node_that_already_holds_the_figures_is_not_written_again(db):
    seed(db, {"host": HOST, "instances": [{"uuid": "a", "vm_state": "active", "vcpus": 2, "memory_mb": 2048,
                                           "root_gb": 20}]})
    db.upsert_compute_node(HOST, HOST, vcpus=16, memory_mb=32768, local_gb=500)
    first = node_row(db)
    again = db.upsert_compute_node(HOST, HOST, vcpus=16, memory_mb=32768, local_gb=500)
    assert node_row(db) == first and again is not None and again.free_ram_mb == 30720
    with db.engine.begin() as conn:  # an instance grows: used and free move together, stamped
        conn.execute(update(Instance).values(memory_mb=4096))
    db.upsert_compute_node(HOST, HOST, vcpus=16, memory_mb=32768, local_gb=500)
    changed = node_row(db)
    assert (changed["memory_mb_used"], changed["free_ram_mb"]) == (4096, 28672)
    assert changed["updated_at"] is not None and changed["updated_at"] >= first["updated_at"]


def test_a_check_claim_writes_nothing_and_tells_whether_the_row_still_holds_its_decided_state(db):
    seed(db, {"host": HOST, "instances": [{"uuid": "a", "vm_state": "active", "power_state": "running"}]})
    [row] = db.load_host(HOST).instances
    expect = (row.vm_state, row.task_state, row.updated_at)
    with db.engine.connect() as conn:
        before = dict(conn.execute(select(Instance.__table__)).mappings().one())
    with db.transaction("check") as conn:
        assert db.still_holds(conn, "a", expect) is True
    with db.engine.connect() as conn:
        assert dict(conn.execute(select(Instance.__table__)).mappings().one()) == before
    with db.engine.begin() as conn:  # another writer saved it since
        conn.execute(update(Instance).values(updated_at=db.next_stamp(row.updated_at)))
    with db.transaction("check") as conn:
        assert db.still_holds(conn, "a", expect) is False
