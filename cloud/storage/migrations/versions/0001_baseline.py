"""Baseline: the schema of the last release without migrations (commit e75567e).

Frozen here as it was, not imported from the table modules (they move on). It also adopts
a database made by that release or an older one, which has tables but no version: only
the missing tables and columns are created, as that release's start-up did, and the data
stays. From here on every change is a migration of its own.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Column, Float, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

meta = sa.MetaData()

Table(
    "nodes",
    meta,
    Column("node", String(64), primary_key=True),
    Column("commune", String(64), nullable=False),
    Column("known", Integer, nullable=False),
    Column("status", String(16)),
    Column("status_ts", Float),
    Column("status_reason", String(16)),
    Column("agent_version", String(64)),
    Column("session", String(32)),
    Column("last_seq", Integer),
    Column("last_msg_ts", Float),
    Column("last_seen", Float),
    Column("messages", Integer, nullable=False),
    Column("dead_letters", Integer, nullable=False),
    Column("rate_limited", Integer, nullable=False, server_default="0"),
)
Table(
    "node_sessions",
    meta,
    Column("node", String(64), primary_key=True),
    Column("session", String(32), primary_key=True),
    Column("first_seq", Integer, nullable=False),
    Column("max_seq", Integer, nullable=False),
    Column("received", Integer, nullable=False),
    Column("first_seen", Float, nullable=False),
)
Table(
    "dead_letters",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("topic", Text, nullable=False),
    Column("node_guess", String(64), index=True),
    Column("reason", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)
Table(
    "snapshots",
    meta,
    Column("sha256", String(64), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
)
Table(
    "events",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("node", String(64), nullable=False),
    Column("commune", String(64), nullable=False),
    Column("site", String(64), nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float),
    Column("last_ts", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("local_minute", Integer, nullable=False),
    Column("phase", String(8), nullable=False),
    Column("peak_area_pct", Float, nullable=False),
    Column("boxes", Text, nullable=False),
    Column("zones", Text, nullable=False),
    Column("score", Float),
    Column("frames", Integer),
    Column("snapshot_sha256", String(64)),
    Column("version_ts", Float, nullable=False),
    Column("messages", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("reviewed_by", String(64)),
    Column("reviewed_at", Float),
    Column("keep", Integer, nullable=False, server_default="0"),
    Column("exports", Integer, nullable=False, server_default="0"),
    Index("ux_events_device_event", "device", "event_id", unique=True),
    Index("ix_events_commune_start", "commune", "start"),
    Index("ix_events_device_start", "device", "start"),
    Index("ix_events_start", "start"),
)
Table(
    "event_notes",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", Integer, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("author", String(64), nullable=False),
    Column("at", Float, nullable=False),
    Column("text", Text, nullable=False),
)
Table(
    "alerts",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(160), nullable=False, index=True),
    Column("active_key", String(160)),
    Column("scope", String(16), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("commune", String(64), nullable=False, index=True),
    Column("cause", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("problem", String(64), nullable=False),
    Column("detail", String(160), nullable=False, server_default=""),
    Column("state", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("resolved_at", Float),
    Column("duration_s", Float),
    Column("flaps", Integer, nullable=False),
    Column("down", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("members", Text, nullable=False),
    Column("acked_by", String(128)),
    Column("acked_at", Float),
    Column("ack_comment", Text),
    Column("silenced_until", Float),
    Column("suppressed", Integer, nullable=False),
    Column("notified_at", Float),
    Column("reminders", Integer, nullable=False),
    Index("ux_alerts_active_key", "active_key", unique=True),
)
Table(
    "maintenance_windows",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_kind", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("starts_at", Float, nullable=False),
    Column("ends_at", Float),
    Column("weekdays", String(16), nullable=False),
    Column("local_start", String(5), nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("tz", String(64), nullable=False),
    Column("comment", Text, nullable=False),
)
Table(
    "alert_leases",
    meta,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", Float, nullable=False),
)
Table(
    "notice_outbox",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("alert_id", Integer, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("next_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(8), nullable=False),
    Column("done_at", Float),
    Column("last_error", Text, nullable=False),
    Index("ix_notice_outbox_queue", "state", "channel", "id"),
)
Table(
    "audit_log",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(64), nullable=False, index=True),
    Column("action", String(32), nullable=False, index=True),
    Column("target", String(128), nullable=False),
    Column("commune", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("ip", String(64), nullable=False),
    Column("user_agent", String(256), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Table(
    "users",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(128), nullable=False),
    Column("roles", String(128), nullable=False),
    Column("communes", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Integer, nullable=False, server_default="0"),
    Column("lang", String(8), nullable=False, server_default="vi"),
    Column("created_at", Float, nullable=False),
    Column("password_changed_at", Float, nullable=False),
)
Table(
    "user_sessions",
    meta,
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("ip", String(64), nullable=False),
    Column("user_agent", String(256), nullable=False),
)
Table(
    "api_tokens",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("last_used", Float),
    Column("revoked", Integer, nullable=False, server_default="0"),
)
Table(
    "login_failures",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("username", String(64), nullable=False, index=True),
    Column("ip", String(64), nullable=False, index=True),
)
Table(
    "evidence_exports",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("communes", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("filename", String(128), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
)
Table(
    "evidence_export_events",
    meta,
    Column("export", Integer, ForeignKey("evidence_exports.id"), primary_key=True),
    Column("event", Integer, primary_key=True),
)
Table(
    "reports",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("period", String(32), nullable=False),
    Column("commune", String(64), nullable=False),
    Column("first", String(10), nullable=False),
    Column("last", String(10), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("holder", String(128), nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("done_at", Float),
    Column("files", Text, nullable=False),
    Column("error", Text, nullable=False),
    sa.UniqueConstraint("kind", "period", "commune", name="uq_reports_kind_period_commune"),
)

_SQLITE_AUDIT_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


def upgrade() -> None:
    bind = op.get_bind()
    meta.create_all(bind, checkfirst=True)
    insp = sa.inspect(bind)
    for table in meta.sorted_tables:  # an older release's table lacks columns added since
        have = {c["name"] for c in insp.get_columns(table.name)}
        for c in table.columns:
            if c.name not in have:  # nullable or with a server default, as every later column was
                default = c.server_default.arg if isinstance(c.server_default, sa.DefaultClause) else None
                assert default is None or isinstance(default, str)
                op.add_column(table.name, Column(c.name, c.type, nullable=c.nullable, server_default=default))
    if bind.dialect.name == "sqlite":
        for ddl in _SQLITE_AUDIT_GUARDS:
            op.execute(ddl)


def downgrade() -> None:
    raise NotImplementedError("the baseline is where the history starts")
