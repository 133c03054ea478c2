"""The instances' project_id (Nova's column): ordered restart orders a project's own guests only.

Revision ID: cell_0004
Revises: cell_0003
Branch: cell
"""

import sqlalchemy as sa
from alembic import op

revision = "cell_0004"
down_revision = "cell_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as table:
        table.add_column(sa.Column("project_id", sa.String(255), nullable=True))
        table.create_index("ix_instances_project_id", ["project_id"])


def downgrade() -> None:
    with op.batch_alter_table("instances") as table:
        table.drop_index("ix_instances_project_id")
        table.drop_column("project_id")
