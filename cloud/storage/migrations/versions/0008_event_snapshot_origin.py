"""events: where the snapshot came from (substream cameras), its size, and why it fell back

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # All nullable: events stored before the upgrade (and cameras without a substream) say nothing
    # about their picture's origin, and the pages show them as before.
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_source", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("snapshot_wanted", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("snapshot_width_px", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("snapshot_height_px", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("snapshot_fallback", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("snapshot_fallback")
        batch_op.drop_column("snapshot_height_px")
        batch_op.drop_column("snapshot_width_px")
        batch_op.drop_column("snapshot_wanted")
        batch_op.drop_column("snapshot_source")
