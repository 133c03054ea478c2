"""Nova's instance_metadata table (the user's metadata, where `recover:*` policy keys live).

Revision ID: cell_0002
Revises: cell_0001
Branch: cell
"""

import sqlalchemy as sa
from alembic import op

revision = "cell_0002"
down_revision = "cell_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_metadata",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("instance_uuid", sa.String(36), nullable=False, index=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255)),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column("deleted", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("instance_metadata")
