"""Device state and dead letters in SQL (SQLAlchemy 2 Core; SQLite by default, PostgreSQL by URL).

Ingest writes here once per group commit, aggregated per node, not once per message.
Every update is additive, a merge, or guarded by an order, so several workers on a shared
subscription can write concurrently in any order: a status only replaces an older one
(``wire.status_order``); counters add up.

Sequence gaps are counted per (node, session) as ``max_seq - first_seq + 1 - received``,
where ``received`` is the number of *distinct* seqs, kept as merged ranges (``seqset``):
exact under QoS-1 redelivery and across workers, unlike a sum (a redelivered message would
count twice and hide a real gap) or "previous seq + 1" (which breaks as soon as two workers
each see half of a node's messages). The ingest commits them before it acknowledges the
messages they count, in the transaction that merges them, so a crash at any instant leaves
the count exact: what was not acknowledged comes again and merges into the same ranges.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    create_engine,
    event,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import make_url

from cloud.events.store import EventRecord, upsert_events
from cloud.events.store import metadata as events_metadata
from cloud.storage.schema import ensure_schema
from cloud.storage.seqset import SeqSet
from cloud.storage.sqlexpr import greatest as _greatest

metadata = MetaData()

nodes = Table(
    "nodes",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("commune", String(64), nullable=False, default=""),
    Column("known", Integer, nullable=False, default=1),
    Column("status", String(16)),  # online | offline | NULL (never sent a status)
    Column("status_ts", Float),  # stamp of that status (wire.status_order), epoch seconds
    Column("status_reason", String(16)),
    # cloud time (ms) of that status's point in InfluxDB: when it took effect, see apply()
    Column("status_at_ms", BigInteger),
    Column("agent_version", String(64)),
    Column("session", String(32)),
    Column("last_seq", Integer),
    Column("last_msg_ts", Float),  # edge time of the newest message
    Column("last_seen", Float),  # cloud receive time of the newest message, epoch seconds
    Column("messages", Integer, nullable=False, default=0),
    Column("dead_letters", Integer, nullable=False, default=0),
    # messages over the node's rate limit: acknowledged, counted, not stored (issue 9)
    Column("rate_limited", Integer, nullable=False, default=0, server_default="0"),
    # the last agent update the node's birth reported (wire.UpdateReport; issue 15)
    Column("update_version", String(64)),
    Column("update_state", String(16)),  # trial | active | rolled_back | failed
    Column("update_error", Text),
    Column("update_ts", Float),  # edge time of that outcome
)

node_sessions = Table(
    "node_sessions",
    metadata,
    Column("node", String(64), primary_key=True),
    Column("session", String(32), primary_key=True),
    Column("first_seq", Integer, nullable=False),
    Column("max_seq", Integer, nullable=False),
    Column("received", Integer, nullable=False),  # distinct seqs: the count of ``seqs``
    Column("first_seen", Float, nullable=False),
    # the distinct seqs received, as ranges (cloud/storage/seqset.py); NULL on rows from before
    Column("seqs", Text),
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


_S = TypeVar("_S", str, str | None)


def _text(value: _S) -> _S:
    """Text from the wire as SQL can hold it: PostgreSQL refuses NUL (SQLite does not), so it is
    written ``\\x00`` on both (a dead letter's payload keeps the exact bytes)."""
    return value.replace("\x00", "\\x00") if value else value


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
    """The seqs one batch received of one node session."""

    seqs: list[int]
    first_seen: float = 0.0


@dataclass(slots=True)
class StatusUpdate:
    node: str
    commune: str
    known: bool
    state: str
    reason: str
    ts: float  # the status's stamp (orders a node's statuses)
    agent_version: str
    session: str
    received_ms: int  # cloud receive time
    #: set by ``SqlStore.apply``: the time of its InfluxDB point if it took effect, else None (stale)
    at_ms: int | None = None
    #: (version, state, error, edge time) of the node's last update, from a birth
    update: tuple[str, str, str, float] | None = None


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's status in force as the SQL store keeps it (any worker may have received it)."""

    node: str
    commune: str
    state: Literal["online", "offline"]
    reason: str
    stamp: float  # its ts (wire.status_order)
    at: float  # cloud time it took effect


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
        """Rows that must be committed before the messages are acknowledged: data, and the
        seqs received (the gap count), which must be exact at any crash instant."""
        return bool(self.sessions or self.statuses or self.dead or self.snapshots or self.events)

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
            ms.seqs.extend(sd.seqs)
            ms.first_seen = min(ms.first_seen, sd.first_seen)
        self.statuses.extend(other.statuses)
        self.dead.extend(other.dead)
        self.snapshots.extend(other.snapshots)
        self.events.extend(other.events)


def _status_newer(current: Any, new: Any) -> Any:
    """``wire.status_order`` in SQL: the new status is at least as new as the current one."""

    def rank(state: Any) -> Any:
        return case((state == "offline", 1), else_=0)

    return (
        current.status_ts.is_(None)
        | (new.status_ts > current.status_ts)
        | ((new.status_ts == current.status_ts) & (rank(new.status) >= rank(current.status)))
    )


class SqlStore:
    def __init__(self, url: str, *, password: str = "", busy_timeout_ms: int = 10_000) -> None:
        self.engine: Engine = self.engine_for(url, password=password, busy_timeout_ms=busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        self._create_schema()
        self._sessions_known: set[tuple[str, str]] = set()  # node_sessions rows that exist
        self._stmts = self._statements()

    @staticmethod
    def engine_for(url: str, *, password: str = "", busy_timeout_ms: int = 10_000) -> Engine:
        """An engine with the cloud's settings; nothing is created or migrated yet."""
        u = make_url(url)
        if password:
            u = u.set(password=password)
        if u.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
            u = u.set(drivername="postgresql+psycopg")
        sqlite = u.get_backend_name() == "sqlite"
        if sqlite and u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, pool_pre_ping=not sqlite)
        if sqlite:

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
                cur.execute("PRAGMA synchronous=FULL")  # dead letters are acked after this commit
                cur.close()

        return engine

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

    def _statements(self) -> dict[str, Any]:
        """The ingest's statements, built once: constructing them (and their cache keys) for
        every group commit was half the cloud's CPU at a few hundred messages a second."""
        ins = self._insert(nodes)
        ex = ins.excluded
        c = nodes.c
        newer = (c.last_msg_ts.is_(None)) | (ex.last_msg_ts >= c.last_msg_ts)
        node_upsert = ins.on_conflict_do_update(
            index_elements=[c.node],
            set_={
                "messages": c.messages + ex.messages,
                "dead_letters": c.dead_letters + ex.dead_letters,
                "rate_limited": c.rate_limited + ex.rate_limited,
                "last_seen": _greatest(c.last_seen, ex.last_seen),
                "last_msg_ts": case(
                    (ex.last_msg_ts.is_(None), c.last_msg_ts),
                    else_=_greatest(c.last_msg_ts, ex.last_msg_ts),
                ),
                "session": case((ex.session.is_not(None) & newer, ex.session), else_=c.session),
                "last_seq": case((ex.last_seq.is_not(None) & newer, ex.last_seq), else_=c.last_seq),
            },
        )
        ins = self._insert(nodes)
        ex = ins.excluded
        same = (c.status_ts == ex.status_ts) & (c.status == ex.status)
        status_upsert = ins.on_conflict_do_update(
            index_elements=[c.node],
            set_={
                "status": ex.status,
                "status_ts": ex.status_ts,
                "status_reason": ex.status_reason,
                "agent_version": ex.agent_version,
                # a redelivered status keeps its point; a new one comes after the last
                "status_at_ms": case(
                    (same & c.status_at_ms.is_not(None), c.status_at_ms),
                    else_=_greatest(c.status_at_ms + 1, ex.status_at_ms),
                ),
                # only births carry it: a death keeps what the last birth said
                **{
                    col: func.coalesce(getattr(ex, col), c[col])
                    for col in ("update_version", "update_state", "update_error", "update_ts")
                },
            },
            where=_status_newer(c, ex),
        ).returning(c.status_at_ms)
        s = node_sessions.c
        return {
            "nodes": node_upsert,
            "status": status_upsert,
            "sessions_new": self._insert(node_sessions).on_conflict_do_nothing(
                index_elements=[s.node, s.session]
            ),
            "seqs_read": select(s.node, s.session, s.first_seq, s.received, s.seqs)
            .where(tuple_(s.node, s.session).in_(bindparam("keys", expanding=True)))
            .order_by(s.node, s.session)
            .with_for_update(),
            "seqs_write": update(node_sessions)
            .where(s.node == bindparam("k_node"), s.session == bindparam("k_session"))
            .values(
                first_seq=bindparam("first_seq"),
                max_seq=bindparam("max_seq"),
                received=bindparam("received"),
                seqs=bindparam("seqs"),
            ),
            "dead": dead_letters.insert(),
            "snapshots": self._insert(snapshots).on_conflict_do_nothing(index_elements=[snapshots.c.sha256]),
        }

    def apply(self, batch: BatchUpdate) -> None:
        """Write one batch in one transaction; returns when it is committed."""
        if not batch:
            return
        st = self._stmts
        if batch.sessions:
            self._create_sessions(sorted(batch.sessions))
        with self.engine.begin() as conn:
            if self.dialect == "sqlite":  # the write lock first: the seq merge reads, then writes
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            if batch.nodes:
                conn.execute(
                    st["nodes"],
                    [
                        {
                            "node": _text(n),
                            "commune": _text(d.commune),
                            "known": int(d.known),
                            "messages": d.messages,
                            "dead_letters": d.dead_letters,
                            "rate_limited": d.rate_limited,
                            "last_seen": d.last_seen,
                            "last_msg_ts": d.last_msg_ts,
                            "session": d.session,
                            "last_seq": d.last_seq,
                        }
                        for n, d in sorted(batch.nodes.items())  # one lock order for every worker
                    ],
                )
            if batch.sessions:
                self._merge_seqs(conn, batch.sessions)
            for su in batch.statuses:
                upd = su.update or (None, None, None, None)
                su.at_ms = conn.execute(
                    st["status"],
                    {
                        "node": su.node,
                        "commune": su.commune,
                        "known": int(su.known),
                        "status": su.state,
                        "status_ts": su.ts,
                        "status_reason": su.reason,
                        "status_at_ms": su.received_ms,
                        "agent_version": _text(su.agent_version),
                        "session": su.session,
                        "update_version": upd[0],
                        "update_state": upd[1],
                        "update_error": upd[2],
                        "update_ts": upd[3],
                        "messages": 0,
                        "dead_letters": 0,
                        "rate_limited": 0,
                    },
                ).scalar_one_or_none()
            if batch.dead:
                conn.execute(
                    st["dead"],
                    [
                        {
                            "received_at": d.received_at,
                            "topic": _text(d.topic),
                            "node_guess": _text(d.node_guess),
                            "reason": _text(d.reason),
                            "size": len(d.payload),
                            "payload": d.payload,
                        }
                        for d in batch.dead
                    ],
                )
            if batch.snapshots:
                conn.execute(
                    st["snapshots"],
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

    def _create_sessions(self, keys: list[tuple[str, str]]) -> None:
        """Rows for sessions this store has not written yet, each in its own short transaction.

        Before the batch's transaction, so that it only locks rows that exist, in one order
        (two PostgreSQL workers creating and locking rows in the same transaction could
        deadlock). An empty row counts no gap (``first_seq`` 1, ``max_seq`` 0).
        """
        fresh = [k for k in keys if k not in self._sessions_known]
        if not fresh:
            return
        with self.engine.begin() as conn:
            conn.execute(
                self._stmts["sessions_new"],
                [
                    {
                        "node": n,
                        "session": s,
                        "first_seq": 1,
                        "max_seq": 0,
                        "received": 0,
                        "first_seen": time.time(),
                    }
                    for n, s in fresh
                ],
            )
        if len(self._sessions_known) > 100_000:
            self._sessions_known.clear()
        self._sessions_known.update(fresh)

    def _merge_seqs(self, conn: Connection, sessions: dict[tuple[str, str], SessionDelta]) -> None:
        """Merge each session's new seqs into its stored ranges: read, merge, write, rows locked.

        Concurrent workers merge one after the other: on PostgreSQL each locks the rows (``FOR
        UPDATE``) in one order; on SQLite ``apply`` holds the database's write lock from its start.
        """
        keys = sorted(sessions)
        rows = conn.execute(self._stmts["seqs_read"], {"keys": keys}).all()
        if len(rows) < len(keys):
            raise RuntimeError(f"node_sessions rows missing for {len(keys) - len(rows)} sessions")
        updates = []
        for r in rows:
            stored = SeqSet.decode(r.seqs) if r.seqs is not None else SeqSet.legacy(r.first_seq, r.received)
            merged = stored.merge(SeqSet.of(sessions[r.node, r.session].seqs))
            updates.append(
                {
                    "k_node": r.node,
                    "k_session": r.session,
                    "first_seq": merged.first,
                    "max_seq": merged.last,
                    "received": merged.received,
                    "seqs": merged.encode(),
                }
            )
        conn.execute(self._stmts["seqs_write"], updates)

    # ------------------------------------------------------------------ reads (API)
    def node_states(self, only: Collection[str] | None = None) -> dict[str, dict[str, Any]]:
        """Every node seen (or those of ``only``), with its gap count summed over sessions."""
        s = node_sessions.c
        gap = s.max_seq - s.first_seq + 1 - s.received
        gaps_q = select(s.node, func.sum(case((gap > 0, gap), else_=0)).label("gaps")).group_by(s.node)
        q = select(nodes)
        if only is not None:
            keys = sorted(only)
            gaps_q = gaps_q.where(s.node.in_(keys))
            q = q.where(nodes.c.node.in_(keys))
        gaps = gaps_q.subquery()
        q = q.add_columns(func.coalesce(gaps.c.gaps, 0).label("gaps")).outerjoin(
            gaps, gaps.c.node == nodes.c.node
        )
        with self.engine.connect() as conn:
            return {row.node: dict(row._mapping) for row in conn.execute(q)}

    def node_communes(self) -> dict[str, str]:
        """Every node seen -> its commune (cheap: for listing nodes the inventory lacks)."""
        with self.engine.connect() as conn:
            return {r.node: r.commune for r in conn.execute(select(nodes.c.node, nodes.c.commune))}

    def last_seen(self) -> dict[str, tuple[str, float]]:
        """Node -> (commune, its newest message's receive time), as any worker recorded it."""
        c = nodes.c
        q = select(c.node, c.commune, c.last_seen).where(c.last_seen.is_not(None))
        with self.engine.connect() as conn:
            return {r.node: (r.commune, float(r.last_seen)) for r in conn.execute(q)}

    def node_statuses(self) -> list[NodeStatus]:
        """Every node's status in force (the newest by ``wire.status_order``), when it took effect."""
        c = nodes.c
        q = select(c.node, c.commune, c.status, c.status_reason, c.status_ts, c.status_at_ms).where(
            c.status.is_not(None), c.status_ts.is_not(None), c.status_at_ms.is_not(None)
        )
        with self.engine.connect() as conn:
            return [
                NodeStatus(
                    r.node,
                    r.commune,
                    "offline" if r.status == "offline" else "online",
                    r.status_reason or "",
                    float(r.status_ts),
                    r.status_at_ms / 1000,
                )
                for r in conn.execute(q)
            ]

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
