"""The part of Nova's cell schema compute-recover uses, for a database of its own (no Nova).

Revision ID: cell_0001
Branch: cell
"""

import sqlalchemy as sa
from alembic import op

revision = "cell_0001"
down_revision = None
branch_labels = ("cell",)
depends_on = None


def _soft_delete_columns() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False, unique=True),
        sa.Column("host", sa.String(255), index=True),
        sa.Column("node", sa.String(255)),
        sa.Column("display_name", sa.String(255)),
        sa.Column("vm_state", sa.String(255)),
        sa.Column("task_state", sa.String(255)),
        sa.Column("power_state", sa.Integer()),
        *_soft_delete_columns(),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("vcpus", sa.Integer()),
        sa.Column("memory_mb", sa.Integer()),
        sa.Column("root_gb", sa.Integer()),
        sa.Column("launched_at", sa.DateTime()),
    )
    op.create_table(
        "instance_system_metadata",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255)),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_uuid", sa.String(36), index=True),
        sa.Column("source_compute", sa.String(255), index=True),
        sa.Column("dest_compute", sa.String(255)),
        sa.Column("source_node", sa.String(255)),
        sa.Column("dest_node", sa.String(255)),
        sa.Column("migration_type", sa.String(255)),
        sa.Column("status", sa.String(255)),
        *_soft_delete_columns(),
    )
    op.create_table(
        "compute_nodes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uuid", sa.String(36), unique=True),
        sa.Column("host", sa.String(255), index=True),
        sa.Column("hypervisor_hostname", sa.String(255)),
        *(sa.Column(name, sa.Integer(), nullable=False, server_default="0") for name in (
            "vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used")),
        sa.Column("running_vms", sa.Integer()),
        *_soft_delete_columns(),
        sa.UniqueConstraint("host", "hypervisor_hostname", "deleted",
                            name="uniq_compute_nodes0host0hypervisor_hostname0deleted"),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(255), index=True),
        sa.Column("binary", sa.String(255)),
        sa.Column("topic", sa.String(255)),
        sa.Column("report_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(255)),
        sa.Column("forced_down", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("last_seen_up", sa.DateTime()),
        *_soft_delete_columns(),
    )


def downgrade() -> None:
    for table in ("services", "compute_nodes", "migrations", "instance_system_metadata", "instances"):
        op.drop_table(table)
