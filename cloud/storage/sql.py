"""Device state and dead letters in SQL (SQLAlchemy 2 Core; SQLite by default, PostgreSQL by URL).

Ingest writes here once per group commit, aggregated per node, not once per message:
that keeps SQL off the hot path. Every update is additive or guarded by a timestamp,
so several workers on a shared subscription can write concurrently in any order.

Sequence gaps are counted per (node, session) as ``max_seq - first_seq + 1 - received``:
additive across workers, unlike "previous seq + 1", which breaks as soon as two
workers each see half of a node's messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url

from cloud.events.store import EventRecord, upsert_events
from cloud.events.store import metadata as events_metadata
from cloud.storage.schema import ensure_schema
from cloud.storage.sqlexpr import greatest as _greatest
from cloud.storage.sqlexpr import least as _least

metadata = MetaData()

nodes = Table(
    "nodes",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("commune", String(64), nullable=False, default=""),
    Column("known", Integer, nullable=False, default=1),
    Column("status", String(16)),  # online | offline | NULL (never sent a status)
    Column("status_ts", Float),  # edge time of that status, epoch seconds
    Column("status_reason", String(16)),
    Column("agent_version", String(64)),
    Column("session", String(32)),
    Column("last_seq", Integer),
    Column("last_msg_ts", Float),  # edge time of the newest message
    Column("last_seen", Float),  # cloud receive time of the newest message, epoch seconds
    Column("messages", Integer, nullable=False, default=0),
    Column("dead_letters", Integer, nullable=False, default=0),
    # messages over the node's rate limit: acknowledged, counted, not stored (issue 9)
    Column("rate_limited", Integer, nullable=False, default=0, server_default="0"),
)

node_sessions = Table(
    "node_sessions",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("session", String(32), primary_key=True),
    Column("first_seq", Integer, nullable=False),
    Column("max_seq", Integer, nullable=False),
    Column("received", Integer, nullable=False),
    Column("first_seen", Float, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", Float, nullable=False, index=True),
    Column("topic", Text, nullable=False),
    Column("node_guess", String(64), index=True),
    Column("reason", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("node", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_snapshots_event", "node", "event_id"),  # an event's snapshots, for its labels
)


@dataclass(slots=True)
class NodeDelta:
    """What one batch learned about one node."""

    commune: str
    known: bool
    messages: int = 0
    dead_letters: int = 0
    rate_limited: int = 0
    last_seen: float = 0.0
    last_msg_ts: float | None = None
    session: str | None = None
    last_seq: int | None = None


@dataclass(slots=True)
class SessionDelta:
    first_seq: int
    max_seq: int
    received: int = 0
    first_seen: float = 0.0


@dataclass(slots=True)
class StatusUpdate:
    node: str
    commune: str
    known: bool
    state: str
    reason: str
    ts: float
    agent_version: str
    session: str


@dataclass(slots=True)
class DeadLetter:
    topic: str
    node_guess: str | None
    reason: str
    payload: bytes
    received_at: float = field(default_factory=time.time)


@dataclass(slots=True)
class SnapshotRecord:
    sha256: str
    node: str
    event_id: str
    size: int
    received_at: float


@dataclass(slots=True)
class BatchUpdate:
    """Everything one group commit writes to SQL, in one transaction."""

    nodes: dict[str, NodeDelta] = field(default_factory=dict)
    sessions: dict[tuple[str, str], SessionDelta] = field(default_factory=dict)
    statuses: list[StatusUpdate] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    snapshots: list[SnapshotRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.nodes or self.sessions or self.statuses or self.dead or self.snapshots or self.events
        )

    @property
    def must_write_now(self) -> bool:
        """Rows that are acknowledged data (not just counters) and so cannot wait."""
        return bool(self.statuses or self.dead or self.snapshots or self.events)

    def merge(self, other: BatchUpdate) -> None:
        """Fold ``other`` into this one (counters added, newest values kept)."""
        for node, d in other.nodes.items():
            mine = self.nodes.get(node)
            if mine is None:
                self.nodes[node] = d
                continue
            mine.messages += d.messages
            mine.dead_letters += d.dead_letters
            mine.rate_limited += d.rate_limited
            mine.last_seen = max(mine.last_seen, d.last_seen)
            if d.last_msg_ts is not None and (mine.last_msg_ts is None or d.last_msg_ts >= mine.last_msg_ts):
                mine.last_msg_ts, mine.session, mine.last_seq = d.last_msg_ts, d.session, d.last_seq
        for key, sd in other.sessions.items():
            ms = self.sessions.get(key)
            if ms is None:
                self.sessions[key] = sd
                continue
            ms.first_seq = min(ms.first_seq, sd.first_seq)
            ms.max_seq = max(ms.max_seq, sd.max_seq)
            ms.received += sd.received
        self.statuses.extend(other.statuses)
        self.dead.extend(other.dead)
        self.snapshots.extend(other.snapshots)
        self.events.extend(other.events)


class SqlStore:
    def __init__(self, url: str, *, password: str = "", busy_timeout_ms: int = 10_000) -> None:
        u = make_url(url)
        if password:
            u = u.set(password=password)
        self.dialect = u.get_backend_name()
        if self.dialect == "sqlite" and u.database and u.database != ":memory:":
            from pathlib import Path

            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(u, pool_pre_ping=self.dialect != "sqlite")
        if self.dialect == "sqlite":
            timeout = busy_timeout_ms

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={int(timeout)}")
                cur.execute("PRAGMA synchronous=FULL")  # dead letters are acked after this commit
                cur.close()

        self._create_schema()

    def _create_schema(self) -> None:
        ensure_schema(self.engine, metadata)
        ensure_schema(self.engine, events_metadata)

    def _insert(self, table: Table) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        raise ValueError(f"unsupported SQL dialect {self.dialect!r} (use sqlite or postgresql)")

    def apply(self, batch: BatchUpdate) -> None:
        """Write one batch in one transaction; returns when it is committed."""
        if not batch:
            return
        with self.engine.begin() as conn:
            if batch.nodes:
                ins = self._insert(nodes)
                ex = ins.excluded
                newer = (nodes.c.last_msg_ts.is_(None)) | (ex.last_msg_ts >= nodes.c.last_msg_ts)
                stmt = ins.on_conflict_do_update(
                    index_elements=[nodes.c.node],
                    set_={
                        "messages": nodes.c.messages + ex.messages,
                        "dead_letters": nodes.c.dead_letters + ex.dead_letters,
                        "rate_limited": nodes.c.rate_limited + ex.rate_limited,
                        "last_seen": _greatest(nodes.c.last_seen, ex.last_seen),
                        "last_msg_ts": case(
                            (ex.last_msg_ts.is_(None), nodes.c.last_msg_ts),
                            else_=_greatest(nodes.c.last_msg_ts, ex.last_msg_ts),
                        ),
                        "session": case((ex.session.is_not(None) & newer, ex.session), else_=nodes.c.session),
                        "last_seq": case(
                            (ex.last_seq.is_not(None) & newer, ex.last_seq), else_=nodes.c.last_seq
                        ),
                    },
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "node": n,
                            "commune": d.commune,
                            "known": int(d.known),
                            "messages": d.messages,
                            "dead_letters": d.dead_letters,
                            "rate_limited": d.rate_limited,
                            "last_seen": d.last_seen,
                            "last_msg_ts": d.last_msg_ts,
                            "session": d.session,
                            "last_seq": d.last_seq,
                        }
                        for n, d in batch.nodes.items()
                    ],
                )
            if batch.sessions:
                ins = self._insert(node_sessions)
                ex = ins.excluded
                c = node_sessions.c
                stmt = ins.on_conflict_do_update(
                    index_elements=[c.node, c.session],
                    set_={
                        "first_seq": _least(c.first_seq, ex.first_seq),
                        "max_seq": _greatest(c.max_seq, ex.max_seq),
                        "received": c.received + ex.received,
                    },
                )
                conn.execute(
                    stmt,
                    [
                        {
                            "node": n,
                            "session": s,
                            "first_seq": d.first_seq,
                            "max_seq": d.max_seq,
                            "received": d.received,
                            "first_seen": d.first_seen,
                        }
                        for (n, s), d in batch.sessions.items()
                    ],
                )
            for st in batch.statuses:
                ins = self._insert(nodes)
                ex = ins.excluded
                stmt = ins.on_conflict_do_update(
                    index_elements=[nodes.c.node],
                    set_={
                        "status": ex.status,
                        "status_ts": ex.status_ts,
                        "status_reason": ex.status_reason,
                        "agent_version": ex.agent_version,
                    },
                    where=(nodes.c.status_ts.is_(None)) | (nodes.c.status_ts <= ex.status_ts),
                )
                conn.execute(
                    stmt,
                    {
                        "node": st.node,
                        "commune": st.commune,
                        "known": int(st.known),
                        "status": st.state,
                        "status_ts": st.ts,
                        "status_reason": st.reason,
                        "agent_version": st.agent_version,
                        "session": st.session,
                        "messages": 0,
                        "dead_letters": 0,
                        "rate_limited": 0,
                    },
                )
            if batch.dead:
                conn.execute(
                    dead_letters.insert(),
                    [
                        {
                            "received_at": d.received_at,
                            "topic": d.topic,
                            "node_guess": d.node_guess,
                            "reason": d.reason,
                            "size": len(d.payload),
                            "payload": d.payload,
                        }
                        for d in batch.dead
                    ],
                )
            if batch.snapshots:
                stmt = self._insert(snapshots).on_conflict_do_nothing(index_elements=[snapshots.c.sha256])
                conn.execute(
                    stmt,
                    [
                        {
                            "sha256": s.sha256,
                            "node": s.node,
                            "event_id": s.event_id,
                            "size": s.size,
                            "received_at": s.received_at,
                        }
                        for s in batch.snapshots
                    ],
                )
            if batch.events:
                upsert_events(conn, self._insert, batch.events)

    # ------------------------------------------------------------------ reads (API)
    def node_states(self) -> dict[str, dict[str, Any]]:
        """Every node seen, with its gap count summed over sessions."""
        gaps = (
            select(
                node_sessions.c.node,
                func.sum(
                    case(
                        (
                            node_sessions.c.max_seq - node_sessions.c.first_seq + 1 - node_sessions.c.received
                            > 0,
                            node_sessions.c.max_seq
                            - node_sessions.c.first_seq
                            + 1
                            - node_sessions.c.received,
                        ),
                        else_=0,
                    )
                ).label("gaps"),
            )
            .group_by(node_sessions.c.node)
            .subquery()
        )
        q = select(nodes, func.coalesce(gaps.c.gaps, 0).label("gaps")).outerjoin(
            gaps, gaps.c.node == nodes.c.node
        )
        with self.engine.connect() as conn:
            return {row.node: dict(row._mapping) for row in conn.execute(q)}

    def dead_letter_rows(self, limit: int = 100, node: str | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        q = select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
        if node is not None:
            q = q.where(dead_letters.c.node_guess == node)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def ping(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except Exception as exc:
            return str(exc).splitlines()[0][:200]
        return None

    def dispose(self) -> None:
        self.engine.dispose()
