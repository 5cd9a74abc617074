"""The audit trail: who did what, when, from where. Append-only and tamper-evident.

Every row carries the SHA-256 of its content chained to the previous row's hash, so a
row edited or deleted behind the application's back breaks the chain at that row
(:meth:`AuditTrail.verify` finds it). Triggers also refuse UPDATE and DELETE outright (and
TRUNCATE on PostgreSQL; migrations 0001 and 0002). Appending reads the chain's head then
inserts the next link, so writers take turns, or two would link to the same head and fork
the chain: threads by a lock, processes (several ``cloud serve`` nodes, the ``users``
command) by an advisory lock on PostgreSQL and by SQLite's write lock, taken first.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text, select, text

from cloud.storage.schema import ensure_schema

metadata = MetaData()

audit = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(64), nullable=False, index=True),  # user name, or "system" / "cli"
    Column("action", String(32), nullable=False, index=True),
    Column("target", String(128), nullable=False, default=""),  # e.g. event:42, export:7
    Column("commune", String(64), nullable=False, default=""),
    Column("detail", Text, nullable=False, default="{}"),  # JSON
    Column("ip", String(64), nullable=False, default=""),
    Column("user_agent", String(256), nullable=False, default=""),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

_GENESIS = "0" * 64

#: The advisory lock a PostgreSQL writer holds while it extends the chain ("audi").
_CHAIN_LOCK = 0x61756469

FIELDS = (
    "id",
    "at",
    "actor",
    "action",
    "target",
    "commune",
    "detail",
    "ip",
    "user_agent",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    commune: str
    detail: dict[str, Any]
    ip: str
    user_agent: str
    prev_hash: str
    hash: str


def _digest(
    prev: str, at: float, actor: str, action: str, target: str, commune: str, detail: str, ip: str
) -> str:
    body = json.dumps([prev, repr(at), actor, action, target, commune, detail, ip], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class AuditTrail:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # The chain's head is read then extended: one writing thread at a time (see record).
        self._lock = threading.Lock()
        ensure_schema(engine, metadata)

    def record(
        self,
        actor: str,
        action: str,
        target: str = "",
        *,
        commune: str = "",
        detail: dict[str, Any] | None = None,
        ip: str = "",
        user_agent: str = "",
    ) -> Entry:
        """Append one entry (one transaction: read the chain's head, insert the next link)."""
        at = time.time()
        d = json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str)
        with self._lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
            elif conn.dialect.name == "sqlite":  # the write lock before the read, not after
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            head = conn.execute(select(audit.c.hash).order_by(audit.c.id.desc()).limit(1)).scalar()
            prev = head or _GENESIS
            h = _digest(prev, at, actor, action, target, commune, d, ip)
            row = {
                "at": at,
                "actor": actor[:64],
                "action": action[:32],
                "target": target[:128],
                "commune": commune[:64],
                "detail": d,
                "ip": ip[:64],
                "user_agent": user_agent[:256],
                "prev_hash": prev,
                "hash": h,
            }
            res = conn.execute(audit.insert().values(**row))
            pk = res.inserted_primary_key
            assert pk is not None
        return Entry(int(pk[0]), at, actor, action, target, commune, detail or {}, ip, user_agent, prev, h)

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int | None = None,
        limit: int = 200,
        newest_first: bool = True,
    ) -> list[Entry]:
        c = audit.c
        q = select(audit)
        if actor:
            q = q.where(c.actor == actor)
        if action:
            q = q.where(c.action == action)
        if since is not None:
            q = q.where(c.at >= since)
        if until is not None:
            q = q.where(c.at < until)
        if after_id is not None:
            q = q.where(c.id > after_id)
        q = q.order_by(c.id.desc() if newest_first else c.id.asc()).limit(limit)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(q)]

    def verify(self) -> tuple[int, int | None]:
        """(rows checked, id of the first row whose hash or link is wrong, or None)."""
        prev = _GENESIS
        n = 0
        with self.engine.connect() as conn:
            for r in conn.execute(select(audit).order_by(audit.c.id)):
                n += 1
                want = _digest(prev, r.at, r.actor, r.action, r.target, r.commune, r.detail, r.ip)
                if r.prev_hash != prev or r.hash != want:
                    return n, int(r.id)
                prev = r.hash
        return n, None

    def to_csv(self, entries: list[Entry]) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(FIELDS)
        for e in entries:
            w.writerow(
                [
                    e.id,
                    f"{e.at:.3f}",
                    e.actor,
                    e.action,
                    e.target,
                    e.commune,
                    json.dumps(e.detail, ensure_ascii=False, sort_keys=True),
                    e.ip,
                    e.user_agent,
                    e.prev_hash,
                    e.hash,
                ]
            )
        return buf.getvalue()


def _entry(r: Any) -> Entry:
    return Entry(
        id=r.id,
        at=r.at,
        actor=r.actor,
        action=r.action,
        target=r.target,
        commune=r.commune,
        detail=json.loads(r.detail or "{}"),
        ip=r.ip,
        user_agent=r.user_agent,
        prev_hash=r.prev_hash,
        hash=r.hash,
    )
