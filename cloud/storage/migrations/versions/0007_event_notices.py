"""police event notifications: event_notices and events.announced_labels

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_notices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("notifiers", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(["event"], ["events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("event_notices", schema=None) as batch_op:
        batch_op.create_index("ux_event_notices_event_rule", ["event", "rule"], unique=True)

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("announced_labels", sa.String(length=512), nullable=True))
    # Events stored before the upgrade count as seen by the rules: a new rule must not read out
    # the last hours' events as news the moment the upgraded cloud starts.
    op.execute("UPDATE events SET announced_labels = COALESCE(label_set, '')")


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("announced_labels")
    with op.batch_alter_table("event_notices", schema=None) as batch_op:
        batch_op.drop_index("ux_event_notices_event_rule")
    op.drop_table("event_notices")
