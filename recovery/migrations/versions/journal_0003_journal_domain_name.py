"""Each journal entry names the libvirt domain the run acted on (`explain` shows it without --live).

Entries journaled before this revision have none (NULL).

Revision ID: journal_0003
Branch: journal
"""

import sqlalchemy as sa
from alembic import op

revision = "journal_0003"
down_revision = "journal_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recovery_journal") as batch:
        batch.add_column(sa.Column("domain_name", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("recovery_journal") as batch:
        batch.drop_column("domain_name")
