"""The compute node's free amounts (free_ram_mb, free_disk_gb, disk_available_least), as in Nova's
table: written together with the used amounts, so the record is never half-written.

Revision ID: cell_0003
Revises: cell_0002
Branch: cell
"""

import sqlalchemy as sa
from alembic import op

revision = "cell_0003"
down_revision = "cell_0002"
branch_labels = None
depends_on = None

COLUMNS = ("free_ram_mb", "free_disk_gb", "disk_available_least")


def upgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
