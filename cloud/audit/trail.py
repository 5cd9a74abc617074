"""The audit trail: who did what, when, from where. Append-only and tamper-evident.

Every row carries the SHA-256 of its content chained to the previous row's hash, so a
row edited or deleted behind the application's back breaks the chain at that row
(:meth:`AuditTrail.verify` finds it). Triggers also refuse UPDATE and DELETE outright (and
TRUNCATE on PostgreSQL; migrations 0001 and 0002). Appending reads the chain's head then
inserts the next link, so writers take turns, or two would link to the same head and fork
the chain: threads by a lock, processes (several ``cloud serve`` nodes, the ``users``
command) by an advisory lock on PostgreSQL and by SQLite's write lock, taken first.

Rows of hash version 2 (column ``v``) also cover the user agent; rows written before it
(version 1, every field but the user agent) keep verifying as they were written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, Text, func, select, text

from cloud.csvcells import safe_row
from cloud.storage.schema import ensure_schema

#: Times in the CSV export: the province's, as ISO 8601 with the offset.
LOCAL_TZ: Final = ZoneInfo("Asia/Ho_Chi_Minh")

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
    # How ``hash`` was computed: 1 = without the user agent (rows before it was covered), 2 = with it.
    Column("v", Integer, nullable=False, server_default="1"),
)
HASH_VERSION: Final = 2

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
    v: int,
    prev: str,
    at: float,
    actor: str,
    action: str,
    target: str,
    commune: str,
    detail: str,
    ip: str,
    user_agent: str,
) -> str:
    fields: list[str] = [prev, repr(at), actor, action, target, commune, detail, ip]
    if v >= 2:  # version 2 also covers the user agent, and says so in what it hashes
        fields = ["v2", *fields, user_agent]
    body = json.dumps(fields, ensure_ascii=False)
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
        # Cut to the columns' sizes first: the hash covers what is stored.
        actor, action, target = actor[:64], action[:32], target[:128]
        commune, ip, user_agent = commune[:64], ip[:64], user_agent[:256]
        with self._lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
            elif conn.dialect.name == "sqlite":  # the write lock before the read, not after
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            head = conn.execute(select(audit.c.hash).order_by(audit.c.id.desc()).limit(1)).scalar()
            prev = head or _GENESIS
            h = _digest(HASH_VERSION, prev, at, actor, action, target, commune, d, ip, user_agent)
            row = {
                "at": at,
                "actor": actor,
                "action": action,
                "target": target,
                "commune": commune,
                "detail": d,
                "ip": ip,
                "user_agent": user_agent,
                "prev_hash": prev,
                "hash": h,
                "v": HASH_VERSION,
            }
            res = conn.execute(audit.insert().values(**row))
            pk = res.inserted_primary_key
            assert pk is not None
        return Entry(int(pk[0]), at, actor, action, target, commune, json.loads(d), ip, user_agent, prev, h)

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 200,
        newest_first: bool = True,
    ) -> list[Entry]:
        """Entries matching the filters; ``after_id`` / ``before_id`` page by id (keyset paging)."""
        c = audit.c
        q = select(audit).where(*_filters(actor, action, since, until))
        if after_id is not None:
            q = q.where(c.id > after_id)
        if before_id is not None:
            q = q.where(c.id < before_id)
        q = q.order_by(c.id.desc() if newest_first else c.id.asc()).limit(limit)
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(q)]

    def count(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        q = select(func.count()).select_from(audit).where(*_filters(actor, action, since, until))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def actions(self) -> list[str]:
        """Every action code present, for the audit page's filter."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(audit.c.action).distinct().order_by(audit.c.action)).scalars())

    def verify(self) -> tuple[int, int | None]:
        """(rows checked, id of the first row whose hash or link is wrong, or None)."""
        prev = _GENESIS
        n = 0
        with self.engine.connect() as conn:
            for r in conn.execute(select(audit).order_by(audit.c.id)):
                n += 1
                want = _digest(
                    r.v, prev, r.at, r.actor, r.action, r.target, r.commune, r.detail, r.ip, r.user_agent
                )
                if r.prev_hash != prev or r.hash != want:
                    return n, int(r.id)
                prev = r.hash
        return n, None

    def to_csv(self, entries: list[Entry]) -> str:
        """Times as local ISO 8601 (``2026-11-20T13:00:05.123+07:00``); cells neutralised for spreadsheets."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(FIELDS)
        for e in entries:
            w.writerow(
                safe_row(
                    [
                        e.id,
                        datetime.fromtimestamp(e.at, LOCAL_TZ).isoformat(timespec="milliseconds"),
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
            )
        return buf.getvalue()


def _filters(actor: str | None, action: str | None, since: float | None, until: float | None) -> list[Any]:
    c = audit.c
    out: list[Any] = []
    if actor:
        out.append(c.actor == actor)
    if action:
        out.append(c.action == action)
    if since is not None:
        out.append(c.at >= since)
    if until is not None:
        out.append(c.at < until)
    return out


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
