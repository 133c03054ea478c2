"""Nova's cell database, the tables compute-recover touches, as Nova 2023.1 and later create them.

A fixture, not compute-recover's own model: the tests build Nova-schema databases from it on
SQLite, PostgreSQL and MariaDB to prove compute-recover reads (and later writes) a real cell
database. Written from the facts of Nova's models and schema migrations (the initial schema,
then `compute_id` / `dest_compute_id` and the dropped duplicate `uuid` index of 2023.1):

- Every table carries Nova's timestamp and soft-delete columns. `deleted` is 0 for a live row
  and the row's own `id` once deleted (so unique constraints that include it let a deleted row
  and its live successor coexist), with `deleted_at` set.
- Nova's DDL has no server defaults on these tables: its ORM writes `deleted = 0` and
  `created_at` itself, so whoever inserts rows here must give them too.
- MEDIUMTEXT and INET are MySQL- and PostgreSQL-only; elsewhere they are TEXT and VARCHAR(39).
  MySQL/MariaDB tables are InnoDB in the `utf8` character set, as Nova creates them.

`create_nova_schema(url)` builds the tables; `insert_nova_scenario(url, data)` loads a scenario
document (a fixtures/*/db.json) the way Nova would have written those rows.
"""

import json
import uuid as uuidlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine

from recovery.db.scenarios import parse_db_json

metadata = MetaData()

MYSQL_TABLE = {"mysql_engine": "InnoDB", "mysql_charset": "utf8"}


def _medium_text() -> TypeEngine[str]:
    """Nova's MediumText: up to 16 MiB on MySQL/MariaDB, where TEXT stops at 64 KiB."""
    return Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def _ip_address() -> TypeEngine[str]:
    """Nova's IP address column: PostgreSQL's INET, else a string long enough for IPv6."""
    return String(39).with_variant(postgresql.INET(), "postgresql")


def _flag() -> Boolean:
    """A boolean column added by sqlalchemy-migrate in Nova's history: no CHECK constraint."""
    return Boolean(create_constraint=False)


def _timestamps_and_soft_delete() -> list[Column[Any]]:
    return [
        Column("created_at", DateTime),
        Column("updated_at", DateTime),
        Column("deleted_at", DateTime),
        Column("deleted", Integer),
    ]


instances = Table(
    "instances",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("internal_id", Integer),
    Column("user_id", String(255)),
    Column("project_id", String(255)),
    Column("image_ref", String(255)),
    Column("kernel_id", String(255)),
    Column("ramdisk_id", String(255)),
    Column("launch_index", Integer),
    Column("key_name", String(255)),
    Column("key_data", _medium_text()),
    Column("power_state", Integer),
    Column("vm_state", String(255)),
    Column("memory_mb", Integer),
    Column("vcpus", Integer),
    Column("hostname", String(255)),
    Column("host", String(255)),
    Column("user_data", _medium_text()),
    Column("reservation_id", String(255)),
    Column("launched_at", DateTime),
    Column("terminated_at", DateTime),
    Column("display_name", String(255)),
    Column("display_description", String(255)),
    Column("availability_zone", String(255)),
    Column("locked", Boolean),
    Column("os_type", String(255)),
    Column("launched_on", _medium_text()),
    Column("instance_type_id", Integer),
    Column("vm_mode", String(255)),
    Column("uuid", String(36), nullable=False),
    Column("architecture", String(255)),
    Column("root_device_name", String(255)),
    Column("access_ip_v4", _ip_address()),
    Column("access_ip_v6", _ip_address()),
    Column("config_drive", String(255)),
    Column("task_state", String(255)),
    Column("default_ephemeral_device", String(255)),
    Column("default_swap_device", String(255)),
    Column("progress", Integer),
    Column("auto_disk_config", Boolean),
    Column("shutdown_terminate", Boolean),
    Column("disable_terminate", Boolean),
    Column("root_gb", Integer),
    Column("ephemeral_gb", Integer),
    Column("cell_name", String(255)),
    Column("node", String(255)),
    Column("locked_by", Enum("owner", "admin", name="instances0locked_by")),
    Column("cleaned", Integer),
    Column("ephemeral_key_uuid", String(36)),
    Column("hidden", _flag()),
    Column("compute_id", BigInteger),
    UniqueConstraint("uuid", name="uniq_instances0uuid"),
    Index("instances_reservation_id_idx", "reservation_id"),
    Index("instances_terminated_at_launched_at_idx", "terminated_at", "launched_at"),
    Index("instances_task_state_updated_at_idx", "task_state", "updated_at"),
    Index("instances_uuid_deleted_idx", "uuid", "deleted"),
    Index("instances_host_node_deleted_idx", "host", "node", "deleted"),
    Index("instances_host_deleted_cleaned_idx", "host", "deleted", "cleaned"),
    Index("instances_project_id_deleted_idx", "project_id", "deleted"),
    Index("instances_deleted_created_at_idx", "deleted", "created_at"),
    Index("instances_project_id_idx", "project_id"),
    Index("instances_updated_at_project_id_idx", "updated_at", "project_id"),
    Index("instances_compute_id_deleted_idx", "compute_id", "deleted"),
    **MYSQL_TABLE,
)

instance_system_metadata = Table(
    "instance_system_metadata",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column(
        "instance_uuid",
        String(36),
        ForeignKey("instances.uuid", name="instance_system_metadata_ibfk_1"),
        nullable=False,
    ),
    Column("key", String(255), nullable=False),
    Column("value", String(255)),
    Index("instance_uuid", "instance_uuid"),
    **MYSQL_TABLE,
)

instance_metadata = Table(
    "instance_metadata",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column("key", String(255)),
    Column("value", String(255)),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", name="instance_metadata_instance_uuid_fkey")),
    Index("instance_metadata_instance_uuid_idx", "instance_uuid"),
    **MYSQL_TABLE,
)

migrations = Table(
    "migrations",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column("source_compute", String(255)),
    Column("dest_compute", String(255)),
    Column("dest_host", String(255)),
    Column("status", String(255)),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", name="fk_migrations_instance_uuid")),
    Column("old_instance_type_id", Integer),
    Column("new_instance_type_id", Integer),
    Column("source_node", String(255)),
    Column("dest_node", String(255)),
    Column("migration_type", Enum("migration", "resize", "live-migration", "evacuation", name="migration_type")),
    Column("hidden", _flag()),
    Column("memory_total", BigInteger),
    Column("memory_processed", BigInteger),
    Column("memory_remaining", BigInteger),
    Column("disk_total", BigInteger),
    Column("disk_processed", BigInteger),
    Column("disk_remaining", BigInteger),
    Column("uuid", String(36)),
    Column("cross_cell_move", _flag()),
    Column("user_id", String(255)),
    Column("project_id", String(255)),
    Column("dest_compute_id", BigInteger),
    Index("migrations_uuid", "uuid", unique=True),
    Index("migrations_instance_uuid_and_status_idx", "deleted", "instance_uuid", "status"),
    Index("migrations_updated_at_idx", "updated_at"),
    # MySQL caps an index key's length, so Nova indexes the first 100 characters of each name.
    Index(
        "migrations_by_host_nodes_and_status_idx",
        *("deleted", "source_compute", "dest_compute", "source_node", "dest_node", "status"),
        mysql_length={"source_compute": 100, "dest_compute": 100, "source_node": 100, "dest_node": 100},
    ),
    Index("migrations_dest_compute_id_deleted_idx", "dest_compute_id", "deleted"),
    Index("migrations_by_dest_host_nodes_and_status_idx", "deleted", "dest_compute", "dest_node", "status"),
    Index("migrations_by_src_host_nodes_and_status_idx", "deleted", "source_compute", "source_node", "status"),
    **MYSQL_TABLE,
)

compute_nodes = Table(
    "compute_nodes",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column("service_id", Integer),
    Column("vcpus", Integer, nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("local_gb", Integer, nullable=False),
    Column("vcpus_used", Integer, nullable=False),
    Column("memory_mb_used", Integer, nullable=False),
    Column("local_gb_used", Integer, nullable=False),
    Column("hypervisor_type", _medium_text(), nullable=False),
    Column("hypervisor_version", Integer, nullable=False),
    Column("cpu_info", _medium_text(), nullable=False),
    Column("disk_available_least", Integer),
    Column("free_ram_mb", Integer),
    Column("free_disk_gb", Integer),
    Column("current_workload", Integer),
    Column("running_vms", Integer),
    Column("hypervisor_hostname", String(255)),
    Column("host_ip", _ip_address()),
    Column("supported_instances", Text),
    Column("pci_stats", Text),
    Column("metrics", Text),
    Column("extra_resources", Text),
    Column("stats", Text),
    Column("numa_topology", Text),
    Column("host", String(255)),
    Column("ram_allocation_ratio", Float),
    Column("cpu_allocation_ratio", Float),
    Column("uuid", String(36)),
    Column("disk_allocation_ratio", Float),
    Column("mapped", Integer),
    Index("compute_nodes_uuid_idx", "uuid", unique=True),
    UniqueConstraint(
        "host", "hypervisor_hostname", "deleted", name="uniq_compute_nodes0host0hypervisor_hostname0deleted"
    ),
    **MYSQL_TABLE,
)

services = Table(
    "services",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column("host", String(255)),
    Column("binary", String(255)),
    Column("topic", String(255)),
    Column("report_count", Integer, nullable=False),
    Column("disabled", Boolean),
    Column("disabled_reason", String(255)),
    Column("last_seen_up", DateTime),
    Column("forced_down", _flag()),
    Column("version", Integer),
    Column("uuid", String(36)),
    Index("services_uuid_idx", "uuid", unique=True),
    UniqueConstraint("host", "topic", "deleted", name="uniq_services0host0topic0deleted"),
    UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
    **MYSQL_TABLE,
)

instance_info_caches = Table(
    "instance_info_caches",
    metadata,
    *_timestamps_and_soft_delete(),
    Column("id", Integer, primary_key=True),
    Column("network_info", _medium_text()),
    Column("instance_uuid", String(36), ForeignKey("instances.uuid", name="instance_info_caches_instance_uuid_fkey"),
           nullable=False),
    UniqueConstraint("instance_uuid", name="uniq_instance_info_caches0instance_uuid"),
    **MYSQL_TABLE,
)
"""Each instance's network info cache: Nova creates it with the instance (`[]` until its ports are bound)."""

NOVA_TABLES = (instances, instance_system_metadata, instance_metadata, migrations, compute_nodes, services,
               instance_info_caches)

SERVICE_VERSION = 66
"""The nova-compute object version written into services.version; compute-recover never reads it."""

HYPERVISOR = {"hypervisor_type": "QEMU", "hypervisor_version": 8_002_000}
"""What the libvirt driver reports for a QEMU 8.2 host (major * 1,000,000 + minor * 1,000 + micro)."""

CPU_INFO = {"arch": "x86_64", "model": "Cascadelake-Server", "vendor": "Intel",
            "topology": {"sockets": 1, "cores": 8, "threads": 2}, "features": ["avx512f", "vmx"]}  # fmt: skip
"""A libvirt driver's cpu_info document (stored as JSON text)."""


def create_nova_schema(url: str) -> None:
    """Create Nova's tables in the (empty) database at `url`."""
    engine = create_engine(url)
    try:
        metadata.create_all(engine)
    finally:
        engine.dispose()


def insert_nova_scenario(url: str, data: Mapping[str, Any], now: datetime | None = None) -> None:
    """Insert a scenario document's rows into a Nova-schema database the way Nova writes them, in
    one transaction: every NOT NULL column filled, `created_at` set, uuids on services, nodes and
    migrations, each node tied to its host's nova-compute service, each instance's `compute_id`
    and each migration's `dest_compute_id` pointing at the node it names, and a deleted instance
    (with its system and user metadata) soft-deleted as Nova does it: `deleted = id`, `deleted_at` set."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    rows = parse_db_json(data)
    live = {"created_at": now, "deleted": 0}
    owners = {row["uuid"]: (f"user-{index % 3}", f"project-{index % 2}") for index, row in enumerate(rows.instances)}
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _insert(conn, services, [
                {**service, **live, "uuid": str(uuidlib.uuid4()), "version": SERVICE_VERSION}
                for service in rows.services
            ])  # fmt: skip
            compute_services = select(services.c.host, services.c.id).where(services.c.binary == "nova-compute")
            service_ids = dict(conn.execute(compute_services).all())
            _insert(conn, compute_nodes, [{**_node_row(node, service_ids.get(node["host"])), **live}
                                          for node in rows.compute_nodes])  # fmt: skip
            nodes = select(compute_nodes.c.host, compute_nodes.c.hypervisor_hostname, compute_nodes.c.id)
            node_ids = {(host, name): node_id for host, name, node_id in conn.execute(nodes)}
            _insert(conn, instances, [{**_instance_row(row, owners[row["uuid"]], node_ids), **live}
                                      for row in rows.instances])  # fmt: skip
            _insert(conn, instance_system_metadata, [{**meta, **live} for meta in rows.system_metadata])
            _insert(conn, instance_metadata, [{**meta, **live} for meta in rows.metadata])
            _insert(conn, instance_info_caches, [{"instance_uuid": row["uuid"], "network_info": "[]", **live}
                                                 for row in rows.instances])
            _insert(conn, migrations, [
                {
                    **migration, **live, "uuid": str(uuidlib.uuid4()), "hidden": False, "cross_cell_move": False,
                    "dest_compute_id": node_ids.get((migration["dest_compute"], migration["dest_node"])),
                    "user_id": owners.get(migration["instance_uuid"], (None, None))[0],
                    "project_id": owners.get(migration["instance_uuid"], (None, None))[1],
                }
                for migration in rows.migrations
            ])  # fmt: skip
            if rows.deleted_uuids:
                _soft_delete_instances(conn, rows.deleted_uuids, now)
    finally:
        engine.dispose()


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """All of a table's rows in one bulk statement."""
    if rows:
        conn.execute(insert(table), rows)


def _node_row(node: Mapping[str, Any], service_id: int | None) -> dict[str, Any]:
    return {
        **node,
        **HYPERVISOR,
        "service_id": service_id,
        "cpu_info": json.dumps(CPU_INFO),
        "free_ram_mb": node["memory_mb"] - node["memory_mb_used"],
        "free_disk_gb": node["local_gb"] - node["local_gb_used"],
        "disk_available_least": node["local_gb"] - node["local_gb_used"],
        "current_workload": 0,
        "stats": "{}",
        "mapped": 1,
    }


def _instance_row(
    instance: Mapping[str, Any], owner: tuple[str, str], node_ids: Mapping[tuple[str, str], int]
) -> dict[str, Any]:
    user_id, project_id = owner
    return {
        **instance,
        "user_id": user_id,
        "project_id": project_id,
        "hostname": instance["display_name"] or instance["uuid"],
        "launched_on": instance["host"],
        "compute_id": node_ids.get((instance["host"], instance["node"])),
        "launch_index": 0,
        "ephemeral_gb": 0,
        "locked": False,
        "cleaned": 0,
        "hidden": False,
        "shutdown_terminate": False,
        "disable_terminate": False,
    }


def _soft_delete_instances(conn: Connection, uuids: list[str], now: datetime) -> None:
    """Nova's soft delete: the row's own id into `deleted`, and its system and user metadata and its network
    info cache with it."""
    conn.execute(update(instances).where(instances.c.uuid.in_(uuids)).values(deleted=instances.c.id))
    for table in (instance_system_metadata, instance_metadata, instance_info_caches):
        conn.execute(update(table).where(table.c.instance_uuid.in_(uuids)).values(deleted=table.c.id, deleted_at=now))
