"""The power outage of fixtures/power-outage as Nova's cell database holds it, with the rows Nova
soft-deletes beside it: shared by the Nova schema tests and the tests of compute-recover on that schema."""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from tests.support.nova_cell_schema import compute_nodes, instance_system_metadata, migrations, services
from tests.support.paths import FIXTURES

POWER_OUTAGE = json.loads((FIXTURES / "power-outage" / "db.json").read_text())
HOST = POWER_OUTAGE["host"]
DELETED = "6c1a0b52-0000-4000-8000-000000000024"
RESIZING = "6c1a0b52-0000-4000-8000-000000000016"
EVACUATED = "6c1a0b52-0000-4000-8000-000000000018"
NODE_UUID = POWER_OUTAGE["compute_nodes"][0]["uuid"]
NOW = datetime(2024, 5, 14, 3, 0, 0)


def power_outage_with_destination_node() -> dict[str, Any]:
    """The power-outage scenario plus the evacuation's destination node, so dest_compute_id has a target."""
    destination = {"uuid": "c0de0000-0000-4000-8000-000000000002", "host": "compute-2", "vcpus": 16,
                   "memory_mb": 65536, "local_gb": 800}  # fmt: skip
    return {**POWER_OUTAGE, "compute_nodes": [*POWER_OUTAGE["compute_nodes"], destination]}


def add_soft_deleted_twins(engine: Engine) -> None:
    """Rows Nova has soft-deleted (deleted = id) beside the live ones: none may be read as live."""
    twins = ((compute_nodes, compute_nodes.c.uuid == NODE_UUID), (services, services.c.host == HOST),
             (migrations, migrations.c.instance_uuid == EVACUATED))  # fmt: skip
    with engine.begin() as conn:
        for table, live in twins:
            row = dict(conn.execute(select(table).where(live)).mappings().one())
            twin = {name: value for name, value in row.items() if name != "id"}
            conn.execute(insert(table).values({**twin, "uuid": f"deleted-{table.name}", "deleted": -1}))
        conn.execute(insert(instance_system_metadata).values(instance_uuid=RESIZING, key="stale", deleted=-1))
        for table in (compute_nodes, services, migrations, instance_system_metadata):
            conn.execute(update(table).where(table.c.deleted == -1).values(deleted=table.c.id, deleted_at=NOW))
