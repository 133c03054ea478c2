"""Each finished run's report, as the run printed it (`compute-recover runs ID` prints it again).

Revision ID: journal_0002
Branch: journal
"""

import sqlalchemy as sa
from alembic import op

revision = "journal_0002"
down_revision = "journal_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_runs") as batch:
        batch.add_column(sa.Column("report", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("recovery_runs") as batch:
        batch.drop_column("report")
