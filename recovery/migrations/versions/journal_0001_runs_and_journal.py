"""compute-recover's own tables: runs (with their status and holder) and the decision journal.

Revision ID: journal_0001
Branch: journal
"""

import sqlalchemy as sa
from alembic import op

revision = "journal_0001"
down_revision = None
branch_labels = ("journal",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recovery_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.Integer()),
        sa.Column("machine", sa.String(255)),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("totals", sa.Text()),
    )
    op.create_table(
        "recovery_journal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("recovery_runs.id"), nullable=False, index=True),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("start_state", sa.String(255)),
        *(sa.Column(name, sa.Text()) for name in ("facts", "path", "considered", "actions")),
        sa.Column("final_vm_state", sa.String(255)),
        sa.Column("final_task_state", sa.String(255)),
        sa.Column("final_power_state", sa.Integer()),
        sa.Column("outcome", sa.String(32)),
        sa.Column("error", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
    )


def downgrade() -> None:
    op.drop_table("recovery_journal")
    op.drop_table("recovery_runs")
